"""The loss's fused operator (``loss.cc``), with MXNet's operators as the fallback."""
from __future__ import annotations

from . import available

__all__ = ["softmax_nll"]


def softmax_nll(F, logits, labels):
    """Per-row cross entropy ``logsumexp(logits) - logits[label]``: (M, V), (M,) -> (M,)."""
    if not available():
        return -F.pick(F.log_softmax(logits, axis=-1), labels, axis=-1)
    return F.bortkit_softmax_nll(logits, labels)[0]

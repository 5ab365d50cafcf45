"""The encoder's fused operators (``encoder.cc``), with MXNet's operators as the fallback."""
from __future__ import annotations

from . import available

__all__ = ["layer_norm", "mask_scores"]


def layer_norm(F, x, gamma, beta, eps: float):
    """LayerNorm over the last axis (MXNet ``LayerNorm(axis=-1)``)."""
    if not available():
        return F.LayerNorm(x, gamma, beta, axis=-1, eps=eps)
    # Library operators write their outputs without looking at the request type, so a
    # parameter whose gradient accumulates (grad_req="add") must not be a direct input:
    # identity() takes the gradient and adds it properly.
    return F.bortkit_layer_norm(x, F.identity(gamma), F.identity(beta), eps=eps)[0]


def mask_scores(F, scores, attention_mask, fill: float):
    """``scores`` (B, H, T, T) + (1 - attention_mask) * fill, ``attention_mask`` (B, T)
    broadcast over heads and queries; no gradient flows into the mask."""
    if not available():
        bias = F.expand_dims(F.expand_dims((1.0 - attention_mask) * fill, 1), 1)
        return F.broadcast_add(scores, bias)
    return F.bortkit_mask_scores(scores, F.BlockGrad(attention_mask), fill=fill)

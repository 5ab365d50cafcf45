"""The encoder's fused operators (``encoder.cc``), with MXNet's operators as the fallback."""
from __future__ import annotations

import weakref

from . import available

__all__ = ["layer_norm", "mask_scores", "dropout", "self_attention", "interleave_heads",
           "writes_gradient"]

# Parameters traced straight into a library operator, whose gradient it writes (not adds).
_WRITTEN = weakref.WeakSet()


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


def _training_flag(F):
    """MXNet tells operators whether they train only through its own: Dropout passes a 1
    unchanged outside training (and makes it 0 or 2 in training), so its output tells the
    fused operators (``is_training`` in common.h)."""
    return F.Dropout(F.ones(shape=(1,)), p=0.5)


def dropout(F, x, rate: float):
    """Dropout at ``rate`` in training (MXNet ``Dropout``), a counter-based mask kept as a
    seed for the backward pass; the identity outside training."""
    if not available() or rate <= 0:
        return F.Dropout(x, p=rate) if rate > 0 else x
    return F.bortkit_dropout(x, _training_flag(F), p=rate)[0]


def self_attention(F, qkv, attention_mask, heads: int, dropout: float, fill: float):
    """Scaled dot-product attention from the interleaved (T, B, H, 3, d) projections ->
    (T, B, U) context of the dropped-out probabilities, and the (B, H, T, T) probabilities,
    as one operator (``attention_training.cc``), or None without the fused operators."""
    if not available():
        return None
    context, probs, _ = F.bortkit_attention(qkv, F.BlockGrad(attention_mask), _training_flag(F),
                                            heads=heads, dropout=dropout, fill=fill)
    return context, probs


def interleave_heads(F, params, tensors, heads: int, trailing: tuple):
    """The (U, *trailing) ``tensors`` of three parameters (query, key, value) interleaved per
    head: (3U, *trailing) holding head i's U / heads rows of each in turn, the (..., H, 3, d)
    layout of :func:`self_attention`. ``params`` are the Parameters the tensors come from.

    The library operator reads the parameters directly (no copy), so it writes their
    gradients: it is used only when all three are written (``grad_req="write"``), and
    :func:`writes_gradient` then tells the optimizer not to make them accumulate later."""
    if available() and all(p.grad_req == "write" for p in params):
        _WRITTEN.update(params)
        return F.bortkit_interleave_heads(*tensors, heads=heads)
    return F.concat(*[t.reshape((heads, 1, -1) + trailing) for t in tensors],
                    dim=1).reshape((-1,) + trailing)


def writes_gradient(param) -> bool:
    """True when ``param`` was traced straight into a library operator (whose gradients
    overwrite): its ``grad_req`` must not become ``"add"`` after that."""
    return param in _WRITTEN

"""The int8 dense operator (``int8_dense.cc``): weight packing.

``pack_weight`` turns a float32 (N, K) Dense weight into the operator's inputs: the
per-output-channel int8 weight in AMX's VNNI tile layout (which the AVX-512 and AVX2 tiers
read too), its scales and its column sums. The weight's levels are the active tier's by
default (:func:`bortkit.ops.isa.weight_levels`: 63 at avx2, else 127); the operator is told
them (``weight_levels``) and is exact on every tier for any levels, fastest on its tier's.
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError

__all__ = ["pack_weight", "quantize_weight", "default_levels", "int8_dense"]

TILE_ROWS, TILE_BYTES = 16, 64   # an AMX tile: 16 rows of 64 bytes


def _check_levels(levels) -> int:
    if isinstance(levels, bool) or not isinstance(levels, (int, np.integer)) or \
            not 1 <= levels <= 127:
        raise ConfigError(f"weight levels must be an integer in 1 .. 127, got {levels!r}")
    return int(levels)


def quantize_weight(weight: np.ndarray, levels: int = 127) -> tuple:
    """(N, K) float32 -> (int8 (N, K), float32 scales (N,)): symmetric per output channel,
    ``scale = max|w| / levels`` (1 for an all-zero row), ``q = rint(w / scale)`` in
    [-levels, levels]."""
    levels = _check_levels(levels)
    weight = np.asarray(weight, dtype=np.float32)
    amax = np.abs(weight).max(axis=1)
    scale = np.where(amax > 0, amax / np.float32(levels), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(weight / scale[:, None]), -levels, levels).astype(np.int8)
    return q, scale


def default_levels() -> int:
    """The active tier's weight levels (:func:`bortkit.ops.isa.weight_levels`), 127 when the
    fused kernels are not loaded."""
    from .isa import weight_levels
    return weight_levels() or 127


def pack_weight(weight: np.ndarray, levels=None) -> tuple:
    """(N, K) float32 -> (packed int8 (ceil(N/16), ceil(K/64), 16, 64), scales (N,) float32,
    column sums (N,) int32): the inputs of ``bortkit_int8_dense`` after the data, the weight
    quantized to ``levels`` (default :func:`default_levels`); give the operator the same
    ``weight_levels``."""
    q, scale = quantize_weight(weight, default_levels() if levels is None else levels)
    n, k = q.shape
    n_pad, k_pad = -n % TILE_ROWS, -k % TILE_BYTES
    padded = np.pad(q, ((0, n_pad), (0, k_pad)))
    # [n / 16][k / 64][(k % 64) / 4][(n % 16) * 4 + k % 4]
    tiles = padded.reshape((n + n_pad) // 16, 16, (k + k_pad) // 64, 16, 4)
    packed = np.ascontiguousarray(tiles.transpose(0, 2, 3, 1, 4)).reshape(
        (n + n_pad) // 16, (k + k_pad) // 64, TILE_ROWS, TILE_BYTES)
    return packed, scale, q.astype(np.int32).sum(axis=1).astype(np.int32)


def int8_dense(F, x, weight, scale, colsum, bias, units: int, norm=None, activation=None,
               weight_levels: int = 127):
    """(..., K) float32 -> (..., units) float32 through the packed int8 weight
    (``pack_weight``, with ``weight_levels`` levels); the input is quantized per row inside
    the operator. With ``norm=(residual, gamma, beta, eps)``: ``LayerNorm(dense(x) +
    residual)`` instead; with ``activation="gelu"``: ``GELU(dense(x))`` (exact, erf to
    1.5e-7)."""
    levels = _check_levels(weight_levels)
    if activation is not None:
        return F.bortkit_int8_dense(x, weight, scale, colsum, bias, units=units,
                                    activation=activation, weight_levels=levels)
    if norm is None:
        return F.bortkit_int8_dense(x, weight, scale, colsum, bias, units=units,
                                    weight_levels=levels)
    residual, gamma, beta, eps = norm
    return F.bortkit_int8_dense(x, weight, scale, colsum, bias, residual, gamma, beta,
                                units=units, norm=1, eps=eps, weight_levels=levels)

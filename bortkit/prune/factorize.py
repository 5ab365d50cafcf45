"""FLOP's factorisation: every encoder matrix W (out, in) becomes ``up`` (out, r) ·
diag(z) · ``down`` (r, in), initialised from the thin SVD (r = min(in, out), exact at z = 1),
with a hard-concrete gate z between the two factors.

Arexh/BERT-Pruning used full-matrices SVD (r = in, a 3072 x 3072 factor for BERT's FFN
output) and put all of S on one side; the thin SVD is as exact and smaller, and sqrt(S) on
both factors keeps their scales alike for one shared learning rate.
"""
from __future__ import annotations

from dataclasses import replace as _replace_state

import numpy as np

from ..checkpoint import State
from ..config import LOW_RANK_MATRICES
from ..model.blocks import LowRankDense
from .hard_concrete import HardConcreteMask


class GatedLowRankDense(LowRankDense):
    """A :class:`LowRankDense` with a hard-concrete gate between its factors:
    (..., in) -> ``down`` -> (..., r) * z -> ``up`` + bias -> (..., out)."""

    def __init__(self, units: int, in_units: int, rank: int, mask_options=None, **kwargs):
        super().__init__(units, in_units, rank, **kwargs)
        self.in_units, self.units = in_units, units
        with self.name_scope():
            self.mask = HardConcreteMask(rank, prefix="mask_", **(mask_options or {}))

    def hybrid_forward(self, F, x):
        return self.up(self.mask(self.down(x)))


def svd_factors(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W (out, in) -> (down (r, in), up (out, r)) with up @ down = W, r = min(in, out):
    down = sqrt(S) V^T, up = U sqrt(S), components by decreasing singular value."""
    u, s, vt = np.linalg.svd(np.asarray(weight, np.float64), full_matrices=False)
    root = np.sqrt(s)
    return (root[:, None] * vt).astype(np.float32), (u * root[None, :]).astype(np.float32)


def factorize_state(state: State) -> State:
    """Every encoder matrix of ``state`` (dense) as its two SVD factors at full rank; the
    config records them in ``low_rank``. Heads and embeddings are left as they are."""
    config = state.config
    if config.low_rank:
        raise ValueError("factorize_state expects a dense model; this one already has "
                         f"{len(config.low_rank)} low-rank matrices")
    tensors = dict(state.tensors)
    low_rank = {}
    for i in range(config.num_layers):
        for matrix in LOW_RANK_MATRICES:
            name = f"encoder.{i}.{matrix}"
            down, up = svd_factors(tensors.pop(f"{name}.weight"))
            tensors[f"{name}.down.weight"], tensors[f"{name}.up.weight"] = down, up
            tensors[f"{name}.up.bias"] = tensors.pop(f"{name}.bias")
            low_rank[name] = down.shape[0]
    return _replace_state(state, config=config.replace(low_rank=low_rank), tensors=tensors)


def matrices(network) -> dict:
    """bortkit matrix name ("encoder.3.ffn.ffn_1") -> its block, for every encoder matrix of
    a :class:`~bortkit.model.BertNetwork`."""
    out = {}
    for i, layer in enumerate(network.encoder):
        for matrix in LOW_RANK_MATRICES:
            part, attribute = matrix.split(".")
            out[f"encoder.{i}.{matrix}"] = getattr(getattr(layer, part), attribute)
    return out


def gated_matrices(network) -> dict:
    """The :class:`GatedLowRankDense` blocks of ``network`` by matrix name."""
    return {name: block for name, block in matrices(network).items()
            if isinstance(block, GatedLowRankDense)}


def attach_gates(network, ctx=None, **mask_options) -> dict:
    """Replace every :class:`LowRankDense` of ``network`` (initialised) by a
    :class:`GatedLowRankDense` holding the same factors; returns them by matrix name.
    ``mask_options`` go to :class:`HardConcreteMask` (``init_mean``, ``init_std``, ...)."""
    gated = {}
    for name, block in matrices(network).items():
        if not isinstance(block, LowRankDense) or isinstance(block, GatedLowRankDense):
            continue
        n_out, n_in = block.up.weight.shape[0], block.down.weight.shape[1]
        new = GatedLowRankDense(n_out, n_in, block.rank, mask_options=mask_options,
                                prefix=block.prefix)
        new.initialize(ctx=ctx)
        for old, fresh in ((block.down.weight, new.down.weight), (block.up.weight,
                                                                   new.up.weight),
                           (block.up.bias, new.up.bias)):
            fresh.set_data(old.data())
        _, part, attribute = name.rsplit(".", 2)
        # A subclass of the block it replaces, so Gluon allows the assignment.
        setattr(getattr(network.encoder[int(name.split(".")[1])], part), attribute, new)
        gated[name] = new
    return gated

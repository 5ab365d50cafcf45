"""Remove the switched-off ranks of a gated model and write an ordinary family checkpoint.

For each gated matrix with eval gate z (see :mod:`.hard_concrete`): the components with
z = 0 go, the others keep their factors with z folded into ``up``
(``up' = up[:, keep] * z[keep]``, ``down' = down[keep]``). The pair is then multiplied back
into one matrix ``W = up' @ down'`` wherever that is no larger, r' (in + out) >= in * out:
one product of the same size beats two on any CPU. What stays factored is recorded in the
config's ``low_rank`` (matrix name -> rank r'), so ``from_pretrained``, ``bortkit.finetune``
and ``save_pretrained`` take the result as it is.

The compacted model computes what the gated model computes in eval mode (up to float32
rounding of the folded products); ``tests/test_prune.py`` checks it. Arexh's
``remove_mask.py`` dropped every component with z <= 0.5, which changes the outputs (it
fine-tunes again afterwards); here nothing that contributes is dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, replace as _replace_state

import numpy as np

from ..checkpoint import State
from ..checkpoint.core import named_parameters
from .factorize import gated_matrices


@dataclass(frozen=True)
class MatrixPlan:
    """What compaction does with one gated matrix."""

    name: str
    in_units: int
    out_units: int
    rank: int        # factorised rank before
    kept: int        # components with z > 0
    merged: bool     # stored as one (out, in) matrix

    @property
    def weights(self) -> int:
        """Weights stored after compaction (no bias)."""
        if self.merged:
            return self.in_units * self.out_units
        return max(self.kept, 1) * (self.in_units + self.out_units)


def merges(kept: int, in_units: int, out_units: int) -> bool:
    """One matrix is no larger than the two factors of rank ``kept``."""
    return kept * (in_units + out_units) >= in_units * out_units


def compact_tensors(tensors: dict, gates: dict, shapes: dict) -> tuple[dict, dict, list]:
    """``tensors`` of a gated model (bortkit names), ``gates`` matrix name -> eval gate z,
    ``shapes`` matrix name -> (in, out) -> (compacted tensors, low_rank, plans).

    A matrix whose every gate is 0 keeps one component with z = 0 folded in (a zero matrix
    of rank 1), so its output is its bias, as in the gated model."""
    out = {k: v for k, v in tensors.items() if not k.endswith(".mask.log_alpha")}
    low_rank, plans = {}, []
    for name, z in gates.items():
        n_in, n_out = shapes[name]
        down = out.pop(f"{name}.down.weight")
        up = out.pop(f"{name}.up.weight")
        bias = out.pop(f"{name}.up.bias")
        keep = np.flatnonzero(z > 0)
        if not len(keep):
            keep = np.array([int(np.argmax(z))])
        down, up = down[keep], up[:, keep] * z[keep][None, :].astype(np.float32)
        merged = merges(int((z > 0).sum()), n_in, n_out)
        if merged:
            out[f"{name}.weight"] = (up.astype(np.float64) @ down.astype(np.float64)) \
                .astype(np.float32)
            out[f"{name}.bias"] = bias
        else:
            out[f"{name}.down.weight"], out[f"{name}.up.weight"] = down, up
            out[f"{name}.up.bias"] = bias
            low_rank[name] = len(keep)
        plans.append(MatrixPlan(name, n_in, n_out, len(z), int((z > 0).sum()), merged))
    return out, low_rank, plans


def compact(classifier, state: State) -> tuple[State, list]:
    """Compact a gated :class:`~bortkit.model.SequenceClassifier` into a :class:`State`
    with plain and low-rank matrices; ``state`` gives the head metadata and tokenizer.
    Returns ``(state, plans)``."""
    gated = gated_matrices(classifier.network)
    if not gated:
        raise ValueError("compact needs a model with hard-concrete gates (bortkit.prune)")
    tensors = {name: p.data().asnumpy() for name, p in named_parameters(classifier).items()}
    gates = {name: block.mask.eval_gate() for name, block in gated.items()}
    shapes = {name: (block.in_units, block.units) for name, block in gated.items()}
    tensors, low_rank, plans = compact_tensors(tensors, gates, shapes)
    # Matrices that were never gated keep whatever form the source config gave them.
    untouched = {k: v for k, v in (state.config.low_rank or {}).items() if k not in gated}
    config = state.config.replace(low_rank={**untouched, **low_rank} or None)
    return _replace_state(state, config=config, tensors=tensors), plans

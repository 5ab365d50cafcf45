"""Sub-network extraction: start a search candidate from the teacher's weights.

As whittle, AutoTinyBERT and HAT do for candidates inside a super-network, every tensor of
the candidate takes the teacher's tensor of the same name (layer k from the teacher's
layer k), cut to the candidate's shape: the first rows, columns and entries. Where the
candidate is larger than the teacher (wider, deeper, a larger FFN) the rest keeps its
random initialisation, so a candidate that fits inside the teacher starts as an exact
sub-network and a larger one starts with the teacher inside it.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np


def overlap(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``target`` with its leading block overwritten by ``source``'s (shapes may differ)."""
    if target.ndim != source.ndim:
        raise ValueError(f"cannot overlap a {source.ndim}-d tensor onto a {target.ndim}-d one")
    block = tuple(slice(0, min(a, b)) for a, b in zip(target.shape, source.shape))
    out = target.copy()
    out[block] = source[block]
    return out


def init_from_teacher(parameters: Mapping, teacher: Mapping[str, np.ndarray]) -> dict:
    """Copy the teacher's tensors into ``parameters`` (bortkit name -> Gluon Parameter, as
    :func:`bortkit.checkpoint.named_parameters` gives) where names match; returns how many
    tensors were copied whole, in part, or left random."""
    import mxnet as mx
    counts = {"whole": 0, "part": 0, "random": 0}
    for name, param in parameters.items():
        source = teacher.get(name)
        if source is None:
            counts["random"] += 1
            continue
        current = param.data().asnumpy()
        param.set_data(mx.nd.array(overlap(current, np.asarray(source)), dtype=param.dtype))
        counts["whole" if current.shape == source.shape else "part"] += 1
    return counts

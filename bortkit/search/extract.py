"""Sub-network extraction: start a search candidate from the teacher's weights.

As whittle, AutoTinyBERT and HAT do for candidates inside a super-network, every tensor of
the candidate takes the teacher's tensor of the same name, cut to the candidate's shape: the
first rows, columns and entries. Layers are spread over the teacher's depth
(:func:`layer_map`): a shallower candidate takes evenly spaced teacher layers ending with
the last (DistilBERT's every-other-layer, generalised), a deeper one repeats teacher layers
in order (stacking), so the candidate's top layer always feeds the MLM head the features
the head was fitted on. Where the candidate is wider than the teacher (units, FFN) the rest
keeps its random initialisation, so a candidate that fits inside the teacher starts as a
sub-network and a larger one starts with the teacher inside it.
"""
from __future__ import annotations

import re
from typing import Mapping

import numpy as np

LAYER = re.compile(r"^encoder\.(\d+)\.")


def overlap(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``target`` with its leading block overwritten by ``source``'s (shapes may differ)."""
    if target.ndim != source.ndim:
        raise ValueError(f"cannot overlap a {source.ndim}-d tensor onto a {target.ndim}-d one")
    block = tuple(slice(0, min(a, b)) for a, b in zip(target.shape, source.shape))
    out = target.copy()
    out[block] = source[block]
    return out


def layer_map(depth: int, teacher_depth: int) -> list[int]:
    """The teacher layer each of ``depth`` candidate layers starts from: evenly spaced and
    ending with the teacher's last layer when ``depth <= teacher_depth`` (2 of 6 -> [2, 5]),
    each teacher layer repeated in order when deeper (8 of 6 -> [0, 0, 1, 2, 3, 3, 4, 5])."""
    if depth < 1 or teacher_depth < 1:
        raise ValueError(f"depths must be >= 1, got {depth} and {teacher_depth}")
    if depth <= teacher_depth:
        return [int(np.floor((k + 1) * teacher_depth / depth + 0.5)) - 1 for k in range(depth)]
    return [k * teacher_depth // depth for k in range(depth)]


def _depth(names) -> int:
    return 1 + max((int(m.group(1)) for m in map(LAYER.match, names) if m), default=-1)


def init_from_teacher(parameters: Mapping, teacher: Mapping[str, np.ndarray]) -> dict:
    """Copy the teacher's tensors into ``parameters`` (bortkit name -> Gluon Parameter, as
    :func:`bortkit.checkpoint.named_parameters` gives) where names match, encoder layers
    through :func:`layer_map`; returns how many tensors were copied whole, in part, or left
    random."""
    import mxnet as mx
    depth, teacher_depth = _depth(parameters), _depth(teacher)
    layers = layer_map(depth, teacher_depth) if depth and teacher_depth else []
    counts = {"whole": 0, "part": 0, "random": 0}
    for name, param in parameters.items():
        match = LAYER.match(name)
        source = teacher.get(f"encoder.{layers[int(match.group(1))]}.{name[match.end():]}"
                             if match else name)
        if source is None:
            counts["random"] += 1
            continue
        current = param.data().asnumpy()
        param.set_data(mx.nd.array(overlap(current, np.asarray(source)), dtype=param.dtype))
        counts["whole" if current.shape == source.shape else "part"] += 1
    return counts

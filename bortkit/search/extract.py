"""Sub-network extraction: start a search candidate from the teacher's weights.

As whittle, AutoTinyBERT and HAT do for candidates inside a super-network, a candidate starts
from the teacher's tensors. Layers are spread over the teacher's depth (:func:`layer_map`): a
shallower candidate takes evenly spaced teacher layers ending with the last (DistilBERT's
every-other-layer, generalised), a deeper one repeats teacher layers in order (stacking), so
the candidate's top layer always feeds the MLM head the features the head was fitted on.

Within a layer the copy preserves the teacher's function where the candidate is larger
(:func:`init_from_teacher`), so that a candidate's error measures what it loses, not the
noise its extra width adds:

- model width U: the teacher's U_t dimensions of the residual stream are the candidate's
  first U_t; every tensor that *writes* the extra dimensions is zero there (embeddings,
  attention and FFN outputs, LayerNorm gamma and beta), so they stay 0, and LayerNorm's
  gamma is scaled by sqrt(U_t / U) for the zeros it now averages over (exact for
  zero-mean features); tensors that only *read* them keep their random values;
- heads: teacher head h goes to candidate head h, its d_t dimensions the first of the
  candidate's d = U / H (query scaled by sqrt(d / d_t) for the 1/sqrt(d) of the scores);
  a candidate with fewer heads keeps the teacher's largest (by output-projection norm);
  extra heads and extra dimensions inside a head read randomly and write zero;
- FFN units: the candidate keeps the teacher's largest units (by |W1 row| x |W2 column|),
  extra units read randomly and write zero.

So a candidate whose layers, heads and FFN are each at least the teacher's, at the teacher's
width, computes the teacher's outputs exactly; a narrower or shallower one loses the
smallest heads, units and the skipped layers.
"""
from __future__ import annotations

import math
import re
from typing import Mapping, Optional

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


class _Axis:
    """Where a candidate axis takes the teacher's entries: candidate positions ``to`` <-
    teacher positions ``src``; with ``writes``, every other position is zeroed."""

    def __init__(self, to, src, writes: bool):
        self.to, self.src, self.writes = np.asarray(to, int), np.asarray(src, int), writes


def _width(units: int, teacher_units: int, writes: bool) -> _Axis:
    n = min(units, teacher_units)
    return _Axis(np.arange(n), np.arange(n), writes)


def _heads(heads: int, units: int, t_heads: int, t_units: int, keep, writes: bool) -> _Axis:
    d, d_t = units // heads, t_units // t_heads
    n = min(d, d_t)
    to = [h * d + j for h in range(len(keep)) for j in range(n)]
    src = [t * d_t + j for t in keep for j in range(n)]
    return _Axis(to, src, writes)


def _copy(current: np.ndarray, source: np.ndarray, axes, scale: float = 1.0) -> np.ndarray:
    """``current`` with the mapped block from ``source`` (times ``scale``) and the writing
    axes' other positions zeroed."""
    out = current.copy()
    for k, axis in enumerate(axes):
        if axis is not None and axis.writes:
            rest = np.setdiff1d(np.arange(out.shape[k]), axis.to)
            index = [slice(None)] * out.ndim
            index[k] = rest
            out[tuple(index)] = 0
    to = [a.to if a is not None else np.arange(min(out.shape[k], source.shape[k]))
          for k, a in enumerate(axes)]
    src = [a.src if a is not None else np.arange(min(out.shape[k], source.shape[k]))
           for k, a in enumerate(axes)]
    out[np.ix_(*to)] = source[np.ix_(*src)] * scale
    return out


def _largest(scores: np.ndarray, count: int) -> list[int]:
    """Indices of the ``count`` largest scores, in their original order."""
    return sorted(np.argsort(-scores, kind="stable")[:count].tolist())


def _layer_plan(teacher: Mapping[str, np.ndarray], prefix: str, heads: int, units: int,
                ffn_units: int, t_heads: int) -> dict:
    """Which teacher heads and FFN units a candidate layer keeps."""
    t_units = teacher[f"{prefix}attention.output.weight"].shape[0]
    d_t = t_units // t_heads
    out = teacher[f"{prefix}attention.output.weight"].reshape(t_units, t_heads, d_t)
    head_norm = np.sqrt((out ** 2).sum(axis=(0, 2)))
    w1, w2 = teacher[f"{prefix}ffn.ffn_1.weight"], teacher[f"{prefix}ffn.ffn_2.weight"]
    unit_score = np.linalg.norm(w1, axis=1) * np.linalg.norm(w2, axis=0)
    return {"heads": _largest(head_norm, min(heads, t_heads)),
            "units": _largest(unit_score, min(ffn_units, len(unit_score)))}


def init_from_teacher(parameters: Mapping, teacher: Mapping[str, np.ndarray],
                      heads: Optional[tuple[int, int]] = None) -> dict:
    """Copy the teacher's tensors into ``parameters`` (bortkit name -> Gluon Parameter, as
    :func:`bortkit.checkpoint.named_parameters` gives), function-preserving as the module
    says; ``heads`` is (candidate heads, teacher heads). Returns how many tensors were copied
    whole, in part, or left random (names the teacher lacks, e.g. a variant's own terms)."""
    import mxnet as mx
    depth, teacher_depth = _depth(parameters), _depth(teacher)
    layers = layer_map(depth, teacher_depth) if depth and teacher_depth else []
    first = parameters.get("encoder.0.attention.output.weight")
    units = first.shape[0] if first is not None else None
    ffn = parameters.get("encoder.0.ffn.ffn_1.weight")
    ffn_units = ffn.shape[0] if ffn is not None else None
    t_first = teacher.get("encoder.0.attention.output.weight")
    t_units = t_first.shape[0] if t_first is not None else None
    gamma_scale = math.sqrt(t_units / units) if units and t_units and units > t_units else 1.0
    plans: dict = {}
    counts = {"whole": 0, "part": 0, "random": 0}
    for name, param in parameters.items():
        match = LAYER.match(name)
        rest = name[match.end():] if match else name
        prefix = f"encoder.{layers[int(match.group(1))]}." if match else ""
        source = teacher.get(prefix + rest)
        if source is None:
            counts["random"] += 1
            continue
        source = np.asarray(source)
        current = param.data().asnumpy()
        if current.ndim != source.ndim:      # e.g. a convolutional projection: its own init
            counts["random"] += 1
            continue
        if None in (units, ffn_units, t_units, heads) or current.ndim == 0:
            new = overlap(current, source)
        else:
            new = _extract(rest, current, source, match, prefix, teacher, plans, units,
                           ffn_units, t_units, heads, gamma_scale)
        param.set_data(mx.nd.array(new, dtype=param.dtype))
        counts["whole" if current.shape == source.shape else "part"] += 1
    return counts


def _extract(rest, current, source, match, prefix, teacher, plans, units, ffn_units, t_units,
             heads, gamma_scale) -> np.ndarray:
    """One tensor's function-preserving copy (see the module docstring)."""
    def width(writes):
        return _width(units, t_units, writes)
    if rest.endswith(("norm.gamma", "layer_norm.gamma")):
        return _copy(current, source, [width(True)], scale=gamma_scale)
    if rest.endswith(("norm.beta", "layer_norm.beta")):
        return _copy(current, source, [width(True)])
    if rest.startswith("embeddings.") and rest.endswith("embed.weight"):
        return _copy(current, source, [None, width(True)])
    if rest.startswith("mlm_head.transform."):
        return _copy(current, source, [width(True), width(False)][:current.ndim])
    if not match:
        return overlap(current, source)        # pooler, decoder bias: leading block
    h, t_h = heads
    if prefix not in plans:
        plans[prefix] = _layer_plan(teacher, prefix, h, units, ffn_units, t_h)
    plan = plans[prefix]
    if rest.startswith("attention."):
        kind = rest.split(".")[1]
        keep = plan["heads"]
        if kind == "output":
            axes = [width(True), _heads(h, units, t_h, t_units, keep, True)]
            return _copy(current, source, axes[:current.ndim])
        scale = math.sqrt((units // h) / (t_units // t_h)) if kind == "query" else 1.0
        head_axis = _heads(h, units, t_h, t_units, keep, kind == "query")
        return _copy(current, source, [head_axis, width(False)][:current.ndim], scale)
    if rest.startswith("ffn.ffn_1."):
        unit_axis = _Axis(np.arange(len(plan["units"])), plan["units"], False)
        return _copy(current, source, [unit_axis, width(False)][:current.ndim])
    if rest.startswith("ffn.ffn_2."):
        unit_axis = _Axis(np.arange(len(plan["units"])), plan["units"], True)
        return _copy(current, source, [width(True), unit_axis][:current.ndim])
    return overlap(current, source)

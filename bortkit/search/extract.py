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


def _copy(current: np.ndarray, source: np.ndarray, axes, scale: float = 1.0) -> np.ndarray:
    """``current`` with the mapped block from ``source`` (times ``scale``) and the writing
    axes' other positions zeroed; an axis given as None maps its leading positions."""
    out = current.copy()
    axes = [a if a is not None else _Axis(np.arange(min(n, m)), np.arange(min(n, m)), False)
            for a, n, m in zip(axes, out.shape, source.shape)]
    for k, axis in enumerate(axes):
        if axis.writes:
            index = [slice(None)] * out.ndim
            index[k] = np.setdiff1d(np.arange(out.shape[k]), axis.to)
            out[tuple(index)] = 0
    out[np.ix_(*(a.to for a in axes))] = source[np.ix_(*(a.src for a in axes))] * scale
    return out


def _largest(scores: np.ndarray, count: int) -> list[int]:
    """Indices of the ``count`` largest scores, in their original order."""
    return sorted(np.argsort(-scores, kind="stable")[:count].tolist())


class _Shapes:
    """The candidate's and the teacher's widths and head counts, and per teacher layer which
    heads and FFN units the candidate keeps."""

    def __init__(self, units: int, ffn_units: int, heads: int, t_units: int, t_heads: int):
        self.units, self.ffn_units, self.heads = units, ffn_units, heads
        self.t_units, self.t_heads = t_units, t_heads
        # LayerNorm averages over the candidate's extra (zero) dimensions too
        self.gamma_scale = math.sqrt(t_units / units) if units > t_units else 1.0
        self.plans: dict = {}

    def width(self, writes: bool) -> _Axis:
        n = min(self.units, self.t_units)
        return _Axis(np.arange(n), np.arange(n), writes)

    def head_dims(self, keep, writes: bool) -> _Axis:
        d, d_t = self.units // self.heads, self.t_units // self.t_heads
        n = min(d, d_t)
        return _Axis([h * d + j for h in range(len(keep)) for j in range(n)],
                     [t * d_t + j for t in keep for j in range(n)], writes)

    def plan(self, teacher: Mapping[str, np.ndarray], prefix: str) -> dict:
        """The teacher heads (largest output projection) and FFN units (largest
        |W1 row| x |W2 column|) a candidate layer built from teacher layer ``prefix`` keeps."""
        if prefix not in self.plans:
            out = teacher[f"{prefix}attention.output.weight"]
            out = out.reshape(self.t_units, self.t_heads, self.t_units // self.t_heads)
            w1, w2 = teacher[f"{prefix}ffn.ffn_1.weight"], teacher[f"{prefix}ffn.ffn_2.weight"]
            unit_score = np.linalg.norm(w1, axis=1) * np.linalg.norm(w2, axis=0)
            self.plans[prefix] = {
                "heads": _largest(np.sqrt((out ** 2).sum(axis=(0, 2))),
                                  min(self.heads, self.t_heads)),
                "units": _largest(unit_score, min(self.ffn_units, len(unit_score)))}
        return self.plans[prefix]


def init_from_teacher(parameters: Mapping, teacher: Mapping[str, np.ndarray],
                      heads: Optional[tuple[int, int]] = None) -> dict:
    """Copy the teacher's tensors into ``parameters`` (bortkit name -> Gluon Parameter, as
    :func:`bortkit.checkpoint.named_parameters` gives), function-preserving as the module
    says; ``heads`` is (candidate heads, teacher heads), without it every tensor takes the
    teacher's leading block. Returns how many tensors were copied whole, in part, or left
    random (names the teacher lacks, e.g. a variant's own terms)."""
    import mxnet as mx
    depth, teacher_depth = _depth(parameters), _depth(teacher)
    layers = layer_map(depth, teacher_depth) if depth and teacher_depth else []
    shapes = None
    probe = ("encoder.0.attention.output.weight", "encoder.0.ffn.ffn_1.weight")
    if heads is not None and all(n in parameters for n in probe) and probe[0] in teacher:
        shapes = _Shapes(parameters[probe[0]].shape[0], parameters[probe[1]].shape[0],
                         heads[0], teacher[probe[0]].shape[0], heads[1])
    counts = {"whole": 0, "part": 0, "random": 0}
    for name, param in parameters.items():
        match = LAYER.match(name)
        rest = name[match.end():] if match else name
        prefix = f"encoder.{layers[int(match.group(1))]}." if match else None
        source = teacher.get((prefix or "") + rest)
        current = param.data().asnumpy()
        if source is None or current.ndim != np.ndim(source):  # e.g. a convolutional
            counts["random"] += 1                                # projection: its own init
            continue
        source = np.asarray(source)
        new = overlap(current, source) if shapes is None or current.ndim == 0 else \
            _extract(rest, current, source, prefix, teacher, shapes)
        param.set_data(mx.nd.array(new, dtype=param.dtype))
        counts["whole" if current.shape == source.shape else "part"] += 1
    return counts


def _extract(rest: str, current: np.ndarray, source: np.ndarray, prefix: Optional[str],
             teacher: Mapping[str, np.ndarray], shapes: _Shapes) -> np.ndarray:
    """One tensor's function-preserving copy (see the module docstring); ``prefix`` is the
    teacher layer of an encoder tensor, None elsewhere."""
    width = shapes.width
    if rest.endswith("norm.gamma"):
        return _copy(current, source, [width(True)], scale=shapes.gamma_scale)
    if rest.endswith("norm.beta"):
        return _copy(current, source, [width(True)])
    if rest.startswith("embeddings.") and rest.endswith("embed.weight"):
        return _copy(current, source, [None, width(True)])
    if rest.startswith("mlm_head.transform."):
        return _copy(current, source, [width(True), width(False)][:current.ndim])
    if prefix is None:
        return overlap(current, source)        # pooler, decoder bias: leading block
    plan = shapes.plan(teacher, prefix)
    if rest.startswith("attention."):
        kind = rest.split(".")[1]
        if kind == "output":
            axes = [width(True), shapes.head_dims(plan["heads"], True)]
            return _copy(current, source, axes[:current.ndim])
        scale = math.sqrt((shapes.units // shapes.heads) / (shapes.t_units // shapes.t_heads)) \
            if kind == "query" else 1.0
        head_axis = shapes.head_dims(plan["heads"], writes=kind == "query")
        return _copy(current, source, [head_axis, width(False)][:current.ndim], scale)
    if rest.startswith("ffn.ffn_"):
        writes = rest.startswith("ffn.ffn_2.")
        unit_axis = _Axis(np.arange(len(plan["units"])), plan["units"], writes)
        axes = [width(True), unit_axis] if writes else [unit_axis, width(False)]
        return _copy(current, source, axes[:current.ndim])
    return overlap(current, source)

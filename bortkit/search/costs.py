"""bortkit's cost functions for the model-agnostic FPTAS in the top-level ``search`` package.

- :class:`ParamCost`: p̂, the exact analytic count (:func:`bortkit.count_params`), with or
  without the embeddings.
- :class:`MeasuredLatency`: î, inference time measured on this machine. Timing all 300
  candidates whole would take longer than the search itself, so the time is modelled from
  measurements as ``t(arch) = t_embed(units) + num_layers * t_layer(heads, units, ffn,
  attention kind)``: each distinct layer shape and embedding width is timed once
  (hybridized, static graph, warm-up, minimum of repeats: load only adds time). :meth:`MeasuredLatency.validate`
  times a few whole models and reports the model's relative error, so the approximation is
  visible, not assumed.
- :func:`analytic_flops`: the fallback î, FLOPs of one sequence.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ..accounting import count_params, embedding_params, flops_per_sequence
from ..config import FIELDS, ModelConfig, from_dict


#: Fields besides the widths that change a layer's shape and so its time.
ATTENTION_SHAPE = ("attention", "relative_positions_each_dir", "qk_projection",
                   "value_projection", "projection_kernel_each_dir", "projection_groups")


def arch_config(arch: Mapping) -> ModelConfig:
    """The :class:`ModelConfig` of a search candidate (searched + fixed fields)."""
    return from_dict({k: v for k, v in arch.items() if k in FIELDS})


@dataclass
class ParamCost:
    """p̂: total parameters, or only the non-embedding ones (``include_embeddings=False``)."""

    include_embeddings: bool = True

    def __call__(self, arch: Mapping) -> int:
        config = arch_config(arch)
        total = count_params(config)
        return total if self.include_embeddings else total - embedding_params(config)


def analytic_flops(seq_length: int = 128):
    return lambda arch: float(flops_per_sequence(arch_config(arch), seq_length))


@dataclass
class MeasuredLatency:
    """î in milliseconds for a forward pass of ``batch_size`` x ``seq_length`` tokens.

    Timed with a small vocabulary (an embedding lookup costs the same whatever the table's
    size) and random weights (the arithmetic does not depend on the values).
    """

    batch_size: int = 1
    seq_length: int = 128
    repeats: int = 7
    warmup: int = 2
    depths: tuple = (1, 3)            # probe depths; the layer time is the slope between them
    _timings: dict = field(default_factory=dict, repr=False)

    def _time(self, config: ModelConfig) -> float:
        from ..model import Model
        model = Model(config)
        ids = np.random.RandomState(0).randint(0, config.vocab_size,
                                               (self.batch_size, self.seq_length))
        for _ in range(self.warmup):
            model.encode(ids)
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            model.encode(ids)
            times.append(time.perf_counter() - start)
        return 1000.0 * min(times)   # the least disturbed run: load only ever adds time

    def _probe(self, arch: Mapping, num_layers: int) -> ModelConfig:
        return arch_config({**arch, "num_layers": num_layers, "vocab_size": 512,
                            "max_length": max(self.seq_length, 8), "pad_token_id": 0})

    @property
    def probes(self) -> dict:
        """Milliseconds of every probe timed so far, by layer shape and depth."""
        return self._timings

    def _depth_ms(self, arch: Mapping, depth: int) -> float:
        """Median ms of a ``depth``-layer model of this layer shape (cached)."""
        attention = tuple(arch.get(k) for k in ATTENTION_SHAPE)  # variants time differently
        key = (arch["num_heads"], arch["units"], arch["ffn_units"], arch.get("embed_size"),
               attention, depth)
        if key not in self._timings:
            self._timings[key] = self._time(self._probe(arch, depth))
        return self._timings[key]

    def layer_ms(self, arch: Mapping) -> float:
        # The slope between a shallow and a deeper probe: two depths apart, the noise of
        # each median weighs half as much as in a difference of neighbouring depths.
        low, high = self.depths
        slope = (self._depth_ms(arch, high) - self._depth_ms(arch, low)) / (high - low)
        return max(1e-3, slope)

    def embedding_ms(self, arch: Mapping) -> float:
        """Embeddings + fixed overhead: the shallow probe minus its layers."""
        low = self.depths[0]
        return max(0.0, self._depth_ms(arch, low) - low * self.layer_ms(arch))

    def __call__(self, arch: Mapping) -> float:
        return self.embedding_ms(arch) + arch["num_layers"] * self.layer_ms(arch)

    def whole_ms(self, arch: Mapping) -> float:
        """Milliseconds of the whole model of ``arch`` (not the layer model)."""
        return self._time(self._probe(arch, arch["num_layers"]))

    def validate(self, archs: list) -> list[dict]:
        """Time whole models for ``archs``: predicted vs measured milliseconds."""
        rows = []
        for arch in archs:
            predicted = self(arch)
            measured = self.whole_ms(arch)
            rows.append({"arch": {k: arch[k] for k in ("num_layers", "num_heads", "units",
                                                      "ffn_units", "attention") if k in arch},
                         "predicted_ms": round(predicted, 3), "measured_ms": round(measured, 3),
                         "relative_error": round((predicted - measured) / measured, 4)})
        return rows


@dataclass
class IsolatedLatency:
    """:class:`MeasuredLatency` of every candidate, probed on first use in worker processes,
    ``shapes_per_worker`` layer shapes each: every probe builds a model, and MXNet keeps the
    memory of every shape it has built until its process ends. A search resumed from its
    state file never calls it, so it never probes."""

    candidates: list
    latency: MeasuredLatency = field(default_factory=MeasuredLatency)
    shapes_per_worker: int = 8
    _table: dict = field(default=None, repr=False)

    @property
    def batch_size(self) -> int:
        return self.latency.batch_size

    @property
    def seq_length(self) -> int:
        return self.latency.seq_length

    def __call__(self, arch: Mapping) -> float:
        if self._table is None:
            from .worker import isolated
            shapes: dict = {}
            for candidate in self.candidates:
                shapes.setdefault(_layer_shape(candidate), []).append(candidate)
            groups = list(shapes.values())
            self._table = {}
            for start in range(0, len(groups), self.shapes_per_worker):
                archs = [a for group in groups[start:start + self.shapes_per_worker]
                         for a in group]
                table, probed = isolated(_probe_all, self.latency, archs)
                self._table.update(table)
                self.latency.probes.update(probed.probes)
        return self._table[_key(arch)]

    def validate(self, archs: list) -> list[dict]:
        from .worker import isolated
        return isolated(_validate, self.latency, archs)


def _layer_shape(arch: Mapping) -> tuple:
    return tuple(v for k, v in sorted(arch.items()) if k != "num_layers")


def _key(arch: Mapping) -> str:
    import json
    return json.dumps(dict(arch), sort_keys=True)


def _probe_all(latency: MeasuredLatency, archs: list) -> tuple:
    """(arch key -> ms, the latency model with its probe timings) for :class:`IsolatedLatency`."""
    return {_key(a): latency(a) for a in archs}, latency


def _validate(latency: MeasuredLatency, archs: list) -> list[dict]:
    return latency.validate(archs)

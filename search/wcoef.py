"""The W-coefficient: the scalar the extraction maximises (de Wynter 2020, arXiv 2010.08512).

For a candidate f and the search space's maximum point T::

    W(f) = |(p(T) - p̂(f)) / p(T)|^α · |(i(T) - î(f)) / i(T)|^β · (1 / ê(f))^γ

p̂ is the parameter count, î the inference cost (analytic operation count or measured
latency), ê the error surrogate (a loss after a fixed short training). The paper's form has
α = β = γ = 1 (the defaults); the exponents are an option for weighting the three metrics.
W(T) = 0, and every W is non-negative. See ``search/ALGORITHM.md`` for sources.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from .errors import SearchError


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SearchError(f"{what} must be a positive number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise SearchError(f"{what} must be a positive finite number, got {value!r}")
    return value


@dataclass(frozen=True)
class MaximumPoint:
    """T: the reference that normalises size and cost. ``arch`` is None for a virtual T."""

    params: float
    inference_cost: float
    arch: Optional[Mapping[str, Any]] = None

    def __post_init__(self):
        _positive(self.params, "the maximum point's parameter count")
        _positive(self.inference_cost, "the maximum point's inference cost")

    @classmethod
    def of(cls, archs: Sequence[Mapping[str, Any]], params: Sequence[float],
           inference_costs: Sequence[float]) -> "MaximumPoint":
        """T as in the paper: the candidate with the largest p and the largest i.

        When no single candidate holds both maxima (possible with measured latencies), T is
        the virtual point (max p, max i), so that every candidate still has W >= 0.
        """
        if not archs or not (len(archs) == len(params) == len(inference_costs)):
            raise ValueError("need one parameter count and one inference cost per candidate, "
                             "and at least one candidate")
        p_max, i_max = max(params), max(inference_costs)
        owner = next((a for a, p, i in zip(archs, params, inference_costs)
                      if p == p_max and i == i_max), None)
        return cls(params=p_max, inference_cost=i_max,
                   arch=None if owner is None else dict(owner))

    def to_dict(self) -> dict:
        return {"params": self.params, "inference_cost": self.inference_cost,
                "arch": None if self.arch is None else dict(self.arch)}


@dataclass(frozen=True)
class WCoefficient:
    """W with exponents (α on size, β on inference cost, γ on error); all 1 in the paper."""

    alpha: float = 1.0
    beta: float = 1.0
    gamma: float = 1.0

    def __post_init__(self):
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                    or not math.isfinite(value) or value < 0:
                raise SearchError(f"W-coefficient exponent {name} must be a finite number "
                                  f">= 0, got {value!r}")

    def surrogate(self, params: float, inference_cost: float, maximum_point: MaximumPoint) -> float:
        """The error-free factor |ΔP|^α · |ΔI|^β: known before any training."""
        p = _positive(params, "params")
        i = _positive(inference_cost, "inference cost")
        size = abs(maximum_point.params - p) / maximum_point.params
        cost = abs(maximum_point.inference_cost - i) / maximum_point.inference_cost
        return size ** self.alpha * cost ** self.beta

    def __call__(self, params: float, inference_cost: float, error: float,
                 maximum_point: MaximumPoint) -> float:
        e = _positive(error, "error (W divides by it)")
        return self.surrogate(params, inference_cost, maximum_point) / e ** self.gamma

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "gamma": self.gamma}


def w_coefficient(params: float, inference_cost: float, error: float,
                  maximum_point: MaximumPoint, *, alpha: float = 1.0, beta: float = 1.0,
                  gamma: float = 1.0) -> float:
    """W(f) for one candidate; see the module docstring."""
    return WCoefficient(alpha, beta, gamma)(params, inference_cost, error, maximum_point)

"""Optimal subarchitecture extraction (de Wynter 2020; de Wynter & Perry 2020), model-agnostic.

Plain Python (no MXNet, no model code, no bortkit): a search space (:class:`SearchSpace`),
the W-coefficient (:func:`w_coefficient`), the interval FPTAS and exhaustive search over any cost model
(:func:`fptas`, :func:`exhaustive`), a resumable SQLite state (:class:`SearchStore`) and
reports (:func:`write_results`, :func:`format_table`) and the hyperparameter set Θ
(:func:`load_thetas`); bad input raises :class:`SearchError`. bortkit wires its models to
these in ``bortkit/search/`` (``costs.py``, ``error.py``, ``__main__.py``).
``search/ALGORITHM.md`` documents the algorithm and its sources;
``search/spaces/bert-space.yaml`` is the default space.
"""
from .budget import apply_budget, format_count, parse_count
from .errors import SearchError
from .fptas import (PARTITIONS, CostModel, ScoredCandidate, SearchResult, check_epsilon,
                    exhaustive, fptas, pareto_front)
from .space import SearchSpace, default_space_path
from .store import SearchStore, arch_key
from .theta import load_thetas
from .wcoef import MaximumPoint, WCoefficient, w_coefficient

__all__ = ["SearchError", "SearchSpace", "default_space_path", "parse_count", "format_count",
           "apply_budget", "MaximumPoint", "WCoefficient", "w_coefficient", "CostModel",
           "ScoredCandidate", "SearchResult", "PARTITIONS", "check_epsilon", "fptas",
           "exhaustive", "pareto_front", "SearchStore", "arch_key", "load_thetas",
           "write_results", "format_table"]


def __getattr__(name):  # the report pulls in Matplotlib: load it only when asked for
    if name in ("write_results", "format_table"):
        from . import report
        return getattr(report, name)
    raise AttributeError(f"module 'search' has no attribute {name!r}")

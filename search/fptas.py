"""Optimal subarchitecture extraction: the interval FPTAS of de Wynter (2020) and exhaustive search.

Both algorithms score candidates with a cost model of three callables::

    costs.params(arch)          -> int    # p̂: cheap (analytic count)
    costs.inference_cost(arch)  -> float  # î: cheap-ish (operation count or measured latency)
    costs.error(arch)           -> float  # ê: expensive (trains the candidate), must be > 0

With a hyperparameter set Θ (``thetas=[θ1, θ2, ...]``, JSON mappings) the error is called
once per θ, ``costs.error(arch, θ)``, and ê(arch) is the smallest of them (the paper trains
each representative once per θ and keeps the best W; p̂ and î do not depend on θ). Each
(candidate, θ) run is its own resumable unit in the state file.

and maximise the W-coefficient (:mod:`search.wcoef`). :func:`fptas`:

1. computes p̂ and î for every candidate and the maximum point T (largest p and i);
2. removes candidates over the ``max_params`` budget (before anything is trained) and those
   whose W is 0 whatever their error (p = p(T) or i = i(T), e.g. T itself);
3. sorts the rest by a surrogate (p̂ by default) and cuts the order into intervals: ε
   consecutive candidates each (the paper's reading, 1 <= ε <= |Ξ|), or, with
   ``partition="geometric"`` and 0 < ε < 1, runs whose key grows by at most a factor
   (1 + ε);
4. trains one representative per interval, the one with the largest error-free factor
   |ΔP|^α·|ΔI|^β, and returns the trained candidate with the largest W.

If ê varies by at most a factor (1 + δ) inside every interval, the returned W is at least
W* / (1 + δ)^γ, W* being the exhaustive optimum; with geometric intervals and an error whose
log is L-Lipschitz in the log of the sort key, δ <= (1 + ε)^L - 1, so for L·γ <= 1 the
returned W is at least W*/(1 + ε) >= (1 - ε)·W*. ``search/ALGORITHM.md`` derives this and
lists the sources and the alternatives.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .budget import apply_budget, format_count, parse_count
from .errors import SearchError
from .store import SearchStore, arch_key
from .wcoef import MaximumPoint, WCoefficient

logger = logging.getLogger(__name__)

PARTITIONS = ("count", "geometric")
SORT_KEYS = ("params", "inference_cost", "surrogate")
REPRESENTATIVES = ("best_surrogate", "first", "middle")


@dataclass(frozen=True)
class CostModel:
    """The three costs as plain callables; any object with these attributes will do."""

    params: Callable[[dict], int]
    inference_cost: Callable[[dict], float]
    error: Callable[[dict], float]


@dataclass
class ScoredCandidate:
    """One candidate's scores. ``error`` and ``w`` are None when it was not trained."""

    arch: dict
    params: int
    inference_cost: float
    surrogate: float                   # |ΔP|^α·|ΔI|^β, the part of W known before training
    error: Optional[float] = None
    w: Optional[float] = None
    interval: Optional[int] = None     # FPTAS interval index (None: not in any interval)
    reused: bool = False               # error read from the state file, not trained now
    train_seconds: Optional[float] = None
    theta_errors: Optional[List[float]] = None   # ê per θ, in Θ order (with a Θ)
    theta: Optional[dict] = None       # the θ of the smallest error (with a Θ)

    @property
    def trained(self) -> bool:
        return self.error is not None

    def to_dict(self) -> dict:
        return {"arch": dict(self.arch), "params": self.params,
                "inference_cost": self.inference_cost, "error": self.error, "w": self.w,
                "trained": self.trained, "surrogate": self.surrogate,
                "interval": self.interval, "reused": self.reused,
                "train_seconds": self.train_seconds, "theta_errors": self.theta_errors,
                "theta": self.theta}


@dataclass
class SearchResult:
    """Every candidate scored, the chosen one, and how the search ran."""

    algorithm: str
    candidates: List[ScoredCandidate]
    chosen: ScoredCandidate
    maximum_point: MaximumPoint
    coefficient: WCoefficient
    settings: dict
    dimensions: Tuple[str, ...]        # architecture keys that vary across candidates
    num_over_budget: int = 0
    num_zero_w: int = 0                # W = 0 whatever the error: never trained
    num_intervals: int = 0

    @property
    def num_trained(self) -> int:
        """Candidates whose error is known (trained now or read from the state file)."""
        return sum(c.trained for c in self.candidates)

    @property
    def num_reused(self) -> int:
        return sum(c.reused for c in self.candidates)

    def ranked(self) -> List[ScoredCandidate]:
        """Trained candidates, best W first."""
        return sorted((c for c in self.candidates if c.trained), key=lambda c: -c.w)

    def describe(self, arch: Mapping[str, Any]) -> str:
        return describe(arch, self.dimensions)

    def to_dict(self) -> dict:
        return {"algorithm": self.algorithm, "settings": self.settings,
                "maximum_point": self.maximum_point.to_dict(),
                "w_exponents": self.coefficient.to_dict(), "dimensions": list(self.dimensions),
                "chosen": self.chosen.to_dict(), "num_candidates": len(self.candidates),
                "num_trained": self.num_trained, "num_reused": self.num_reused,
                "num_over_budget": self.num_over_budget, "num_zero_w": self.num_zero_w,
                "num_intervals": self.num_intervals,
                "candidates": [c.to_dict() for c in self.candidates]}


Callback = Callable[[ScoredCandidate, int, int], None]
Store = Union[SearchStore, str, os.PathLike, None]


# ---------------------------------------------------------------------------- public API
def fptas(candidates: Iterable[Mapping[str, Any]], costs: Any, epsilon: float, *,
          max_params: int | str | None = None, store: Store = None,
          coefficient: WCoefficient | None = None, maximum_point: MaximumPoint | None = None,
          partition: str = "count", sort_by: str | Callable[[ScoredCandidate], float] = "params",
          representative: str = "best_surrogate", settings: Mapping[str, Any] | None = None,
          thetas: Optional[Sequence[Mapping[str, Any]]] = None,
          callback: Optional[Callback] = None, jobs: int = 1) -> SearchResult:
    """Extract the candidate with (approximately) the largest W, training one per interval.

    ``epsilon`` is the interval size: a whole number of candidates (``partition="count"``,
    the paper's 1 <= ε <= |Ξ|; larger values give one interval) or a relative width > 0
    (``partition="geometric"``, 0 < ε < 1: the answer's W is then within (1 - ε) of the
    optimum when the error is smooth in the sort key, see the module docstring).
    ``settings`` are extra JSON values that define the error (training steps, data, teacher,
    seed); with a ``store`` (a :class:`SearchStore` or a path) they are recorded, and
    resuming with other settings is refused. ``thetas`` is the hyperparameter set Θ.
    ``jobs`` runs that many ``costs.error`` calls at once (threads: the calls should start
    their own processes); the result is the same as with ``jobs=1`` when the error is a
    function of (arch, θ) alone.
    """
    if partition not in PARTITIONS:
        raise SearchError(f"partition must be one of {', '.join(PARTITIONS)}, got {partition!r}")
    if representative not in REPRESENTATIVES:
        raise SearchError(f"representative must be one of {', '.join(REPRESENTATIVES)}, "
                          f"got {representative!r}")
    if not callable(sort_by) and sort_by not in SORT_KEYS:
        raise SearchError(f"sort_by must be one of {', '.join(SORT_KEYS)} or a function, "
                          f"got {sort_by!r}")
    epsilon = check_epsilon(epsilon, partition)
    options = {"algorithm": "fptas", "epsilon": epsilon, "partition": partition,
               "sort_by": sort_by if isinstance(sort_by, str) else _callable_name(sort_by),
               "representative": representative}

    def select(pool: List[ScoredCandidate]) -> Tuple[List[ScoredCandidate], int]:
        key = _sort_key(sort_by)
        ordered = sorted(pool, key=key)  # stable: ties keep candidate order
        groups = _partition([key(c) for c in ordered], epsilon, partition)
        chosen = []
        for index, members in enumerate(groups):
            group = [ordered[k] for k in members]
            for member in group:
                member.interval = index
            chosen.append(_representative(group, representative))
        return chosen, len(groups)

    return _search(candidates, costs, select, options, max_params=max_params, store=store,
                   coefficient=coefficient, maximum_point=maximum_point, settings=settings,
                   thetas=thetas, callback=callback, jobs=jobs)


def exhaustive(candidates: Iterable[Mapping[str, Any]], costs: Any, *,
               max_params: int | str | None = None, store: Store = None,
               coefficient: WCoefficient | None = None,
               maximum_point: MaximumPoint | None = None,
               settings: Mapping[str, Any] | None = None,
               thetas: Optional[Sequence[Mapping[str, Any]]] = None,
               callback: Optional[Callback] = None, jobs: int = 1) -> SearchResult:
    """Train every candidate that can have W > 0 and return the exact argmax of W."""
    def select(pool: List[ScoredCandidate]) -> Tuple[List[ScoredCandidate], int]:
        return list(pool), 0

    return _search(candidates, costs, select, {"algorithm": "exhaustive"},
                   max_params=max_params, store=store, coefficient=coefficient,
                   maximum_point=maximum_point, settings=settings, thetas=thetas,
                   callback=callback, jobs=jobs)


def pareto_front(results: SearchResult | Iterable[ScoredCandidate]) -> List[ScoredCandidate]:
    """Trained candidates no other trained candidate beats on params, inference cost and error.

    ``a`` dominates ``b`` when it is no worse on all three and better on one. Sorted by
    parameter count.
    """
    pool = results.candidates if isinstance(results, SearchResult) else list(results)
    trained = [c for c in pool if c.trained]

    def dominates(a: ScoredCandidate, b: ScoredCandidate) -> bool:
        no_worse = (a.params <= b.params and a.inference_cost <= b.inference_cost
                    and a.error <= b.error)
        better = (a.params < b.params or a.inference_cost < b.inference_cost
                  or a.error < b.error)
        return no_worse and better

    front = [c for c in trained if not any(dominates(o, c) for o in trained if o is not c)]
    return sorted(front, key=lambda c: (c.params, c.inference_cost, c.error))


def describe(arch: Mapping[str, Any], keys: Sequence[str]) -> str:
    """``'num_layers=4 units=1024'``: the given keys of an architecture."""
    return " ".join(f"{k}={arch.get(k)}" for k in keys) or arch_key(arch)


# ---------------------------------------------------------------------------- the search
def _search(candidates, costs, select, options: dict, *, max_params, store, coefficient,
            maximum_point, settings, thetas, callback, jobs) -> SearchResult:
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs < 1:
        raise SearchError(f"jobs must be a whole number >= 1, got {jobs!r}")
    archs = _as_candidates(candidates)
    _check_costs(costs)
    thetas = _as_thetas(thetas)
    coefficient = _as_coefficient(coefficient)
    limit = None if max_params is None else parse_count(max_params)
    dimensions = _varying_keys(archs)
    run_settings = {**options, "w_exponents": coefficient.to_dict(), "max_params": limit,
                    "maximum_point": None if maximum_point is None else
                    {"params": maximum_point.params,
                     "inference_cost": maximum_point.inference_cost},
                    "candidates": {"count": len(archs), "sha256": _fingerprint(archs)},
                    "settings": _json_ready(settings or {})}
    if thetas is not None:
        run_settings["thetas"] = thetas
    own_store = store is not None and not isinstance(store, SearchStore)
    state = SearchStore(store) if own_store else store
    try:
        if state is not None:
            state.bind(run_settings)
        params, inference = _surrogate_costs(archs, costs, state, dimensions)
        if maximum_point is None:
            maximum_point = MaximumPoint.of(archs, params, inference)
        else:
            larger = sum(p > maximum_point.params or i > maximum_point.inference_cost
                         for p, i in zip(params, inference))
            if larger:
                logger.warning("%d candidates exceed the given maximum point in size or cost; "
                               "W uses |differences|, so they still score above 0", larger)
        kept, over_budget = apply_budget(archs, params, limit,
                                         describe=lambda a: describe(a, dimensions))
        pool = [ScoredCandidate(arch=archs[k], params=params[k], inference_cost=inference[k],
                                surrogate=coefficient.surrogate(params[k], inference[k],
                                                                maximum_point))
                for k in kept]
        positive = [c for c in pool if c.surrogate > 0]
        if not positive:
            raise SearchError(
                f"no candidate can have W > 0: all {len(pool)} share the maximum point's "
                f"parameter count or inference cost ({format_count(maximum_point.params)}, "
                f"{maximum_point.inference_cost:g}); the space needs smaller candidates")
        to_train, num_intervals = select(positive)
        _train_all(to_train, costs, coefficient, maximum_point, state, dimensions, thetas,
                   int(jobs), callback)
    finally:
        if own_store:
            state.close()
    chosen = max((c for c in pool if c.trained), key=lambda c: c.w)  # first of equal W
    logger.info("%s: chose %s (W=%.6g) after training %d of %d candidates",
                options["algorithm"], describe(chosen.arch, dimensions), chosen.w,
                sum(c.trained for c in pool), len(pool))
    return SearchResult(algorithm=options["algorithm"], candidates=pool, chosen=chosen,
                        maximum_point=maximum_point, coefficient=coefficient,
                        settings=run_settings, dimensions=dimensions,
                        num_over_budget=over_budget, num_zero_w=len(pool) - len(positive),
                        num_intervals=num_intervals)


def _surrogate_costs(archs: List[dict], costs, state: Optional[SearchStore],
                     dimensions) -> Tuple[List[int], List[float]]:
    """p̂ and î of every candidate, read from the state file when it already has them."""
    params, inference = [], []
    for arch in archs:
        row = state.get(arch) if state is not None else None
        if row is not None and row.params is not None and row.inference_cost is not None:
            p, i = row.params, row.inference_cost
        else:
            where = describe(arch, dimensions)
            p = _check_params(costs.params(arch), where)
            i = _check_positive(costs.inference_cost(arch), f"costs.inference_cost({where})")
            if state is not None:
                state.record_costs(arch, p, i)
        params.append(p)
        inference.append(i)
    return params, inference


def _train_all(to_train: List[ScoredCandidate], costs, coefficient: WCoefficient,
               maximum_point: MaximumPoint, state: Optional[SearchStore], dimensions,
               thetas: Optional[List[dict]], jobs: int, callback: Optional[Callback]) -> None:
    """Fill in every candidate's error and W: from the state file, or by training it now.

    The (candidate, θ) runs still to train are run ``jobs`` at a time, started in order; the
    state file is written only from this thread, as each run starts and finishes. A failed
    run is recorded, no further run starts, the ones running are waited for (and kept), and
    the first failure is raised."""
    runs: List[Tuple[ScoredCandidate, Optional[dict]]] = []
    pending: dict = {}          # id(candidate) -> {theta index or None: error}
    seconds: dict = {}
    finished = [0]

    def finish(candidate: ScoredCandidate) -> None:
        if not candidate.reused:
            errors = pending[id(candidate)]
            if thetas is None:
                candidate.error = errors[None]
            else:
                candidate.theta_errors = [errors[k] for k in range(len(thetas))]
                candidate.error = min(candidate.theta_errors)
            candidate.train_seconds = seconds.get(id(candidate), 0.0)
        if thetas is not None:  # the first θ of the smallest error
            candidate.theta = thetas[candidate.theta_errors.index(min(candidate.theta_errors))]
        candidate.w = coefficient(candidate.params, candidate.inference_cost, candidate.error,
                                  maximum_point)
        if state is not None and not candidate.reused:
            state.record_error(candidate.arch, candidate.error, candidate.w,
                               candidate.train_seconds)
        logger.info("trained %s: error %.6g, W %.6g%s", describe(candidate.arch, dimensions),
                    candidate.error, candidate.w,
                    " (from the state file)" if candidate.reused else "")
        finished[0] += 1
        if callback is not None:
            callback(candidate, finished[0], len(to_train))

    ready = []
    for candidate in to_train:
        row = state.get(candidate.arch) if state is not None else None
        if row is not None and row.status == "done" and row.error is not None:
            candidate.error, candidate.reused = row.error, True
            candidate.train_seconds = row.train_seconds
            if thetas is not None:
                candidate.theta_errors = [state.get_run(candidate.arch, theta).error
                                          for theta in thetas]
            ready.append(candidate)
            continue
        errors = pending[id(candidate)] = {}
        for index, theta in enumerate(thetas if thetas is not None else [None]):
            run = state.get_run(candidate.arch, theta) if state is not None and theta else None
            if run is not None and run.status == "done":
                errors[index] = run.error
                continue
            runs.append((candidate, None if theta is None else index))
        if len(errors) == len(thetas or [None]):
            ready.append(candidate)
    for candidate in ready:
        finish(candidate)
    started: set = set()

    def start(candidate: ScoredCandidate, index: Optional[int]) -> None:
        if state is None:
            return
        if id(candidate) not in started:
            started.add(id(candidate))
            state.start_training(candidate.arch)
        if index is not None:
            state.start_run(candidate.arch, thetas[index])

    def record(candidate: ScoredCandidate, index: Optional[int], outcome) -> None:
        theta = None if index is None else thetas[index]
        if isinstance(outcome, BaseException):
            message = f"{type(outcome).__name__}: {outcome}"
            if state is not None:
                if theta is not None:
                    state.record_run_failure(candidate.arch, theta, message)
                state.record_failure(candidate.arch, message)
            return
        error, took = outcome
        seconds[id(candidate)] = seconds.get(id(candidate), 0.0) + took
        if state is not None and theta is not None:
            state.record_run(candidate.arch, theta, error, took)
            logger.info("trained %s with %s: error %.6g", describe(candidate.arch, dimensions),
                        arch_key(theta), error)
        errors = pending[id(candidate)]
        errors[index] = error
        if len(errors) == len(thetas or [None]):
            finish(candidate)

    def one(candidate: ScoredCandidate, index: Optional[int]):
        where = describe(candidate.arch, dimensions)
        start = time.perf_counter()
        if index is None:
            error = costs.error(candidate.arch)
            what = f"costs.error({where})"
        else:
            error = costs.error(candidate.arch, dict(thetas[index]))
            what = f"costs.error({where}, {arch_key(thetas[index])})"
        return _check_positive(error, what), time.perf_counter() - start

    if jobs == 1 or len(runs) <= 1:
        for candidate, index in runs:
            start(candidate, index)
            try:
                outcome = one(candidate, index)
            except BaseException as err:
                record(candidate, index, err)
                raise
            record(candidate, index, outcome)
        return
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
    failure: Optional[BaseException] = None
    queue = list(runs)
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="search-run") as pool:
        running: dict = {}
        while running or (queue and failure is None):
            while queue and failure is None and len(running) < jobs:
                candidate, index = queue.pop(0)
                start(candidate, index)
                running[pool.submit(one, candidate, index)] = (candidate, index)
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in [f for f in running if f in done]:   # in the order started
                candidate, index = running.pop(future)
                err = future.exception()
                record(candidate, index, err if err is not None else future.result())
                if err is not None and failure is None:
                    failure = err
    if failure is not None:
        raise failure


# ---------------------------------------------------------------------------- intervals
def _partition(keys: Sequence[float], epsilon: float, mode: str) -> List[List[int]]:
    """Cut sorted ``keys`` into intervals; returns lists of positions into ``keys``."""
    if mode == "count":
        size = int(epsilon)
        return [list(range(start, min(start + size, len(keys))))
                for start in range(0, len(keys), size)]
    groups: List[List[int]] = []
    start_key = None
    for position, key in enumerate(keys):
        if key <= 0:
            raise SearchError(f"partition='geometric' needs positive sort keys, got {key!r}")
        if start_key is None or key > start_key * (1.0 + epsilon):
            groups.append([])
            start_key = key
        groups[-1].append(position)
    return groups


def _representative(group: List[ScoredCandidate], rule: str) -> ScoredCandidate:
    if rule == "first":
        return group[0]
    if rule == "middle":
        return group[(len(group) - 1) // 2]
    return max(group, key=lambda c: c.surrogate)  # first of equal surrogates


def _sort_key(sort_by) -> Callable[[ScoredCandidate], float]:
    if callable(sort_by):
        return sort_by
    if sort_by == "surrogate":
        # Ascending size means descending surrogate; keep "small key = small model".
        return lambda c: 1.0 / c.surrogate
    return lambda c: getattr(c, sort_by)


# ---------------------------------------------------------------------------- checks
def check_epsilon(epsilon: Any, partition: str) -> float:
    """ε as the partition takes it (an int for ``count``); a :class:`SearchError` otherwise."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) \
            or not math.isfinite(epsilon):
        raise SearchError(f"epsilon must be a number, got {epsilon!r}")
    if partition == "count":
        if epsilon < 1 or float(epsilon) != int(epsilon):
            raise SearchError(f"epsilon is the interval size in candidates for "
                              f"partition='count' and must be a whole number >= 1, got "
                              f"{epsilon!r} (partition='geometric' takes a relative width)")
        return int(epsilon)
    if not 0 < epsilon < 1:
        raise SearchError(f"epsilon is a relative interval width for partition='geometric' "
                          f"and must be in (0, 1) (the answer is within (1 - epsilon) of the "
                          f"optimum), got {epsilon!r}")
    return float(epsilon)


def _as_thetas(thetas) -> Optional[List[dict]]:
    """Θ as a list of distinct JSON mappings, or None (the cost model's own setting)."""
    if thetas is None:
        return None
    if isinstance(thetas, (str, bytes, Mapping)) or not isinstance(thetas, Sequence):
        raise SearchError(f"thetas must be a list of hyperparameter mappings, got "
                          f"{type(thetas).__name__}")
    if not thetas:
        raise SearchError("thetas (the hyperparameter set) is empty; give at least one setting")
    return _distinct_mappings(thetas, ("theta", "hyperparameter: value", "setting"))


def _as_candidates(candidates) -> List[dict]:
    if hasattr(candidates, "candidates") and callable(candidates.candidates):
        candidates = candidates.candidates()  # a SearchSpace
    archs = _distinct_mappings(candidates, ("candidate", "architecture fields", "architecture"))
    if not archs:
        raise SearchError("there are no candidates to search")
    return archs


def _distinct_mappings(items, names: Tuple[str, str, str]) -> List[dict]:
    """Copies of ``items``, each a mapping and no two equal; ``names`` word the errors."""
    item, fields, kind = names
    out, seen = [], {}
    for index, value in enumerate(items):
        if not isinstance(value, Mapping):
            raise SearchError(f"{item} {index} must be a mapping of {fields}, got "
                              f"{type(value).__name__}")
        key = arch_key(value)
        if key in seen:
            raise SearchError(f"{item}s {seen[key]} and {index} are the same {kind} {key}")
        seen[key] = index
        out.append(dict(value))
    return out


def _check_costs(costs: Any) -> None:
    missing = [name for name in ("params", "inference_cost", "error")
               if not callable(getattr(costs, name, None))]
    if missing:
        raise TypeError(f"the cost model needs callables params, inference_cost and error; "
                        f"{type(costs).__name__} lacks {', '.join(missing)}")


def _as_coefficient(coefficient) -> WCoefficient:
    if coefficient is None:
        return WCoefficient()
    if isinstance(coefficient, WCoefficient):
        return coefficient
    if isinstance(coefficient, (tuple, list)) and len(coefficient) == 3:
        return WCoefficient(*coefficient)
    raise SearchError(f"coefficient must be a WCoefficient or (alpha, beta, gamma), "
                      f"got {coefficient!r}")


def _check_params(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise SearchError(f"costs.params({where}) must return a positive integer, got {value!r}")
    return int(value)


def _check_positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value <= 0:
        raise SearchError(f"{what} returned {value!r}; it must be a positive finite number")
    return float(value)


# ---------------------------------------------------------------------------- helpers
def _varying_keys(archs: List[dict]) -> Tuple[str, ...]:
    keys = list(dict.fromkeys(k for a in archs for k in a))
    varying = tuple(k for k in keys if len({arch_key({"v": a.get(k)}) for a in archs}) > 1)
    return varying or tuple(keys)


def _fingerprint(archs: List[dict]) -> str:
    digest = hashlib.sha256()
    for arch in archs:
        digest.update(arch_key(arch).encode("utf-8") + b"\n")
    return digest.hexdigest()


def _json_ready(settings: Mapping[str, Any]) -> dict:
    if not isinstance(settings, Mapping):
        raise SearchError(f"settings must be a mapping, got {type(settings).__name__}")
    try:
        json.dumps(dict(settings), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise SearchError(f"settings must be plain JSON data ({err})") from None
    return dict(settings)


def _callable_name(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"

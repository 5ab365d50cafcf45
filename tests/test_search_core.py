"""The MXNet-free extraction core: space, budget, W-coefficient, FPTAS, state file, reports.

The FPTAS tests use synthetic cost models whose exhaustive optimum is computable, and check
the guarantee stated in ``search/ALGORITHM.md``: if the error varies by at most a factor
(1 + δ) inside every interval, the FPTAS's W is at least W* / (1 + δ)^γ; with geometric
intervals of relative width ε and an error whose log is κ-Lipschitz (κ <= 1) in log-params,
that is at least W* / (1 + ε)^κ >= (1 - ε) W*.
"""
from __future__ import annotations

import csv
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from search import (CostModel, MaximumPoint, SearchError, SearchSpace, SearchStore,
                    WCoefficient, apply_budget, arch_key, exhaustive, format_count, fptas,
                    pareto_front, parse_count, w_coefficient)
from search.report import CSV_COLUMNS, format_table, write_results


# ---------------------------------------------------------------------------- synthetic costs
class Synthetic:
    """Analytic p, i and a smooth, noise-free error decreasing in p; records every training."""

    def __init__(self, seed: int = 0, fail_after: int | None = None, latency_noise: float = 0.0):
        rng = np.random.RandomState(seed)
        self.floor = rng.uniform(0.05, 0.5)         # irreducible error
        self.spread = rng.uniform(1.0, 5.0)         # how much worse the smallest model is
        self.kappa = rng.uniform(0.2, 1.0)          # log-log slope of the error: L = kappa
        self.p_min = None
        self.fail_after = fail_after
        self.noise = latency_noise
        self.rng = np.random.RandomState(seed + 1000)
        self.trained: list[dict] = []

    @staticmethod
    def params(arch) -> int:
        d, u, f = arch["num_layers"], arch["units"], arch["ffn_units"]
        return d * (4 * u * u + 2 * u * f + 9 * u + f) + 1000 * u

    def inference_cost(self, arch) -> float:
        d, u, f, h = arch["num_layers"], arch["units"], arch["ffn_units"], arch["num_heads"]
        ops = d * (128 * (4 * u * u + 2 * u * f) + 2 * 128 * 128 * u + 128 * 128 * h) * 1e-9
        return ops * (1.0 + self.noise * self.rng.uniform(-1, 1))

    def true_error(self, arch) -> float:
        return self.floor * (1.0 + self.spread * (self.p_min / self.params(arch)) ** self.kappa)

    def error(self, arch) -> float:
        if self.fail_after is not None and len(self.trained) >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.trained.append(arch)
        return self.true_error(arch)

    def fit(self, archs):
        self.p_min = min(self.params(a) for a in archs)
        return self


def synthetic_space(seed: int) -> list[dict]:
    """~100 random (depth, heads, width, ffn) points with units divisible by heads."""
    rng = np.random.RandomState(seed)
    depths = sorted(rng.choice(np.arange(1, 25), size=5, replace=False).tolist())
    heads = [4, 8]
    widths = sorted(rng.choice([64, 128, 192, 256, 384, 512, 640, 768, 1024], size=4,
                               replace=False).tolist())
    ffns = sorted(rng.choice([128, 256, 512, 768, 1024, 2048, 3072], size=3,
                             replace=False).tolist())
    return [{"num_layers": d, "num_heads": h, "units": u, "ffn_units": f}
            for d, h, u, f in itertools.product(depths, heads, widths, ffns) if u % h == 0]


def problem(seed: int, **kwargs):
    archs = synthetic_space(seed)
    return archs, Synthetic(seed, **kwargs).fit(archs)


# ---------------------------------------------------------------------------- W-coefficient
T = MaximumPoint(params=1000, inference_cost=10.0)


def test_w_coefficient_hand_computed():
    # |(1000-250)/1000| * |(10-4)/10| * 1/0.5 = 0.75 * 0.6 * 2
    assert w_coefficient(250, 4.0, 0.5, T) == pytest.approx(0.9, rel=1e-12)
    assert w_coefficient(900, 9.5, 0.25, T) == pytest.approx(0.1 * 0.05 * 4, rel=1e-12)


def test_w_coefficient_exponents():
    expected = 0.75 ** 2 * 0.6 ** 0.5 * (1 / 0.5) ** 3
    assert w_coefficient(250, 4.0, 0.5, T, alpha=2, beta=0.5, gamma=3) == pytest.approx(expected)
    # beta = 0 ignores inference cost entirely; gamma = 0 ignores the error.
    assert WCoefficient(1, 0, 1)(250, 4.0, 0.5, T) == pytest.approx(0.75 * 2)
    assert WCoefficient(1, 1, 0)(250, 4.0, 0.5, T) == pytest.approx(0.75 * 0.6)


def test_w_of_the_maximum_point_is_zero():
    assert w_coefficient(1000, 10.0, 0.3, T) == 0.0
    assert WCoefficient(2, 3, 1).surrogate(1000, 3.0, T) == 0.0


def test_maximum_point_has_the_largest_p_and_i():
    archs = [{"d": 1}, {"d": 2}, {"d": 3}]
    t = MaximumPoint.of(archs, [10, 30, 20], [1.0, 3.0, 2.0])
    assert (t.params, t.inference_cost, t.arch) == (30, 3.0, {"d": 2})
    virtual = MaximumPoint.of(archs, [10, 30, 20], [1.0, 2.0, 3.0])  # no candidate has both
    assert (virtual.params, virtual.inference_cost, virtual.arch) == (30, 3.0, None)


@pytest.mark.parametrize("error", [0, -0.5, float("nan"), float("inf"), "0.3", True])
def test_w_coefficient_rejects_bad_errors(error):
    with pytest.raises(SearchError, match=r"^error \(W divides by it\) must be a positive"):
        w_coefficient(250, 4.0, error, T)


def test_w_coefficient_rejects_bad_inputs():
    with pytest.raises(SearchError, match=r"^params must be a positive finite number, got -3"):
        w_coefficient(-3, 4.0, 0.5, T)
    with pytest.raises(SearchError, match=r"^W-coefficient exponent gamma must be a finite "
                                          r"number >= 0, got -1"):
        WCoefficient(gamma=-1)
    with pytest.raises(SearchError, match="maximum point's inference cost"):
        MaximumPoint(params=10, inference_cost=0)


# ---------------------------------------------------------------------------- budget
@pytest.mark.parametrize("text, expected", [
    ("56M", 56_000_000), ("56m", 56_000_000), ("1.2B", 1_200_000_000), ("300k", 300_000),
    ("56_000_000", 56_000_000), ("56000000", 56_000_000), (" 2G ", 2_000_000_000),
    ("0.5k", 500), (56_000_000, 56_000_000)])
def test_parse_count(text, expected):
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["0", "-5M", "lots", "1.2.3", "", "0M", "1.2345k", "5e6",
                                  "M", "56 M", -3, 0, True, None, 1.5])
def test_parse_count_rejects(text):
    with pytest.raises(SearchError) as info:
        parse_count(text)
    assert str(info.value).startswith("--max-params: expected a positive count like 56M, "
                                      "1.2B or 56000000, got ")
    assert "\n" not in str(info.value)


def test_parse_count_message_is_exact():
    with pytest.raises(SearchError) as info:
        parse_count("lots")
    assert str(info.value) == ("--max-params: expected a positive count like 56M, 1.2B or "
                               "56000000, got 'lots'")
    with pytest.raises(SearchError, match=r"\(1234\.5 is not a whole number\)$"):
        parse_count("1.2345k")


def test_format_count():
    assert [format_count(n) for n in (950, 56_012_345, 1_200_000_000, 300_000)] == \
        ["950", "56.0M", "1.2B", "300.0k"]


def test_budget_filters_before_training():
    archs, costs = problem(3)
    sizes = sorted(costs.params(a) for a in archs)
    limit = sizes[len(sizes) // 3]
    over = sum(s > limit for s in sizes)
    for run in (lambda: fptas(archs, costs, 4, max_params=limit),
                lambda: exhaustive(archs, costs, max_params=str(limit))):
        costs.trained.clear()
        result = run()
        assert costs.trained, "something must be trained"
        assert max(costs.params(a) for a in costs.trained) <= limit
        assert result.num_over_budget == over
        assert len(result.candidates) == len(archs) - over
        assert result.chosen.params <= limit


def test_budget_nothing_fits_names_the_smallest():
    archs, costs = problem(3)
    smallest = min(archs, key=costs.params)
    with pytest.raises(SearchError) as info:
        fptas(archs, costs, 4, max_params="1k")
    message = str(info.value)
    assert message.startswith("--max-params 1.0k (1000): no candidate fits; the smallest, ")
    assert f"has {format_count(costs.params(smallest))} ({costs.params(smallest)}) parameters" \
        in message
    assert f"num_layers={smallest['num_layers']}" in message
    assert costs.trained == []


def test_apply_budget_indices():
    kept, removed = apply_budget([{"a": 1}, {"a": 2}, {"a": 3}], [5, 50, 20], "20")
    assert (kept, removed) == ([0, 2], 1)


# ---------------------------------------------------------------------------- search space
def test_bort_space_has_300_candidates():
    space = SearchSpace.from_yaml()
    grid = {"num_layers": [2, 4, 6, 8, 10, 12], "num_heads": [4, 8, 12, 16],
            "units": [512, 768, 1024], "ffn_units": [256, 512, 768, 1024, 3072]}
    assert {k: list(v) for k, v in space.dimensions.items()} == grid
    expected = [(d, a, h, i) for d, a, h, i in itertools.product(*grid.values()) if h % a == 0]
    got = [(c["num_layers"], c["num_heads"], c["units"], c["ffn_units"])
           for c in space.candidates()]
    assert got == expected and len(got) == len(space) == 300
    assert space.skipped == 60 and space.total == 360


def test_bort_space_candidates_are_valid_model_configs():
    from bortkit.config import from_dict

    space = SearchSpace.from_yaml()
    for arch in space.candidates():
        config = from_dict(arch)
        assert config.vocab_size == 50265 and config.embed_size == arch["units"]


def _space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, line, problem", [
    ("num_layers: [2, 4]\nnum_layer: [3]\n", 2,
     "unknown key 'num_layer' (did you mean 'num_layers'?)"),
    ("num_layers: [2, 4]\nunits: []\n", 2, "units is an empty list; give at least one value"),
    ("num_layers: [2, 4.5]\n", 1, "num_layers[1] must be an integer, got 4.5"),
    ("num_layers:\n  - 2\n  - six\n", 3, "num_layers[1] must be an integer, got 'six'"),
    ("num_layers: [2, true]\n", 1, "num_layers[1] must be an integer, got True"),
    ("num_layers: [2, 0]\n", 1, "num_layers[1] must be positive, got 0"),
    ("num_layers: [2, -4]\n", 1, "num_layers[1] must be positive, got -4"),
    ("num_layers: [2, 4, 2]\n", 1, "num_layers lists 2 twice"),
    ("num_layers: 4\n", 1, "num_layers must be a list of values like [2, 4, 6], got 4"),
    ("units: [512]\nfixed:\n  vocab_size: 100\n  units: 768\n", 4,
     "fixed field units=768 contradicts the searched units [512]; remove one of them"),
    ("units: [6, 10]\nnum_heads: [4]\n", None,
     "the space is empty: all 2 units x 1 num_heads combinations have units not divisible "
     "by num_heads"),
    ("units: [6]\nfixed:\n  num_heads: 4\n", None, "the space is empty"),
    ("fixed:\n  vocab_size: 100\n", None, "the space searches nothing"),
    ("num_layers: [2\n", 2, "not valid YAML"),
    ("num_layers: [2]\nnum_layers: [4]\n", 2, "key 'num_layers' is given twice"),
    ("", None, "the search space file is empty"),
    ("fixed:\n  dropout: [0.1, 0.2]\n", None, "the space searches nothing"),
    ("units: [64]\nfixed:\n  dropout: [0.1, 0.2]\n", 3,
     "fixed field dropout must be a single value, got a list"),
])
def test_space_errors_name_file_and_line(tmp_path, text, line, problem):
    path = _space_file(tmp_path, text)
    with pytest.raises(SearchError) as info:
        SearchSpace.from_yaml(path)
    message = str(info.value)
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(where), message
    assert problem in message
    assert "\n" not in message


def test_space_fixed_fields_pass_through(tmp_path):
    path = _space_file(tmp_path, "num_heads: [4, 8]\nunits: [8, 12]\n"
                                 "fixed:\n  vocab_size: 100\n  embed_size: null\n")
    space = SearchSpace.from_yaml(path)
    assert list(space.candidates()) == [
        {"num_heads": 4, "units": 8, "vocab_size": 100, "embed_size": None},
        {"num_heads": 4, "units": 12, "vocab_size": 100, "embed_size": None},
        {"num_heads": 8, "units": 8, "vocab_size": 100, "embed_size": None}]
    assert space.skipped == 1


def test_missing_space_file(tmp_path):
    with pytest.raises(SearchError, match=r"nope\.yaml: search space file not found$"):
        SearchSpace.from_yaml(tmp_path / "nope.yaml")


# ---------------------------------------------------------------------------- FPTAS quality
def _interval_error_spread(result, costs) -> float:
    """max over intervals of (max error / min error) - 1, from the true errors."""
    by_interval: dict[int, list[float]] = {}
    for c in result.candidates:
        if c.interval is not None:
            by_interval.setdefault(c.interval, []).append(costs.true_error(c.arch))
    return max(max(v) / min(v) for v in by_interval.values()) - 1.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("epsilon", [2, 4, 8])
def test_fptas_count_intervals_meet_the_spread_bound(seed, epsilon):
    archs, costs = problem(seed)
    best = exhaustive(archs, costs)
    exhaustive_trained = len(costs.trained)
    costs.trained.clear()
    result = fptas(archs, costs, epsilon)
    delta = _interval_error_spread(result, costs)
    bound = best.chosen.w / (1.0 + delta)
    print(f"\nseed {seed} eps {epsilon}: FPTAS trained {result.num_trained}, exhaustive "
          f"{exhaustive_trained}; W {result.chosen.w:.5g} vs W* {best.chosen.w:.5g}; "
          f"spread delta {delta:.3f}")
    assert result.chosen.w >= bound * (1 - 1e-12)
    assert result.num_trained == len(costs.trained) < exhaustive_trained
    positive = len(result.candidates) - result.num_zero_w
    assert result.num_trained == result.num_intervals == math.ceil(positive / epsilon)
    sizes = Counter(c.interval for c in result.candidates if c.interval is not None)
    assert all(n == epsilon for k, n in sizes.items() if k != result.num_intervals - 1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("epsilon", [0.05, 0.2, 0.5])
def test_fptas_geometric_is_within_one_minus_epsilon(seed, epsilon):
    archs, costs = problem(seed)
    best = exhaustive(archs, costs)
    exhaustive_trained = len(costs.trained)
    costs.trained.clear()
    result = fptas(archs, costs, epsilon, partition="geometric")
    print(f"\nseed {seed} eps {epsilon}: FPTAS trained {result.num_trained}, exhaustive "
          f"{exhaustive_trained}; W/W* = {result.chosen.w / best.chosen.w:.4f} "
          f"(guarantee >= {1 / (1 + epsilon) ** costs.kappa:.4f} >= {1 - epsilon})")
    # The error is kappa-Lipschitz in log-params, so inside an interval it varies by at most
    # (1 + eps)^kappa; the spread bound then gives the (1 - eps) guarantee.
    delta = _interval_error_spread(result, costs)
    assert delta <= (1 + epsilon) ** costs.kappa - 1 + 1e-12
    assert result.chosen.w >= best.chosen.w / (1 + delta) * (1 - 1e-12)
    assert result.chosen.w >= best.chosen.w / (1 + epsilon) ** costs.kappa * (1 - 1e-12)
    assert result.chosen.w >= (1 - epsilon) * best.chosen.w
    assert result.num_trained < exhaustive_trained
    # Every interval spans at most a factor (1 + eps) in the sort key (params).
    spans: dict[int, list[int]] = {}
    for c in result.candidates:
        spans.setdefault(c.interval, []).append(c.params)
    assert all(max(v) <= (1 + epsilon) * min(v) for v in spans.values())


@pytest.mark.parametrize("seed", [5, 6])
def test_fptas_bound_with_exponents(seed):
    archs, costs = problem(seed)
    coefficient = WCoefficient(alpha=1.0, beta=0.5, gamma=2.0)
    best = exhaustive(archs, costs, coefficient=coefficient)
    result = fptas(archs, costs, 6, coefficient=coefficient)
    delta = _interval_error_spread(result, costs)
    assert result.chosen.w >= best.chosen.w / (1 + delta) ** 2 * (1 - 1e-12)
    assert result.num_trained < best.num_trained


@pytest.mark.parametrize("sort_by", ["params", "inference_cost", "surrogate",
                                     lambda c: c.arch["num_layers"] * 10_000 + c.arch["units"]])
def test_fptas_spread_bound_holds_for_every_sort_key(sort_by):
    archs, costs = problem(9)
    best = exhaustive(archs, costs)
    result = fptas(archs, costs, 5, sort_by=sort_by)
    delta = _interval_error_spread(result, costs)
    assert result.chosen.w >= best.chosen.w / (1 + delta) * (1 - 1e-12)
    assert result.num_trained == result.num_intervals < best.num_trained


def test_fptas_with_unit_intervals_is_exhaustive():
    archs, costs = problem(7)
    best = exhaustive(archs, costs)
    result = fptas(archs, costs, 1)
    assert result.num_trained == best.num_trained
    assert result.chosen.arch == best.chosen.arch and result.chosen.w == best.chosen.w


def test_exhaustive_is_the_true_argmax_and_skips_zero_w():
    archs, costs = problem(8)
    result = exhaustive(archs, costs)
    t = result.maximum_point
    scores = {arch_key(a): w_coefficient(costs.params(a), costs.inference_cost(a),
                                         costs.true_error(a), t) for a in archs}
    assert result.chosen.w == pytest.approx(max(scores.values()), rel=1e-12)
    assert arch_key(result.chosen.arch) == max(scores, key=scores.get)
    zero = sum(v == 0 for v in scores.values())
    assert zero >= 1 and result.num_zero_w == zero  # T (and its ties) are never trained
    assert result.num_trained == len(archs) - zero


def test_fptas_argument_errors():
    archs, costs = problem(0)
    with pytest.raises(SearchError, match=r"whole number >= 1, got 0\.5 \(partition='geometric'"):
        fptas(archs, costs, 0.5)
    for bad in (0, 1, 1.5, -0.2):
        with pytest.raises(SearchError, match=r"must be in \(0, 1\) \(the answer is within "
                                              rf"\(1 - epsilon\) of the optimum\), got {bad}"):
            fptas(archs, costs, bad, partition="geometric")
    with pytest.raises(SearchError, match="partition must be one of count, geometric"):
        fptas(archs, costs, 2, partition="log")
    with pytest.raises(SearchError, match="candidates 0 and 1 are the same architecture"):
        fptas([archs[0], dict(archs[0])], costs, 2)
    with pytest.raises(SearchError, match="no candidates"):
        fptas([], costs, 2)
    with pytest.raises(TypeError, match="lacks error"):
        fptas(archs, CostModel(costs.params, costs.inference_cost, None), 2)
    bad = CostModel(costs.params, costs.inference_cost, lambda arch: 0.0)
    with pytest.raises(SearchError, match=r"costs\.error\(num_layers=\d+ .*\) returned 0\.0; "
                                          r"it must be a positive finite number"):
        fptas(archs, bad, 2)


def test_fptas_accepts_a_search_space(tmp_path):
    space = SearchSpace.from_yaml()
    costs = Synthetic(0).fit(list(space.candidates()))
    result = fptas(space, costs, 10)
    assert len(result.candidates) == 300 and result.num_trained < 300
    assert result.dimensions == ("num_layers", "num_heads", "units", "ffn_units")


def test_pareto_front_hand_made():
    from search.fptas import ScoredCandidate

    def c(p, i, e):
        return ScoredCandidate(arch={"p": p, "i": i}, params=p, inference_cost=i,
                               surrogate=1.0, error=e, w=1.0)

    a, b, d, dominated, tie = c(1, 5, 0.9), c(2, 1, 0.9), c(5, 5, 0.1), c(3, 6, 0.95), c(1, 5, 0.9)
    untrained = ScoredCandidate(arch={"x": 1}, params=1, inference_cost=1, surrogate=1.0)
    front = pareto_front([d, dominated, a, b, untrained])
    assert front == [a, b, d]
    assert pareto_front([a, tie]) == [a, tie]  # equal points do not dominate each other


# ---------------------------------------------------------------------------- state file
def _summary(result):
    return [(arch_key(c.arch), c.params, c.inference_cost, c.error, c.w)
            for c in result.candidates]


def test_store_kill_and_resume(tmp_path):
    archs, reference_costs = problem(11)
    uninterrupted = fptas(archs, reference_costs, 3, settings={"steps": 100})

    path = tmp_path / "state.sqlite"
    killed = Synthetic(11, fail_after=5).fit(archs)
    with pytest.raises(KeyboardInterrupt):
        fptas(archs, killed, 3, store=path, settings={"steps": 100})
    assert len(killed.trained) == 5
    with SearchStore(path) as store:
        statuses = Counter(row.status for row in store)
        assert statuses == {"done": 5, "failed": 1, "scored": len(archs) - 6}
        failed = next(row for row in store if row.status == "failed")
        assert "KeyboardInterrupt: simulated kill" in failed.message

    # The rerun measures latency differently (noise): the stored costs must be reused.
    resumed_costs = Synthetic(11, latency_noise=0.2).fit(archs)
    resumed = fptas(archs, resumed_costs, 3, store=path, settings={"steps": 100})
    first = {arch_key(a) for a in killed.trained}
    second = {arch_key(a) for a in resumed_costs.trained}
    assert not first & second, "a candidate finished before the kill was trained again"
    assert len(first) + len(second) == uninterrupted.num_trained
    assert resumed.num_reused == 5
    assert _summary(resumed) == _summary(uninterrupted)
    assert resumed.chosen.arch == uninterrupted.chosen.arch
    with SearchStore(path) as store:
        assert Counter(row.status for row in store)["done"] == uninterrupted.num_trained

    # A third run trains nothing at all.
    again = Synthetic(11).fit(archs)
    assert _summary(fptas(archs, again, 3, store=path, settings={"steps": 100})) == \
        _summary(uninterrupted)
    assert again.trained == []


def test_store_refuses_other_settings(tmp_path):
    archs, costs = problem(12)
    path = tmp_path / "state.sqlite"
    fptas(archs, costs, 3, store=path, settings={"steps": 100})
    with pytest.raises(SearchError) as info:
        fptas(archs, costs, 4, store=path, settings={"steps": 100})
    assert str(info.value).startswith(f"{path}: cannot resume: this search state was made "
                                      f"with different settings (epsilon: 3 stored, 4 now)")
    with pytest.raises(SearchError, match=r'settings: \{"steps": 100\} stored, '
                                          r'\{"steps": 200\} now'):
        fptas(archs, costs, 3, store=path, settings={"steps": 200})
    with pytest.raises(SearchError, match=r"algorithm: \"fptas\" stored, \"exhaustive\" now"):
        exhaustive(archs, costs, store=path, settings={"steps": 100})
    with pytest.raises(SearchError, match=r"candidates: "):
        fptas(archs[:-1], costs, 3, store=path, settings={"steps": 100})


def test_store_rejects_foreign_files(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SearchError, match=r"junk\.sqlite: not a search state file"):
        SearchStore(junk)
    import sqlite3

    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(SearchError, match=r"other tables \(users\) is not a search state file"):
        SearchStore(other)


def test_store_uses_wal_and_canonical_keys(tmp_path):
    with SearchStore(tmp_path / "s.sqlite") as store:
        assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        store.record_costs({"b": 2, "a": 1}, 10, 1.5)
        row = store.get({"a": 1, "b": 2})
        assert (row.arch, row.params, row.inference_cost, row.status) == \
            ({"a": 1, "b": 2}, 10, 1.5, "scored")
        assert arch_key({"b": 2, "a": 1}) == '{"a":1,"b":2}'


# ---------------------------------------------------------------------------- reports
def test_reports_are_written_and_readable(tmp_path):
    archs, costs = problem(13)
    limit = sorted(map(costs.params, archs))[-10]
    result = fptas(archs, costs, 4, max_params=limit)
    paths = write_results(result, tmp_path / "out")

    with open(paths["csv"], newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        table = list(reader)
    assert reader.fieldnames == ["num_layers", "num_heads", "units", "ffn_units",
                                 *CSV_COLUMNS, "pareto"]
    assert len(table) == len(result.candidates)
    trained = [r for r in table if r["trained"] == "True"]
    assert len(trained) == result.num_trained
    assert all(float(r["error"]) > 0 and float(r["w"]) > 0 for r in trained)
    assert all(r["error"] == "" and r["w"] == "" for r in table if r["trained"] == "False")
    chosen = [r for r in table if r["chosen"] == "True"]
    assert len(chosen) == 1 and float(chosen[0]["w"]) == pytest.approx(result.chosen.w)
    assert int(chosen[0]["num_layers"]) == result.chosen.arch["num_layers"]

    document = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert document["num_trained"] == result.num_trained
    over = sum(costs.params(a) > limit for a in archs)
    assert document["num_over_budget"] == result.num_over_budget == over > 0
    assert document["chosen"]["arch"] == result.chosen.arch
    assert len(document["candidates"]) == len(result.candidates)
    assert {"arch", "params", "inference_cost", "error", "w", "trained", "chosen",
            "pareto"} <= set(document["candidates"][0])

    from matplotlib.image import imread

    image = imread(paths["png"])
    assert image.shape[0] >= 400 and image.shape[1] >= 600
    assert float(np.std(image[..., :3])) > 0.05  # not a blank canvas
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["results.csv", "results.json", "tradeoff.png"]  # no temporary files left


def test_format_table(tmp_path):
    archs, costs = problem(14)
    result = fptas(archs, costs, 4)
    text = format_table(result, top=3)
    lines = text.splitlines()
    assert lines[0].split() == ["rank", "num_layers", "num_heads", "units", "ffn_units",
                                "params", "cost", "error", "W"]
    assert len(lines) == 1 + 3 + 1
    assert lines[1].split()[0] == "1*"
    assert lines[1].split()[-1] == f"{result.chosen.w:.4g}"
    assert lines[-1].startswith(f"fptas: trained {result.num_trained} of "
                                f"{len(result.candidates)} candidates")


# ---------------------------------------------------------------------------- Θ
class ThetaCosts(Synthetic):
    """The synthetic error scaled by a per-θ factor that depends on the architecture too, so
    that which θ wins differs between candidates; records every (arch, θ) trained."""

    def error(self, arch, theta=None):
        if self.fail_after is not None and len(self.trained) >= self.fail_after:
            raise KeyboardInterrupt("simulated kill")
        self.trained.append((arch, theta))
        return self.theta_error(arch, theta)

    def theta_error(self, arch, theta):
        lr = theta["learning_rate"]
        best_lr = (4e-4, 1e-3, 2.5e-3)[arch["num_layers"] % 3]   # differs between candidates
        return self.true_error(arch) * (1.0 + abs(math.log(lr / best_lr)))


THETAS = [{"learning_rate": 5e-4}, {"learning_rate": 1e-3}, {"learning_rate": 2e-3}]


@pytest.mark.parametrize("algorithm", ["fptas", "exhaustive"])
def test_error_over_theta_is_the_minimum_of_the_per_theta_errors(algorithm):
    archs = synthetic_space(3)
    costs = ThetaCosts(3).fit(archs)
    run = (lambda **kw: fptas(archs, costs, 4, **kw)) if algorithm == "fptas" else \
        (lambda **kw: exhaustive(archs, costs, **kw))
    result = run(thetas=THETAS)
    trained = [c for c in result.candidates if c.trained]
    assert len(costs.trained) == len(THETAS) * len(trained)
    winners = set()
    for c in trained:
        per_theta = [costs.theta_error(c.arch, t) for t in THETAS]   # independent recomputation
        assert c.theta_errors == per_theta
        assert c.error == min(per_theta)
        assert c.theta == THETAS[int(np.argmin(per_theta))]
        assert c.w == pytest.approx(result.coefficient(c.params, c.inference_cost, min(per_theta),
                                                       result.maximum_point), rel=1e-12)
        winners.add(c.theta["learning_rate"])
    assert len(winners) > 1  # the best θ differs between candidates
    # and W is maximised over (candidate, θ): no single θ gives a larger W
    for theta in THETAS:
        single = run(thetas=[theta])
        assert result.chosen.w >= single.chosen.w


def test_theta_runs_resume_one_by_one(tmp_path):
    archs = synthetic_space(4)
    path = tmp_path / "state.sqlite"
    uninterrupted = fptas(archs, ThetaCosts(4).fit(archs), 5, thetas=THETAS)
    killed = ThetaCosts(4, fail_after=7).fit(archs)   # dies in the third candidate's second θ
    with pytest.raises(KeyboardInterrupt):
        fptas(archs, killed, 5, store=path, thetas=THETAS)
    with SearchStore(path) as store:
        assert Counter(run.status for run in store.runs()) == {"done": 7, "failed": 1}
    resumed_costs = ThetaCosts(4).fit(archs)
    resumed = fptas(archs, resumed_costs, 5, store=path, thetas=THETAS)
    done_before = {(arch_key(a), arch_key(t)) for a, t in killed.trained}
    again = {(arch_key(a), arch_key(t)) for a, t in resumed_costs.trained}
    assert not done_before & again, "a finished (candidate, θ) run was trained again"
    assert len(done_before) + len(again) == len(THETAS) * uninterrupted.num_trained
    assert _summary(resumed) == _summary(uninterrupted)
    assert [c.theta for c in resumed.candidates] == [c.theta for c in uninterrupted.candidates]
    with pytest.raises(SearchError, match=r"thetas: .* stored, .* now"):
        fptas(archs, ThetaCosts(4).fit(archs), 5, store=path, thetas=THETAS[:2])


KNOWN = {"learning_rate": lambda v: None if isinstance(v, float) and v > 0 else "must be > 0",
         "warmup_ratio": lambda v: None if isinstance(v, float) and 0 <= v < 1
         else "must be in [0, 1)"}


def test_load_thetas_list_and_grid(tmp_path):
    from search import load_thetas
    listed = tmp_path / "list.yaml"
    listed.write_text("- {learning_rate: 5.0e-4}\n- {learning_rate: 1.0e-3, warmup_ratio: 0.2}\n")
    assert load_thetas(listed, KNOWN) == [{"learning_rate": 5e-4},
                                          {"learning_rate": 1e-3, "warmup_ratio": 0.2}]
    grid = tmp_path / "grid.yaml"
    grid.write_text("learning_rate: [5.0e-4, 1.0e-3]\nwarmup_ratio: [0.1, 0.3]\n")
    assert load_thetas(grid, KNOWN) == [
        {"learning_rate": 5e-4, "warmup_ratio": 0.1}, {"learning_rate": 5e-4, "warmup_ratio": 0.3},
        {"learning_rate": 1e-3, "warmup_ratio": 0.1}, {"learning_rate": 1e-3, "warmup_ratio": 0.3}]


@pytest.mark.parametrize("text,problem", [
    ("- {learning_rate: 5.0e-4}\n- {lr: 1.0e-3}\n",
     "2: unknown hyperparameter 'lr'; known: learning_rate, warmup_ratio"),
    ("learning_rate: [5.0e-4]\nwarmup_ration: [0.1]\n",
     "2: unknown hyperparameter 'warmup_ration' (did you mean 'warmup_ratio'?); known: "
     "learning_rate, warmup_ratio"),
    ("learning_rate: [5.0e-4, -1.0]\n", "1: learning_rate: must be > 0, got -1.0"),
    ("- {learning_rate: 5.0e-4}\n- {learning_rate: 5.0e-4}\n",
     "2: settings 0 and 1 are the same"),
    ("", "must be a non-empty list of settings"),
    ("learning_rate: 5.0e-4\n", "1: grid entry 'learning_rate' must be a non-empty list"),
])
def test_load_thetas_errors_name_file_and_line(tmp_path, text, problem):
    from search import load_thetas
    path = tmp_path / "theta.yaml"
    path.write_text(text)
    with pytest.raises(SearchError) as info:
        load_thetas(path, KNOWN)
    assert str(info.value).startswith(f"{path}:") and problem in str(info.value)


def test_the_search_package_imports_neither_bortkit_nor_a_framework():
    """search/ stays usable on its own: importing all of it (the report too) loads no
    bortkit, MXNet, GluonNLP or PyTorch module."""
    import subprocess
    import sys
    code = ("import sys, search, search.report, search.io, search.errors; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'bortkit', 'mxnet', 'gluonnlp', 'torch'}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"

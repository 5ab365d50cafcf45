"""The search's default regime, its KL error and concurrent candidate training.

- the teacher's sub-network space (its largest point is the teacher), and when it is chosen;
- ê = KL: zero for a candidate that is the teacher's own shape extracted from it, the
  teacher-ce minus one constant (the teacher's entropy) for every candidate;
- ``jobs``: the core's runs at once give the same results as one at a time, and with real
  candidate workers (``--workers 2``) the same errors to the last bit.
"""
import json
import threading
import time

import pytest

import search
from bortkit.accounting import count_params
from bortkit.checkpoint import read_state
from bortkit.config import ModelConfig
from bortkit.search import load_space
from bortkit.search.costs import arch_config
from bortkit.search.regime import choose, teacher_subnetworks
from test_search_cli import SPACE, make_teacher, one_error, run


def test_minilm_subnetworks_have_the_teacher_as_maximum_point(minilm_dir):
    config = read_state(minilm_dir).config
    space = teacher_subnetworks(config)
    archs = list(space.candidates())
    assert len(archs) == 5 * 3 * 3 * 4 == 180
    assert space.dimensions == {"num_layers": (2, 3, 4, 5, 6), "num_heads": (4, 6, 12),
                                "units": (192, 288, 384), "ffn_units": (384, 768, 1152, 1536)}
    sizes = [count_params(arch_config(a)) for a in archs]
    assert max(sizes) == count_params(config) == 22_713_216     # the teacher itself
    # the teacher's shape, with any of the head counts (heads cost no parameters)
    top = {(a["num_layers"], a["num_heads"], a["units"], a["ffn_units"])
           for a, n in zip(archs, sizes) if n == max(sizes)}
    assert top == {(6, 4, 384, 1536), (6, 6, 384, 1536), (6, 12, 384, 1536)}
    assert all(a["vocab_size"] == 30522 and a["type_vocab_size"] == 2 for a in archs)


def test_regime_follows_the_teachers_size(minilm_dir, tmp_path):
    small = read_state(minilm_dir).config
    assert choose("auto", None, small, load_space).name == "subnetworks"
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    given = choose("auto", str(path), small, load_space)        # a given space is searched
    assert given.name == "space" and len(given.space) == len(load_space(str(path)))
    assert choose("space", None, small, load_space).name == "space"
    large = ModelConfig(num_layers=24, num_heads=16, units=1024, ffn_units=4096,
                        vocab_size=50265)                          # larger than Bort's T
    regime = choose("auto", None, large, load_space)
    assert regime.name == "space" and len(regime.space) == 300
    assert "at least the space's maximum point" in regime.describe()


# ---------------------------------------------------------------------- concurrent runs
class SlowCosts:
    """Errors that are a function of the architecture; each call sleeps, so overlapping
    calls show as concurrency."""

    def __init__(self, fail=None):
        self.lock, self.running, self.most = threading.Lock(), 0, 0
        self.fail = fail

    def params(self, arch):
        return 1000 * arch["a"] + 10 * arch["b"]

    def inference_cost(self, arch):
        return float(arch["a"] + arch["b"])

    def error(self, arch, theta=None):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        if self.fail is not None and arch == self.fail:
            raise RuntimeError("candidate failed")
        return 1.0 + 1.0 / (arch["a"] + arch["b"]) + (theta or {}).get("lr", 0.0)


ARCHS = [{"a": a, "b": b} for a in range(1, 5) for b in range(1, 5)]


@pytest.mark.parametrize("thetas", [None, [{"lr": 0.1}, {"lr": 0.0}]])
def test_jobs_give_the_results_of_one_at_a_time(tmp_path, thetas):
    results = {}
    for jobs in (1, 3):
        costs = SlowCosts()
        result = search.fptas(ARCHS, costs, 2, jobs=jobs, thetas=thetas,
                              store=tmp_path / f"state-{jobs}.sqlite")
        results[jobs] = [c.to_dict() for c in result.candidates]
        for row in results[jobs]:
            row.pop("train_seconds")
        assert costs.most == (1 if jobs == 1 else 3)
    assert results[1] == results[3]


def test_a_failed_run_among_jobs_is_recorded_and_the_rest_kept(tmp_path):
    costs = SlowCosts(fail={"a": 2, "b": 4})
    path = tmp_path / "state.sqlite"
    with pytest.raises(RuntimeError, match="candidate failed"):
        search.exhaustive(ARCHS, costs, jobs=2, store=path)
    with search.SearchStore(path) as store:
        statuses = sorted(row.status for row in store)
    assert statuses.count("failed") == 1 and statuses.count("done") >= 1
    assert "running" not in statuses
    resumed = search.exhaustive(ARCHS, SlowCosts(), jobs=2, store=path)
    assert resumed.num_reused == statuses.count("done")


def test_jobs_must_be_a_whole_number():
    with pytest.raises(search.SearchError, match="jobs must be a whole number >= 1, got 0"):
        search.fptas(ARCHS, SlowCosts(), 2, jobs=0)


# ---------------------------------------------------------------------- real candidates
@pytest.fixture(scope="module")
def prepared(tmp_path_factory, minilm_dir):
    from bortkit.search.error import DistillationError, Training
    root = tmp_path_factory.mktemp("kl")
    teacher = make_teacher(root / "teacher", minilm_dir)
    from test_search_pipeline import CORPUS
    for name, lines in (("train.txt", 200), ("heldout.txt", 60)):
        text = (CORPUS / name).read_text(encoding="utf-8").splitlines()[:lines]
        (root / name).write_text("\n".join(text) + "\n", encoding="utf-8")

    def make(out, isolate):
        return DistillationError.prepare(
            root / out, teacher=str(teacher), corpus=[root / "train.txt"],
            heldout=[root / "heldout.txt"], seq_length=32, progress=False, isolate=isolate,
            training=Training(steps=2, batch_size=4, eval_batches=2, learning_rate=1e-3))
    return teacher, make


def _arch(layers, heads, units, ffn):
    return {"num_layers": layers, "num_heads": heads, "units": units, "ffn_units": ffn,
            "vocab_size": 30522, "max_length": 128, "type_vocab_size": 0,
            "use_pooler": False}


@pytest.mark.slow
def test_kl_is_zero_for_the_teacher_and_the_cross_entropy_less_its_entropy(prepared):
    teacher, make = prepared
    error = make("inline", isolate=False)
    assert error.mode == "kl"
    scores = {}
    for arch in (_arch(2, 4, 64, 128), _arch(1, 2, 32, 32)):    # the teacher; a sub-network
        value = error(arch)
        scores[arch["units"]] = json.loads(
            (error.run_dir(arch) / "error.json").read_text())
        assert value == scores[arch["units"]]["kl"] > 0
    same, sub = scores[64], scores[32]
    assert abs(same["before"]["kl"]) < 1e-5          # extraction preserves the function
    assert sub["before"]["kl"] > 0.01                 # a sub-network loses something
    # teacher-ce - kl is the teacher's entropy: the same for every candidate
    entropy = [s[k]["teacher-ce"] - s[k]["kl"] for s in (same, sub) for k in ("before",)]
    entropy += [s["teacher-ce"] - s["kl"] for s in (same, sub)]
    assert max(entropy) - min(entropy) < 1e-4 and min(entropy) > 1.0


@pytest.mark.slow
def test_two_workers_give_the_errors_of_one(prepared):
    _, make = prepared
    archs = [_arch(1, 2, 32, 32), _arch(2, 4, 64, 32)]
    from bortkit.search.costs import ParamCost, analytic_flops
    errors = {}
    for jobs in (1, 2):
        costs = search.CostModel(params=ParamCost(), inference_cost=analytic_flops(),
                                 error=make(f"jobs-{jobs}", isolate=True))
        result = search.exhaustive(archs, costs, jobs=jobs,
                                   maximum_point=search.MaximumPoint(10**8, 1e12))
        errors[jobs] = [c.error for c in result.candidates]
    assert errors[1] == errors[2]


def test_zero_steps_need_the_teachers_weights(tmp_path):
    line = one_error(run("--steps-per-candidate", "0", "--init", "random", "--output-dir",
                         str(tmp_path / "out")))
    assert line.endswith("--steps-per-candidate 0 scores each candidate as extracted from the "
                         "teacher and needs --init teacher, got --init random")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_zero_steps_score_the_extracted_subnetwork(prepared):
    _, make = prepared
    error = make("zero", isolate=False)
    error.training = error.training.with_theta({"steps": 0})
    arch = _arch(1, 2, 32, 128)
    value = error(arch)
    scores = json.loads((error.run_dir(arch) / "error.json").read_text())
    assert value == scores["kl"] == scores["before"]["kl"] > 0
    assert scores["train_seconds"] == 0.0

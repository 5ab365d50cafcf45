"""python -m bortkit.search end to end: budget, outputs, resume, one-line errors."""
import csv
import json
import subprocess
import sys

import mxnet as mx
import pytest

from bortkit.checkpoint import save_pretrained
from bortkit.config import ModelConfig, load_config
from bortkit.model import BertNetwork, MaskedLMModel
from bortkit.tokenizers import load_tokenizer

SPACE = """name: tiny
num_layers: [1, 2, 3]
num_heads: [2, 4]
units: [32, 64]
ffn_units: [32, 128]
fixed:
  vocab_size: 30522
  max_length: 128
  type_vocab_size: 0
  use_pooler: false
"""


def run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "bortkit.search", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout)


def make_teacher(path, minilm_dir, vocab_size=30522):
    """A small teacher with an MLM head and the real MiniLM WordPiece tokenizer."""
    config = ModelConfig(num_layers=2, num_heads=4, units=64, ffn_units=128,
                         vocab_size=vocab_size, max_length=128, type_vocab_size=0,
                         use_pooler=False)
    model = MaskedLMModel(BertNetwork(config))
    model.initialize(mx.init.Normal(0.02))
    save_pretrained(model, path, config=config, tokenizer=load_tokenizer(minilm_dir))
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, minilm_dir):
    return make_teacher(tmp_path_factory.mktemp("teacher") / "t", minilm_dir)


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return path


def one_error(proc):
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [l for l in proc.stderr.splitlines() if l.startswith("bortkit: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    return errors[0]


@pytest.mark.parametrize("budget,message", [
    ("0", "--max-params: expected a positive count"),
    ("lots", "--max-params: expected a positive count like 56M, 1.2B or 56000000, got 'lots'"),
    ("10k", "--max-params 10.0k (10000): no candidate fits; the smallest, num_layers=1 "
            "num_heads=2 units=32 ffn_units=32, has"),
])
def test_bad_budgets(space, tmp_path, budget, message):
    assert message in one_error(run("--max-params", budget, "--space", str(space),
                                    "--output-dir", str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()  # nothing written


@pytest.mark.parametrize("args,message", [
    (["--partition", "geometric", "--epsilon", "1.5"],
     "bortkit: error: --epsilon: epsilon is a relative interval width for "
     "partition='geometric' and must be in (0, 1) (the answer is within (1 - epsilon) of the "
     "optimum), got 1.5"),
    (["--partition", "geometric", "--epsilon", "0"], "must be in (0, 1)"),
    (["--epsilon", "2.5"], "bortkit: error: --epsilon: epsilon is the interval size in "
                           "candidates for partition='count' and must be a whole number >= 1, "
                           "got 2.5"),
    (["--gamma", "-1"], "bortkit: error: --alpha/--beta/--gamma: W-coefficient exponent gamma "
                        "must be a finite number >= 0, got -1.0"),
    (["--learning-rate", "0"], "bortkit: error: --learning-rate must be a positive number, got 0.0"),
    (["--warmup-ratio", "1"], "bortkit: error: --warmup-ratio must be a number in [0, 1), got 1.0"),
    (["--teacher-mlm-lr", "-1"],
     "bortkit: error: --teacher-mlm-lr must be a positive number, got -1.0"),
])
def test_bad_algorithm_options(space, tmp_path, args, message):
    line = one_error(run("--max-params", "2M", "--space", str(space), *args,
                         "--output-dir", str(tmp_path / "o")))
    assert line.startswith(message) or message in line, line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("text,message", [
    ("- {learning_rate: 5.0e-4}\n- {lr: 1.0e-3}\n",
     ":2: unknown hyperparameter 'lr'; known: learning_rate, warmup_ratio, weight_decay, "
     "max_grad_norm, batch_size, temperature, mlm_weight, kd_weight, seed"),
    ("learning_rate: [5.0e-4, 1.0e-3]\nwarmup: [0.1]\n",
     ":2: unknown hyperparameter 'warmup' (did you mean 'warmup_ratio'?)"),
    ("batch_size: [8, 0.5]\n", ":1: batch_size: must be an integer, got 0.5"),
])
def test_bad_theta_file(space, tmp_path, text, message):
    theta = tmp_path / "theta.yaml"
    theta.write_text(text)
    line = one_error(run("--max-params", "2M", "--space", str(space), "--theta", str(theta),
                         "--output-dir", str(tmp_path / "o")))
    assert line.startswith(f"bortkit: error: {theta}{message}"), line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("text,message", [
    ("", "empty"),
    ("num_layers: [2, 4]\nnum_heads: []\nunits: [64]\nffn_units: [64]\n", "empty"),
    ("num_layers: [2]\nnum_heads: [4]\nunits: [64]\nffn_units: [64]\nfixed:\n  units: 32\n",
     "units"),
    ("num_layers: [2]\nnum_heads: [4]\nunits: [64]\nffn_units: [64]\nwidth: [3]\n", "width"),
])
def test_bad_space_yaml(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    line = one_error(run("--max-params", "56M", "--space", str(path), "--out", str(tmp_path / "o")))
    assert str(path) in line and message in line


def test_fitted_teacher_is_cached_under_its_settings(tmp_path):
    from bortkit.search.teacher import head_key
    (tmp_path / "config.json").write_text("{}")

    def key(**settings):
        return head_key(tmp_path, "corpus", 400, 8, 64, 0, **settings)
    keys = {key(scope="all", learning_rate=1e-4), key(scope="all", learning_rate=2e-4),
            key(scope="head", learning_rate=1e-4), key(scope="head", learning_rate=2e-4)}
    assert len(keys) == 4                       # no fit is reused for another setting
    assert key(scope="all", learning_rate=1e-4) == key(scope="all", learning_rate=1e-4)


def test_teacher_vocabulary_must_match_tokenizer(space, tmp_path, minilm_dir):
    small = make_teacher(tmp_path / "small", minilm_dir, vocab_size=1000)
    line = one_error(run("--max-params", "6M", "--space", str(space), "--teacher", str(small),
                         "--out", str(tmp_path / "o")))
    assert str(small) in line and "30522 tokens" in line and "1000" in line


@pytest.mark.slow
def test_search_runs_within_budget_and_resumes(space, teacher, tmp_path):
    out = tmp_path / "out"
    theta = tmp_path / "theta.yaml"
    theta.write_text("learning_rate: [5.0e-4, 2.0e-3]\n")
    args = ["--max-params", "2.5M", "--space", str(space), "--teacher", str(teacher),
            "--steps-per-candidate", "3", "--epsilon", "11", "--batch-size", "4",
            "--max-length", "32", "--eval-batches", "2", "--theta", str(theta),
            "--latency", "measured", "--output-dir", str(out)]
    first = run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert rows and all(int(r["params"]) <= 2_500_000 for r in rows)
    trained = [r for r in rows if r["error"] not in ("", "None")]
    assert 0 < len(trained) < len(rows)               # the FPTAS trains a subset
    # ê is the KL divergence from the teacher (the default), the smaller over the two θ
    document = json.loads((out / "results.json").read_text())
    for c in (c for c in document["candidates"] if c["trained"]):
        shape = "-".join(str(c["arch"][k]) for k in ("num_layers", "num_heads", "units",
                                                     "ffn_units"))
        runs = [json.loads(p.read_text()) for p in (out / "candidates" / shape).glob("*/error.json")]
        assert len(runs) == 2 and {r["theta"]["learning_rate"] for r in runs} == {5e-4, 2e-3}
        assert c["error"] == min(r["kl"] for r in runs)
        assert sorted(c["theta_errors"]) == sorted(r["kl"] for r in runs)
    best = load_config(out / "best" / "config.json")  # loads with the family's config code
    assert best.num_layers in (1, 2, 3) and best.units in (32, 64)
    assert best.vocab_size == 30522                   # the teacher's: a distillation student
    assert (out / "tradeoff.png").stat().st_size > 5000
    assert json.loads((out / "latency.json").read_text())["validation"]
    second = run(*args)  # resume: nothing is trained again
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{len(trained)} trained ({len(trained)} reused" in second.stdout, second.stdout

"""One command-line convention for every ``python -m bortkit.*`` entry point (issue 10)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bortkit.errors import ConfigError
from bortkit.options import check_choice, check_range

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = ("bortkit.finetune", "bortkit.distill", "bortkit.agora", "bortkit.sweep",
                "bortkit.search", "bortkit.info", "bortkit.data.create_pretraining_data")
# shared idea -> entry points that take it (all of them spell it the same way)
SHARED = {
    "--output-dir": set(ENTRY_POINTS) - {"bortkit.info"},
    "--no-progress": set(ENTRY_POINTS) - {"bortkit.info"},
    "--seed": set(ENTRY_POINTS) - {"bortkit.info", "bortkit.sweep"},
    "--batch-size": {"bortkit.finetune", "bortkit.distill", "bortkit.search"},
    "--learning-rate": {"bortkit.finetune", "bortkit.distill"},
    "--max-grad-norm": {"bortkit.finetune", "bortkit.distill"},
    "--max-length": {"bortkit.finetune", "bortkit.search", "bortkit.info",
                     "bortkit.data.create_pretraining_data"},
}
# other spellings of those ideas, accepted as hidden aliases at most
OLD_SPELLINGS = ("--out", "--output", "--lr", "--seq-length", "--max-seq-length",
                 "--clip-norm", "--quiet", "--progress")

HELP_ALL = """
import contextlib, io, json, runpy, sys, time
out = {}
for module in sys.argv[1:]:
    sys.argv = [module, "--help"]
    text, start = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stdout(text):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as exit:
            code = exit.code
    out[module] = {"help": text.getvalue(), "code": code, "mxnet": "mxnet" in sys.modules,
                   "seconds": time.perf_counter() - start}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps() -> dict:
    proc = subprocess.run([sys.executable, "-c", HELP_ALL, *ENTRY_POINTS], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _options(text: str) -> set:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", text))


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_answers_without_mxnet(helps, module):
    """``--help`` imports no framework (it took 8-9 s for finetune and agora)."""
    result = helps[module]
    assert result["code"] == 0 and "usage: python -m " in result["help"]
    assert not result["mxnet"], f"{module} --help imported MXNet"


@pytest.mark.parametrize("idea", sorted(SHARED))
def test_shared_ideas_have_one_spelling(helps, idea):
    for module, result in helps.items():
        options = _options(result["help"])
        if module in SHARED[idea]:
            assert idea in options, f"{module} lacks {idea}"
        assert not options & set(OLD_SPELLINGS), (module, options & set(OLD_SPELLINGS))


def test_optimizer_choices_come_from_the_registry(helps):
    from bortkit.train import OPTIMIZERS
    for module in ("bortkit.finetune", "bortkit.distill"):
        assert "{" + ",".join(OPTIMIZERS) + "}" in helps[module]["help"]


def test_old_spellings_are_hidden_aliases():
    from bortkit.data.create_pretraining_data import build_parser as data_parser
    from bortkit.finetune.__main__ import build_parser as finetune_parser
    from bortkit.search.__main__ import build_parser as search_parser
    required = ["--task", "T", "--model", "M", "--data-dir", "D"]
    assert finetune_parser().parse_args(required + ["--lr", "3e-4"]).learning_rate == 3e-4
    assert finetune_parser().parse_args(required).learning_rate == 5e-5  # FinetuneArgs default
    old = search_parser().parse_args(["--out", "o", "--seq-length", "32"])
    new = search_parser().parse_args(["--output-dir", "o", "--max-length", "32"])
    assert vars(old) == vars(new) and new.output_dir == "o" and new.max_length == 32
    old = data_parser().parse_args(["--input", "a", "--tokenizer", "t", "--output", "o",
                                    "--max-seq-length", "64", "--quiet"])
    new = data_parser().parse_args(["--input", "a", "--tokenizer", "t", "--output-dir", "o",
                                    "--max-length", "64", "--no-progress"])
    assert vars(old) == vars(new) and new.progress is False


def test_defaults_come_from_the_argument_dataclasses():
    from bortkit.distill.__main__ import build_parser as distill_parser
    from bortkit.distill.plan import PretrainingArguments
    from bortkit.finetune import FinetuneArgs
    from bortkit.finetune.__main__ import build_parser as finetune_parser
    parsed = vars(finetune_parser().parse_args(["--task", "T", "--model", "M",
                                                "--data-dir", "D"]))
    defaults = FinetuneArgs(task="T", model="M", data_dir="D", output_dir="o")
    for name, value in parsed.items():
        if hasattr(defaults, name) and name not in ("task", "model", "data_dir", "output_dir"):
            assert getattr(defaults, name) == value, name
    parsed = vars(distill_parser().parse_args(["--train", "t", "--output-dir", "o"]))
    assert PretrainingArguments(**parsed) == PretrainingArguments(train="t", output_dir="o")


@pytest.mark.parametrize("call,message", [
    (lambda: check_range("learning_rate", -1.0, 0, low_open=True),
     "--learning-rate must be a positive number, got -1.0"),
    (lambda: check_range("batch_size", 0, 1, integer=True),
     "--batch-size must be a positive integer, got 0"),
    (lambda: check_range("warmup_ratio", 1.5, 0, 1), "--warmup-ratio must be a number in [0, 1], "
                                                     "got 1.5"),
    (lambda: check_range("eval_fraction", 1.0, 0, 1, low_open=True, high_open=True),
     "--eval-fraction must be a number in (0, 1), got 1.0"),
    (lambda: check_range("seed", 0.5, 0, integer=True), "--seed must be an integer >= 0, got 0.5"),
    (lambda: check_range("max_grad_norm", float("nan"), 0),
     "--max-grad-norm must be a number >= 0, got nan"),
    (lambda: check_choice("optimizer", "sgd", ("bertadam", "adamw")),
     "--optimizer must be one of bertadam, adamw, got 'sgd'"),
])
def test_one_message_shape_names_option_range_and_value(call, message):
    with pytest.raises(ConfigError) as err:
        call()
    assert str(err.value) == message


@pytest.mark.parametrize("argv,message", [
    (["bortkit.finetune", "--task", "SST-2", "--model", "m", "--data-dir", "d",
      "--max-grad-norm", "-1"], "--max-grad-norm must be a number >= 0, got -1.0"),
    (["bortkit.agora", "--task", "SST-2", "--student", "s", "--teacher", "t", "--data-dir", "d",
      "--eval-fraction", "1", "--theta", "learning_rate=1e-4"],
     "--eval-fraction must be a number in (0, 1), got 1.0"),
    (["bortkit.search", "--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
])
def test_bad_options_fail_in_one_line_before_any_work(argv, message, tmp_path):
    proc = subprocess.run([sys.executable, "-m", *argv, "--output-dir", str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == f"bortkit: error: {message}", \
        proc.stderr[-2000:]
    assert not (tmp_path / "o").exists()

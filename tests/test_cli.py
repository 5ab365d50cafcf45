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
# Every `python -m bortkit.X` entry point (test_every_entry_point_has_a_row checks the list).
# Their --help runs in one process, so an entry point whose --help loads MXNet goes last.
ENTRY_POINTS = ("bortkit.finetune", "bortkit.distill", "bortkit.agora", "bortkit.sweep",
                "bortkit.search", "bortkit.info", "bortkit.data.create_pretraining_data",
                "bortkit.prune", "bortkit.multitask", "bortkit.export", "bortkit.predict",
                "bortkit.data.convert_shards", "bortkit.analyze", "bortkit.ops")
HELP_LOADS_MXNET: dict = {}   # entry point -> why its --help still loads MXNet (none now)
TRAINERS = {"bortkit.finetune", "bortkit.distill", "bortkit.prune", "bortkit.multitask"}
# shared idea -> entry points that take it (all of them spell it the same way)
SHARED = {
    "--output-dir": {"bortkit.finetune", "bortkit.distill", "bortkit.agora", "bortkit.sweep",
                     "bortkit.search", "bortkit.data.create_pretraining_data", "bortkit.prune",
                     "bortkit.multitask", "bortkit.export"},
    "--no-progress": {"bortkit.finetune", "bortkit.distill", "bortkit.agora", "bortkit.sweep",
                      "bortkit.search", "bortkit.data.create_pretraining_data", "bortkit.prune",
                      "bortkit.multitask", "bortkit.predict"},
    "--seed": {"bortkit.finetune", "bortkit.distill", "bortkit.agora", "bortkit.search",
               "bortkit.data.create_pretraining_data", "bortkit.prune", "bortkit.multitask"},
    "--batch-size": {"bortkit.search", "bortkit.predict"} | TRAINERS,
    "--learning-rate": TRAINERS,
    "--max-grad-norm": TRAINERS,
    "--max-length": {"bortkit.finetune", "bortkit.search", "bortkit.info",
                     "bortkit.data.create_pretraining_data", "bortkit.prune",
                     "bortkit.multitask", "bortkit.predict"},
    "--report-to": {"bortkit.agora"} | TRAINERS,  # TensorBoard mirror of log.jsonl
}
# other spellings of those ideas, accepted as hidden aliases at most
OLD_SPELLINGS = ("--out", "--output", "--lr", "--seq-length", "--max-seq-length",
                 "--clip-norm", "--quiet", "--progress")
# another idea under one of those names: predict's --output is the file it writes
OTHER_IDEAS = {"bortkit.predict": {"--output"}}

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


@pytest.mark.parametrize("module", [
    pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=HELP_LOADS_MXNET[m]))
    if m in HELP_LOADS_MXNET else m for m in ENTRY_POINTS])
def test_help_answers_without_mxnet(helps, module):
    """``--help`` imports no framework (it took 8-9 s for finetune and agora)."""
    result = helps[module]
    assert result["code"] == 0 and "usage: python -m " in result["help"]
    assert not result["mxnet"], f"{module} --help imported MXNet"


def test_every_entry_point_has_a_row():
    """Every module of the package that runs as ``python -m`` is in ENTRY_POINTS."""
    found = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__main__")
             for p in (REPO / "bortkit").rglob("*.py")
             if 'if __name__ == "__main__"' in p.read_text(encoding="utf-8")}
    assert found - {"bortkit"} == set(ENTRY_POINTS)


def test_prune_and_multitask_keep_lr_as_a_hidden_alias():
    from bortkit.multitask.__main__ import build_parser as multitask_parser
    from bortkit.prune.__main__ import build_parser as prune_parser
    required = ["--task", "SST-2", "--model", "m", "--data-dir", "d"]
    assert prune_parser().parse_args(required + ["--lr", "3e-4"]).learning_rate == 3e-4
    required = ["--tasks", "RTE", "--model", "m", "--data-dir", "d"]
    assert multitask_parser().parse_args(required + ["--lr", "3e-4"]).learning_rate == 3e-4


@pytest.mark.parametrize("idea", sorted(SHARED))
def test_shared_ideas_have_one_spelling(helps, idea):
    for module, result in helps.items():
        options = _options(result["help"])
        if module in SHARED[idea]:
            assert idea in options, f"{module} lacks {idea}"
        old = (options & set(OLD_SPELLINGS)) - OTHER_IDEAS.get(module, set())
        assert not old, (module, old)


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
    # --loss-preset fills the loss fields the command line leaves out (bortkit.distill main)
    from bortkit.distill.weights import apply_loss_preset
    loss = ("mlm_weight", "kd_weight", "temperature", "kd_mode")
    parsed.update(apply_loss_preset(parsed.pop("loss_preset"), {k: parsed[k] for k in loss}))
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


CONSOLE_HELP = """
import contextlib, io, json, sys
from bortkit.__main__ import COMMANDS, main
text = io.StringIO()
with contextlib.redirect_stdout(text):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
print(json.dumps({"out": text.getvalue(), "code": code, "mxnet": "mxnet" in sys.modules,
                  "modules": {k: v[0] for k, v in COMMANDS.items()}}))
"""
def console(*argv) -> dict:
    proc = subprocess.run([sys.executable, "-c", CONSOLE_HELP, *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_console_script_runs_every_entry_point_without_mxnet_for_help():
    """``bortkit COMMAND`` is ``python -m MODULE``: every command answers --help (without
    MXNet) with its module's own help; --version; an unknown command is one line."""
    import bortkit
    version = console("--version")
    assert (version["out"], version["code"], version["mxnet"]) == \
        (f"bortkit {bortkit.__version__}\n", 0, False)
    top = console("--help")
    modules = top["modules"]
    assert top["code"] == 0 and top["out"].startswith("usage: bortkit") and not top["mxnet"]
    assert all(f"  {name} " in top["out"] for name in modules)
    for name, module in modules.items():
        result = console(name, "--help")
        assert result["code"] == 0 and f"python -m {module}" in result["out"], (name, result)
        assert result["mxnet"] == (module in HELP_LOADS_MXNET), name  # as python -m
    # every `python -m bortkit.X` entry point of the package is a command
    found = {".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__main__")
             for p in (REPO / "bortkit").rglob("*.py")
             if 'if __name__ == "__main__"' in p.read_text(encoding="utf-8")
             and p.name != "__main__.py" or p.parent != REPO / "bortkit" and p.name == "__main__.py"}
    assert found == set(modules.values())
    for argv, code, err in ((["nope"], 2, "bortkit: error: unknown command 'nope' (commands: "),
                            ([], 2, "usage: bortkit")):
        proc = subprocess.run([sys.executable, "-m", "bortkit", *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == code and proc.stderr.startswith(err), proc.stderr
    proc = subprocess.run([sys.executable, "-m", "bortkit", "info", "bort"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    direct = subprocess.run([sys.executable, "-m", "bortkit.info", "bort"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert proc.returncode == direct.returncode == 0 and proc.stdout == direct.stdout


def _declared(cls) -> list:
    import dataclasses
    from bortkit.options import Interval
    return [f.name for f in dataclasses.fields(cls)
            if isinstance(f.metadata.get("constraint"), Interval)]


@pytest.mark.parametrize("where", ["bortkit.finetune.args:FinetuneArgs",
                                   "bortkit.multitask.args:MultitaskArgs",
                                   "bortkit.prune.args:PruneArgs"])
def test_declared_constraints_refuse_nan_on_every_numeric_option(where):
    """Each argument dataclass declares its fields' constraints once; from them come the
    checks (NaN and infinity refused, in the one message shape) and the resume keys."""
    import importlib
    from bortkit.options import flag, resume_keys
    module, name = where.split(":")
    cls = getattr(importlib.import_module(module), name)
    required = {"task": "SST-2", "tasks": ["RTE"], "model": "m", "data_dir": "d",
                "output_dir": "o"}
    base = {k: v for k, v in required.items() if k in cls.__dataclass_fields__}
    cls(**base).validate()
    numeric = _declared(cls)
    assert {"learning_rate", "batch_size", "seed"} <= set(numeric)
    for field in numeric:
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ConfigError) as err:
                cls(**base, **{field: bad}).validate()
            assert str(err.value).startswith(f"{flag(field)} must be "), str(err.value)
            assert str(err.value).endswith(f", got {bad!r}")
    keys = resume_keys(cls)
    assert "learning_rate" in keys and "seed" in keys
    assert not {"output_dir", "resume", "overwrite", "progress"} & set(keys)


def test_sweep_variables_come_from_the_declaration():
    from bortkit.finetune import FINETUNE_PARAMS, FinetuneArgs
    assert FINETUNE_PARAMS["learning_rate"] is float and FINETUNE_PARAMS["max_steps"] is int
    assert FINETUNE_PARAMS["optimizer"] is str and "pooling" not in FINETUNE_PARAMS
    assert set(FINETUNE_PARAMS) <= set(_declared(FinetuneArgs)) | {"optimizer"}

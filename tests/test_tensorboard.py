"""--report-to tensorboard: the numbers of the JSONL log as TensorBoard scalars, read back with
TensorBoard's own event reader."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bortkit.errors import ConfigError
from bortkit.train.log import JsonlLog, read_jsonl

REPO = Path(__file__).resolve().parents[1]


def scalars(directory: Path) -> dict:
    """tag -> [(step, value)] of every event file in ``directory`` (TensorBoard's reader)."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    multiplexer = EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(directory))
    multiplexer.Reload()
    out = {}
    for run, tags in multiplexer.Runs().items():
        for tag in tags["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value)
                                           for e in multiplexer.Scalars(run, tag))
    return {tag: sorted(values) for tag, values in out.items()}


def test_log_mirrors_every_number_and_nothing_else(tmp_path):
    log = JsonlLog(tmp_path / "log.jsonl", report_to="tensorboard")
    log.write("train", step=1, loss=0.75, lr=1e-4, note="text", done=True)
    log.write("train", step=2, loss=0.5, lr=2e-4)
    log.write("eval", step=2, accuracy=0.625, main=0.625)
    log.write("start", args={"seed": 0})
    log.close()
    assert len(read_jsonl(tmp_path / "log.jsonl")) == 4
    assert scalars(tmp_path / "tensorboard") == {
        "train/loss": [(1, 0.75), (2, 0.5)], "train/lr": [(1, pytest.approx(1e-4)),
                                                       (2, pytest.approx(2e-4))],
        "eval/accuracy": [(2, 0.625)], "eval/main": [(2, 0.625)]}
    # off by default: no event files
    JsonlLog(tmp_path / "plain" / "log.jsonl").write("train", step=1, loss=1.0)
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["log.jsonl"]
    with pytest.raises(ConfigError, match=r"^--report-to must be one of none, tensorboard, "
                                          r"got 'wandb'$"):
        JsonlLog(tmp_path / "x.jsonl", report_to="wandb")


@pytest.mark.slow
def test_finetune_report_to_tensorboard(tiny_model, glue_dir, tmp_path):
    """A real fine-tuning run: TensorBoard reads the run's loss and dev scores, the same
    numbers as log.jsonl."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "bortkit.finetune", "--task", "SST-2", "--model", str(tiny_model),
         "--data-dir", str(glue_dir), "--max-train-examples", "64", "--max-eval-examples", "32",
         "--batch-size", "16", "--max-steps", "4", "--eval-every", "2", "--max-length", "32",
         "--no-progress", "--report-to", "tensorboard", "--output-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = out / "SST-2" / "seed-0"
    records = read_jsonl(run / "log.jsonl")
    found = scalars(run / "tensorboard")
    evals = [(r["step"], r["accuracy"]) for r in records if r["event"] == "eval"]
    assert len(evals) == 2
    assert found["eval/accuracy"] == [(s, pytest.approx(v)) for s, v in evals]
    train = [(r["step"], r["loss"]) for r in records if r["event"] == "train" and "loss" in r]
    assert train and found["train/loss"] == [(s, pytest.approx(v)) for s, v in train]
    assert json.loads((run / "result.json").read_text())["steps"] == 4
    bad = subprocess.run([sys.executable, "-m", "bortkit.finetune", "--task", "SST-2", "--model",
                          "m", "--data-dir", "d", "--report-to", "mlflow", "--output-dir",
                          str(tmp_path / "bad")], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr == (
        "bortkit: error: --report-to must be one of none, tensorboard, got 'mlflow'\n")
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("module, name", [
    ("bortkit.finetune.args", "FinetuneArgs"), ("bortkit.distill.plan", "PretrainingArguments"),
    ("bortkit.agora.loop", "AgoraArgs"), ("bortkit.prune.args", "PruneArgs"),
    ("bortkit.multitask.args", "MultitaskArgs")])
def test_every_trainer_takes_report_to(module, name):
    """Every trainer's arguments carry report_to (off by default); their runs' settings
    hand it to the Run (next test)."""
    import dataclasses
    import importlib
    fields = {f.name: f for f in dataclasses.fields(getattr(importlib.import_module(module),
                                                            name))}
    assert fields["report_to"].default == "none"


def test_a_run_whose_settings_say_tensorboard_mirrors_its_log(tmp_path):
    from bortkit.train import Run
    run = Run(tmp_path / "run", {"report_to": "tensorboard"}, [])
    with run:
        run.log.write("eval", step=3, accuracy=0.5)
    assert scalars(tmp_path / "run" / "tensorboard") == {"eval/accuracy": [(3, 0.5)]}
    with Run(tmp_path / "plain", {"seed": 0}, []) as plain:
        plain.log.write("eval", step=3, accuracy=0.5)
    assert not (tmp_path / "plain" / "tensorboard").exists()

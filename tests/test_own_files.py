"""Fine-tuning, resuming, sweeping and Agora on the user's own CSV files (issue 14, item 1),
``--save-total-limit`` and what a sweep keeps on disk (item 4)."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

import bortkit
from bortkit.finetune import FinetuneArgs, Finetuner
from bortkit.tasks import get_task

NAMES = {0: "negative", 1: "positive"}
COLUMNS = ["sentiment", "id", "review"]  # GLUE's SST-2 is sentence,label


def _write(path: Path, examples) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows([NAMES[ex.label], i, ex.text_a] for i, ex in enumerate(examples))
    return path


@pytest.fixture(scope="module")
def own_files(glue_dir, tmp_path_factory):
    """train.csv / dev.csv from real SST-2 rows, other column names and order than GLUE's."""
    folder = tmp_path_factory.mktemp("own")
    task = get_task("SST-2")
    train = _write(folder / "reviews.csv", task.read(glue_dir, "train")[:96])
    dev = _write(folder / "reviews_dev.csv", task.read(glue_dir, "dev")[:48])
    return {"train": str(train), "dev": str(dev), "text_column": "review",
            "label_column": "sentiment", "text_pair_column": None, "task_type": None}


FILE_FLAGS = ["--text-column", "review", "--label-column", "sentiment"]
TINY = ["--max-length", "40", "--batch-size", "16", "--learning-rate", "3e-4", "--no-progress"]


def finetune_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bortkit.finetune", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def csv_run(tiny_model, own_files, tmp_path_factory):
    from bortkit.finetune.__main__ import main  # the command line, in this process
    out = tmp_path_factory.mktemp("csvrun")
    assert main(["--train", own_files["train"], "--dev", own_files["dev"], *FILE_FLAGS,
                 "--model", str(tiny_model), "--max-steps", "6", "--eval-every", "3", *TINY,
                 "--output-dir", str(out)]) == 0
    return out / "reviews" / "seed-0"


def test_csv_run_predicts_label_names_like_the_evaluation_loop(csv_run, own_files, tmp_path):
    best = csv_run / "best"
    head = json.loads((best / "config.json").read_text())["_head"]
    assert head["labels"] == ["negative", "positive"] and head["task"] == "reviews"
    # the evaluation path of fine-tuning on the same rows, from the saved best weights
    evaluator = Finetuner(FinetuneArgs(task="reviews", model=str(best), data_dir=None,
                                       files=own_files, output_dir=str(tmp_path),
                                       max_length=40, progress=False))
    logits = evaluator.predict(evaluator.dev)
    result = json.loads((csv_run / "result.json").read_text())
    assert evaluator.evaluate()["accuracy"] == pytest.approx(result["best"]["accuracy"])

    classify = bortkit.pipeline(best, batch_size=5)
    with open(own_files["dev"], newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    predictions = classify([row["review"] for row in rows])  # raw sentences from the file
    assert [p["label"] for p in predictions] == [head["labels"][k] for k in logits.argmax(1)]
    np.testing.assert_allclose(classify.logits([r["review"] for r in rows]), logits, atol=1e-5)
    accuracy = np.mean([p["label"] == row["sentiment"] for p, row in zip(predictions, rows)])
    assert accuracy == pytest.approx(result["best"]["accuracy"])


def _run(files, out, **kw):
    args = dict(task="reviews", data_dir=None, files=files, output_dir=str(out),
                max_steps=8, eval_every=2, batch_size=16, learning_rate=3e-4, max_length=40,
                progress=False)
    return FinetuneArgs(**{**args, **kw})


def test_csv_run_resumes_exactly_and_keeps_n_checkpoints(tiny_model, own_files, tmp_path):
    clean = Finetuner(_run(own_files, tmp_path / "clean", model=str(tiny_model),
                           save_total_limit=3)).run()
    # three training checkpoints, the latest also as checkpoint/ (hard links), and best/
    kept = sorted(p.name for p in (tmp_path / "clean").glob("checkpoint-*"))
    assert kept == ["checkpoint-4", "checkpoint-6", "checkpoint-8"]
    assert os.path.samefile(tmp_path / "clean" / "checkpoint-8" / "optimizer.states",
                            tmp_path / "clean" / "checkpoint" / "optimizer.states")
    assert json.loads((tmp_path / "clean" / "checkpoint-4" / "state.json").read_text()
                      )["run"]["step"] == 4
    assert (tmp_path / "clean" / "best" / "model.safetensors").exists()

    # stopped after its second evaluation, then resumed: the same evaluations as the clean run
    out = tmp_path / "stopped"
    Finetuner(_run(own_files, out, model=str(tiny_model)),
              on_evaluation=lambda step, scores: step == 4).run()
    assert not list(out.glob("checkpoint-*"))  # the default limit 1: checkpoint/ alone
    resumed = Finetuner(_run(own_files, out, model=str(tiny_model), resume=True)).run()
    assert resumed["evaluations"] == clean["evaluations"]
    assert [e["step"] for e in resumed["evaluations"]] == [2, 4, 6, 8]

    none = tmp_path / "none"
    Finetuner(_run(own_files, none, model=str(tiny_model), save_total_limit=0,
                   max_steps=2)).run()
    assert sorted(p.name for p in none.iterdir() if p.is_dir()) == ["best"]


def _one_error(proc) -> str:
    errors = [l for l in proc.stderr.splitlines() if l.startswith("bortkit: error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize("change, message", [
    (["--label-column", "stars"], "{train}:1: no column 'stars'; the header has: "
                                  "sentiment, id, review"),
    (["--text-pair-column", "hypothesis"], "{train}:1: no column 'hypothesis'; the header "
                                           "has: sentiment, id, review"),
    (["--task-type", "ranking"], "--task-type must be one of classification, regression, "
                                 "got 'ranking'"),
    (["--task", "SST-2"], "--task and --train are mutually exclusive: --task names a "
                          "GLUE/SuperGLUE task read from --data-dir, --train your own file"),
    (["--save-total-limit", "-1"], "--save-total-limit must be an integer >= 0, got -1"),
    (["--resume", "--save-total-limit", "0"], "--resume needs a training checkpoint, and "
                                              "--save-total-limit 0 keeps none; give "
                                              "--save-total-limit 1 or more"),
])
def test_bad_own_file_options_are_one_line_and_write_nothing(own_files, tmp_path, change,
                                                             message):
    out = tmp_path / "out"
    proc = finetune_cli("--model", "minilm", "--train", own_files["train"], "--dev",
                        own_files["dev"], *FILE_FLAGS, *change, "--output-dir", str(out))
    assert _one_error(proc) == "bortkit: error: " + message.format(**own_files)
    assert not out.exists()


def test_sweep_keeps_what_resumes_and_the_best_trial(tmp_path):
    """Finished trials lose their training checkpoints; only the best keeps best/; a running
    trial keeps everything (fake trials: this is about files, not training)."""
    from bortkit.sweep import Sweep, SweepArgs

    def fake(job, reporter):
        run = Path(job["run_dir"])
        for name in ("checkpoint", "checkpoint-2", "best"):
            (run / name).mkdir(parents=True)
            (run / name / "model.safetensors").write_bytes(b"w" * 10)
            (run / name / "config.json").write_text("{}")
        for name in ("checkpoint", "checkpoint-2"):
            (run / name / "state.json").write_text("{}")
            (run / name / "optimizer.states").write_bytes(b"o" * 20)
        (run / "result.json").write_text("{}")
        value = {1: 0.6, 2: 0.8, 3: 0.7}.get(job["number"], 0.5)
        reporter(1, value)
        return {"best": {"main": value}, "steps": 1}

    args = SweepArgs(task="RTE", model="unused", data_dir="unused", study="h", n_trials=3,
                     output_dir=str(tmp_path), wait=False, pruner="none")
    sweep = Sweep(args, execute=fake)
    running = sweep.study.ask()  # another worker's trial, still training
    running.set_user_attr("run_dir", str(tmp_path / "running"))
    fake({"run_dir": str(tmp_path / "running"), "number": 0}, lambda *a: False)
    sweep.args.n_trials = 4
    sweep.run()
    trials = {t.number: Path(t.user_attrs["run_dir"]) for t in sweep.study.trials}
    left = {n: sorted(p.name for p in run.iterdir()) for n, run in trials.items()}
    assert left[0] == ["best", "checkpoint", "checkpoint-2", "result.json"]  # running
    assert left[2] == ["best", "result.json"]  # the best trial (0.8): its best/ only
    assert left[1] == left[3] == ["result.json"]
    assert (tmp_path / "best_model" / "model.safetensors").samefile(
        trials[2] / "best" / "model.safetensors")  # a hard link, not a second copy


@pytest.mark.slow
def test_sweep_and_agora_over_a_csv_task(tiny_model, own_files, csv_run, tmp_path):
    command = [sys.executable, "-m", "bortkit.sweep", "--train", own_files["train"], "--dev",
               own_files["dev"], *FILE_FLAGS, "--model", str(tiny_model), "--study", "own",
               "--output-dir", str(tmp_path / "sweep"), "--pruner", "none", "--no-progress",
               "--set", "max_steps=4", "--set", "eval_every=2", "--set", "max_length=40",
               "--set", "batch_size=16"]
    first = subprocess.run(command + ["--n-trials", "2"], capture_output=True, text=True,
                           timeout=400)
    assert first.returncode == 0, first.stderr[-2000:]
    again = subprocess.run(command + ["--n-trials", "3"], capture_output=True, text=True,
                           timeout=400)  # the study goes on after the clean-up
    assert again.returncode == 0, again.stderr[-2000:]
    study = optuna.load_study(study_name="own",
                              storage=f"sqlite:///{tmp_path / 'sweep' / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert study.user_attrs["task"] == str(Path(own_files["train"]).resolve())
    for trial in study.trials:
        run = Path(trial.user_attrs["run_dir"])
        assert json.loads((run / "result.json").read_text())["best"]["main"] == trial.value
        assert not (run / "checkpoint").exists()
        assert (run / "best").exists() == (trial.number == study.best_trial.number)
    classify = bortkit.pipeline(tmp_path / "sweep" / "best_model")
    assert {p["label"] for p in classify(["a gripping film", "dull"])} <= set(NAMES.values())

    # Agora on the same files, the CSV run's best/ as its teacher
    agora = subprocess.run(
        [sys.executable, "-m", "bortkit.agora", "--train", own_files["train"], "--dev",
         own_files["dev"], *FILE_FLAGS, "--student", str(tiny_model), "--teacher",
         str(csv_run / "best"), "--output-dir", str(tmp_path / "agora"), "--theta",
         "learning_rate=3e-4,batch_size=8", "--theta", "learning_rate=1e-4,batch_size=8",
         "--set", "max_length=32", "--budget", "12", "--no-progress"],
        capture_output=True, text=True, timeout=400)
    assert agora.returncode == 0, agora.stderr[-2000:]
    result = json.loads((tmp_path / "agora" / "result.json").read_text())
    assert result["task"] == "reviews" and result["steps"] == 12
    head = json.loads((tmp_path / "agora" / "best" / "config.json").read_text())["_head"]
    assert head["labels"] == ["negative", "positive"]

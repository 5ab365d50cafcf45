"""Hostile but fair use of a run's life (issue 24): resuming with other files, columns or
settings, two processes in one folder, killed saves and exports, a task name that climbs
out of --output-dir, lengths beyond the position table, NaN options.

Every refusal is one ``bortkit: error:`` line (exit 2) before any work, and the run folder
it refused is left byte for byte as it was.
"""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bortkit.errors import run_cli
from bortkit.tasks import get_task

TINY_FINETUNE = ["--max-length", "32", "--batch-size", "8", "--learning-rate", "3e-4",
                 "--max-steps", "2", "--eval-every", "1", "--no-progress"]


def cli(capsys, module: str, *argv):
    """``python -m bortkit.MODULE`` in this process: (exit status, stderr)."""
    import importlib
    main = importlib.import_module(f"bortkit.{module}.__main__").main
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (the lock file aside)."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
            if p.is_file()}


def one_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2 and err.count("\n") == 1 and err.startswith("bortkit: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


# ----------------------------------------------------------------------------- finetune
def _write_csv(path: Path, examples) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "other", "label"])
        writer.writerows([ex.text_a, ex.text_a[::-1], ex.label] for ex in examples)
    return path


@pytest.fixture(scope="module")
def own_files(glue_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("lifecycle-files")
    rows = get_task("SST-2").read(glue_dir, "train")
    dev = get_task("SST-2").read(glue_dir, "dev")
    (folder / "other").mkdir()
    return {"train": _write_csv(folder / "reviews.csv", rows[:32]),
            "dev": _write_csv(folder / "reviews_dev.csv", dev[:16]),
            # the same name, other rows: what a resumed run must not silently train on
            "other_train": _write_csv(folder / "other" / "reviews.csv", rows[32:64]),
            "other_dev": _write_csv(folder / "other" / "reviews_dev.csv", dev[16:32])}


@pytest.fixture(scope="module")
def started_finetune(tiny_model, own_files, tmp_path_factory):
    """A finished 2-step run on the user's files (its checkpoint/ is what --resume reads)."""
    from bortkit.finetune.__main__ import main
    out = tmp_path_factory.mktemp("lifecycle-ft")
    assert main(["--train", str(own_files["train"]), "--dev", str(own_files["dev"]),
                 "--model", str(tiny_model), "--output-dir", str(out), *TINY_FINETUNE]) == 0
    return out


@pytest.mark.parametrize("change, fragments", [
    ({"train": "other_train"}, ["cannot resume: input files differ", "--train",
                                "other content"]),
    ({"dev": "other_dev"}, ["cannot resume: input files differ", "--dev"]),
    ({"--text-column": "other"}, ["cannot resume: settings differ", "columns",
                                  "text_column 'text' -> 'other'"]),
])
def test_finetune_resume_refuses_other_files_or_columns(capsys, tiny_model, own_files,
                                                        started_finetune, change, fragments):
    run = started_finetune / "reviews" / "seed-0"
    before = snapshot(run)
    files = {"train": own_files[change.get("train", "train")],
             "dev": own_files[change.get("dev", "dev")]}
    columns = ["--text-column", change.get("--text-column", "text")]
    code, err = cli(capsys, "finetune", "--train", files["train"], "--dev", files["dev"],
                    *columns, "--model", tiny_model, "--output-dir", started_finetune,
                    *TINY_FINETUNE, "--resume")
    one_line(code, err, *fragments)
    assert snapshot(run) == before


def test_finetune_resume_with_the_same_files_goes_on(capsys, tiny_model, own_files,
                                                     started_finetune, tmp_path):
    """The check refuses only a change: the same content (even copied elsewhere) resumes."""
    import shutil
    copy = tmp_path / "reviews.csv"
    shutil.copy(own_files["train"], copy)
    argv = ["--train", copy, "--dev", own_files["dev"], "--model", tiny_model,
            "--output-dir", started_finetune, *TINY_FINETUNE, "--resume"]
    argv[argv.index("--max-steps") + 1] = "3"
    code, err = cli(capsys, "finetune", *argv)
    assert code == 0, err
    log = (started_finetune / "reviews" / "seed-0" / "log.jsonl").read_text()
    assert log.count('"event": "resume"') == 1 and log.count('"event": "start"') == 1


def test_a_file_named_dots_csv_cannot_leave_the_output_dir(capsys, tiny_model, own_files,
                                                           tmp_path):
    dots = tmp_path / "data" / "...csv"
    dots.parent.mkdir()
    dots.write_bytes(own_files["train"].read_bytes())
    out = tmp_path / "data" / "out"
    code, err = cli(capsys, "finetune", "--train", dots, "--dev", own_files["dev"],
                    "--model", tiny_model, "--output-dir", out, *TINY_FINETUNE)
    one_line(code, err, "--train", "'...csv'", "no task name")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["...csv", "data"]


# ----------------------------------------------------------------------------- multitask
def _multitask(tiny_model, glue_dir, out, *more):
    return ["--tasks", "RTE,STS-B", "--model", tiny_model, "--data-dir", glue_dir,
            "--output-dir", out, "--max-train-examples", 16, "--max-eval-examples", 8,
            "--batch-size", 4, "--max-length", 32, "--learning-rate", 1e-3, "--epochs", 2,
            "--max-steps", 2, "--no-progress", *more]


@pytest.fixture(scope="module")
def multitask_run(tiny_model, glue_dir, tmp_path_factory):
    from bortkit.multitask.__main__ import main
    out = tmp_path_factory.mktemp("lifecycle-mt") / "run"
    assert main([str(a) for a in _multitask(tiny_model, glue_dir, out)]) == 0
    return out


def test_multitask_resume_refuses_changed_optimisation_settings(capsys, tiny_model, glue_dir,
                                                                multitask_run):
    before = snapshot(multitask_run)
    argv = _multitask(tiny_model, glue_dir, multitask_run, "--resume", "--warmup-ratio", 0.2,
                      "--weight-decay", 0, "--optimizer", "adamw", "--max-grad-norm", 0.5)
    argv[argv.index("--learning-rate") + 1] = 2e-3
    code, err = cli(capsys, "multitask", *argv)
    one_line(code, err, "cannot resume: settings differ", "--learning-rate 0.001 -> 0.002",
             "--warmup-ratio 0.1 -> 0.2", "--weight-decay 0.01 -> 0.0",
             "--optimizer 'bertadam' -> 'adamw'", "--max-grad-norm 1.0 -> 0.5")
    assert snapshot(multitask_run) == before


def test_multitask_resume_into_an_empty_folder_is_refused(capsys, tiny_model, glue_dir,
                                                          tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "empty", tmp_path / "new"):
        code, err = cli(capsys, "multitask", *_multitask(tiny_model, glue_dir, out, "--resume"))
        one_line(code, err, "--resume: no checkpoint to resume from")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert not any((tmp_path / "empty").iterdir())


# ----------------------------------------------------------------------------- --max-length
@pytest.fixture(scope="module")
def classifier(finetuned_sst2):
    """The tiny model (128 positions) fine-tuned on SST-2: its best/ has the task head."""
    return finetuned_sst2 / "best"


@pytest.mark.parametrize("module", ["prune", "multitask", "analyze"])
def test_max_length_beyond_the_position_table_is_one_line(capsys, module, tiny_model,
                                                          classifier, glue_dir, tmp_path):
    out = tmp_path / "out"
    argv = {"prune": ["--task", "SST-2", "--model", classifier, "--data-dir", glue_dir,
                      "--output-dir", out, "--max-length", 129],
            "multitask": _multitask(tiny_model, glue_dir, out, "--max-length", 129),
            "analyze": ["nonlinearity", "--model", classifier, "--data-dir", glue_dir,
                        "--output-dir", out, "--max-length", 129]}[module]
    code, err = cli(capsys, module, *argv)
    one_line(code, err, "--max-length must be an integer in [1, 128]", "got 129")
    assert not out.exists()


# ----------------------------------------------------------------------------- prune
PRUNE = ["--task", "SST-2", "--data-dir", None, "--target-sparsity", "0.5",
         "--target-warmup-steps", "2", "--batch-size", "4", "--max-train-examples", "16",
         "--max-eval-examples", "8", "--eval-every", "2", "--learning-rate", "0",
         "--mask-learning-rate", "0.5", "--lambda-learning-rate", "5",
         "--schedule-warmup-steps", "1", "--no-progress"]


def _prune(classifier, glue_dir, out, *more):
    argv = [str(glue_dir) if a is None else a for a in PRUNE]
    return [*argv, "--model", str(classifier), "--output-dir", str(out), *map(str, more)]


@pytest.fixture(scope="module")
def pruned(classifier, glue_dir, tmp_path_factory):
    from bortkit.prune.__main__ import main
    out = tmp_path_factory.mktemp("lifecycle-prune") / "run"
    assert main(_prune(classifier, glue_dir, out, "--max-steps", 2)) == 0
    return out


def test_prune_resume_compares_settings_and_keeps_a_finished_run(capsys, classifier, glue_dir,
                                                                 pruned):
    before = snapshot(pruned)
    code, err = cli(capsys, "prune", *_prune(classifier, glue_dir, pruned, "--max-steps", 2,
                                             "--resume", "--tolerance", "0.1"))
    one_line(code, err, "cannot resume: settings differ", "--tolerance 0.02 -> 0.1")
    code, err = cli(capsys, "prune", *_prune(classifier, glue_dir, pruned, "--max-steps", 2,
                                             "--mask-init-mean", "0.1"))
    one_line(code, err, "holds a finished run (result.json); pass --overwrite")
    assert snapshot(pruned) == before


@pytest.mark.parametrize("option", ["--learning-rate", "--mask-learning-rate", "--tolerance"])
def test_prune_nan_options_are_one_line(capsys, classifier, glue_dir, tmp_path, option):
    argv = _prune(classifier, glue_dir, tmp_path / "out", "--max-steps", 2)
    if option in argv:
        argv[argv.index(option) + 1] = "nan"
    else:
        argv += [option, "nan"]
    code, err = cli(capsys, "prune", *argv)
    one_line(code, err, f"bortkit: error: {option} must be a ", "number", ", got nan")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_prune_runs_in_one_folder_and_a_killed_save(capsys, classifier, glue_dir,
                                                        tmp_path):
    """The second of two runs into one folder is refused by the first's lock; the staging
    folders a killed save leaves are gone once --resume takes the folder over."""
    out = tmp_path / "run"
    argv = _prune(classifier, glue_dir, out, "--max-steps", 2000)
    first = subprocess.Popen([sys.executable, "-m", "bortkit.prune", *argv],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (out / "checkpoint" / "state.json").exists():
            assert first.poll() is None, first.stderr.read()
            assert time.time() < deadline
            time.sleep(0.2)
        code, err = cli(capsys, "prune", *_prune(classifier, glue_dir, out, "--max-steps", 4,
                                                 "--resume"))
        one_line(code, err, "is in use by another running bortkit process",
                 f"pid {first.pid}")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        first.stderr.close()
    # what a save killed half-way leaves: the staging copy of checkpoint/ and of gated/
    leftovers = [out / ".checkpoint.bortkit-staging-save",
                 out / ".gated.bortkit-staging-x1y2.tmp"]
    for folder in leftovers:
        folder.mkdir(exist_ok=True)  # the kill may have landed in a real save, leaving it
        (folder / "model.safetensors").write_bytes(b"half")
    step = __import__("json").loads((out / "checkpoint" / "state.json").read_text())["run"]
    code, err = cli(capsys, "prune", *_prune(classifier, glue_dir, out, "--resume",
                                             "--max-steps", step["step"] + 2))
    assert code == 0, err
    assert not any(folder.exists() for folder in leftovers)
    assert not list(out.glob("*staging*")) and (out / "result.json").is_file()
    events = [line for line in (out / "log.jsonl").read_text().splitlines()]
    assert sum('"event": "start"' in e for e in events) == 1
    assert sum('"event": "resume"' in e for e in events) == 1


# ----------------------------------------------------------------------------- export
def test_two_concurrent_exports_into_one_new_folder(tiny_model, tmp_path):
    out = tmp_path / "hf"
    argv = [sys.executable, "-m", "bortkit.export", "--model", str(tiny_model),
            "--format", "huggingface", "--output-dir", str(out)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert refused.count("\n") == 1 and refused.startswith("bortkit: error: "), refused
    assert any(reason in refused for reason in (
        "in use by another running bortkit process", "written by another process meanwhile",
        "already exists"))
    assert (out / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_a_killed_exports_staging_folder_is_gone_after_the_next_export(capsys, tiny_model,
                                                                       tmp_path):
    out = tmp_path / "hf"
    staging = tmp_path / ".hf.bortkit-staging-k1ll3d.tmp"  # what atomic_directory leaves
    staging.mkdir()
    (staging / "model.safetensors").write_bytes(b"half")
    code, err = cli(capsys, "export", "--model", tiny_model, "--format", "huggingface",
                    "--output-dir", out)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]
    assert (out / "config.json").is_file()

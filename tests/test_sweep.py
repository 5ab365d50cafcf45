"""Optuna sweeps: search spaces, the shared trial budget, crash recovery, reports, and real
worker processes (two at once, one killed with SIGKILL, two Horovod ranks)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import optuna
import pytest

from bortkit.errors import ConfigError
from bortkit.finetune import FinetuneArgs
from bortkit.sweep import BORT_README_SPACE, Sweep, SweepArgs, load_space, write_report
from bortkit.sweep.space import FINETUNE_PARAMS, apply_overrides
from bortkit.sweep.study import (ResumeFailedTrial, counted_trials, open_storage,
                                 recover_dead_trials, worker_identity)

REPO = Path(__file__).resolve().parents[1]
TINY_RUN = ["--set", "max_train_examples=32", "--set", "max_eval_examples=16",
            "--set", "max_length=48", "--set", "eval_every=2"]


def sweep_cli(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "bortkit.sweep", *args], capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def sweep_command(model, glue_dir, out, study, n_trials, *extra, tiny=True):
    return [sys.executable, "-m", "bortkit.sweep", "--task", "RTE", "--model", str(model),
            "--data-dir", str(glue_dir), "--study", study, "--n-trials", str(n_trials),
            "--output-dir", str(out), *(TINY_RUN if tiny else ()), *extra]


def load(out: Path, study: str) -> optuna.Study:
    return optuna.load_study(study_name=study, storage=f"sqlite:///{out / 'study.db'}")


# --------------------------------------------------------------------------- spaces
def test_default_space_is_the_bort_readme_grid():
    assert load_space(REPO / "bortkit" / "resources" / "configs" / "sweeps" / "bort.yaml").to_dict() == \
        load_space().to_dict() == BORT_README_SPACE
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = load_space()
    seen = {name: set() for name in BORT_README_SPACE}
    for _ in range(200):
        trial = study.ask()
        for name, value in space.suggest(trial).items():
            seen[name].add(value)
        study.tell(trial, 0.0)
    assert seen == {"seed": {0, 1, 2, 3, 4}, "learning_rate": {1e-4, 1e-5, 9e-6},
                    "weight_decay": {0.0, 10.0, 100.0, 350.0},
                    "warmup_ratio": {0.35, 0.40, 0.45, 0.50}, "batch_size": {8, 16}}


def test_tunable_parameters_are_finetune_args_fields():
    hints = typing.get_type_hints(FinetuneArgs)
    for name, kind in FINETUNE_PARAMS.items():
        assert name in hints, name
        assert kind in (hints[name], *typing.get_args(hints[name])), (name, hints[name])


def test_yaml_space_ranges_fixed_values_and_overrides(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: {low: 1e-5, high: 1e-3, log: true}\n"
                    "batch_size: {low: 8, high: 32, step: 8}\n"
                    "optimizer: [bertadam, adamw]\n"
                    "epochs: 2\n")
    space = load_space(path)
    assert dict(space.fixed) == {"epochs": 2.0}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        trial = study.ask()
        params = space.suggest(trial)
        assert 1e-5 <= params["learning_rate"] <= 1e-3
        assert params["batch_size"] in (8, 16, 24, 32)
        assert params["optimizer"] in ("bertadam", "adamw") and params["epochs"] == 2.0
        study.tell(trial, 0.0)
    assert isinstance(study.trials[0].distributions["learning_rate"],
                      optuna.distributions.FloatDistribution)
    assert study.trials[0].distributions["learning_rate"].log
    fixed = apply_overrides(space, {"batch_size": "16"})
    assert "batch_size" not in fixed.params and fixed.fixed["batch_size"] == 16
    draws = space.sample(5, seed=3)
    assert len({json.dumps(d, sort_keys=True) for d in draws}) == 5


@pytest.mark.parametrize("text,line,problem", [
    ("learning_rate: [1.0e-4]\nlerning_rate: [1]\n", 2,
     "unknown parameter 'lerning_rate'; did you mean 'learning_rate'?"),
    ("seed: [0]\nwarmup_ratio: {low: 0.5, high: 0.35}\n", 2,
     "parameter 'warmup_ratio': empty range: low 0.5 > high 0.35"),
    ("batch_size: []\n", 1, "parameter 'batch_size': empty list of choices"),
    ("weight_decay: {low: 0, high: 1, log: true}\n", 1,
     "parameter 'weight_decay': a log range needs low > 0, got 0.0"),
    ("batch_size: [8, sixteen]\n", 1, "parameter 'batch_size': expected an integer, got 'sixteen'"),
    ("learning_rate: [-1.0]\n", 1,
     "parameter 'learning_rate': --learning-rate must be a positive number, got -1.0"),
    ("epochs: {low: 1, hgh: 3}\n", 1, "parameter 'epochs': unknown key(s) 'hgh' in range"),
    ("seed: [0, 0]\n", 1, "parameter 'seed': repeated choices [0, 0]"),
])
def test_bad_space_names_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_space(path)
    assert str(err.value).startswith(f"{path}:{line}: {problem}")


def test_space_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- learning_rate\n")
    with pytest.raises(ConfigError, match="a search space is a mapping"):
        load_space(path)
    path.write_text("seed: [0\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: not valid YAML"):
        load_space(path)


# --------------------------------------------------------------------------- bad input (CLI)
def _one_error_line(proc) -> str:
    errors = [l for l in proc.stderr.splitlines() if l.startswith("bortkit: error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_cli_bad_space_is_one_line(tiny_model, glue_dir, tmp_path):
    for text, expected in [("lerning_rate: [1.0e-4]\n", "bad.yaml:1: unknown parameter "
                            "'lerning_rate'; did you mean 'learning_rate'?"),
                           ("warmup_ratio: {low: 0.5, high: 0.35}\n", "bad.yaml:1: parameter "
                            "'warmup_ratio': empty range: low 0.5 > high 0.35")]:
        (tmp_path / "bad.yaml").write_text(text)
        proc = sweep_cli(*sweep_command(tiny_model, glue_dir, tmp_path / "o", "s", 2,
                                        tiny=False)[3:], "--space", str(tmp_path / "bad.yaml"))
        assert _one_error_line(proc).endswith(expected)
        assert not (tmp_path / "o" / "study.db").exists()


@pytest.mark.parametrize("url,expected", [
    ("sqlite:////nonexistent-dir/x/study.db", "unable to open database file"),
    ("postgresql://bort:secret@127.0.0.1:1/studies", "postgresql://bort:***@127.0.0.1:1/studies"),
    ("nosuchdb://host/db", "Can't load plugin: sqlalchemy.dialects:nosuchdb"),
])
def test_unreachable_storage_is_one_line(url, expected):
    with pytest.raises(ConfigError) as err:
        open_storage(url)
    message = str(err.value)
    assert message.startswith("cannot open study storage ") and expected in message
    assert "secret" not in message and "\n" not in message


def test_cli_unreachable_storage_is_one_line(tiny_model, glue_dir, tmp_path):
    proc = sweep_cli(*sweep_command(tiny_model, glue_dir, tmp_path / "o", "s", 2, tiny=False)[3:],
                     "--storage", "sqlite:////nonexistent-dir/x/study.db")
    assert _one_error_line(proc) == ("bortkit: error: cannot open study storage "
                                     "sqlite:////nonexistent-dir/x/study.db: unable to open "
                                     "database file")


def test_cli_study_of_another_task_is_one_line(tiny_model, glue_dir, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    study = optuna.create_study(study_name="shared", storage=f"sqlite:///{out / 'study.db'}")
    study.set_user_attr("task", "SST-2")
    proc = sweep_cli(*sweep_command(tiny_model, glue_dir, out, "shared", 2, tiny=False)[3:])
    assert _one_error_line(proc).endswith("was created for task SST-2, not RTE; choose another "
                                          "--study name")
    assert len(load(out, "shared").trials) == 0


# --------------------------------------------------------------------------- budget, recovery
def _fake_args(tmp_path, **kw):
    return SweepArgs(task="RTE", model="unused", data_dir="unused", study="s", n_trials=2,
                     output_dir=str(tmp_path), wait=False, **kw)


def _fake_run(values):
    """An ``execute`` that reports ``values`` one evaluation at a time, as training would."""
    def execute(job, reporter):
        for step, value in enumerate(values, 1):
            if reporter(step, value):
                break
        return {"best": {"main": max(values[:step]), "accuracy": max(values[:step])},
                "steps": step}
    return execute


def test_workers_stop_at_the_study_total_and_prune(tmp_path):
    first = Sweep(_fake_args(tmp_path, pruner="threshold", prune_below=0.5, prune_warmup=1),
                  execute=_fake_run([0.6, 0.4, 0.7]))
    summary = first.run()
    assert summary["worker_trials"] == [0, 1]
    trials = load(tmp_path, "s").trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert trials[0].intermediate_values == {1: 0.6, 2: 0.4}  # stopped at the 2nd evaluation
    assert trials[0].user_attrs["run_dir"] != trials[1].user_attrs["run_dir"]
    # a second worker finds the budget spent and runs nothing
    assert Sweep(_fake_args(tmp_path, pruner="threshold", prune_below=0.5, prune_warmup=1),
                 execute=_fake_run([0.9])).run()["worker_trials"] == []
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["trials"]["pruned"] == 2 and "best" not in report
    assert set(report["plots"].values()) == {"skipped: no complete trial yet"}


def test_a_trial_asked_past_the_total_is_skipped(tmp_path):
    sweep = Sweep(_fake_args(tmp_path, pruner="none"), execute=_fake_run([0.5]))
    sweep.args.n_trials = 1
    real_ask, competitor = sweep.study.ask, []

    def racing_ask(*args, **kwargs):  # another worker asks between our check and our ask
        if not competitor:
            competitor.append(real_ask())
            competitor[0].set_user_attr("worker", worker_identity())
        return real_ask(*args, **kwargs)

    sweep.study.ask = racing_ask
    assert sweep.next_trial() is None
    trials = load(tmp_path, "s").trials
    assert [t.state.name for t in trials] == ["RUNNING", "FAIL"]
    assert trials[1].user_attrs["skipped"] and counted_trials(sweep.study) == 1


def _dead_worker() -> dict:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    owner = {**worker_identity(), "pid": proc.pid}
    owner["start"] = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    proc.kill()
    proc.wait()
    return owner


def test_dead_workers_trials_are_requeued_with_their_run_dir(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    space = load_space()
    owners = [_dead_worker(), worker_identity(), {**_dead_worker(), "host": "elsewhere"}]
    for number, owner in enumerate(owners):
        trial = study.ask()
        space.suggest(trial)
        trial.report(0.5, 1)
        trial.set_user_attr("worker", owner)
        trial.set_user_attr("run_dir", f"/runs/trial-{number}")
    assert recover_dead_trials(study, url, ResumeFailedTrial()) == [0]
    trials = study.trials
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "RUNNING", "WAITING"]
    retry = trials[3]
    assert retry.params == trials[0].params and retry.user_attrs == {"run_dir": "/runs/trial-0"}
    assert retry.system_attrs["retry_of"] == [0] and retry.intermediate_values == {1: 0.5}
    assert recover_dead_trials(study, url, ResumeFailedTrial()) == []  # nothing twice


# --------------------------------------------------------------------------- reports
def _finished(study, lr, bs, value, run_dir):
    choices = {"learning_rate": [1e-4, 1e-5], "batch_size": [8, 16]}
    study.add_trial(optuna.trial.create_trial(
        params={"learning_rate": lr, "batch_size": bs}, value=value,
        distributions={k: optuna.distributions.CategoricalDistribution(v)
                       for k, v in choices.items()},
        user_attrs={"run_dir": str(run_dir), "best": {"main": value}}))


def test_report_exports_best_checkpoint_and_plots(tmp_path, tiny_model):
    study = optuna.create_study(study_name="r", direction="maximize")
    study.set_user_attr("task", "RTE")
    shutil.copytree(tiny_model, tmp_path / "trial-0" / "best")
    _finished(study, 1e-4, 16, 0.6, tmp_path / "trial-0")
    report = write_report(study, tmp_path / "out")
    assert report["plots"]["param_importances"] == \
        "skipped: importances need at least 2 complete trials"
    assert Path(report["plots"]["optimization_history"]).stat().st_size > 5000
    best = json.loads((tmp_path / "out" / "best_params.json").read_text())
    assert best["trial"] == 0 and best["value"] == 0.6 and best["task"] == "RTE"
    assert best["params"] == {"learning_rate": 1e-4, "batch_size": 16}
    copied = tmp_path / "out" / "best_model"
    assert (copied / "model.safetensors").read_bytes() == \
        (tiny_model / "model.safetensors").read_bytes()
    for lr, bs, value in [(1e-5, 8, 0.7), (1e-4, 8, 0.5), (1e-5, 16, 0.65)]:
        _finished(study, lr, bs, value, tmp_path / "nowhere")
    report = write_report(study, tmp_path / "out")
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert Path(report["plots"][name]).stat().st_size > 5000, report["plots"]
    assert report["best"]["trial"] == 1 and report["best"]["checkpoint"] is None
    assert "no best/ checkpoint" in report["best"]["note"]


# --------------------------------------------------------------------------- real workers
@pytest.mark.slow
def test_two_workers_started_at_once_share_exactly_n_trials(tiny_model, glue_dir, tmp_path):
    command = sweep_command(tiny_model, glue_dir, tmp_path, "pair", 5, "--pruner", "none",
                            "--set", "max_steps=4")
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-2000:]
    ran = [int(line.split()[1]) for out, _ in outputs for line in out.splitlines()
           if line.startswith("trial ")]
    trials = load(tmp_path, "pair").trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 5 and sorted(ran) == sorted(t.number for t in complete)
    assert all(any(l.startswith("trial ") for l in out.splitlines()) for out, _ in outputs)
    assert all(t.state == optuna.trial.TrialState.COMPLETE or t.user_attrs.get("skipped")
               for t in trials)
    run_dirs = {t.user_attrs["run_dir"] for t in complete}
    assert len(run_dirs) == 5
    for t in complete:
        result = json.loads((Path(t.user_attrs["run_dir"]) / "result.json").read_text())
        assert result["best"]["main"] == t.value and result["steps"] == 4


def kill_mid_trial(command, run_dir: Path, step: int) -> int:
    """Start a worker, SIGKILL it once its trial's checkpoint (in ``run_dir``) is at
    ``step`` or later; the step of the checkpoint it leaves."""
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run_dir / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["run"]["step"] >= step:
            break
        time.sleep(0.1)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    return json.loads(state.read_text())["run"]["step"]


@pytest.mark.slow
def test_sigkilled_worker_trial_is_rerun_from_its_checkpoint(tiny_model, glue_dir, tmp_path):
    command = sweep_command(tiny_model, glue_dir, tmp_path, "crash", 2, "--pruner", "none",
                            "--set", "max_steps=40", "--set", "eval_every=4",
                            "--set", "batch_size=8", "--set", "max_train_examples=64")
    killed_at = kill_mid_trial(command, tmp_path / "trials" / "trial-0000", 8)
    assert 8 <= killed_at < 40
    assert load(tmp_path, "crash").trials[0].state == optuna.trial.TrialState.RUNNING

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    trials = load(tmp_path, "crash").trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    failed, retry = trials[0], trials[1]
    assert retry.params == failed.params and retry.system_attrs["retry_of"] == [0]
    assert retry.user_attrs["run_dir"] == failed.user_attrs["run_dir"]
    events = [json.loads(l) for l in (Path(failed.user_attrs["run_dir"]) / "log.jsonl")
              .read_text().splitlines() if l.strip()]
    assert [e["step"] for e in events if e["event"] == "resume"] == [killed_at]
    assert sum(e["event"] == "start" for e in events) == 1
    result = json.loads((Path(retry.user_attrs["run_dir"]) / "result.json").read_text())
    assert result["steps"] == 40 and [e["step"] for e in result["evaluations"]] == \
        list(range(4, 41, 4))


def _why(proc) -> str:
    """What a failed horovodrun says: each rank's first error lines (the root cause; the
    other ranks then only report Horovod's shutdown), then the tails."""
    import re
    first = [line for line in proc.stderr.splitlines()
             if re.search(r"Error|error:|terminate|what\(\)|Abort|Check failed|Fatal|Signal",
                          line)][:20]
    return "\n".join(first) + "\n...\n" + proc.stdout[-1500:] + proc.stderr[-1500:]


def _horovodrun() -> str:
    horovodrun = shutil.which("horovodrun") or str(Path(sys.executable).parent / "horovodrun")
    if not Path(horovodrun).exists():
        pytest.skip("horovodrun not installed")
    return horovodrun


LATE_RANK = """
import json, time
from bortkit.sweep.distributed import HorovodCoordinator
coordinator = HorovodCoordinator()
if coordinator.rank == 1:
    time.sleep(2)  # a slow rank: still evaluating when rank 0 shares
got, waited = [], []
for number in range(3):  # one name, shared again at once, as "job" is between trials
    start = time.monotonic()
    got.append(coordinator.share({"number": number} if coordinator.rank == 0 else None, "job"))
    waited.append(time.monotonic() - start)
print("RESULT " + json.dumps({"rank": coordinator.rank, "got": got, "waited": waited}), flush=True)
"""  # and rank 0 exits right away, as after the last share of a sweep


@pytest.mark.slow
@pytest.mark.distributed
def test_horovod_share_waits_for_every_rank(tmp_path):
    # Issue 6: rank 0 left share() before rank 1 joined, exited, and Horovod's shutdown at
    # exit failed rank 1's pending broadcast (or a second share of the name clashed).
    script = tmp_path / "late_rank.py"
    script.write_text(LATE_RANK)
    proc = subprocess.run([_horovodrun(), "-np", "2", "-H", "localhost:2", "--gloo",
                           sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, _why(proc)
    results = {r["rank"]: r for r in (json.loads(line.split("RESULT ", 1)[1])
                                      for line in proc.stdout.splitlines() if "RESULT " in line)}
    expected = [{"number": n} for n in range(3)]
    assert sorted(results) == [0, 1] and results[0]["got"] == results[1]["got"] == expected
    assert results[0]["waited"][0] > 1.5  # rank 0 waited for the late rank 1


@pytest.mark.slow
@pytest.mark.distributed
def test_horovod_ranks_train_the_same_trial_and_stop_together(tiny_model, glue_dir, tmp_path):
    command = [_horovodrun(), "-np", "2", "-H", "localhost:2", "--gloo",
               *sweep_command(tiny_model, glue_dir, tmp_path, "hvd", 2, "--pruner", "threshold",
                              "--prune-below", "1.01", "--prune-warmup", "2",
                              "--set", "max_steps=10")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=400,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, _why(proc)
    lines = {}
    for line in proc.stdout.splitlines():
        if "]<stdout>:rank " in line and " trial " in line:
            text = line.split("<stdout>:", 1)[1]
            rank, rest = text[len("rank "):].split(": ", 1)
            lines.setdefault(int(rank), []).append(rest)
    assert sorted(lines) == [0, 1], proc.stdout[-2000:]
    assert lines[0] == lines[1] and len(lines[0]) == 2  # same trials, params, stop step
    assert all(" pruned at step 4: " in l for l in lines[0])  # 2nd evaluation of 5
    params = [json.loads(l.split("params ", 1)[1].split(" best ", 1)[0]) for l in lines[0]]
    trials = load(tmp_path, "hvd").trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    for trial, used in zip(trials, params):
        assert {k: used[k] for k in trial.params} == pytest.approx(trial.params)
        events = [json.loads(l) for l in (Path(trial.user_attrs["run_dir"]) / "log.jsonl")
                  .read_text().splitlines()]
        assert [e["step"] for e in events if e["event"] == "eval"] == [2, 4]  # rank 0 only

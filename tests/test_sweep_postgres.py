"""Sweeps on a real PostgreSQL server, as users share a study across machines: the test suite
starts its own server (Debian's ``postgresql``, which ``scripts/install.sh test`` installs;
psycopg2 from the ``test`` extra) and runs sweep workers against it: two at once sharing the
trial budget, pruning, and a SIGKILLed worker's trial resumed from its checkpoint.

A missing server is a failure, never a skip: CI installs it."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from bortkit.sweep import Sweep
from test_sweep import _fake_args, _fake_run, kill_mid_trial, sweep_command

STUDY_STATES = optuna.trial.TrialState


def _server_bin() -> Path:
    """The folder of initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and Path(found).with_name("pg_ctl").exists():
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    if not versions:
        pytest.fail("no PostgreSQL server (initdb, pg_ctl) found: run bash scripts/install.sh "
                    "test (it installs Debian's postgresql)")
    return versions[-1].parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own (trust auth on 127.0.0.1, a free port), stopped and
    removed after the module. As root it runs as the ``postgres`` user, as initdb demands."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.fail("psycopg2 is missing: install the test extra (bash scripts/install.sh test)")
    bin_dir = _server_bin()
    root = Path(tempfile.mkdtemp(prefix="bortkit-pg-"))
    as_user = []
    if os.geteuid() == 0:
        import pwd
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root needs the 'postgres' user that Debian's postgresql "
                        "package creates (bash scripts/install.sh test)")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()

    def run(*args):
        proc = subprocess.run(as_user + [str(a) for a in args], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-2000:],
                                      (root / "log").read_text()[-2000:]
                                      if (root / "log").exists() else "")

    run(bin_dir / "initdb", "-D", data, "-U", "bortkit", "--auth=trust", "-E", "UTF8",
        "--no-sync")
    run(bin_dir / "pg_ctl", "-D", data, "-l", root / "log", "-w", "-t", "60", "-o",
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} "
        "-c fsync=off -c max_connections=50", "start")
    try:
        yield f"postgresql+psycopg2://bortkit@127.0.0.1:{port}/postgres"
    finally:
        run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_the_server_is_postgresql(postgres_url):
    import sqlalchemy
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as connection:
        version = connection.execute(sqlalchemy.text("select version()")).scalar()
    engine.dispose()
    assert version.startswith("PostgreSQL ")


def test_pruning_and_the_budget_on_postgres(postgres_url, tmp_path):
    """As tests/test_sweep.py on SQLite: the threshold pruner stops both trials at their 2nd
    evaluation, and a second worker finds the budget spent."""
    args = dict(pruner="threshold", prune_below=0.5, prune_warmup=1, storage=postgres_url)
    first = Sweep(_fake_args(tmp_path, **args), execute=_fake_run([0.6, 0.4, 0.7]))
    assert first.run()["worker_trials"] == [0, 1]
    trials = optuna.load_study(study_name="s", storage=postgres_url).trials
    assert [t.state for t in trials] == [STUDY_STATES.PRUNED, STUDY_STATES.PRUNED]
    assert trials[0].intermediate_values == {1: 0.6, 2: 0.4}
    assert trials[0].user_attrs["run_dir"] != trials[1].user_attrs["run_dir"]
    second = Sweep(_fake_args(tmp_path, **args), execute=_fake_run([0.9]))
    assert second.run()["worker_trials"] == []


@pytest.mark.slow
def test_two_workers_share_a_study_on_postgres(postgres_url, tiny_model, glue_dir, tmp_path):
    """Two worker processes started at once run exactly --n-trials real fine-tuning trials
    between them, each trial's value being its run's best score."""
    command = sweep_command(tiny_model, glue_dir, tmp_path, "pair", 3, "--pruner", "none",
                            "--set", "max_steps=4", "--storage", postgres_url)
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=400) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-2000:]
    ran = [int(line.split()[1]) for out, _ in outputs for line in out.splitlines()
           if line.startswith("trial ")]
    trials = optuna.load_study(study_name="pair", storage=postgres_url).trials
    complete = [t for t in trials if t.state == STUDY_STATES.COMPLETE]
    assert len(complete) == 3 and sorted(ran) == sorted(t.number for t in complete)
    assert all(any(line.startswith("trial ") for line in out.splitlines())
               for out, _ in outputs)  # both workers trained
    assert all(t.state == STUDY_STATES.COMPLETE or t.user_attrs.get("skipped") for t in trials)
    assert len({t.user_attrs["run_dir"] for t in complete}) == 3
    for t in complete:
        result = json.loads((Path(t.user_attrs["run_dir"]) / "result.json").read_text())
        assert result["best"]["main"] == t.value and result["steps"] == 4
    assert not (tmp_path / "study.db").exists()  # the study lives on the server


@pytest.mark.slow
def test_sigkilled_worker_resumes_on_postgres(postgres_url, tiny_model, glue_dir, tmp_path):
    """A worker killed mid-trial leaves the trial RUNNING on the server; the next worker
    re-queues it and trains it on from its checkpoint."""
    command = sweep_command(tiny_model, glue_dir, tmp_path, "crash", 1, "--pruner", "none",
                            "--set", "max_steps=16", "--set", "eval_every=4",
                            "--set", "batch_size=8", "--set", "max_train_examples=64",
                            "--storage", postgres_url)
    killed_at = kill_mid_trial(command, tmp_path / "trials" / "trial-0000", 8)
    assert 8 <= killed_at < 16
    study = optuna.load_study(study_name="crash", storage=postgres_url)
    assert [t.state for t in study.trials] == [STUDY_STATES.RUNNING]

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    trials = optuna.load_study(study_name="crash", storage=postgres_url).trials
    assert [t.state for t in trials] == [STUDY_STATES.FAIL, STUDY_STATES.COMPLETE]
    failed, retry = trials
    assert retry.params == failed.params and retry.system_attrs["retry_of"] == [0]
    assert retry.user_attrs["run_dir"] == failed.user_attrs["run_dir"]
    events = [json.loads(line) for line in (Path(failed.user_attrs["run_dir"]) / "log.jsonl")
              .read_text().splitlines() if line.strip()]
    assert [e["step"] for e in events if e["event"] == "resume"] == [killed_at]
    result = json.loads((Path(retry.user_attrs["run_dir"]) / "result.json").read_text())
    assert result["steps"] == 16 and result["best"]["main"] == retry.value

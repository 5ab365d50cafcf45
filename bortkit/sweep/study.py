"""Studies shared by many workers: storage, the task check, the trial budget, crash recovery.

**Budget.** ``--n-trials N`` is the study's total. A trial counts once it is waiting,
running, complete or pruned; failed trials do not (a crashed trial is replaced by its retry).
Trial numbers are unique and increase in creation order, so after ``ask()`` a worker keeps
its trial only if fewer than N counted trials have a smaller number. Two workers asking at
once therefore never overshoot: the later one marks its trial failed with the user
attribute ``skipped`` and stops.

**Crashes.** Each running trial records its worker (host, pid, process start time) and gets
Optuna heartbeats. When a worker starts or looks for work it fails the running trials whose
worker is gone: on its own host at once (the pid is dead or reused), elsewhere when the
heartbeat is older than the grace period. A failed trial is re-queued with the same
parameters and run directory (:class:`ResumeFailedTrial`), so its retry resumes from the
last checkpoint. On SQLite these steps hold a file lock beside the database, because SQLite
does not lock the rows they read (PostgreSQL and MySQL do).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator, Optional
from urllib.parse import urlsplit, urlunsplit

from ..errors import ConfigError

COUNTED = ("WAITING", "RUNNING", "COMPLETE", "PRUNED")


def redact(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def sqlite_path(url: str) -> Optional[Path]:
    """The database file of a ``sqlite:///`` URL (None for other databases or memory)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def storage_lock(url: str) -> Iterator[None]:
    """Exclusive lock across processes for read-then-write steps on a SQLite study."""
    path = sqlite_path(url)
    if path is None or not path.parent.is_dir():
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _first_line(err: BaseException) -> str:
    text = str(getattr(err, "orig", None) or err).strip().splitlines()
    return text[0] if text else err.__class__.__name__


def open_storage(url: str, heartbeat_interval: int = 30, grace_period: Optional[int] = None,
                 max_retry: int = 3):
    """An Optuna RDB storage with heartbeats; any failure becomes a one-line ConfigError
    (and removes the SQLite ``.lock`` this call made beside a file that is not a study)."""
    engine_kwargs: dict = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    elif url.startswith(("postgresql", "mysql")):
        engine_kwargs = {"connect_args": {"connect_timeout": 20}}
    database = sqlite_path(url)
    lock = None if database is None else database.with_name(database.name + ".lock")
    if lock is not None and lock.exists():
        lock = None  # another worker's: never removed
    try:
        return _open_rdb(url, engine_kwargs, heartbeat_interval, grace_period, max_retry)
    except ConfigError:
        if lock is not None:  # no .lock left beside a file that is not a study
            lock.unlink(missing_ok=True)
        raise


def _open_rdb(url: str, engine_kwargs: dict, heartbeat_interval: int,
              grace_period: Optional[int], max_retry: int):
    import optuna
    try:
        with storage_lock(url), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                grace_period=grace_period or 4 * heartbeat_interval,
                heartbeat_stale_trial_callback=ResumeFailedTrial(max_retry))
    except ImportError as err:
        raise ConfigError(f"cannot open study storage {redact(url)}: {_first_line(err)} "
                          "(install the database driver)") from None
    except Exception as err:  # SQLAlchemy: bad URL, unreachable server, unwritable file
        raise ConfigError(f"cannot open study storage {redact(url)}: "
                          f"{_first_line(err)}") from None


def load_study(storage, name: str, task: str, space_dict: dict, url: str, sampler=None,
               pruner=None):
    """Create or load study ``name``; refuse one that belongs to another task or space."""
    import optuna
    with storage_lock(url), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                    sampler=sampler, pruner=pruner, load_if_exists=True)
        attrs = _settled_attrs(study)
        if "task" not in attrs:
            # "space" first, "task" last: a study with a task attribute is complete, so a
            # worker on another machine never reads one half-made
            study.set_user_attr("space", space_dict)
            study.set_user_attr("task", task)
            attrs = study.user_attrs  # a worker that created it at the same moment
    if attrs["task"] != task:
        raise ConfigError(f"study {name!r} in {redact(url)} was created for task "
                          f"{attrs['task']}, not {task}; choose another --study name")
    if attrs.get("space") != space_dict:
        raise ConfigError(f"study {name!r} in {redact(url)} was created with another search "
                          "space; use the same --space/--set or choose another --study name")
    return study


def _settled_attrs(study, wait: float = 30.0) -> dict:
    """The study's attributes, once no other worker is half-way through writing them (its
    "space" written, its "task" not yet): on a database server ``storage_lock`` cannot
    serialise workers on different machines."""
    deadline = time.monotonic() + wait
    attrs = study.user_attrs
    while "space" in attrs and "task" not in attrs and time.monotonic() < deadline:
        time.sleep(0.2)
        attrs = study.user_attrs
    return attrs


# --------------------------------------------------------------------------- workers
def _start_ticks(pid: int) -> Optional[int]:
    """Start time of process ``pid`` in clock ticks since boot (None if gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return -1
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def worker_identity() -> dict:
    """Who runs a trial: host, pid and process start time (tells a pid reused after a crash)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _start_ticks(pid)}


def worker_alive(owner: dict) -> bool:
    """Whether the worker ``owner`` (on this host) still runs."""
    start = _start_ticks(int(owner["pid"]))
    if start is None:
        return False
    if start == -1 or owner.get("start") is None:  # no /proc: fall back to a signal probe
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return start == owner["start"]


class ResumeFailedTrial:
    """Re-queue a failed trial with its parameters, run directory and reports.

    Like Optuna's ``RetryHeartbeatStaleTrialCallback``, but the retry keeps the user
    attribute ``run_dir`` (so it resumes from the checkpoint there) and drops the dead
    worker's identity. ``system_attrs['retry_of']`` lists the earlier attempts.
    """

    def __init__(self, max_retry: Optional[int] = 3):
        self.max_retry = max_retry

    def __call__(self, study, trial) -> None:
        import optuna
        history = list(trial.system_attrs.get("retry_of", [])) + [trial.number]
        if self.max_retry is not None and len(history) > self.max_retry:
            return
        user_attrs = {k: v for k, v in trial.user_attrs.items()
                      if k not in ("worker", "skipped", "error")}
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING, params=trial.params,
            distributions=trial.distributions, user_attrs=user_attrs,
            system_attrs={"retry_of": history},
            intermediate_values=dict(trial.intermediate_values)))


class Heartbeat:
    """Records a running trial's heartbeat in ``storage`` every ``heartbeat_interval`` while
    the ``with`` block runs: Optuna does it inside ``study.optimize`` only, and a worker that
    asks and tells must do it itself (Optuna's own thread is not public API)."""

    def __init__(self, storage, study, trial_number: int):
        study_id = storage.get_study_id_from_name(study.study_name)
        self.trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial_number)
        self.storage = storage
        self.interval = storage.get_heartbeat_interval()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _beat(self) -> None:
        while True:
            self.storage.record_heartbeat(self.trial_id)
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "Heartbeat":
        if self.interval is not None:
            self._thread = threading.Thread(target=self._beat, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> bool:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        return False


def recover_dead_trials(study, url: str, retry: ResumeFailedTrial) -> list[int]:
    """Fail running trials whose worker is gone and queue their retries; returns their
    numbers. Heartbeat-stale trials (any host) go through Optuna's ``fail_stale_trials``."""
    import optuna
    host = socket.gethostname()
    failed = []
    with storage_lock(url), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = {t.number for t in study.get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.FAIL,))}
        optuna.storages.fail_stale_trials(study)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            owner = trial.user_attrs.get("worker")
            if not owner or owner.get("host") != host or worker_alive(owner):
                continue
            try:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            except RuntimeError:  # UpdateFinishedTrialError: another worker was quicker
                continue
            retry(study, trial)
        after = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
        failed = sorted(t.number for t in after if t.number not in before)
    return failed


def counted_trials(study, below: Optional[int] = None) -> int:
    """Trials that use up the budget (see module doc), optionally only numbers < ``below``."""
    import optuna
    states = tuple(getattr(optuna.trial.TrialState, s) for s in COUNTED)
    return sum(1 for t in study.get_trials(deepcopy=False, states=states)
               if below is None or t.number < below)

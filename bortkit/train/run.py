"""The life of one run in its output folder, as accelerate's ``Accelerator`` owns
``save_state``/``load_state``: every trainer (fine-tuning, distillation, multi-task,
pruning, Agora's rounds, sweep trials) goes through :class:`Run`, so the rules live once.

- **claim** (constructor, writes nothing): the folder is checked (:func:`bortkit.rundir.claim`:
  a finished run needs ``--overwrite``, a started one ``--resume``, a live holder refuses);
  with ``resume`` the recorded settings are compared with the new ones over the declared
  ``resume_keys``, and the run's input files by content (size and SHA-256), listing every
  difference; ``--resume`` with nothing to resume is refused;
- **enter** (``with run:``): the lock is taken, staging folders of killed saves are removed,
  the JSONL log is opened;
- **state**: :meth:`save` writes ``checkpoint/`` (the model, every :class:`ParamGroup`'s
  optimizer state and its parameters outside the model, extra blocks, the typed run state,
  the settings and the input fingerprints) atomically; :meth:`begin` restores it or starts;
- **outputs**: :meth:`save_best` (``best/``), :meth:`finish` (``result.json``, the ``done``
  record, the curves of this run's part of the log).

:func:`read_run_state` and :func:`has_training_state` read a run from outside (Agora's
rounds, the sweep's retries) without parsing its files. Framework-free at import; MXNet
loads when a state is saved or restored.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

from ..errors import CheckpointError, ConfigError
from ..io import write_json
from ..rundir import RunDir, check_resume
from .log import JsonlLog, read_jsonl
from .names import OPTIMIZER_STATES, TRAINING_STATE

CHECKPOINT, BEST, RESULT, LOG = "checkpoint", "best", "result.json", "log.jsonl"
#: Files of a training state that only resuming needs (glob patterns): a copy of a
#: checkpoint's weights, e.g. Agora's winner in best/, leaves them out.
RESUME_ONLY_FILES = (TRAINING_STATE, OPTIMIZER_STATES, "optimizer-*.states")
AGORA_PROGRESS = "agora_state.json"  # Agora's progress file (Run(progress=...))


@dataclass
class RunState:
    """Where a run is: the resumable part of ``checkpoint/state.json`` (``run``).

    ``kept`` is the evaluation whose weights are in ``best/`` (or another kept folder);
    ``evaluated_step`` the last step evaluated before the checkpoint."""

    step: int = 0
    best_score: float = -math.inf
    best_step: int = 0
    evaluations: list = field(default_factory=list)
    bad_evaluations: int = 0
    kept: Optional[dict] = None
    evaluated_step: Optional[int] = None

    @classmethod
    def from_dict(cls, saved: Mapping) -> "RunState":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in saved.items() if k in names})


def fingerprint(path: os.PathLike | str) -> dict:
    """What identifies an input file's content: size and SHA-256 (and where it was)."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return {"path": str(path.resolve()), "size": path.stat().st_size,
            "sha256": digest.hexdigest()}


def input_differences(stored: Mapping, current: Mapping) -> list[str]:
    """One entry per input whose content differs from the recorded one."""
    out = []
    for role in sorted(set(stored) | set(current)):
        old, new = stored.get(role), current.get(role)
        if old is None or new is None:
            out.append(f"{role} {'added' if old is None else 'dropped'}")
        elif (old["size"], old["sha256"]) != (new["size"], new["sha256"]):
            out.append(f"{role} {old['path']} -> {new['path']} (other content)")
    return out


def _read_json(path: Path) -> Optional[dict]:
    """A state file's contents; None when it is not there."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt {path.name} ({err})", path=path) from None


def read_run_state(directory: os.PathLike | str) -> Optional[dict]:
    """The recorded state (``state.json``) of the training state ``directory`` — a run's
    ``checkpoint/`` — or None when there is none (a killed save's ``.old`` copy counts)."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        found = _read_json(candidate / TRAINING_STATE)
        if found is not None:
            return found
    return None


def checkpoint_step(directory: Optional[os.PathLike | str]) -> int:
    """The optimizer step the training state ``directory`` had reached (None: 0)."""
    if directory is None:
        return 0
    saved = read_run_state(directory)
    return 0 if saved is None else int(saved["run"]["step"])


def has_training_state(directory: os.PathLike | str) -> bool:
    """Whether ``directory`` holds a training state (weights, optimizer states, step)."""
    directory = Path(directory)
    return (directory / TRAINING_STATE).is_file() and (
        (directory / OPTIMIZER_STATES).exists() or any(directory.glob("optimizer-*.states")))


def run_started(directory: os.PathLike | str, agora: bool = False) -> bool:
    """Whether the run folder ``directory`` holds something to resume: a training state in
    ``checkpoint/``, or (``agora``) Agora's progress file."""
    directory = Path(directory)
    if agora:
        return (directory / AGORA_PROGRESS).is_file()
    return read_run_state(directory / CHECKPOINT) is not None


def this_run(records: list) -> list:
    """The records from the last fresh start on: a new run in an old folder appends to its
    log (nothing written is lost) but reports only itself."""
    starts = [i for i, r in enumerate(records) if r.get("event") == "start"]
    return records[starts[-1]:] if starts else records


class Run:
    """One run in ``output_dir``; ``with run:`` around the work.

    ``settings`` (e.g. ``asdict(args)``) are recorded in every checkpoint and the ``start``
    record; ``resume_keys`` are those a resumed run must share; ``inputs`` (role -> file,
    e.g. ``{"--train": path}``) are fingerprinted and must keep their content on resume.
    ``enabled=False``: a Horovod rank other than 0, which checks and reads but writes
    nothing. ``started``/``finished``: the entries that mark a started / finished run.
    ``progress``: the run keeps its own JSON state file of that name (Agora's rounds)
    instead of a training state in ``checkpoint/`` (:meth:`save_progress`).
    """

    def __init__(self, output_dir: os.PathLike | str, settings: Mapping,
                 resume_keys: Iterable[str], *, resume: bool = False, overwrite: bool = False,
                 inputs: Optional[Mapping[str, os.PathLike | str]] = None,
                 enabled: bool = True, started: Sequence[str] = (CHECKPOINT,),
                 finished: Sequence[str] = (RESULT,), option: str = "--output-dir",
                 progress: Optional[str] = None):
        self.path = Path(output_dir)
        self.settings, self.keys = dict(settings), tuple(resume_keys)
        self.enabled, self.resume, self.progress = enabled, resume, progress
        if progress is not None:
            started = (progress,)
        self.claim = RunDir(self.path, option=option, finished=finished, started=started,
                            resume=resume, overwrite=overwrite, enabled=enabled)
        self.inputs = {role: fingerprint(p) for role, p in (inputs or {}).items()}
        self.saved: Optional[dict] = None
        self._log: Optional[JsonlLog] = None
        if resume:
            self.saved = read_run_state(self.path / CHECKPOINT) if progress is None \
                else _read_json(self.path / progress)
            if self.saved is None:
                raise ConfigError("--resume: no checkpoint to resume from (run without "
                                  "--resume to start)", path=self.path)
            self.check(self.saved)

    def check(self, saved: Mapping) -> None:
        """Refuse to go on from ``saved`` (a state.json) with other settings or inputs."""
        check_resume(saved.get("args", {}), self.settings, self.path, self.keys)
        found = input_differences(saved["inputs"], self.inputs) if "inputs" in saved else []
        if found:
            raise ConfigError("cannot resume: input files differ from the run's ("
                              + "; ".join(found) + "); use the same files or another "
                              "--output-dir", path=self.path)

    @property
    def resuming(self) -> bool:
        return self.saved is not None

    # ------------------------------------------------------------------ life
    @property
    def log(self) -> JsonlLog:
        """The run's JSONL log (``log.jsonl``), opened on first use (inside ``with run:``;
        a run used without entering it, e.g. a search candidate, writes it unclaimed)."""
        if self._log is None:
            self._log = JsonlLog(self.path / LOG, enabled=self.enabled,
                                 report_to=self.settings.get("report_to") or "none")
        return self._log

    def __enter__(self) -> "Run":
        self.claim.__enter__()
        return self

    def __exit__(self, kind, value, trace) -> None:
        if self._log is not None:
            self._log.close()  # the TensorBoard mirror's event file (--report-to)
        self.claim.__exit__(kind, value, trace)

    def start(self, **fields) -> None:
        """The ``start`` record of a fresh run: its settings and ``fields``."""
        self.log.write("start", args=self.settings, **fields)

    def save_progress(self, state: dict) -> None:
        """The run's own state file (``progress``), with its settings and input fingerprints,
        replaced atomically."""
        if self.enabled:
            write_json(self.path / self.progress,
                       {**state, "args": self.settings, "inputs": self.inputs})

    def begin(self, block, groups, state_type=RunState, extra_blocks: Optional[dict] = None,
              **start_fields):
        """Restore the checkpoint being resumed into ``block``/``groups`` (a ``resume``
        record) and return its typed state, or log ``start`` and return a fresh one."""
        if self.saved is None:
            self.start(**start_fields)
            return state_type()
        from .state import load_training_state
        saved = load_training_state(self.path / CHECKPOINT, block, groups, extra_blocks)
        state = state_type.from_dict(saved["run"]) if hasattr(state_type, "from_dict") \
            else state_type(**saved["run"])
        self.log.write("resume", step=state.step)
        return state

    def save(self, block, config, groups, state, *, tokenizer=None, source=None, meta=None,
             extra_blocks: Optional[dict] = None, keep: int = 1) -> None:
        """``checkpoint/``: weights, every group's optimizer state (and parameters outside
        ``block``), ``extra_blocks``, the typed ``state``, settings and input fingerprints;
        ``keep`` > 1 also keeps the last ``keep`` as ``checkpoint-STEP/``."""
        if not self.enabled or keep < 1:
            return
        from .retention import keep_snapshot
        from .state import save_training_state
        record = {"run": asdict(state), "seed": self.settings.get("seed"),
                  "args": self.settings, "inputs": self.inputs}
        save_training_state(self.path / CHECKPOINT, block, config, groups, record,
                            tokenizer=tokenizer, source=source, meta=meta,
                            extra_blocks=extra_blocks)
        keep_snapshot(self.path, state.step, keep)

    def save_best(self, block, config, *, tokenizer=None, meta=None, name: str = BEST,
                  **options) -> Optional[Path]:
        """The weights worth keeping (``best/``, or ``name``), a bortkit checkpoint."""
        if not self.enabled:
            return None
        from ..checkpoint import save_pretrained
        return save_pretrained(block, self.path / name, config=config, tokenizer=tokenizer,
                               meta=meta, seed=self.settings.get("seed"), **options)

    def records(self) -> list:
        """This run's records of the log (from its last fresh start on)."""
        path = self.path / LOG
        return this_run(read_jsonl(path)) if path.exists() else []

    def finish(self, result: dict, curves: Optional[Callable[[list], object]] = None,
               **done_fields) -> dict:
        """``result.json``, the ``done`` record, then ``curves(records)`` of this run."""
        if not self.enabled:
            return result
        write_json(self.path / RESULT, result)
        self.log.write("done", **done_fields)
        if curves is not None:
            curves(self.records())
        return result

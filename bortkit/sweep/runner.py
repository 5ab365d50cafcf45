"""A sweep worker: takes trials from a shared Optuna study until the study has its N trials.

Every trial runs in ``OUTPUT/trials/trial-NNNN/`` (a fine-tuning run directory, or an Agora
one with ``--agora``), recorded as the trial's user attribute ``run_dir``. Intermediate dev
scores go to Optuna after every evaluation (step = evaluation number, so trials with other
batch sizes compare epoch for epoch) and the pruner may stop the trial. See
:mod:`bortkit.sweep.study` for how workers share the budget and recover crashed trials.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from ..agora import Agora, AgoraArgs
from ..errors import ConfigError
from ..finetune import FinetuneArgs
from ..options import Interval, OneOf, Text, arg, check_fields, check_range
from ..train import claim, run_started
from .distributed import make_coordinator
from .space import apply_overrides, load_space, split_agora, uses_agora
from .hygiene import tidy_finished_trials
from .study import (Heartbeat, ResumeFailedTrial, counted_trials, load_study, open_storage,
                    recover_dead_trials, storage_lock, worker_identity)

PRUNERS = ("median", "hyperband", "threshold", "none")


POSITIVE_INT, COUNT = Interval(1, integer=True), Interval(0, integer=True)


@dataclass
class SweepArgs:
    """Settings of one sweep worker (``python -m bortkit.sweep``). Each field declares its
    check (:func:`bortkit.options.check_fields`)."""

    task: str = arg()                       # GLUE/SuperGLUE name, or the files' task name
    model: str = arg()
    data_dir: Optional[str] = arg()         # None for the user's files
    study: str = arg(constraint=Text("a non-empty name", non_empty=True))
    n_trials: int = arg(constraint=POSITIVE_INT)
    output_dir: Optional[str] = arg(None)   # default runs/sweep/<study>
    storage: Optional[str] = arg(None)      # default sqlite:///<output_dir>/study.db
    space: Optional[str] = arg(None)        # YAML file; None = the Bort README grid
    overrides: dict = arg(factory=dict)     # --set NAME=VALUE
    pruner: str = arg("median", OneOf(PRUNERS))
    # evaluations reported before pruning may start
    prune_warmup: int = arg(1, COUNT)
    # threshold pruner: stop when dev score < this
    prune_below: float = arg(0.0, Interval())
    agora: bool = arg(False)
    teacher: Optional[str] = arg(None)
    sampler_seed: Optional[int] = arg(None, Interval(0, 2 ** 32 - 1, integer=True,
                                                     optional=True))
    # seconds between heartbeats of a running trial
    heartbeat: int = arg(30, POSITIVE_INT)
    # seconds without heartbeat before a trial is dead (above heartbeat: validate)
    grace: Optional[int] = arg(None)
    max_retry: int = arg(3, COUNT)          # retries of one crashed trial
    wait: bool = arg(True)                  # wait for other workers' running trials to end
    poll: float = arg(5.0, Interval(0, low_open=True))  # seconds between looks at the study
    progress: bool = arg(True)              # progress bars of each trial's training
    distributed: Optional[bool] = arg(None)  # None: detect horovodrun
    files: Optional[dict] = arg(None)       # the user's files (bortkit.tasks.files.file_task)
    keep_trial_checkpoints: bool = arg(False)  # keep every finished trial's checkpoints

    def __post_init__(self):
        if self.output_dir is None:
            self.output_dir = str(Path("runs") / "sweep" / self.study)
        if self.storage is None:
            db = Path(self.output_dir).resolve() / "study.db"
            self.storage = f"sqlite:///{db}"

    def validate(self) -> None:
        """Every field's declared constraint (NaN and infinity included), then the checks
        between fields."""
        check_fields(self)
        check_range("grace", self.grace, self.heartbeat, low_open=True, integer=True,
                    optional=True)
        if self.agora and not self.teacher:
            raise ConfigError("--agora needs --teacher (a checkpoint fine-tuned on the task)")


def make_pruner(args: SweepArgs):
    import optuna
    if args.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=args.prune_warmup)
    if args.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, args.prune_warmup),
                                              reduction_factor=3)
    if args.pruner == "threshold":
        return optuna.pruners.ThresholdPruner(lower=args.prune_below,
                                              n_warmup_steps=args.prune_warmup)
    return optuna.pruners.NopPruner()


class _Reporter:
    """Called after each evaluation on every rank: rank 0 reports to Optuna and decides."""

    def __init__(self, trial, coordinator):
        self.trial, self.coordinator = trial, coordinator
        self.pruned = False

    def __call__(self, step: int, value: float) -> bool:
        decision = None
        if self.trial is not None:
            self.trial.report(value, step)
            decision = bool(self.trial.should_prune())
        decision = self.coordinator.share(decision, "prune")
        self.pruned = self.pruned or decision
        return decision


class Sweep:
    """One worker of a study. ``Sweep(args).run()`` returns a summary dict.

    ``execute(job, reporter) -> result`` may replace the training (tests); the default runs
    :class:`~bortkit.finetune.Finetuner` or Agora in the job's run directory.
    """

    def __init__(self, args: SweepArgs, coordinator=None, execute: Optional[Callable] = None):
        from ..tasks.files import load_task, task_identity
        args.validate()
        self.args = args
        task = load_task(args.task, args.files)  # reads --train: bad rows stop here
        self.task = task.name
        identity = task_identity(task)  # what the study records (a file task: its path)
        self.space = apply_overrides(load_space(args.space), args.overrides)
        if uses_agora(self.space) and not args.agora:
            raise ConfigError("agora_* parameters only apply with --agora", path=args.space)
        self.coordinator = coordinator or make_coordinator(args.distributed)
        if args.agora and self.coordinator.size > 1:
            raise ConfigError("--agora trials run in one process; launch without horovodrun")
        self.execute = execute or self._train
        self.out = Path(args.output_dir)
        self.study = self.storage = None
        self.retry = ResumeFailedTrial(args.max_retry)
        if self.coordinator.rank == 0:
            if execute is None:  # the inputs every trial reads, before the study exists
                from ..checkpoint import read_state
                read_state(args.model)
                task.path(args.data_dir, "train")
            # workers of one study share this folder, so it is checked, not locked; each
            # trial's run folder is claimed by the trainer
            claim(self.out)
            created = self.out  # the first of the folder and its parents made here
            while not created.parent.exists():
                created = created.parent
            created = None if self.out.exists() else created
            self.out.mkdir(parents=True, exist_ok=True)
            try:
                self.storage = open_storage(args.storage, args.heartbeat, args.grace,
                                            args.max_retry)
                self.study = load_study(self.storage, args.study, identity,
                                        self.space.to_dict(), args.storage,
                                        sampler=self._sampler(), pruner=make_pruner(args))
            except BaseException:
                if created is not None:  # no empty folder left behind
                    for folder in [self.out, *self.out.parents]:
                        if folder.exists() and not any(folder.iterdir()):
                            folder.rmdir()
                        if folder == created:
                            break
                raise

    def _sampler(self):
        import optuna
        return optuna.samplers.TPESampler(seed=self.args.sampler_seed, constant_liar=True)

    # ------------------------------------------------------------------ rank 0
    def next_trial(self):
        """The next trial this worker should run, or None when the study has its N trials."""
        import optuna
        states = optuna.trial.TrialState
        while True:
            recover_dead_trials(self.study, self.args.storage, self.retry)
            trials = self.study.get_trials(deepcopy=False)
            waiting = any(t.state == states.WAITING for t in trials)
            if counted_trials(self.study) >= self.args.n_trials and not waiting:
                if self.args.wait and any(t.state == states.RUNNING for t in trials):
                    time.sleep(self.args.poll)
                    continue
                return None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trial = self.study.ask()
            if counted_trials(self.study, below=trial.number) >= self.args.n_trials:
                trial.set_user_attr("skipped", "the study already has its trials")
                self.study.tell(trial, state=states.FAIL)
                continue
            return trial

    def _job(self, trial) -> dict:
        trial.set_user_attr("worker", worker_identity())
        run_dir = trial.user_attrs.get("run_dir")
        # a retry continues in the failed attempt's directory, from its checkpoint if it got
        # that far; otherwise it starts that directory afresh
        resume = run_dir is not None and run_started(run_dir, agora=self.args.agora)
        if run_dir is None:
            run_dir = str((self.out / "trials" / f"trial-{trial.number:04d}").resolve())
            trial.set_user_attr("run_dir", run_dir)
        params = self.space.suggest(trial)
        return {"number": trial.number, "params": params, "run_dir": run_dir, "resume": resume}

    def _finish(self, trial, result: dict, pruned: bool) -> str:
        import optuna
        states = optuna.trial.TrialState
        trial.set_user_attr("best", result.get("best"))
        trial.set_user_attr("steps", result.get("steps"))
        if pruned:
            self.study.tell(trial, state=states.PRUNED)
            return "pruned"
        self.study.tell(trial, result["best"]["main"])
        return "complete"

    def _fail(self, trial, err: BaseException, retry: bool) -> None:
        import optuna
        states = optuna.trial.TrialState
        trial.set_user_attr("error", f"{err.__class__.__name__}: {err}"[:1000])
        with storage_lock(self.args.storage):
            failed = self.study.tell(trial, state=states.FAIL)
            if retry:
                self.retry(self.study, failed)

    # ------------------------------------------------------------------ all ranks
    def _train(self, job: dict, reporter: _Reporter) -> dict:
        from ..finetune import Finetuner  # MXNet: loaded once a trial trains
        params, agora = split_agora(job["params"])
        common = {"task": self.task, "data_dir": self.args.data_dir, "files": self.args.files,
                  "output_dir": job["run_dir"], "resume": job["resume"],
                  "progress": self.args.progress}
        if self.args.agora:
            run = Agora(AgoraArgs(student=self.args.model, teacher=self.args.teacher,
                                  thetas=[params], **agora, **common),
                        on_round=lambda r, score: reporter(r, score))
            return run.run()
        # Optuna's step is the evaluation number (trials with other batch sizes compare
        # epoch for epoch); the run knows its evaluation interval once it has read the data.
        finetuner = Finetuner(FinetuneArgs(model=self.args.model,
                                           distributed=self.coordinator.distributed,
                                           **params, **common),
                              on_evaluation=lambda step, scores: reporter(
                                  math.ceil(step / finetuner.eval_every), scores["main"]),
                              workers=self.coordinator)
        return finetuner.run()

    def run(self) -> dict:
        """Run trials until the study has ``n_trials``; rank 0 then writes the report."""
        done = []
        while True:
            trial = self.next_trial() if self.coordinator.rank == 0 else None
            job = self._job(trial) if trial is not None else None
            # Also a barrier (HorovodCoordinator.share waits on every rank): after the last
            # share, None, no rank exits while another still waits for it.
            job = self.coordinator.share(job, "job")
            if job is None:
                break
            reporter = _Reporter(trial, self.coordinator)
            heartbeat = Heartbeat(self.storage, self.study, trial.number) \
                if trial is not None else contextlib.nullcontext()
            with heartbeat:
                try:
                    result = self.execute(job, reporter)
                except KeyboardInterrupt as err:
                    if trial is not None:
                        self._fail(trial, err, retry=True)
                    raise
                except BaseException as err:
                    if trial is not None:
                        self._fail(trial, err, retry=False)
                    raise
            state = self._finish(trial, result, reporter.pruned) if trial is not None \
                else ("pruned" if reporter.pruned else "complete")
            if trial is not None and not self.args.keep_trial_checkpoints:
                tidy_finished_trials(self.study)
            done.append(job["number"])
            rank = f"rank {self.coordinator.rank}: " if self.coordinator.size > 1 else ""
            print(f"{rank}trial {job['number']} {state} at step {result.get('steps')}: params "
                  f"{json.dumps(job['params'], sort_keys=True)} best "
                  f"{json.dumps(result.get('best'), sort_keys=True)}", flush=True)
        summary = {"worker_trials": done}
        if self.coordinator.rank == 0:
            from .report import write_report
            summary.update(write_report(self.study, self.out))
        return summary

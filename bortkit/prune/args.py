"""The pruning run's options and the checks made before anything is read or written
(no MXNet here: a bad option fails in a fraction of a second)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..checkpoint import TaskHead
from ..checkpoint.core import read_state
from ..errors import CheckpointError, ConfigError
from ..options import (Interval, OneOf, arg, check_fields, check_report_to, resume_keys)
from ..options import check as check_option


# What --target-sparsity counts (the FLOP library's sparsity is the dense one).
SPARSITY_READINGS = {
    "dense": "the share of the dense encoder matrices' weights removed (1 - weights after "
             "compaction / in*out summed over the matrices), the FLOP library's reading",
    "factorised": "the share of the thin-SVD factors' weights removed (r*(in+out) per "
                  "matrix, about 1.5x the dense count for BERT shapes)"}

# How far log_alpha and the multipliers travel over a run (the sum of their Noam learning
# rates over max_steps): the defaults' peaks are these over the schedule's sum, so a run
# of any length moves the gates as far. Calibrated on bench/prune.py's SST-2 runs (peaks
# 0.3 and 2.0 over 160 steps with a 20-step warm-up reached a 0.6 target by step 80).
MASK_TRAVEL = 25.0
LAMBDA_TRAVEL = 166.0


def noam_sum(steps: int, warmup_steps: int) -> float:
    """sum over s = 1..steps of min(s / warmup, sqrt(warmup / s)): a Noam schedule's total
    at peak 1."""
    return sum(min(s / warmup_steps, math.sqrt(warmup_steps / s))
               for s in range(1, steps + 1))


POSITIVE_INT = Interval(1, integer=True)
LIMIT = Interval(1, integer=True, optional=True)  # None: no limit
PEAK = Interval(0, low_open=True, optional=True)  # None: scaled to the run (schedules())


@dataclass
class PruneArgs:
    """Knobs of one pruning run. Schedules follow FLOP (see ``../shared/specs/variants.md``
    section B) scaled to the run: Noam-shaped learning rates for log_alpha and lambda,
    written by their peaks. ``None`` means "scaled to ``max_steps``" (see
    :meth:`schedules`)."""

    task: str = arg()
    model: str = arg()
    data_dir: str = arg(resume=False)   # the train/dev files are compared by content
    output_dir: str = arg(resume=False)
    target_sparsity: float = arg(0.8, Interval(0, 1, low_open=True, high_open=True))
    # what the target counts: see SPARSITY_READINGS
    sparsity_of: str = arg("dense", OneOf(tuple(SPARSITY_READINGS)))
    # default: half of max_steps
    target_warmup_steps: Optional[int] = arg(None, Interval(0, integer=True, optional=True))
    # may grow on --resume; the schedules it resolves to may not (open_run's "schedule")
    max_steps: int = arg(400, POSITIVE_INT, resume=False)
    batch_size: int = arg(32, POSITIVE_INT)
    # default: the length the head was fine-tuned at
    max_length: Optional[int] = arg(None, Interval(8, integer=True, optional=True))
    # model weights (AdamW-style BERTAdam, linear decay); 0 trains only the gates
    learning_rate: float = arg(2e-5, Interval(0))
    weight_decay: float = arg(0.01, Interval(0))
    max_grad_norm: float = arg(1.0, Interval(0))
    # peak of log_alpha's Adam (Noam shape)
    mask_learning_rate: Optional[float] = arg(None, PEAK)
    # peak of the lambdas' Adam (Noam, ascent)
    lambda_learning_rate: Optional[float] = arg(None, PEAK)
    # Noam warm-up of both; max_steps // 8
    schedule_warmup_steps: Optional[int] = arg(None, Interval(1, integer=True, optional=True))
    # initial drop probability: log_alpha = log(19)
    mask_init_mean: float = arg(0.05, Interval(0, 1, low_open=True, high_open=True))
    eval_every: int = arg(50, POSITIVE_INT)
    tolerance: float = arg(0.02, Interval(0))  # and below target_sparsity (validate)
    max_train_examples: Optional[int] = arg(None, LIMIT)
    max_eval_examples: Optional[int] = arg(None, LIMIT)
    eval_batch_size: int = arg(64, POSITIVE_INT, resume=False)
    seed: int = arg(0, Interval(0, integer=True))
    progress: bool = arg(True, resume=False)
    # "tensorboard": the log's numbers in OUT/tensorboard/
    report_to: str = arg("none", resume=False)
    resume: bool = arg(False, resume=False)
    # replace a finished or started run in output_dir
    overwrite: bool = arg(False, resume=False)

    def validate(self) -> None:
        """One line per bad option, before anything is read or written: every field's
        declared constraint (NaN and infinity included), then the tolerance against the
        target."""
        check_fields(self)
        check_report_to(self.report_to)
        check_option("tolerance", self.tolerance, self.tolerance < self.target_sparsity,
                     f"a number in [0, {self.target_sparsity:g}) (below --target-sparsity)")

    def schedules(self) -> dict:
        """The run's schedule settings, the defaults scaled to ``max_steps``: the target
        warms up over half the run, both Noam schedules over an eighth, and the gates' and
        multipliers' peaks are MASK_TRAVEL and LAMBDA_TRAVEL over the Noam sum of the run."""
        warmup = self.schedule_warmup_steps or max(1, self.max_steps // 8)
        total = noam_sum(self.max_steps, warmup)
        return {"target_warmup_steps": self.max_steps // 2 if self.target_warmup_steps is None
                else self.target_warmup_steps,
                "schedule_warmup_steps": warmup,
                "mask_learning_rate": self.mask_learning_rate or MASK_TRAVEL / total,
                "lambda_learning_rate": self.lambda_learning_rate or LAMBDA_TRAVEL / total}


def read_head(path: str) -> tuple:
    """(state, :class:`~bortkit.checkpoint.TaskHead`) of a fine-tuned classifier; a model
    without a task head is an error (pruning keeps the task's accuracy, so it needs it)."""
    state = read_state(path)
    head = TaskHead.from_meta(state.meta, Path(path))
    if head is None or "head.out.weight" not in state.tensors:
        raise CheckpointError("has no task head: prune a fine-tuned classifier (python -m "
                              "bortkit.finetune writes one to RUN/TASK/seed-S/best)", path=path)
    return state, head


# Settings a resumed run must share with the run it continues (the fields declared so, and
# the schedules they resolve to: ``max_steps`` may grow, but the defaults scale with it).
RESUME_KEYS = (*resume_keys(PruneArgs), "schedule")


def open_run(args: PruneArgs):
    """The :class:`~bortkit.train.Run` of ``args`` (checked now, nothing written): the
    folder's claim, and a resumed run's settings and train/dev files."""
    from ..tasks import get_task
    from ..train import Run
    task = get_task(args.task)
    settings = {**asdict(args), "schedule": {
        **args.schedules(),
        "weights_decay_steps": args.max_steps if args.learning_rate > 0 else None}}
    return Run(args.output_dir, settings, RESUME_KEYS,
               resume=args.resume, overwrite=args.overwrite,
               inputs={f"--data-dir {split}": task.path(args.data_dir, split)
                       for split in ("train", "dev")})




def check(args: PruneArgs) -> tuple:
    """Every check of a pruning run that needs no MXNet: options, output folder, the model's
    head and task. Returns ``(state, head)`` of the model."""
    from ..tasks import get_task
    args.validate()
    task = get_task(args.task)
    open_run(args)  # the output folder, and the settings of a run being resumed
    state, head = read_head(args.model)
    if head.task != task.name:
        raise ConfigError(f"--task: the model's head was fine-tuned for {head.task!r}, "
                          f"not {task.name!r}")
    state.config.check_sequence_length(args.max_length or head.max_length,
                                       path=args.model)
    if state.config.low_rank:
        raise ConfigError(f"--model: {args.model} is already factorised; prune the dense "
                          "fine-tuned model")
    return state, head

"""The pruning run's options and the checks made before anything is read or written
(no MXNet here: a bad option fails in a fraction of a second)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..checkpoint.core import read_state
from ..errors import CheckpointError, ConfigError


@dataclass
class PruneArgs:
    """Knobs of one pruning run. Schedules follow FLOP (see ``../shared/specs/variants.md``
    section B) scaled to a short run: Noam-shaped learning rates for log_alpha and lambda,
    written by their peaks."""

    task: str
    model: str
    data_dir: str
    output_dir: str
    target_sparsity: float = 0.8
    target_warmup_steps: int = 200      # steps over which the target rises from 0
    max_steps: int = 400
    batch_size: int = 32
    max_length: Optional[int] = None    # default: the length the head was fine-tuned at
    learning_rate: float = 2e-5         # model weights (AdamW-style BERTAdam, linear decay)
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    mask_learning_rate: float = 0.05    # peak of log_alpha's Adam (Noam shape)
    lambda_learning_rate: float = 0.05  # peak of the lambdas' Adam (Noam shape, ascent)
    schedule_warmup_steps: int = 50     # Noam warm-up of both
    mask_init_mean: float = 0.05        # initial drop probability: log_alpha = log(19)
    eval_every: int = 50
    tolerance: float = 0.02
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = None
    eval_batch_size: int = 64
    seed: int = 0
    progress: bool = True
    resume: bool = False

    def validate(self) -> None:
        """One line per bad option, before anything is read or written."""
        def bad(option, allowed, value):
            raise ConfigError(f"--{option}: must be {allowed}, got {value!r}")

        if not 0.0 < self.target_sparsity < 1.0:
            bad("target-sparsity", "in (0, 1)", self.target_sparsity)
        if not 0.0 < self.mask_init_mean < 1.0:
            bad("mask-init-mean", "in (0, 1)", self.mask_init_mean)
        for option, value in (("max-steps", self.max_steps), ("batch-size", self.batch_size),
                              ("eval-every", self.eval_every),
                              ("schedule-warmup-steps", self.schedule_warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                bad(option, "a positive integer", value)
        if self.target_warmup_steps < 0:
            bad("target-warmup-steps", ">= 0", self.target_warmup_steps)
        if self.max_length is not None and self.max_length < 8:
            bad("max-length", ">= 8", self.max_length)
        for option, value in (("learning-rate", self.learning_rate),
                              ("weight-decay", self.weight_decay),
                              ("max-grad-norm", self.max_grad_norm)):
            if value < 0:
                bad(option, ">= 0", value)
        for option, value in (("mask-learning-rate", self.mask_learning_rate),
                              ("lambda-learning-rate", self.lambda_learning_rate)):
            if value <= 0:
                bad(option, "> 0", value)
        if not 0.0 <= self.tolerance < self.target_sparsity:
            bad("tolerance", f"in [0, {self.target_sparsity})", self.tolerance)


def read_head(path: str) -> tuple:
    """(state, head metadata) of a fine-tuned classifier; a model without a task head is an
    error (pruning keeps the task's accuracy, so it needs the task's head)."""
    state = read_state(path)
    head = state.meta.get("_head")
    if not head or "head.out.weight" not in state.tensors:
        raise CheckpointError("has no task head: prune a fine-tuned classifier (python -m "
                              "bortkit.finetune writes one to RUN/TASK/seed-S/best)", path=path)
    return state, head




def check(args: PruneArgs) -> tuple:
    """Every check of a pruning run that needs no MXNet: options, output folder, the model's
    head and task. Returns ``(state, head)`` of the model."""
    from ..tasks import get_task
    args.validate()
    task = get_task(args.task)
    out = Path(args.output_dir)
    if (out / "log.jsonl").exists() and not args.resume:
        raise ConfigError(f"--output-dir: {out} already holds a pruning run; pass --resume "
                          "to continue it or choose another folder")
    state, head = read_head(args.model)
    if head.get("task") != task.name:
        raise ConfigError(f"--task: the model's head was fine-tuned for {head.get('task')!r}, "
                          f"not {task.name!r}")
    if state.config.low_rank:
        raise ConfigError(f"--model: {args.model} is already factorised; prune the dense "
                          "fine-tuned model")
    return state, head

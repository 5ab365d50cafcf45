"""The training loop: steps until the end, with evaluation, checkpoints and stopping.

Everything a trainer adds is a hook given when the loop is built:

- ``on_step(result) -> dict | None``: after every step (logging); a returned dict is shown
  beside the progress bar;
- ``evaluate(step) -> dict``: every ``eval_every`` steps and after the last one;
- ``checkpoint(step)``: after the evaluation, every ``checkpoint_every`` steps and after the
  last one;
- ``stop``: callables ``(step, scores) -> bool`` called after each evaluation (early
  stopping, reporting to a sweep that may prune); the loop stops when any returns True.

The last step is always evaluated and checkpointed, once: ``evaluated_step`` (from a
resumed state) says it already was.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Sequence

from .log import Progress
from .step import StepResult, TrainStep


@dataclass
class LoopResult:
    step: int                     # the last optimizer step done (counting resumed ones)
    stopped: bool                 # a stop hook ended the run early
    scores: Optional[dict]        # the last evaluation's scores


class Loop:
    """``Loop(step, loss_fn, batches, total_steps, ...).run()``.

    ``batches`` yields the micro-batches of each step from ``start_step + 1`` on (a list per
    optimizer step); the loop ends after ``total_steps`` or when ``batches`` runs out.
    """

    def __init__(self, step: TrainStep, loss_fn: Callable, batches: Iterable[Sequence],
                 total_steps: int, start_step: int = 0, *,
                 on_step: Optional[Callable[[StepResult], Optional[dict]]] = None,
                 evaluate: Optional[Callable[[int], dict]] = None, eval_every: int = 0,
                 checkpoint: Optional[Callable[[int], None]] = None, checkpoint_every: int = 0,
                 stop: Sequence[Callable[[int, dict], bool]] = (),
                 progress: Optional[Progress] = None, evaluated_step: Optional[int] = None):
        self.train_step, self.loss_fn, self.batches = step, loss_fn, batches
        self.total_steps, self.start_step = total_steps, start_step
        self.on_step, self.evaluate, self.checkpoint = on_step, evaluate, checkpoint
        self.eval_every, self.checkpoint_every = eval_every, checkpoint_every
        self.stop = tuple(stop)
        self.progress = progress
        self.evaluated_step = evaluated_step

    def run(self) -> LoopResult:
        step, stopped, scores = self.start_step, False, None
        batches = iter(self.batches)
        while step < self.total_steps and not stopped:
            try:
                micro_batches = next(batches)
            except StopIteration:
                break
            step += 1
            result = self.train_step(self.loss_fn, micro_batches, step)
            postfix = self.on_step(result) if self.on_step is not None else None
            if self.progress is not None:
                self.progress.update(1, **(postfix or {}))
            last = step == self.total_steps
            if last or (self.eval_every and step % self.eval_every == 0):
                scores, stopped = self._evaluate(step)
            if last or (self.checkpoint_every and step % self.checkpoint_every == 0):
                self._checkpoint(step)
        if self.evaluated_step != step:  # resumed after the last step, or ran out of batches
            scores, halt = self._evaluate(step)
            self._checkpoint(step)
            stopped = stopped or halt
        return LoopResult(step, stopped, scores)

    def _evaluate(self, step: int) -> tuple[Optional[dict], bool]:
        self.evaluated_step = step
        if self.evaluate is None:
            return None, False
        scores = self.evaluate(step)
        if not scores:
            return scores, False
        return scores, any([hook(step, scores) for hook in self.stop])  # every hook hears it

    def _checkpoint(self, step: int) -> None:
        if self.checkpoint is not None:
            self.checkpoint(step)

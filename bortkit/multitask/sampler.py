"""Which task trains at each step (Stickland and Murray 2019, section 4).

Task i is drawn with probability p_i proportional to N_i ** alpha, N_i its training-set size:

- ``proportional``: alpha = 1;
- ``sqrt``: alpha = 0.5;
- ``anneal``: alpha_e = 1 - 0.8 * e / (E - 1) in epoch e = 0 .. E - 1 (1.0 down to 0.2),
  the paper's schedule (``run_multi_task.py``, 0-based epochs);
- ``round_robin``: task ``(step - 1) mod n`` at step ``step``. The original never advances
  its round-robin (``task_id`` moves only ``if not args.sample`` and the default sample is
  ``'rr'``); here it does.

The draw of step ``s`` depends only on (seed, s), so a resumed run samples what an
uninterrupted one does, and each task's batch position is the count of its earlier draws.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError

SCHEDULES = ("proportional", "sqrt", "anneal", "round_robin")
#: Command-line spellings of the original (``--sample prop|sqrt|anneal|rr``) accepted too.
ALIASES = {"prop": "proportional", "rr": "round_robin"}


def schedule_name(name: str) -> str:
    """The canonical schedule name, or a one-line error naming the allowed ones."""
    canonical = ALIASES.get(name, name)
    if canonical not in SCHEDULES:
        raise ConfigError(f"--sample must be one of {', '.join(SCHEDULES)} (or prop, rr), "
                          f"got {name!r}")
    return canonical


def anneal_alpha(epoch: int, epochs: int) -> float:
    """alpha_e = 1 - 0.8 e / (E - 1), e = 0 .. E - 1."""
    return 1.0 - 0.8 * epoch / (epochs - 1)


class TaskSampler:
    """``TaskSampler(sizes, "anneal", epochs=E, steps_per_epoch=S, seed=0)``; ``task(step)``
    is the task of 1-based optimizer step ``step``; ``probabilities(epoch)`` the p_i."""

    def __init__(self, sizes: Sequence[int], schedule: str, epochs: int = 1,
                 steps_per_epoch: int = 1, seed: int = 0):
        self.schedule = schedule_name(schedule)
        self.sizes = np.asarray(sizes, dtype=np.float64)
        if not len(self.sizes) or (self.sizes <= 0).any():
            raise ConfigError(f"every task needs training examples; sizes are {list(sizes)}")
        if epochs < 1 or steps_per_epoch < 1:
            raise ConfigError(f"epochs and steps_per_epoch must be >= 1, got {epochs} and "
                              f"{steps_per_epoch}")
        if self.schedule == "anneal" and epochs < 2:
            raise ConfigError(f"--epochs must be >= 2 for --sample anneal (alpha falls from 1.0 "
                              f"to 0.2 over the epochs), got {epochs}")
        self.epochs, self.steps_per_epoch, self.seed = epochs, steps_per_epoch, seed

    @property
    def num_tasks(self) -> int:
        return len(self.sizes)

    def alpha(self, epoch: int) -> float:
        if self.schedule == "anneal":
            return anneal_alpha(min(epoch, self.epochs - 1), self.epochs)
        return {"proportional": 1.0, "sqrt": 0.5, "round_robin": 0.0}[self.schedule]

    def probabilities(self, epoch: int) -> np.ndarray:
        """(n,) probabilities of the tasks in ``epoch`` (round-robin: uniform on average)."""
        weights = self.sizes ** self.alpha(epoch)
        return weights / weights.sum()

    def epoch_of(self, step: int) -> int:
        return (step - 1) // self.steps_per_epoch

    def task(self, step: int) -> int:
        if self.schedule == "round_robin":
            return (step - 1) % self.num_tasks
        rng = np.random.RandomState((self.seed * 1_000_003 + step) % (2 ** 32))
        return int(rng.choice(self.num_tasks, p=self.probabilities(self.epoch_of(step))))

    def tasks(self, last_step: int) -> np.ndarray:
        """(last_step,) the tasks of steps 1 .. last_step."""
        return np.array([self.task(s) for s in range(1, last_step + 1)], dtype=np.int64)

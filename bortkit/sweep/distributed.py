"""One process, or all ranks of a Horovod job, acting as one sweep worker.

Under ``horovodrun`` only rank 0 talks to the study: it asks Optuna for a trial and
broadcasts the parameters, and after every dev evaluation it broadcasts the prune decision,
so every rank trains the same trial and stops at the same step (each rank asking Optuna on
its own would sample different parameters, and pruning on one rank only deadlocks the
gradient allreduce: optuna#4835, optuna-examples#101). The ranks are the training runtime's
:class:`~bortkit.train.Workers`; :meth:`~bortkit.train.Workers.share` is the broadcast.
"""
from __future__ import annotations

from typing import Optional

from ..train.workers import Workers


class HorovodCoordinator(Workers):
    """The ranks of a Horovod job, whatever the environment says."""

    def __init__(self):
        super().__init__(distributed=True)


def make_coordinator(distributed: Optional[bool] = None) -> Workers:
    """Horovod ranks when launched by horovodrun (or ``distributed=True``), else one process."""
    return Workers(distributed)

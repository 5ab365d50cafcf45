"""One process, or all ranks of a Horovod job, acting as one sweep worker.

Under ``horovodrun`` only rank 0 talks to the study: it asks Optuna for a trial and
broadcasts the parameters, and after every dev evaluation it broadcasts the prune decision,
so every rank trains the same trial and stops at the same step (each rank asking Optuna on
its own would sample different parameters, and pruning on one rank only deadlocks the
gradient allreduce: optuna#4835, optuna-examples#101).
"""
from __future__ import annotations

import os
import pickle
from typing import Any

import numpy as np


class LocalCoordinator:
    """A single process: rank 0 of 1; sharing is the identity."""

    rank = 0
    size = 1

    def share(self, obj: Any, name: str) -> Any:
        return obj


class HorovodCoordinator:
    """Ranks of a Horovod job; :meth:`share` broadcasts rank 0's object to all ranks."""

    def __init__(self):
        import horovod.mxnet as hvd
        hvd.init()
        self._hvd = hvd
        self.rank, self.size = hvd.rank(), hvd.size()

    def share(self, obj: Any, name: str) -> Any:
        """Rank 0's ``obj`` on every rank; returns on each rank only once all ranks joined.

        Every rank must call this in the same order with the same name. Horovod's own
        ``broadcast_object`` does not wait on the root: its broadcasts stay queued in MXNet's
        asynchronous engine, so rank 0 went on at once. After the last share of a sweep it
        exited, and Horovod's shutdown at exit cancelled the broadcast a slower rank had not
        joined yet ("Horovod has been shut down" on rank 1); two quick shares of one name
        clashed the same way ("same name as another tensor that is currently being
        processed"). Waiting on every rank makes each share a barrier.
        """
        import mxnet as mx
        key = f"bortkit.sweep.{name}"
        data = pickle.dumps(obj) if self.rank == 0 else b""
        size = self._broadcast(mx.nd.array([len(data)], dtype="int32"), key + ".size")
        size = int(size.asscalar())
        payload = mx.nd.array(np.frombuffer(data, np.uint8), dtype="uint8") if self.rank == 0 \
            else mx.nd.empty((size,), dtype="uint8")
        payload = self._broadcast(payload, key + ".data")
        return obj if self.rank == 0 else pickle.loads(payload.asnumpy().tobytes())

    def _broadcast(self, array, name: str):
        """Broadcast ``array`` in place from rank 0 and wait until it is done, root included
        (a broadcast completes only when every rank has joined it)."""
        self._hvd.broadcast_(array, root_rank=0, name=name)
        array.wait_to_read()
        return array


def launched_by_horovod() -> bool:
    """True inside ``horovodrun`` (Gloo or MPI) with more than one rank."""
    size = os.environ.get("HOROVOD_SIZE") or os.environ.get("OMPI_COMM_WORLD_SIZE")
    return size is not None and int(size) > 1


def make_coordinator(distributed: bool | None = None):
    """Horovod ranks when launched by horovodrun (or ``distributed=True``), else one process."""
    if distributed is None:
        distributed = launched_by_horovod()
    return HorovodCoordinator() if distributed else LocalCoordinator()

"""The data-parallel workers this process belongs to: Horovod ranks, or just itself.

One rule decides whether a process is one of several: it was started by ``horovodrun``
(:func:`launched_by_horovod`). Every collective (``sum``, ``allreduce_``, ``broadcast``,
``share``) is the identity in a single process, so trainers call them unconditionally.
MXNet and Horovod are imported only when a collective needs them.
"""
from __future__ import annotations

import os
import pickle
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError

# Set by horovodrun (Gloo) or by the MPI launcher it uses.
HOROVOD_SIZE_VARIABLES = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")


def launched_by_horovod() -> bool:
    """True inside a process started by ``horovodrun`` (Gloo or MPI) with more than one rank."""
    for key in HOROVOD_SIZE_VARIABLES:
        if os.environ.get(key):
            return int(os.environ[key]) > 1
    return False


class Workers:
    """Rank, size and the collectives of the workers this process belongs to.

    ``distributed=None`` detects ``horovodrun`` (:func:`launched_by_horovod`); True insists
    on Horovod, False forces a single process.
    """

    def __init__(self, distributed: Optional[bool] = None):
        self.hvd = None
        self.rank, self.size = 0, 1
        if distributed if distributed is not None else launched_by_horovod():
            try:
                import horovod.mxnet as hvd
            except ImportError:
                raise ConfigError("Horovod data parallelism needs horovod.mxnet: pip install "
                                  "horovod==0.28.1 (HOROVOD_WITH_MXNET=1), the 'distributed' "
                                  "extra") from None
            hvd.init()
            self.hvd, self.rank, self.size = hvd, hvd.rank(), hvd.size()

    @property
    def distributed(self) -> bool:
        return self.hvd is not None

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def sum(self, values: Sequence[float], name: str) -> np.ndarray:
        """Element-wise sum of host values over the workers (float64)."""
        array = np.asarray(values, dtype=np.float64)
        if not self.distributed:
            return array
        import mxnet as mx
        total = self.hvd.allreduce(mx.nd.array(array, dtype="float64"), average=False,
                                   name=name)
        return total.asnumpy()

    def allreduce_(self, arrays: Sequence, name: str) -> None:
        """Sum NDArrays over the workers in place (no division: callers scale)."""
        if not self.distributed:
            return
        for index, array in enumerate(arrays):
            self.hvd.allreduce_(array, average=False, name=f"{name}.{index}", priority=-index)

    def broadcast(self, params: dict) -> None:
        """Copy rank 0's parameter values (name -> Parameter) to every worker."""
        if self.distributed:
            self.hvd.broadcast_parameters(params, root_rank=0)

    def share(self, obj: Any, name: str) -> Any:
        """Rank 0's picklable ``obj`` on every rank; returns on each rank only once all ranks
        joined, so every call is also a barrier.

        Every rank must call this in the same order with the same name. Horovod's own
        ``broadcast_object`` does not wait on the root: its broadcasts stay queued in MXNet's
        asynchronous engine, so rank 0 went on at once and, exiting, cancelled a broadcast a
        slower rank had not joined yet ("Horovod has been shut down").
        """
        if not self.distributed:
            return obj
        import mxnet as mx
        key = f"bortkit.share.{name}"
        data = pickle.dumps(obj) if self.is_root else b""
        size = self._broadcast(mx.nd.array([len(data)], dtype="int32"), key + ".size")
        size = int(size.asscalar())
        payload = mx.nd.array(np.frombuffer(data, np.uint8), dtype="uint8") if self.is_root \
            else mx.nd.empty((size,), dtype="uint8")
        payload = self._broadcast(payload, key + ".data")
        return obj if self.is_root else pickle.loads(payload.asnumpy().tobytes())

    def _broadcast(self, array, name: str):
        """Broadcast in place from rank 0 and wait until done, root included."""
        self.hvd.broadcast_(array, root_rank=0, name=name)
        array.wait_to_read()
        return array

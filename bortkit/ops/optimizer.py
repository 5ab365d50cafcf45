"""The optimizer's fused operators (``optimizer.cc``); callers check :func:`available` first
and use MXNet's ``adamw_update`` otherwise (see :mod:`bortkit.train.optim`)."""
from __future__ import annotations

import mxnet as mx

__all__ = ["adamw_update", "sum_squares"]


def adamw_update(weight, grad, mean, var, scale, lr: float, wd: float, beta1: float,
                 beta2: float, epsilon: float) -> None:
    """In place, BERTAdam's (MXNet ``adamw_update``'s) step with gradient ``scale * grad``,
    ``scale`` a (1,) NDArray; skipped when ``scale`` is not finite. Needs
    :func:`bortkit.ops.available`."""
    mx.nd.bortkit_adamw(grad, scale, weight, mean, var, lr=lr, wd=wd, beta1=beta1,
                        beta2=beta2, epsilon=epsilon)


def sum_squares(arrays: list):
    """The sum of every squared entry of ``arrays`` (float32 NDArrays), summed in double,
    as a (1,) NDArray. Needs :func:`bortkit.ops.available`."""
    return mx.nd.bortkit_sum_squares(*arrays, num_arrays=len(arrays))

"""Optimizers and learning-rate schedules shared by fine-tuning and pretraining.

- ``bertadam``: GluonNLP's BERTAdam, Adam with decoupled weight decay and no bias correction
  (what BERT, GluonNLP and Bort trained with), as :class:`FusedBERTAdam`: the same update in
  one fused kernel per parameter (:mod:`bortkit.ops`) when it is available.
- ``adamw``: Loshchilov & Hutter's AdamW with bias correction (registered below).
- ``lamb``: MXNet's LAMB (You et al.), layer-wise trust ratio, for large batches.

No weight decay on LayerNorm parameters and biases, as BERT. The schedule is linear warmup
to the peak over ``warmup_ratio`` of the steps, then linear decay to ``floor``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mxnet as mx
import numpy as np
from gluonnlp.optimizer import BERTAdam  # importing it registers "bertadam"

from ..errors import ConfigError
from .. import ops as kernels
from .names import OPTIMIZERS


@mx.optimizer.register
class AdamW(mx.optimizer.Optimizer):
    """AdamW with bias correction: w -= lr * (m_hat / (sqrt(v_hat) + eps) + wd * w)."""

    def __init__(self, learning_rate=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-6, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon

    def create_state(self, index, weight):
        zeros = lambda: mx.nd.zeros(weight.shape, weight.context, dtype=weight.dtype)
        return zeros(), zeros()

    def update(self, index, weight, grad, state):
        self._update_count(index)
        t = self._index_update_count[index]
        lr, wd = self._get_lr(index), self._get_wd(index)
        mean, var = state
        grad = grad * self.rescale_grad
        if self.clip_gradient is not None:
            grad = mx.nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        mean[:] = self.beta1 * mean + (1 - self.beta1) * grad
        var[:] = self.beta2 * var + (1 - self.beta2) * mx.nd.square(grad)
        m_hat = mean / (1 - self.beta1 ** t)
        v_hat = var / (1 - self.beta2 ** t)
        weight[:] = weight - lr * (m_hat / (mx.nd.sqrt(v_hat) + self.epsilon) + wd * weight)


class FusedBERTAdam(BERTAdam):
    """GluonNLP's BERTAdam (the same arithmetic as MXNet's ``adamw_update``), one fused C++
    kernel per parameter: several times faster on CPU than MXNet's kernel.

    ``device_scale``, when set to a (1,) NDArray, multiplies every gradient on top of
    ``rescale_grad`` and is read on the device: gradient clipping can compute its factor
    without waiting for the gradients on the host (:func:`global_grad_norm_nd`). Falls back
    to BERTAdam (which ignores ``device_scale``) without the kernels, for float16 or with
    ``clip_gradient``.
    """

    supports_device_scale = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.device_scale = None
        if kernels.available():
            self.aggregate_num = 1 << 30  # one call for all parameters, no per-group loop

    def __getstate__(self):
        state = super().__getstate__()
        state["device_scale"] = None   # a per-step value, not optimizer state
        return state

    def _update_impl(self, indices, weight, grad, state, multi_precision=False):
        if not isinstance(indices, (tuple, list)):
            indices, weight, grad, state = [indices], [weight], [grad], [state]
        fused = (kernels.available() and not multi_precision and not self.clip_gradient
                 and all(w.stype == "default" and g.stype == "default" and w.dtype == np.float32
                         for w, g in zip(weight, grad)))
        if not fused:
            if self.device_scale is not None:
                raise RuntimeError("device_scale needs the fused kernels")
            return super()._update_impl(indices, weight, grad, state, multi_precision)
        self._update_count(indices)
        lrs, wds = self._get_lrs(indices), self._get_wds(indices)
        rescale = self.rescale_grad
        if isinstance(rescale, mx.nd.NDArray):
            rescale = rescale.as_in_context(weight[0].context)
        if self.device_scale is not None:
            scale = self.device_scale.as_in_context(weight[0].context) * rescale
        elif isinstance(rescale, mx.nd.NDArray):
            scale = rescale
        else:
            scale = mx.nd.full((1,), rescale, ctx=weight[0].context)
        for w, g, (mean, var), lr, wd in zip(weight, grad, state, lrs, wds):
            kernels.adamw_update(w, g, mean, var, scale, lr=lr, wd=wd, beta1=self.beta1,
                                 beta2=self.beta2, epsilon=self.epsilon)


def no_decay(name: str) -> bool:
    """LayerNorm scales/shifts and biases are not decayed."""
    return name.endswith(("gamma", "beta", "bias"))


def make_trainer(params: dict, optimizer: str = "bertadam", learning_rate: float = 1e-4,
                 weight_decay: float = 0.01, epsilon: float = 1e-6, accumulate: int = 1):
    """A Gluon Trainer over ``params`` (name -> Parameter), for a
    :class:`~bortkit.train.ParamGroup`: :class:`~bortkit.train.TrainStep` does the
    workers' allreduce, so the same trainer serves one process and Horovod.

    With ``accumulate > 1`` gradients add up over micro-batches (``grad_req='add'``) and the
    step zeroes them after each update.
    """
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if learning_rate <= 0:
        raise ConfigError(f"learning rate must be positive, got {learning_rate}")
    if weight_decay < 0:
        raise ConfigError(f"weight decay must be >= 0, got {weight_decay}")
    for name, param in params.items():
        if no_decay(name):
            param.wd_mult = 0.0
        if param.grad_req != "null":
            if accumulate > 1 and kernels.writes_gradient(param):
                raise RuntimeError(
                    f"{name} was traced into a fused operator that writes its gradient; "
                    "make the trainer with accumulate > 1 before the model's first forward pass")
            param.grad_req = "add" if accumulate > 1 else "write"
    kwargs = {"learning_rate": learning_rate, "wd": weight_decay, "epsilon": epsilon}
    if optimizer == "bertadam":
        optimizer, kwargs = FusedBERTAdam(**kwargs), None
    # Ordered by name: the same on every rank, so the allreduce tensors match.
    ordered = {name: params[name] for name in sorted(params)}
    return mx.gluon.Trainer(ordered, optimizer, kwargs, kvstore=None)


def global_grad_norm(params: dict) -> float:
    """The L2 norm of all gradients together.

    The fused ``bortkit_sum_squares`` (one multi-threaded pass, summed in double), else one
    BLAS dot product per array: both several times faster than Gluon's ``clip_global_norm``
    (``NDArray.norm``) on CPU, and accurate where ``norm``/``multi_sum_sq`` lose about 1% on
    arrays of millions of entries (float32 accumulation).
    """
    squares = _squared_grad_sum(params)
    return 0.0 if squares is None else math.sqrt(float(squares.asscalar()))


def _squared_grad_sum(params: dict):
    """The sum of all squared gradient entries as a (1,) NDArray (None without gradients)."""
    grads = [p.grad().reshape((-1,)) for p in params.values() if p.grad_req != "null"]
    if not grads:
        return None
    if kernels.available():  # one multi-threaded pass, summed in double
        return kernels.sum_squares(grads)
    return mx.nd.add_n(*[mx.nd.dot(g, g) for g in grads])


def global_grad_norm_nd(params: dict) -> mx.nd.NDArray:
    """:func:`global_grad_norm` as a (1,) NDArray, without waiting for the gradients."""
    squares = _squared_grad_sum(params)
    return mx.nd.zeros((1,)) if squares is None else mx.nd.sqrt(squares)


@dataclass(frozen=True)
class LinearSchedule:
    """Linear warmup from 0 to ``peak`` over ``warmup_ratio * total_steps`` steps, then linear
    decay to ``floor`` at ``total_steps`` (BERT/Bort; Bort's fine-tuning floors at 1e-7)."""

    peak: float
    total_steps: int
    warmup_ratio: float = 0.1
    floor: float = 0.0

    def __post_init__(self):
        if self.total_steps <= 0:
            raise ConfigError(f"total steps must be positive, got {self.total_steps}")
        if not 0.0 <= self.warmup_ratio <= 1.0:
            raise ConfigError(f"warmup ratio must be in [0, 1], got {self.warmup_ratio}")

    @property
    def warmup_steps(self) -> int:
        return int(math.ceil(self.warmup_ratio * self.total_steps))

    def __call__(self, step: int) -> float:
        """Learning rate for optimizer step ``step`` (1-based)."""
        if step <= self.warmup_steps:
            return self.peak * step / max(1, self.warmup_steps)
        remaining = (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps)
        return max(self.floor, self.peak * max(0.0, remaining))

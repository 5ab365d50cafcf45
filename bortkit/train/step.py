"""One optimizer step: forward and backward over micro-batches, allreduce, clip, update.

A trainer describes *what* to optimise as :class:`ParamGroup` s (parameters, the Gluon
trainer from :func:`~bortkit.train.make_trainer`, a learning-rate schedule, a clip norm) and
hands :class:`TrainStep` a loss function and the micro-batches of the step. Several groups
give several optimizers (e.g. weights, masks and Lagrange multipliers); each group is
allreduced, clipped and updated on its own.

Gradients are the *mean* over the workers (the losses are each worker's own), the rule of
Horovod's trainer: they are summed by the allreduce and the 1/workers factor rides on the
optimizer's ``rescale_grad``, as does the clip factor, so neither costs a pass over the
gradients. With the fused BERTAdam kernel the clip factor is computed on the device and the
host never waits for the backward pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import mxnet as mx
from mxnet import autograd

from .. import ops as kernels
from .optim import global_grad_norm, global_grad_norm_nd
from .state import seed_step
from .workers import Workers


@dataclass
class ParamGroup:
    """Parameters updated by one optimizer.

    ``params`` (name -> Parameter) are the ones ``trainer`` (from ``make_trainer(params)``)
    updates; ``schedule(n)`` gives the learning rate of optimizer step ``n`` (1-based; None
    keeps the trainer's); ``max_grad_norm`` clips the global L2 norm of the group's
    (worker-averaged) gradient, 0 = off; ``name`` names the group's allreduce tensors and
    must differ between the groups of one program. ``partial``: a step may use only some of
    the parameters (multi-task heads); the unused ones keep their values and optimizer state
    (as PyTorch skips a parameter without a gradient) and add nothing to the norm.
    """

    params: dict
    trainer: object
    schedule: Optional[Callable[[int], float]] = None
    max_grad_norm: float = 0.0
    name: str = "params"
    partial: bool = False
    accumulates: bool = field(init=False, default=False)

    def __post_init__(self):
        self.accumulates = any(p.grad_req == "add" for p in self.params.values())

    def gradients(self) -> list:
        return [p.grad() for p in self.params.values() if p.grad_req != "null"]


@dataclass
class StepResult:
    """What one step did. ``terms`` are the loss terms summed over the micro-batches, a (k,)
    NDArray still on the device (``terms[0]`` is the differentiated loss; read them only when
    they are logged, reading waits for the step); ``grad_norms`` per group: the global norm
    of the averaged gradient before clipping (a float, or a (1,) NDArray)."""

    step: int
    terms: mx.nd.NDArray
    grad_norms: list
    learning_rates: list

    @property
    def loss(self) -> float:
        return float(self.terms[0].asscalar())

    def grad_norm(self, group: int = 0) -> float:
        norm = self.grad_norms[group]
        return float(norm.asscalar()) if isinstance(norm, mx.nd.NDArray) else float(norm)


class TrainStep:
    """``step(loss_fn, micro_batches, n)`` runs optimizer step ``n`` (1-based).

    ``loss_fn(batch)`` runs under ``autograd.record(train_mode)``; it returns the loss, a
    (1,) NDArray, or a sequence of (1,) NDArrays whose first is the loss and the rest other
    terms to report; ``None`` means this worker has no rows in that micro-batch (it then adds
    no gradient). Frozen models inside it (a teacher) run under ``autograd.pause()``. Losses
    of micro-batches add up: divide them by the step's total count in ``loss_fn``.

    With ``seed`` set, dropout is reseeded before micro-batch ``i`` of step ``n`` from
    (seed, (n - 1) * len(micro_batches) + i, rank): a run resumed at any step draws the masks
    an uninterrupted one draws. ``average_gradients=False`` keeps the workers' sum (for
    losses already divided by a global count); the default is their mean.
    """

    def __init__(self, groups: Sequence[ParamGroup], workers: Optional[Workers] = None,
                 seed: Optional[int] = None, train_mode: bool = True,
                 average_gradients: bool = True):
        self.groups = list(groups)
        self.workers = workers or Workers(distributed=False)
        self.seed, self.train_mode = seed, train_mode
        self.average_gradients = average_gradients

    def __call__(self, loss_fn: Callable, micro_batches: Sequence, step: int) -> StepResult:
        rates = [self._set_learning_rate(group, step) for group in self.groups]
        terms, backward = None, False
        for index, batch in enumerate(micro_batches):
            if self.seed is not None:
                seed_step(self.seed, (step - 1) * len(micro_batches) + index, self.workers.rank)
            with autograd.record(train_mode=self.train_mode):
                out = loss_fn(batch)
            if out is None:
                continue
            loss = out if isinstance(out, mx.nd.NDArray) else out[0]
            loss.backward()
            backward = True
            part = out if isinstance(out, mx.nd.NDArray) else mx.nd.concat(*out, dim=0)
            terms = part if terms is None else terms + part
        if not backward:  # no rows here: add nothing to the other workers' gradients
            self._zero_gradients()
            terms = mx.nd.zeros((1,))
        norms = [self._update(group) for group in self.groups]
        return StepResult(step, terms, norms, rates)

    def _zero_gradients(self) -> None:
        """Zero gradients that count as fresh: the backward pass of 0 * every parameter
        (Gluon refuses to update with gradients no backward pass has written)."""
        params = [p for group in self.groups for p in group.params.values()
                  if p.grad_req != "null"]
        with autograd.record():
            zero = mx.nd.add_n(*[(p.data() * 0).sum() for p in params])
        zero.backward()

    @staticmethod
    def _set_learning_rate(group: ParamGroup, step: int) -> float:
        if group.schedule is not None:
            group.trainer.set_learning_rate(group.schedule(step))
        return group.trainer.learning_rate

    def _update(self, group: ParamGroup):
        """Allreduce, clip at ``max_grad_norm`` (global norm of the averaged gradient),
        update; return that norm (a float, or a (1,) NDArray to read only when logged)."""
        self.workers.allreduce_(group.gradients(), group.name)
        divisor = self.workers.size if self.average_gradients else 1
        optimizer, max_norm = group.trainer.optimizer, group.max_grad_norm
        if getattr(optimizer, "supports_device_scale", False) and kernels.available():
            # The clip factor stays on the device: the host queues the update while the
            # gradients are still being computed.
            norm = global_grad_norm_nd(group.params) / divisor if divisor != 1 \
                else global_grad_norm_nd(group.params)
            if max_norm > 0:
                optimizer.device_scale = mx.nd.where(
                    norm > max_norm, max_norm / (norm + 1e-8), mx.nd.ones_like(norm))
            group.trainer.update(divisor, ignore_stale_grad=group.partial)
            optimizer.device_scale = None
        else:
            norm = global_grad_norm(group.params) / divisor
            clip = max_norm / (norm + 1e-8) if 0 < max_norm < norm else 1.0
            group.trainer.update(divisor / clip, ignore_stale_grad=group.partial)
        if group.accumulates or group.partial:  # a stale gradient must not count next step
            for param in group.params.values():
                if param.grad_req != "null":
                    param.zero_grad()
        return norm


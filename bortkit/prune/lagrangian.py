"""FLOP's expected-sparsity constraint as a Lagrangian, and its learning-rate shape.

Minimise over the weights and log_alpha, maximise over lambda::

    L = task_loss + lambda_1 (s_hat - t) + lambda_2 (s_hat - t)^2
    s_hat = 1 - sum_m (in_m + out_m) E||z_m||_0 / sum_m (in_m + out_m) r_m
    t     = target * min(1, step / warmup_steps)

lambda_1 and lambda_2 start at 0 and climb their gradient (gradient ascent: their optimizer
runs with the negated learning rate of :class:`Ascent`), so the penalty grows for as long as
the expected sparsity misses the target; lambda_2's gradient (s_hat - t)^2 is never negative.
"""
from __future__ import annotations

import math

import mxnet as mx
from mxnet import gluon


def expected_sparsity(gated: dict) -> mx.nd.NDArray:
    """s_hat (1,) over the factorised parameter count of ``gated`` (name -> GatedLowRankDense),
    differentiable in every log_alpha."""
    kept, total = [], 0
    for block in gated.values():
        width = block.in_units + block.units
        kept.append(block.mask.expected_l0() * width)
        total += block.rank * width
    return 1.0 - mx.nd.add_n(*kept) / total


def gate_sparsity(gated: dict) -> float:
    """1 - the factorised weights whose eval gate is non-zero, over all of them: the
    sparsity ``compact`` realises before it merges pairs back into matrices."""
    kept = total = 0
    for block in gated.values():
        width = block.in_units + block.units
        kept += int((block.mask.eval_gate() > 0).sum()) * width
        total += block.rank * width
    return 1.0 - kept / total


def dense_sparsity(gated: dict) -> float:
    """1 - the dense encoder weights the eval gates leave, over all of them: per matrix
    min(k (in + out), in * out) of in * out (k components on; a pair no smaller than the
    matrix is multiplied back), the sparsity the FLOP library reports (before ``compact``
    rounds ranks up)."""
    kept = total = 0
    for block in gated.values():
        on = int((block.mask.eval_gate() > 0).sum())
        dense = block.in_units * block.units
        kept += min(on * (block.in_units + block.units), dense)
        total += dense
    return 1.0 - kept / total


def factorised_target(dense_target: float, gated: dict) -> float:
    """The factorised sparsity at which the kept factors hold ``(1 - dense_target)`` of the
    dense weights: 1 - (1 - t) D / F, D the dense and F the factorised weight count. Where
    a kept pair would be merged back the dense sparsity comes out higher, never lower."""
    dense = sum(b.in_units * b.units for b in gated.values())
    factorised = sum(b.rank * (b.in_units + b.units) for b in gated.values())
    return 1.0 - (1.0 - dense_target) * dense / factorised


class LagrangianSparsity:
    """lambda_1 (s_hat - t) + lambda_2 (s_hat - t)^2 with a linearly warmed-up target.

    ``params`` holds lambda_1 and lambda_2 (Gluon parameters of shape (1,), initialised to
    ``lambda_init``) for their own optimizer, whose schedule is wrapped in :class:`Ascent`.
    """

    def __init__(self, target: float, warmup_steps: int, lambda_init: float = 0.0):
        if not 0.0 < target < 1.0:
            raise ValueError(f"target sparsity must be in (0, 1), got {target!r}")
        if warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps!r}")
        self.target, self.warmup_steps = target, warmup_steps
        self.params = gluon.ParameterDict(prefix="lagrangian_")
        self.lambda_1 = self.params.get("lambda_1", shape=(1,),
                                        init=mx.init.Constant(lambda_init))
        self.lambda_2 = self.params.get("lambda_2", shape=(1,),
                                        init=mx.init.Constant(lambda_init))
        self.params.initialize()

    def target_at(self, step: int) -> float:
        """t at optimizer step ``step`` (1-based, as the runtime counts; 0 gives 0)."""
        if self.warmup_steps == 0:
            return self.target
        return self.target * min(1.0, step / self.warmup_steps)

    def __call__(self, sparsity: mx.nd.NDArray, step: int) -> mx.nd.NDArray:
        gap = sparsity - self.target_at(step)
        return self.lambda_1.data() * gap + self.lambda_2.data() * gap * gap

    def named_params(self) -> dict:
        return {"lambda_1": self.lambda_1, "lambda_2": self.lambda_2}

    def values(self) -> tuple[float, float]:
        return float(self.lambda_1.data().asscalar()), float(self.lambda_2.data().asscalar())


class Ascent:
    """A schedule's rates negated: an optimizer stepping with them climbs the gradient."""

    def __init__(self, schedule):
        self.schedule = schedule

    def __call__(self, step: int) -> float:
        return -self.schedule(step)


class NoamSchedule:
    """lr(step) = peak * min(step / warmup, sqrt(warmup / step)) for step >= 1: the Noam
    shape FLOP uses for log_alpha and lambda, written by its peak. Arexh's
    ``base / sqrt(d_model) * min(s / w^1.5, 1 / sqrt(s))`` is this with
    peak = base / sqrt(d_model * w) (alpha_lr 5, lambda_lr 10, d_model 768, w 200:
    peaks 0.0128 and 0.0255)."""

    def __init__(self, peak: float, warmup_steps: int):
        if peak <= 0 or warmup_steps < 1:
            raise ValueError(f"NoamSchedule needs peak > 0 and warmup_steps >= 1, got "
                             f"{peak!r} and {warmup_steps!r}")
        self.peak, self.warmup_steps = peak, warmup_steps

    def __call__(self, step: int) -> float:
        step = max(step, 1)
        return self.peak * min(step / self.warmup_steps, math.sqrt(self.warmup_steps / step))

"""The hard-concrete gate of Louizos, Welling & Kingma (2018), as FLOP uses it.

One ``log_alpha`` per gated component. With temperature beta, stretch interval (l, r) and
u ~ U(eps, 1 - eps)::

    training   s = sigmoid((log u - log(1 - u) + log_alpha) / beta)
               z = clamp(s * (r - l) + l, 0, 1)                 (a new sample per call)
    eval       z = clamp(sigmoid(log_alpha) * (r - l) + l, 0, 1)  (deterministic)
    E ||z||_0  = sum sigmoid(log_alpha - beta * log(-l / r))     (P(z != 0) per component)

The eval gate is exactly 0 where ``log_alpha <= log(-l / r)`` (about -2.398 with the
defaults), i.e. where a component is more likely off than on; ``compact`` removes exactly
those components and folds the others' gate values into the factors, so the compacted
model computes what the gated model computes in eval mode.

The gate decides between sampling and the deterministic value when it is called
(``autograd.is_training()``), so a network holding gates runs imperatively (not
hybridized): a cached graph would freeze whichever branch it was traced with.
"""
from __future__ import annotations

import math

import mxnet as mx
from mxnet import autograd
from mxnet.gluon import HybridBlock

# Defaults of the FLOP library (flop/hardconcrete.py) and Arexh/BERT-Pruning.
BETA, LIMIT_L, LIMIT_R, EPS = 1.0, -0.1, 1.1, 1e-6


def init_log_alpha(init_mean: float) -> float:
    """The library's initial log_alpha for ``init_mean`` (the initial probability that a
    component is dropped): log((1 - m) / m). 0.5 gives 0; 0.05 gives 2.94 (gates start on)."""
    if not 0.0 < init_mean < 1.0:
        raise ValueError(f"init_mean must be in (0, 1), got {init_mean!r}")
    return math.log((1.0 - init_mean) / init_mean)


class _Normal(mx.init.Initializer):
    """N(mean, std), for any parameter name (MXNet's Normal has mean 0 only)."""

    def __init__(self, mean: float, std: float):
        super().__init__(mean=mean, std=std)
        self.mean, self.std = mean, std

    def _init_weight(self, name, arr):
        arr[:] = mx.nd.random.normal(self.mean, self.std, shape=arr.shape, dtype=arr.dtype)


class HardConcreteMask(HybridBlock):
    """Gate the last axis: (..., n) -> (..., n) * z, one z per component (shared by the
    batch). Parameter ``log_alpha`` (n,) ~ N(log((1 - init_mean) / init_mean), init_std)."""

    def __init__(self, n: int, init_mean: float = 0.5, init_std: float = 0.01,
                 beta: float = BETA, l: float = LIMIT_L, r: float = LIMIT_R, eps: float = EPS,
                 **kwargs):
        super().__init__(**kwargs)
        if not (l < 0.0 and r > 1.0 and beta > 0.0 and 0.0 < eps < 0.5):
            raise ValueError(f"hard-concrete needs l < 0 < 1 < r, beta > 0 and eps in "
                             f"(0, 0.5); got l={l}, r={r}, beta={beta}, eps={eps}")
        self.n, self.beta, self.l, self.r, self.eps = n, beta, l, r, eps
        with self.name_scope():
            self.log_alpha = self.params.get(
                "log_alpha", shape=(n,), init=_Normal(init_log_alpha(init_mean), init_std))

    def gate(self, F, log_alpha):
        """z (n,): a sample in training mode, the deterministic gate otherwise."""
        if autograd.is_training():
            u = F.random.uniform_like(log_alpha, low=self.eps, high=1.0 - self.eps)
            s = F.sigmoid((F.log(u) - F.log(1.0 - u) + log_alpha) / self.beta)
        else:
            s = F.sigmoid(log_alpha)
        return F.clip(s * (self.r - self.l) + self.l, 0.0, 1.0)

    def hybrid_forward(self, F, x, log_alpha):
        return F.broadcast_mul(x, self.gate(F, log_alpha))

    def expected_l0(self) -> mx.nd.NDArray:
        """E ||z||_0 = sum_i P(z_i != 0), a (1,) array differentiable in ``log_alpha``."""
        shift = self.beta * math.log(-self.l / self.r)
        return mx.nd.sum(mx.nd.sigmoid(self.log_alpha.data() - shift))

    def eval_gate(self):
        """The deterministic gate as numpy (n,), what ``compact`` folds into the factors."""
        with autograd.predict_mode():
            return self.gate(mx.nd, self.log_alpha.data()).asnumpy()

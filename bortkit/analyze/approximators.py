"""Approximators of a sub-layer and the degree of non-linearity (Zhao et al., IJCNN 2021).

The non-linearity of a part is ``1 - cos(y, f_linear(x))`` averaged over the real (not
padding) tokens of held-out data, where f_linear is a linear map from the part's input tap
x to its output tap y. An MLP approximator shows how much of the gap a small non-linear
map closes. Two kinds of each:

- closed form: :class:`LinearApproximator` (least squares, one pass) and
  :class:`MLPApproximator` (the least-squares map plus a ReLU correction trained on 1 - cos);
- the reference's: :class:`CosineApproximator` (``Dense`` or ``Dense + ReLU``, truncated
  normal 0.02 initialisation), trained from scratch by Adam on 1 - cos (lr 1e-3, 3 epochs of
  64-sequence batches), one step per training batch (:class:`CosineFit`).

Least squares minimises the squared error, not 1 - cos, so it can overstate the
non-linearity; the reference's Adam fit minimises 1 - cos but may stop short of its optimum
in 3 epochs. The table reports both.

Inputs here are token rows (N, U) already restricted to real tokens (:func:`real_tokens`).
"""
from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.gluon import nn


def real_tokens(tap: mx.nd.NDArray, attention_mask: np.ndarray) -> np.ndarray:
    """A (T, B, U) tap -> (N, U) float32 rows of the N real tokens (mask 1), batch-major."""
    rows = np.transpose(tap.asnumpy(), (1, 0, 2))                   # (B, T, U)
    return rows[np.asarray(attention_mask) > 0]


def one_minus_cosine(y: np.ndarray, y_hat: np.ndarray) -> np.ndarray:
    """(N, U), (N, U) -> (N,) ``1 - cos`` per row, in float64."""
    y, y_hat = np.asarray(y, np.float64), np.asarray(y_hat, np.float64)
    dots = np.einsum("nu,nu->n", y, y_hat)
    norms = np.linalg.norm(y, axis=1) * np.linalg.norm(y_hat, axis=1)
    return 1.0 - dots / np.maximum(norms, 1e-12)


def nonlinearity(y: np.ndarray, y_hat: np.ndarray) -> float:
    """Mean ``1 - cos(y, y_hat)`` over token rows."""
    return float(one_minus_cosine(y, y_hat).mean())


class LinearApproximator:
    """y ≈ x W + b, fitted in closed form by least squares.

    Hand-written instead of the original's Adam on a cosine loss (3 epochs, lr 1e-3): the
    least-squares map is exact, deterministic and needs one streaming pass (``update`` adds
    to the normal equations in float64, so any number of tokens fits in (U+1)² memory) and no
    hyperparameters. It minimises the squared error, not 1 - cos; the measure is taken on
    held-out tokens either way.
    """

    def __init__(self, in_units: int, out_units: int):
        self.gram = np.zeros((in_units + 1, in_units + 1))       # [x 1]^T [x 1]
        self.cross = np.zeros((in_units + 1, out_units))         # [x 1]^T y
        self.weight = self.bias = None
        self.tokens = 0

    def update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add token rows x (N, in), y (N, out)."""
        xa = np.hstack([np.asarray(x, np.float64), np.ones((len(x), 1))])
        self.gram += xa.T @ xa
        self.cross += xa.T @ np.asarray(y, np.float64)
        self.tokens += len(x)

    def solve(self) -> "LinearApproximator":
        # lstsq on the normal equations: the minimum-norm solution when some directions of
        # x never vary (e.g. LayerNorm outputs with a constant coordinate).
        solution = np.linalg.lstsq(self.gram, self.cross, rcond=None)[0]
        self.weight = solution[:-1].astype(np.float32)            # (in, out)
        self.bias = solution[-1].astype(np.float32)               # (out,)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, np.float32) @ self.weight + self.bias

    def as_block(self) -> nn.Dense:
        """The fitted map as a Gluon ``Dense`` (..., in) -> (..., out), to train further
        (fine-tuning after a replacement)."""
        block = nn.Dense(self.weight.shape[1], flatten=False, in_units=self.weight.shape[0])
        block.initialize()
        block.weight.set_data(mx.nd.array(self.weight.T))
        block.bias.set_data(mx.nd.array(self.bias))
        return block

    def __call__(self, x: mx.nd.NDArray) -> mx.nd.NDArray:
        """(..., in) NDArray -> (..., out), for :class:`~bortkit.analyze.taps.Edits`."""
        w = mx.nd.array(self.weight, ctx=x.context)
        b = mx.nd.array(self.bias, ctx=x.context)
        return mx.nd.broadcast_add(mx.nd.dot(x, w), b)


class MLPApproximator(nn.HybridBlock):
    """x W + b + Dense(ReLU(Dense(x))): a linear map plus a one-hidden-layer ReLU correction,
    (..., U) -> (..., U).

    The original's non-linear approximator is Dense + ReLU alone, whose output cannot be
    negative although hidden states are; and trained from scratch for a few epochs it can
    end up worse than the linear fit. Here the linear part starts at the least-squares
    solution and the correction at zero, so training starts from the linear approximator
    and the MLP measures what a non-linear map adds to it.
    """

    def __init__(self, units: int, hidden_units: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.linear = nn.Dense(units, flatten=False, in_units=units)
            self.hidden = nn.Dense(hidden_units, activation="relu", flatten=False,
                                   in_units=units)
            self.dropout = nn.Dropout(dropout)
            self.out = nn.Dense(units, flatten=False, in_units=hidden_units,
                                weight_initializer="zeros")

    def hybrid_forward(self, F, x):
        return self.linear(x) + self.out(self.dropout(self.hidden(x)))

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        return np.concatenate([self(mx.nd.array(x[i:i + batch_size])).asnumpy()
                               for i in range(0, len(x), batch_size)])


class CosineApproximator(nn.HybridBlock):
    """The reference's approximator (``non-linearity/approximator.py``): ``Dense(in -> out)``
    (``relu=False``, linear) or ``Dense(in -> out) + ReLU`` (+ dropout), weights ~ truncated
    normal (std 0.02), bias 0; (..., in) -> (..., out)."""

    def __init__(self, in_units: int, out_units: int, relu: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense = nn.Dense(out_units, activation="relu" if relu else None,
                                  flatten=False, in_units=in_units,
                                  weight_initializer=mx.init.Normal(0.02))
            self.dropout = nn.Dropout(dropout)

    def hybrid_forward(self, F, x):
        return self.dropout(self.dense(x))

    def initialize_truncated(self, seed: int) -> None:
        """Weights from N(0, 0.02) truncated at 2 standard deviations (TensorFlow's
        ``truncated_normal_initializer``), bias 0."""
        rng = np.random.RandomState(seed)
        shape = self.dense.weight.shape
        w = rng.normal(0.0, 0.02, shape)
        while np.any(np.abs(w) > 0.04):
            bad = np.abs(w) > 0.04
            w[bad] = rng.normal(0.0, 0.02, int(bad.sum()))
        self.dense.weight.set_data(mx.nd.array(w))
        self.dense.bias.set_data(mx.nd.zeros(self.dense.bias.shape))

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        return np.concatenate([self(mx.nd.array(x[i:i + batch_size])).asnumpy()
                               for i in range(0, len(x), batch_size)])


def cosine_loss(pred, y):
    """1 - mean over token rows of cos(pred, y): (N, U), (N, U) -> scalar."""
    cos = mx.nd.sum(pred * y, axis=1) / mx.nd.maximum(
        mx.nd.norm(pred, axis=1) * mx.nd.norm(y, axis=1), 1e-12)
    return 1.0 - cos.mean()


class CosineFit:
    """A :class:`CosineApproximator` trained by Adam on 1 - cos, one step per call of
    :meth:`step` with that batch's real-token rows (the reference: lr 1e-3; it feeds 64
    sequences a step for 3 epochs)."""

    def __init__(self, in_units: int, out_units: int, relu: bool = False,
                 learning_rate: float = 1e-3, dropout: float = 0.0, seed: int = 0):
        self.model = CosineApproximator(in_units, out_units, relu, dropout)
        self.model.initialize()
        self.model.initialize_truncated(seed)
        self.model.hybridize()
        self.trainer = gluon.Trainer(self.model.collect_params(), "adam",
                                     {"learning_rate": learning_rate})
        self.steps = 0

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        xb, yb = mx.nd.array(x), mx.nd.array(y)
        with autograd.record():
            loss = cosine_loss(self.model(xb), yb)
        loss.backward()
        self.trainer.step(1)
        self.steps += 1
        return float(loss.asscalar())


def fit_mlp(x: np.ndarray, y: np.ndarray, hidden_units: int, start: LinearApproximator,
            epochs: int = 10, learning_rate: float = 1e-3, batch_size: int = 256,
            dropout: float = 0.0, seed: int = 0) -> MLPApproximator:
    """Train an :class:`MLPApproximator` from the linear fit ``start`` on token rows with the
    loss ``1 - cos`` (the original's ``--loss cosine``) and Adam. A plain Gluon loop kept in
    this one function so that it can move onto the shared training runtime."""
    mx.random.seed(seed)
    rng = np.random.RandomState(seed)
    model = MLPApproximator(x.shape[1], hidden_units, dropout)
    model.initialize(mx.init.Xavier())
    model.linear.weight.set_data(mx.nd.array(start.weight.T))
    model.linear.bias.set_data(mx.nd.array(start.bias))
    model.hybridize()
    trainer = gluon.Trainer(model.collect_params(), "adam", {"learning_rate": learning_rate})
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for begin in range(0, len(x), batch_size):
            index = order[begin:begin + batch_size]
            xb, yb = mx.nd.array(x[index]), mx.nd.array(y[index])
            with autograd.record():
                loss = cosine_loss(model(xb), yb)
            loss.backward()
            trainer.step(1)
    return model

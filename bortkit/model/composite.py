"""Composite attention (Chang, Xu, Xu and Tu, "Convolutions and Self-Attention", ACL 2021).

The score of query i for key j is a sum of terms, each switched on by name in
``config.attention`` (``"qk_convfixed_convq_convk"`` is the full composite form)::

    s_ij = [qk]        q_i . k_j / sqrt(d)
         + [convfixed] beta_h[rel(i, j)]                (H, R) per-head relative bias
         + [convq]     q_i . wq[:, rel(i, j)] / sqrt(d)  (d, R) shared by the heads
         + [convk]     k_j . wk[:, rel(j, i)] / sqrt(d)  (d, R), note the reversed offset

    rel(i, j) = clip(j - i, -k, k) + k,   R = 2k + 1,   k = relative_positions_each_dir

The fifth term, ``convolution`` (the original's "fixed depthwise convolution"), adds to each
head's output a depthwise convolution of the values over the 2k + 1 tokens around i::

    out_i = sum_j softmax(s)_ij v_j + [convolution] sum_r W[:, r] * v_{i + r - k} + b
            W (U, R) one kernel per channel, b (U,); padded values are zeroed first

(the original's per-head scale of this term is frozen at 1 unless ``convolution_scaled``
is given; only the unscaled form is built here).

Without ``qk`` each term is a lightweight convolution (fixed, or dynamic on the query or the
key) normalised by the softmax. ``rel`` is built for the length of each batch, so a model
runs at any length (the original was tied to ``max_position_embeddings``), and every term
works with or without ``qk`` (the original crashed on an undefined attribute).

Queries, keys and values can come from convolutions over 2K+1 tokens instead of a Dense
(:class:`ConvProjection`).

Shapes: B batch, T length, U units, H heads, d = U / H, R = 2k + 1, N = B * H.
"""
from __future__ import annotations

import math

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..config import ATTENTIONS, ModelConfig
from .. import ops
from .blocks import ATTENTION_BLOCKS, MASK_FILL, MultiHeadSelfAttention, activation


def relative_index(F, like, k: int):
    """(T, T) bucket of every (query i, key j) pair, ``clip(j - i, -k, k) + k``, for the
    length T of ``like``'s first axis."""
    position = F.contrib.arange_like(like, axis=0)                     # (T,)
    offset = F.broadcast_sub(F.expand_dims(position, axis=0),
                             F.expand_dims(position, axis=1))           # (T, T): j - i
    return F.clip(offset, -k, k) + k


def gather_relative(F, table, onehot):
    """``table`` (N, T, R) and ``onehot`` (T, R, T) of ``rel`` -> (N, T, T) with
    ``out[n, i, j] = table[n, i, rel[i, j]]``: one batched matrix product, no gathers."""
    rows = F.transpose(table, axes=(1, 0, 2))                           # (T, N, R)
    return F.transpose(F.batch_dot(rows, onehot), axes=(1, 0, 2))       # (N, T, T)


class ConvProjection(HybridBlock):
    """A convolutional query, key or value projection: (B, T, U) -> (B, T, U).

    ``kind`` is one of :data:`bortkit.config.PROJECTIONS` other than ``"linear"``:
    ``convolution``: Conv1D(U -> U, width 2K+1, padding K, ``groups``);
    ``_depth``: depthwise Conv1D(U -> U, groups U) -> GELU (unless ``_no_act``) -> Dense;
    ``_mixed``: the convolution gives the first U/2 channels (the first H/2 heads) and a
    Dense the rest, concatenated [conv | linear].
    Padded positions must be zero on the way in (the attention block zeroes them).
    """

    def __init__(self, units: int, kind: str, kernel_each_dir: int, groups: int, **kwargs):
        super().__init__(**kwargs)
        self._depthwise = "depth" in kind
        self._mixed = "mixed" in kind
        self._act = "no_act" not in kind
        conv_units = units // 2 if self._mixed else units
        width = 2 * kernel_each_dir + 1
        with self.name_scope():
            if self._depthwise:
                self.depthwise = nn.Conv1D(units, width, padding=kernel_each_dir,
                                           groups=units, in_channels=units, prefix="depthwise_")
                self.pointwise = nn.Dense(conv_units, flatten=False, in_units=units,
                                          prefix="pointwise_")
            else:
                self.conv = nn.Conv1D(conv_units, width, padding=kernel_each_dir,
                                      groups=groups, in_channels=units, prefix="conv_")
            if self._mixed:
                self.linear = nn.Dense(units - conv_units, flatten=False, in_units=units,
                                       prefix="linear_")

    def hybrid_forward(self, F, x):
        channels = F.transpose(x, axes=(0, 2, 1))                       # (B, U, T): NCW
        if self._depthwise:
            y = self.depthwise(channels)                                # (B, U, T)
            if self._act:
                y = activation(F, y, "gelu")
            y = self.pointwise(F.transpose(y, axes=(0, 2, 1)))          # (B, T, U or U/2)
        else:
            y = F.transpose(self.conv(channels), axes=(0, 2, 1))        # (B, T, U or U/2)
        if self._mixed:
            y = F.concat(y, self.linear(x), dim=2)                      # (B, T, U)
        return y


def _projection(config: ModelConfig, kind: str, prefix: str) -> HybridBlock:
    u = config.units
    if kind == "linear":
        return nn.Dense(u, flatten=False, in_units=u, prefix=prefix)
    return ConvProjection(u, kind, config.projection_kernel_each_dir, config.projection_groups,
                          prefix=prefix)


class CompositeSelfAttention(MultiHeadSelfAttention):
    """Self-attention whose scores sum the terms named by ``config.attention`` (module doc).

    Same interface as :class:`MultiHeadSelfAttention`: (T, B, U) hidden states and the
    (B, T) mask -> (T, B, U) output and (B, H, T, T) probabilities. With linear projections
    it keeps the base block's parameters and fused QKV product, so ``qk`` alone computes
    what ``dot_product`` does.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        # Not the base __init__: the projections here may be convolutions.
        HybridBlock.__init__(self, **kwargs)
        self._heads = h = config.num_heads
        self._units = u = config.units
        self._terms = config.attention_terms
        self._k = k = config.relative_positions_each_dir
        self._linear = config.qk_projection == config.value_projection == "linear"
        r, d = 2 * k + 1, config.head_units
        with self.name_scope():
            self.query = _projection(config, config.qk_projection, "query_")
            self.key = _projection(config, config.qk_projection, "key_")
            self.value = _projection(config, config.value_projection, "value_")
            self.output = nn.Dense(u, flatten=False, in_units=u, prefix="output_")
            self.dropout = nn.Dropout(config.attention_dropout)
            if "convfixed" in self._terms:   # T5/Raffel-style bias, one per head and bucket
                self.convfixed = self.params.get("convfixed", shape=(h, r), init=mx.init.Zero())
            # Shaw et al.'s relative embeddings; PyTorch's kaiming_uniform(a=sqrt(5)) on a
            # (d, R) tensor is U(-1/sqrt(R), 1/sqrt(R)).
            if "convq" in self._terms:
                self.convq = self.params.get("convq", shape=(d, r),
                                             init=mx.init.Uniform(1 / math.sqrt(r)))
            if "convk" in self._terms:
                self.convk = self.params.get("convk", shape=(d, r),
                                             init=mx.init.Uniform(1 / math.sqrt(r)))
            if "convolution" in self._terms:   # depthwise: one (R,) kernel per channel
                self.convolution = nn.Conv1D(u, r, padding=k, groups=u, in_channels=u,
                                             prefix="convolution_")

    def projections(self, F, x, attention_mask=None):
        """(T, B, U) -> (T, B, 3U) laid out (T, B, H, 3, d), as the base block's."""
        if self._linear:
            return super().projections(F, x)
        h = self._heads
        keep = F.expand_dims(F.transpose(attention_mask), axis=2)        # (T, B, 1)
        x = F.transpose(F.broadcast_mul(x, keep), axes=(1, 0, 2))       # (B, T, U), pads 0
        parts = [F.transpose(p(x), axes=(1, 0, 2)).reshape((0, 0, h, 1, -1))  # (T, B, H, 1, d)
                 for p in (self.query, self.key, self.value)]
        return F.concat(*parts, dim=3).reshape((0, 0, -1))              # (T, B, 3U)

    def _per_head(self, F, qkv, which: int):
        """Queries (0) or keys (1) of ``qkv`` as (N, T, d)."""
        part = F.slice_axis(qkv.reshape((0, 0, self._heads, 3, -1)), axis=3,
                            begin=which, end=which + 1)                 # (T, B, H, 1, d)
        part = F.transpose(part.reshape((0, 0, 0, -1)), axes=(1, 2, 0, 3))  # (B, H, T, d)
        return part.reshape((-3, 0, 0))                                 # (N, T, d)

    def composite_scores(self, F, qkv, attention_mask, convfixed=None, convq=None, convk=None):
        """Unnormalised scores (B, H, T, T): the sum of the configured terms."""
        h, k = self._heads, self._k
        scale = 1.0 / math.sqrt(self._units // h)
        if "qk" in self._terms:   # the fused kernel scales the queries by 1/sqrt(d)
            qk = F.contrib.interleaved_matmul_selfatt_qk(qkv, heads=h)  # (N, T, T)
            scores = qk.reshape((-4, -1, h, -2))                        # (B, H, T, T)
            if self._terms == ("qk",):
                return scores
        elif not set(self._terms) & {"convfixed", "convq", "convk"}:   # no score term:
            qk = F.contrib.interleaved_matmul_selfatt_qk(qkv, heads=h)  # uniform weights
            return F.zeros_like(qk).reshape((-4, -1, h, -2))            # (B, H, T, T)
        else:   # zeros (B, 1, 1, T), broadcast up by the terms below
            scores = F.zeros_like(attention_mask).reshape((0, 1, 1, -1))
        rel = relative_index(F, qkv, k)                                 # (T, T)
        if convfixed is not None:
            bias = F.take(convfixed, rel, axis=1)                       # (H, T, T)
            scores = F.broadcast_add(scores, F.expand_dims(bias, axis=0))
        onehot = F.transpose(F.one_hot(rel, depth=2 * k + 1), axes=(0, 2, 1))  # (T, R, T)
        if convq is not None:
            table = F.dot(self._per_head(F, qkv, 0), convq) * scale      # (N, T, R)
            term = gather_relative(F, table, onehot)                    # [n, i, j]
            scores = F.broadcast_add(scores, term.reshape((-4, -1, h, -2)))
        if convk is not None:
            table = F.dot(self._per_head(F, qkv, 1), convk) * scale      # (N, T, R): [n, j, r]
            term = gather_relative(F, table, onehot)     # [n, j, i] = k_j . wk[:, rel(j, i)]
            term = F.transpose(term, axes=(0, 2, 1))                    # [n, i, j]
            scores = F.broadcast_add(scores, term.reshape((-4, -1, h, -2)))
        return scores

    def hybrid_forward(self, F, x, attention_mask, convfixed=None, convq=None, convk=None):
        h = self._heads
        qkv = self.projections(F, x, attention_mask)                    # (T, B, 3U)
        scores = self.composite_scores(F, qkv, attention_mask, convfixed, convq, convk)
        probs = F.softmax(ops.mask_scores(F, scores, attention_mask, MASK_FILL), axis=-1)
        context = F.contrib.interleaved_matmul_selfatt_valatt(
            qkv, self.dropout(probs).reshape((-3, -2)), heads=h)        # (T, B, U)
        if "convolution" in self._terms:
            context = context + self.value_convolution(F, qkv, attention_mask)
        return self.output(context), probs                              # (T, B, U), (B, H, T, T)

    def value_convolution(self, F, qkv, attention_mask):
        """The ``convolution`` term: (T, B, 3U) projections, (B, T) mask -> (T, B, U), the
        depthwise convolution of the values (padded positions zeroed) over 2k + 1 tokens."""
        values = F.slice_axis(qkv.reshape((0, 0, self._heads, 3, -1)), axis=3,
                              begin=2, end=3).reshape((0, 0, -1))       # (T, B, U)
        keep = F.expand_dims(F.transpose(attention_mask), axis=2)        # (T, B, 1)
        channels = F.transpose(F.broadcast_mul(values, keep), axes=(1, 2, 0))  # (B, U, T)
        return F.transpose(self.convolution(channels), axes=(2, 0, 1))  # (T, B, U)


ATTENTION_BLOCKS.update({kind: CompositeSelfAttention for kind in ATTENTIONS
                         if kind != "dot_product"})

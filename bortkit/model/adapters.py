"""Per-task adapters (Stickland and Murray, "BERT and PALs", ICML 2019).

A multi-task model shares the BERT encoder between tasks and adds a small task-specific
function TS_t to every layer, in parallel with it (``config.adapter``)::

    a       = LN(h + SA(h))
    h_next  = LN(FFN(a) + a + TS_t(h))

- ``pals``: TS(h) = GELU(V_D . MHA(V_E . h)), V_E (U -> A) and V_D (A -> U) shared by all
  layers (one pair per task), MHA with ``adapter_heads`` heads in A dims, no output Dense;
- ``low_rank``: TS(h) = V_D . GELU(V_E . h), V_E and V_D per layer and task;
- ``houlsby``: no TS; a low-rank adapter added after the attention output (a + ad(a)) and
  a second one, on the attention-block output, added to the FFN output;
- ``lhuc``: no TS; the layer output scaled by 2 sigmoid(s_t), s_t (U,) per layer, init 0;
- ``top``: no per-layer change; the last layer's output is replaced by V_D(attention^n(V_E h)),
  ``top_attention_layers`` attention blocks (with output Dense, residual and LayerNorm) in A;
- ``top_layer`` (the original's ``bert_lay_top``): no per-layer change; the last layer's
  output h is replaced by a whole BERT layer of the task's own, in U:
  a = LN(h + Dense(MHA(h))), out = LN(a + FFN(a)), ``num_heads`` heads, ``ffn_units`` wide.

Every per-task parameter is stored stacked, (num_tasks, ...), and the task's slice is taken
in the graph from a (1,) task-id input: one cached graph serves every task, and training
code passes the task id of each batch (see :class:`~bortkit.model.multitask.MultiTaskClassifier`).

Shapes: T length, B batch, U units, A ``adapter_units``, n tasks, (1,) task id.
"""
from __future__ import annotations

import mxnet as mx
from mxnet.gluon import HybridBlock, nn

from ..config import ModelConfig
from .. import ops
from .blocks import MASK_FILL, EncoderLayer, activation


class TaskDense(HybridBlock):
    """One Dense layer per task: (..., in) and the task id (1,) -> (..., out).
    Weights (n, out, in) and biases (n, out)."""

    def __init__(self, num_tasks: int, in_units: int, out_units: int, **kwargs):
        super().__init__(**kwargs)
        self._out = out_units
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(num_tasks, out_units, in_units))
            self.bias = self.params.get("bias", shape=(num_tasks, out_units),
                                        init=mx.init.Zero())

    def hybrid_forward(self, F, x, task, weight, bias):
        w = F.take(weight, task).reshape((-3, -2))                      # (out, in)
        b = F.take(bias, task).reshape((-1,))                           # (out,)
        return F.FullyConnected(x, w, b, num_hidden=self._out, flatten=False)


class TaskLayerNorm(HybridBlock):
    """One LayerNorm per task over the last axis: gamma and beta (n, A)."""

    def __init__(self, num_tasks: int, units: int, epsilon: float, **kwargs):
        super().__init__(**kwargs)
        self._eps = epsilon
        with self.name_scope():
            self.gamma = self.params.get("gamma", shape=(num_tasks, units), init=mx.init.One())
            self.beta = self.params.get("beta", shape=(num_tasks, units), init=mx.init.Zero())

    def hybrid_forward(self, F, x, task, gamma, beta):
        return ops.layer_norm(F, x, F.take(gamma, task).reshape((-1,)),
                                  F.take(beta, task).reshape((-1,)), self._eps)


class LHUC(HybridBlock):
    """Learning hidden unit contributions: (T, B, U) -> x * 2 sigmoid(s_t), s (n, U) init 0."""

    def __init__(self, num_tasks: int, units: int, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.scale = self.params.get("scale", shape=(num_tasks, units), init=mx.init.Zero())

    def hybrid_forward(self, F, x, task, scale):
        gate = 2.0 * F.sigmoid(F.take(scale, task)).reshape((1, 1, -1))  # (1, 1, U)
        return F.broadcast_mul(x, gate)


class TaskSelfAttention(HybridBlock):
    """Multi-head self-attention with per-task Q, K, V in width A and no output projection:
    (T, B, A), mask (B, T), task (1,) -> context (T, B, A)."""

    def __init__(self, num_tasks: int, units: int, num_heads: int, dropout: float, **kwargs):
        super().__init__(**kwargs)
        self._heads = num_heads
        with self.name_scope():
            self.query = TaskDense(num_tasks, units, units, prefix="query_")
            self.key = TaskDense(num_tasks, units, units, prefix="key_")
            self.value = TaskDense(num_tasks, units, units, prefix="value_")
            self.dropout = nn.Dropout(dropout)

    def hybrid_forward(self, F, x, attention_mask, task):
        h = self._heads
        parts = [p(x, task).reshape((0, 0, h, 1, -1))                  # (T, B, H, 1, A/H)
                 for p in (self.query, self.key, self.value)]
        qkv = F.concat(*parts, dim=3).reshape((0, 0, -1))               # (T, B, 3A) fused layout
        scores = F.contrib.interleaved_matmul_selfatt_qk(qkv, heads=h)  # (B*H, T, T), 1/sqrt(d)
        scores = ops.mask_scores(F, scores.reshape((-4, -1, h, -2)), attention_mask,
                                     MASK_FILL)                          # (B, H, T, T)
        probs = self.dropout(F.softmax(scores, axis=-1))
        return F.contrib.interleaved_matmul_selfatt_valatt(
            qkv, probs.reshape((-3, -2)), heads=h)                      # (T, B, A)


class TaskProjections(HybridBlock):
    """PALs' encoder V_E (U -> A) and decoder V_D (A -> U), one pair per task, shared by
    every layer: the layers' PALs are built on this block's parameters."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        n, u, a = config.num_tasks, config.units, config.adapter_units
        with self.name_scope():
            self.down = TaskDense(n, u, a, prefix="down_")
            self.up = TaskDense(n, a, u, prefix="up_")

    def hybrid_forward(self, F, x, task):
        return self.up(self.down(x, task), task)


class PAL(HybridBlock):
    """Projected attention layer: (T, B, U) -> GELU(V_D . MHA(V_E . h)) (T, B, U).
    ``shared`` is the network's :class:`TaskProjections` parameters (V_E and V_D)."""

    def __init__(self, config: ModelConfig, shared, **kwargs):
        super().__init__(**kwargs)
        n, u, a = config.num_tasks, config.units, config.adapter_units
        with self.name_scope():
            # Built on the shared ParameterDict: the same V_E/V_D parameters in every layer.
            self.projections = TaskProjections(config, params=shared)
            self.attention = TaskSelfAttention(n, a, config.adapter_heads,
                                               config.attention_dropout, prefix="attention_")

    def hybrid_forward(self, F, x, attention_mask, task):
        down = self.projections.down(x, task)                           # (T, B, A)
        context = self.attention(down, attention_mask, task)            # (T, B, A)
        return activation(F, self.projections.up(context, task), "gelu")  # (T, B, U)


class LowRankAdapter(HybridBlock):
    """(T, B, U) -> V_D . GELU(V_E . h): per-task Dense(U -> A), GELU, Dense(A -> U)."""

    def __init__(self, num_tasks: int, units: int, adapter_units: int, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.down = TaskDense(num_tasks, units, adapter_units, prefix="down_")
            self.up = TaskDense(num_tasks, adapter_units, units, prefix="up_")

    def hybrid_forward(self, F, x, task):
        return self.up(activation(F, self.down(x, task), "gelu"), task)


class AdapterEncoderLayer(EncoderLayer):
    """A post-LN :class:`EncoderLayer` with per-task adapters (module doc):
    (T, B, U), mask (B, T), task (1,) -> (T, B, U) and (B, H, T, T) probabilities.
    Its attention, FFN and LayerNorms are the plain layer's, with the same names."""

    def __init__(self, config: ModelConfig, shared=None, **kwargs):
        super().__init__(config, **kwargs)
        self._kind = kind = config.adapter
        n, u, a = config.num_tasks, config.units, config.adapter_units
        with self.name_scope():
            if kind == "pals":
                self.pal = PAL(config, shared, prefix="pal_")
            elif kind == "low_rank":
                self.low_rank = LowRankAdapter(n, u, a, prefix="low_rank_")
            elif kind == "houlsby":
                self.attention_adapter = LowRankAdapter(n, u, a, prefix="attention_adapter_")
                self.ffn_adapter = LowRankAdapter(n, u, a, prefix="ffn_adapter_")
            elif kind == "lhuc":
                self.lhuc = LHUC(n, u, prefix="lhuc_")

    def hybrid_forward(self, F, x, attention_mask, task):
        attended, probs = self.attention(x, attention_mask)
        attended = self.dropout(attended)                               # (T, B, U)
        if self._kind == "houlsby":
            attended = attended + self.attention_adapter(attended, task)
        a = self.attention_norm(x + attended)                           # (T, B, U)
        out = self.dropout(self.ffn(a))                                 # (T, B, U)
        if self._kind == "houlsby":   # as the original: on the attention-block output
            out = out + self.ffn_adapter(a, task)
        elif self._kind == "pals":
            out = out + self.pal(x, attention_mask, task)
        elif self._kind == "low_rank":
            out = out + self.low_rank(x, task)
        y = self.ffn_norm(a + out)
        if self._kind == "lhuc":
            y = self.lhuc(y, task)
        return y, probs


class TopAttentionBlock(HybridBlock):
    """BERT's attention sub-layer per task, in width ``units`` (default A, with
    ``adapter_heads``): LN(x + dropout(Dense(MHA(x))))."""

    def __init__(self, config: ModelConfig, units: int = None, heads: int = None, **kwargs):
        super().__init__(**kwargs)
        n, a = config.num_tasks, units or config.adapter_units
        with self.name_scope():
            self.attention = TaskSelfAttention(n, a, heads or config.adapter_heads,
                                               config.attention_dropout, prefix="attention_")
            self.output = TaskDense(n, a, a, prefix="output_")
            self.norm = TaskLayerNorm(n, a, config.layer_norm_eps, prefix="norm_")
            self.dropout = nn.Dropout(config.dropout)

    def hybrid_forward(self, F, x, attention_mask, task):
        context = self.attention(x, attention_mask, task)               # (T, B, A)
        return self.norm(x + self.dropout(self.output(context, task)), task)


class TopProjectedAttention(HybridBlock):
    """Top projected attention: (T, B, U) last-layer output -> V_D(blocks(V_E h)) (T, B, U),
    which replaces it (the pooler and heads see this)."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        n, u, a = config.num_tasks, config.units, config.adapter_units
        with self.name_scope():
            self.down = TaskDense(n, u, a, prefix="down_")
            self.blocks = nn.HybridSequential(prefix="blocks_")
            with self.blocks.name_scope():
                for i in range(config.top_attention_layers):
                    self.blocks.add(TopAttentionBlock(config, prefix=f"block{i}_"))
            self.up = TaskDense(n, a, u, prefix="up_")

    def hybrid_forward(self, F, x, attention_mask, task):
        x = self.down(x, task)                                          # (T, B, A)
        for block in self.blocks:
            x = block(x, attention_mask, task)
        return self.up(x, task)                                         # (T, B, U)


class TaskFeedForwardBlock(HybridBlock):
    """BERT's FFN sub-layer per task: (T, B, U) -> LN(x + dropout(W2 act(W1 x))), W1 (U -> F),
    W2 (F -> U), ``config.activation``."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        n, u, f = config.num_tasks, config.units, config.ffn_units
        self._activation = config.activation
        with self.name_scope():
            self.ffn_1 = TaskDense(n, u, f, prefix="ffn_1_")
            self.ffn_2 = TaskDense(n, f, u, prefix="ffn_2_")
            self.norm = TaskLayerNorm(n, u, config.layer_norm_eps, prefix="norm_")
            self.dropout = nn.Dropout(config.dropout)

    def hybrid_forward(self, F, x, task):
        inner = activation(F, self.ffn_1(x, task), self._activation)     # (T, B, F)
        return self.norm(x + self.dropout(self.ffn_2(inner, task)), task)


class TopLayer(HybridBlock):
    """PALs' ``bert_lay_top``: a whole post-LN BERT layer per task over the shared encoder's
    last output, (T, B, U), mask (B, T), task (1,) -> (T, B, U), which replaces it (the
    pooler and heads see this). New weights, as the original's."""

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.attention = TopAttentionBlock(config, config.units, config.num_heads,
                                               prefix="attention_")
            self.ffn = TaskFeedForwardBlock(config, prefix="ffn_")

    def hybrid_forward(self, F, x, attention_mask, task):
        return self.ffn(self.attention(x, attention_mask, task), task)

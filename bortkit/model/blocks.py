"""Gluon blocks of the BERT family, one block per idea.

Shapes: B = batch, T = sequence length, U = ``units`` (model width), E = ``embed_size``,
F = ``ffn_units``, H = ``num_heads``, d = U / H, V = ``vocab_size``.

Inside the encoder activations are laid out time-major, (T, B, U), because MXNet's fused
self-attention kernels (``interleaved_matmul_selfatt_*``, oneDNN-accelerated on CPU) want
that layout; the model transposes once on the way in and once on the way out.

Variants swap blocks through :data:`ATTENTION_BLOCKS` (keyed by ``config.attention``) and
subclassing, never by copying the encoder.
"""
from __future__ import annotations

import math

from mxnet import symbol
from mxnet.gluon import HybridBlock, nn

from ..config import ModelConfig
from .. import ops

MASK_FILL = -1e4  # added to attention scores of padded keys; exp() of it is 0 in float32


def activation(F, x, kind: str):
    """The feed-forward non-linearity named by ``config.activation``."""
    if kind == "gelu":  # exact: x * Phi(x), as BERT and Bort
        return F.LeakyReLU(x, act_type="gelu")
    if kind == "gelu_tanh":
        inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x ** 3))
        return 0.5 * x * (1.0 + F.tanh(inner))
    if kind == "identity":
        return x
    return F.Activation(x, act_type=kind)  # relu, tanh, sigmoid


class Dropout(HybridBlock):
    """Dropout at ``rate`` in training, the identity outside it: Gluon's ``nn.Dropout``,
    computed by the fused operator of :mod:`bortkit.ops` when it is available."""

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        self._rate = rate

    def hybrid_forward(self, F, x):
        return ops.dropout(F, x, self._rate)


class LayerNorm(nn.LayerNorm):
    """Gluon's LayerNorm over the last axis (same parameters, ``gamma`` and ``beta``),
    computed by the fused operator of :mod:`bortkit.ops` when it is available."""

    def hybrid_forward(self, F, data, gamma, beta):
        return ops.layer_norm(F, data, gamma, beta, self._epsilon)


class LowRankDense(HybridBlock):
    """A Dense(in -> out) matrix stored as two factors of rank r (FLOP-compacted models):
    (..., in) -> ``down`` (r, in), no bias -> (..., r) -> ``up`` (out, r) + bias -> (..., out).
    Fewer parameters and multiply-adds than one Dense exactly when r (in + out) < in * out.
    """

    def __init__(self, units: int, in_units: int, rank: int, **kwargs):
        super().__init__(**kwargs)
        self.rank = rank
        with self.name_scope():
            self.down = nn.Dense(rank, flatten=False, in_units=in_units, use_bias=False,
                                 prefix="down_")
            self.up = nn.Dense(units, flatten=False, in_units=rank, prefix="up_")

    def hybrid_forward(self, F, x):
        return self.up(self.down(x))


def dense(units: int, in_units: int, rank=None, prefix: str = None) -> HybridBlock:
    """``nn.Dense(in_units -> units)``, or a :class:`LowRankDense` when ``rank`` is given
    (the config's ``low_rank`` entry for this matrix)."""
    if rank is None:
        return nn.Dense(units, flatten=False, in_units=in_units, prefix=prefix)
    return LowRankDense(units, in_units, rank, prefix=prefix)


class Embeddings(HybridBlock):
    """Word + position + token-type embeddings -> LayerNorm -> dropout [-> projection to U].

    (B, T) ids -> (B, T, U). With ``embed_size != units`` the LayerNorm is applied at width
    E and a Dense projects to U (ALBERT/ELECTRA-style factorised embeddings).
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self._config = config
        e = config.embed_size
        with self.name_scope():
            self.word_embed = nn.Embedding(config.vocab_size, e, prefix="word_embed_")
            if config.position_embedding == "learned":
                self.position_embed = nn.Embedding(config.max_length, e, prefix="position_embed_")
            if config.type_vocab_size:
                self.token_type_embed = nn.Embedding(config.type_vocab_size, e,
                                                     prefix="token_type_embed_")
            self.layer_norm = LayerNorm(epsilon=config.layer_norm_eps, in_channels=e)
            self.dropout = Dropout(config.dropout)
            if config.factorized_embeddings:
                self.projection = nn.Dense(config.units, flatten=False, in_units=e)

    def hybrid_forward(self, F, input_ids, token_type_ids):
        x = self.word_embed(input_ids)                                   # (B, T, E)
        if self._config.position_embedding == "learned":
            positions = F.contrib.arange_like(input_ids, axis=1,
                                              start=self._config.position_offset)  # (T,)
            # Looked up per token, (B, T) -> (B, T, E): the gradient of the table is then a
            # scatter-add, much cheaper in MXNet than broadcast_add's reduction over B.
            positions = F.broadcast_like(F.expand_dims(positions, axis=0), input_ids)
            x = x + self.position_embed(positions)
        if self._config.type_vocab_size:
            x = x + self.token_type_embed(token_type_ids)
        x = self.dropout(self.layer_norm(x))
        if self._config.factorized_embeddings:
            x = self.projection(x)                                       # (B, T, U)
        return x


class MultiHeadSelfAttention(HybridBlock):
    """Scaled dot-product self-attention with H heads and an output projection.

    (T, B, U) hidden states and the (B, T) attention mask (1 keep, 0 padding) ->
    (T, B, U) output and (B, H, T, T) attention probabilities. Padded keys get
    :data:`MASK_FILL` added to their scores. ``ranks`` ({"query": r, ...}) stores those
    projections as :class:`LowRankDense` factors.
    """

    def __init__(self, config: ModelConfig, ranks=None, **kwargs):
        super().__init__(**kwargs)
        self._heads = config.num_heads
        self._units = u = config.units
        self._dropout = config.attention_dropout
        ranks = ranks or {}
        with self.name_scope():
            self.query = dense(u, u, ranks.get("query"), prefix="query_")
            self.key = dense(u, u, ranks.get("key"), prefix="key_")
            self.value = dense(u, u, ranks.get("value"), prefix="value_")
            self.output = dense(u, u, ranks.get("output"), prefix="output_")
            self.dropout = nn.Dropout(config.attention_dropout)

    def scores(self, F, qkv):
        """Unnormalised scores (B*H, T, T) from the interleaved projections; variants add
        relative-position or convolution terms here."""
        return F.contrib.interleaved_matmul_selfatt_qk(qkv, heads=self._heads)

    def projections(self, F, x):
        """(T, B, U) -> (T, B, 3U) laid out (T, B, H, 3, d), the fused kernels' layout: the
        query, key and value weights are interleaved per head into one (3U, U) matrix, so
        the three projections are one matrix product (and one in the backward pass)."""
        h, u = self._heads, self._units
        projections = (self.query, self.key, self.value)
        if any(isinstance(p, LowRankDense) for p in projections):  # factored: one at a time
            return F.concat(*[p(x).reshape((0, 0, h, 1, -1)) for p in projections],
                            dim=3).reshape((0, 0, -1))                 # (T, B, H, 3, d)

        def interleaved(name, shape):  # (U, U) or (U,) per projection -> (3U, U) or (3U,)
            params = [getattr(dense, name) for dense in (self.query, self.key, self.value)]
            tensors = [p.var() if F is symbol else p.data(x.context) for p in params]
            return ops.interleave_heads(F, params, tensors, h, shape)

        return F.FullyConnected(x, interleaved("weight", (u,)), interleaved("bias", ()),
                                num_hidden=3 * u, flatten=False)

    def hybrid_forward(self, F, x, attention_mask):
        h = self._heads
        qkv = self.projections(F, x)                                    # (T, B, 3U)
        if type(self).scores is MultiHeadSelfAttention.scores:  # no variant's extra terms
            fused = ops.self_attention(F, qkv, attention_mask, h, self._dropout, MASK_FILL)
            if fused is not None:  # one operator: (T, B, U) context, (B, H, T, T) probs
                context, probs = fused
                return self.output(context), probs
        scores = self.scores(F, qkv).reshape((-4, -1, h, -2))           # (B, H, T, T)
        probs = F.softmax(ops.mask_scores(F, scores, attention_mask, MASK_FILL), axis=-1)
        context = F.contrib.interleaved_matmul_selfatt_valatt(
            qkv, self.dropout(probs).reshape((-3, -2)), heads=h)        # (T, B, U)
        return self.output(context), probs

    def first_query(self, F, x, attention_mask):
        """The output at position 0 alone: (T, B, U) states, (B, T) mask -> (1, B, U).
        Keys and values come from every position, the query and the output projection from
        the first only: what a classifier that reads h[:, 0] needs of the last layer."""
        h, d, u = self._heads, self._units // self._heads, self._units
        first = F.slice_axis(x, axis=0, begin=0, end=1)                  # (1, B, U)
        query = (self.query(first) * (1.0 / math.sqrt(d))).reshape((-1, 1, d))  # (B*H, 1, d)

        def per_head(y):  # (T, B, U) -> (B*H, T, d)
            return F.transpose(y.reshape((0, -1, d)), axes=(1, 0, 2))

        scores = F.batch_dot(query, per_head(self.key(x)), transpose_b=True)  # (B*H, 1, T)
        fill = F.expand_dims(F.expand_dims((1.0 - attention_mask) * MASK_FILL, 1), 1)
        scores = F.broadcast_add(scores.reshape((-4, -1, h, 0, 0)), fill)  # (B, H, 1, T)
        probs = self.dropout(F.softmax(scores, axis=-1)).reshape((-3, 0, 0))  # (B*H, 1, T)
        context = F.batch_dot(probs, per_head(self.value(x)))              # (B*H, 1, d)
        return self.output(context.reshape((1, -1, u)))                   # (1, B, U)


ATTENTION_BLOCKS = {"dot_product": MultiHeadSelfAttention}


class FeedForward(HybridBlock):
    """Position-wise FFN: Dense(U->F) -> activation -> Dense(F->U). (T, B, U) -> (T, B, U).
    ``ranks`` ({"ffn_1": r, ...}) stores those matrices as :class:`LowRankDense` factors."""

    def __init__(self, config: ModelConfig, ranks=None, **kwargs):
        super().__init__(**kwargs)
        self._activation = config.activation
        ranks = ranks or {}
        with self.name_scope():
            self.ffn_1 = dense(config.ffn_units, config.units, ranks.get("ffn_1"),
                               prefix="ffn_1_")
            self.ffn_2 = dense(config.units, config.ffn_units, ranks.get("ffn_2"),
                               prefix="ffn_2_")

    def hybrid_forward(self, F, x):
        return self.ffn_2(activation(F, self.ffn_1(x), self._activation))


class EncoderLayer(HybridBlock):
    """One Transformer layer: attention and FFN sub-blocks, each with a residual and a
    LayerNorm, post-LN (``LN(x + f(x))``, BERT/RoBERTa/Bort) or pre-LN (``x + f(LN(x))``).
    ``ranks`` is the layer's ``config.layer_ranks(i)`` ({"ffn.ffn_1": 96, ...}).
    """

    def __init__(self, config: ModelConfig, ranks=None, **kwargs):
        super().__init__(**kwargs)
        self._pre_norm = config.layer_norm_position == "pre"
        u, eps = config.units, config.layer_norm_eps
        ranks = ranks or {}
        attention_ranks = {k.split(".", 1)[1]: r for k, r in ranks.items()
                           if k.startswith("attention.")}
        with self.name_scope():
            # Only factored layers pass ranks: attention variants need not know about them
            # (the config allows low-rank attention matrices with "dot_product" only).
            self.attention = ATTENTION_BLOCKS[config.attention](
                config, prefix="attention_", **({"ranks": attention_ranks}
                                                if attention_ranks else {}))
            self.attention_norm = LayerNorm(epsilon=eps, in_channels=u,
                                            prefix="attention_norm_")
            self.ffn = FeedForward(config, prefix="ffn_",
                                   ranks={k.split(".", 1)[1]: r for k, r in ranks.items()
                                          if k.startswith("ffn.")})
            self.ffn_norm = LayerNorm(epsilon=eps, in_channels=u, prefix="ffn_norm_")
            self.dropout = Dropout(config.dropout)

    def hybrid_forward(self, F, x, attention_mask):
        if self._pre_norm:
            attended, probs = self.attention(self.attention_norm(x), attention_mask)
            x = x + self.dropout(attended)
            return x + self.dropout(self.ffn(self.ffn_norm(x))), probs
        attended, probs = self.attention(x, attention_mask)
        x = self.attention_norm(x + self.dropout(attended))
        return self.ffn_norm(x + self.dropout(self.ffn(x))), probs

    def first_position(self, F, x, attention_mask):
        """The layer's output at position 0 alone, (T, B, U) -> (1, B, U): the same values
        as ``self(x, mask)[0][:1]`` with the query, both residuals and the FFN computed for
        one position (64 % of the layer's products saved at Bort's shapes)."""
        first = F.slice_axis(x, axis=0, begin=0, end=1)                  # (1, B, U)
        if self._pre_norm:
            first = first + self.dropout(
                self.attention.first_query(F, self.attention_norm(x), attention_mask))
            return first + self.dropout(self.ffn(self.ffn_norm(first)))
        first = self.attention_norm(
            first + self.dropout(self.attention.first_query(F, x, attention_mask)))
        return self.ffn_norm(first + self.dropout(self.ffn(first)))


class Pooler(HybridBlock):
    """tanh(Dense(h[:, 0])): (B, T, U) -> (B, U)."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.dense = nn.Dense(units, in_units=units, activation="tanh", prefix="dense_")

    def hybrid_forward(self, F, sequence):
        first = F.squeeze(F.slice_axis(sequence, axis=1, begin=0, end=1), axis=1)
        return self.dense(first)


class MaskedLMHead(HybridBlock):
    """Dense(U->E) -> GELU -> LayerNorm -> Dense(E->V) whose weight is the word embedding.

    (B, N, U) hidden states at the N masked positions -> (B, N, V) logits.
    """

    def __init__(self, config: ModelConfig, word_embed: nn.Embedding, **kwargs):
        super().__init__(**kwargs)
        self._activation = config.activation
        e = config.embed_size
        with self.name_scope():
            self.transform = nn.Dense(e, flatten=False, in_units=config.units,
                                      prefix="transform_")
            self.layer_norm = LayerNorm(epsilon=config.layer_norm_eps, in_channels=e,
                                        prefix="layer_norm_")
        # Sharing the embedding's ParameterDict ties `decoder.weight` to the word table;
        # `decoder.bias` is a new parameter of this head.
        self.decoder = nn.Dense(config.vocab_size, flatten=False, in_units=e,
                                params=word_embed.collect_params())

    def hybrid_forward(self, F, hidden):
        h = self.layer_norm(activation(F, self.transform(hidden), self._activation))
        return self.decoder(h)


class ClassificationHead(HybridBlock):
    """Sentence-level classifier or regressor. C = 1 regresses.

    ``pooling="cls"``: with a pooler, dropout(pooled) -> Dense(C); without one (Bort),
    h[:, 0] -> dropout -> Dense(U, tanh) -> dropout -> Dense(C), as Bort's fine-tuning head.
    ``pooling="mean"``: the mean of h over the real (unpadded) tokens -> dropout -> Dense(C),
    for encoders trained as mean-pooled sentence encoders (sentence-transformers' MiniLM),
    whose [CLS] vector and pooler were never trained.
    """

    POOLINGS = ("cls", "mean")

    def __init__(self, config: ModelConfig, num_labels: int, pooling: str = "cls", **kwargs):
        super().__init__(**kwargs)
        if pooling not in self.POOLINGS:
            raise ValueError(f"pooling must be one of {self.POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self._own_pooler = pooling == "cls" and not config.use_pooler
        with self.name_scope():
            self.dropout = Dropout(config.dropout)
            if self._own_pooler:
                self.dense = nn.Dense(config.units, in_units=config.units, activation="tanh",
                                      prefix="dense_")
            self.out = nn.Dense(num_labels, in_units=config.units, prefix="out_")

    def hybrid_forward(self, F, sequence, pooled, mask):
        """``sequence`` (B, T, U); ``pooled`` (B, U) (ignored unless pooling is "cls" with a
        pooler); ``mask`` (B, T), 1 at real tokens."""
        if self.pooling == "mean":
            weights = F.expand_dims(mask, axis=2)                          # (B, T, 1)
            total = F.sum(F.broadcast_mul(sequence, weights), axis=1)      # (B, U)
            features = F.broadcast_div(total, F.sum(weights, axis=1))      # (B, U)
        elif self._own_pooler:
            first = F.squeeze(F.slice_axis(sequence, axis=1, begin=0, end=1), axis=1)
            features = self.dense(self.dropout(first))                     # (B, U)
        else:
            features = pooled                                              # (B, U)
        return self.out(self.dropout(features))

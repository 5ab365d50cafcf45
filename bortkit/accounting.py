"""Exact, analytic parameter and FLOP accounting for the family (no MXNet needed).

``count_params(config)`` equals the number of scalars in the model that
:func:`bortkit.from_pretrained` builds for ``config`` (embeddings + encoder + pooler when
``use_pooler``), to the unit; ``tests/test_accounting.py`` checks it against the built
blocks and against Hugging Face's published counts. The masked-LM and classification heads
are optional extras and are listed separately by :func:`param_table`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .config import LOW_RANK_MATRICES, ModelConfig


def _dense(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _layer_norm(width: int) -> int:
    return 2 * width


def embedding_params(config: ModelConfig) -> int:
    """Word, position and token-type tables, their LayerNorm, and the factorised projection."""
    e = config.embed_size
    rows = config.vocab_size + config.type_vocab_size
    if config.position_embedding == "learned":
        rows += config.max_length
    total = rows * e + _layer_norm(e)
    if config.factorized_embeddings:
        total += _dense(e, config.units)
    return total


def projection_params(config: ModelConfig, kind: str) -> int:
    """A query, key or value projection: a Dense, or one of the convolutions of
    :class:`~bortkit.model.composite.ConvProjection` (``kind`` from ``PROJECTIONS``)."""
    u = config.units
    if kind == "linear":
        return _dense(u, u)
    width = 2 * config.projection_kernel_each_dir + 1
    conv = u // 2 if "mixed" in kind else u
    if "depth" in kind:   # depthwise Conv1D(U, groups U) + pointwise Dense(U -> conv)
        total = u * width + u + _dense(u, conv)
    else:                 # Conv1D(U -> conv, groups G)
        total = conv * (u // config.projection_groups) * width + conv
    if "mixed" in kind:   # the linear half
        total += _dense(u, u - conv)
    return total


def attention_params(config: ModelConfig) -> int:
    """Q, K, V and output projections, plus the relative tables of composite attention:
    convfixed (H, R), convq and convk (d, R) each, R = 2k + 1."""
    u, r = config.units, 2 * config.relative_positions_each_dir + 1
    total = 2 * projection_params(config, config.qk_projection) \
        + projection_params(config, config.value_projection) + _dense(u, u)
    terms = config.attention_terms
    if "convfixed" in terms:
        total += config.num_heads * r
    if "convolution" in terms:   # depthwise Conv1D over the values: (U, 1, R) + bias
        total += u * r + u
    total += config.head_units * r * sum(t in terms for t in ("convq", "convk"))
    return total


def layer_adapter_params(config: ModelConfig) -> int:
    """Adapters inside one layer, all tasks: a PAL's per-layer attention (Q, K, V in the
    adapter width, no output projection), a low-rank adapter (down + up), Houlsby's two
    low-rank adapters, or LHUC's scale vector."""
    u, a, tasks = config.units, config.adapter_units, config.num_tasks
    per_task = {"none": 0, "top": 0, "top_layer": 0, "lhuc": u,
                "pals": 3 * _dense(a, a) if a else 0,
                "low_rank": _dense(u, a) + _dense(a, u) if a else 0,
                "houlsby": 2 * (_dense(u, a) + _dense(a, u)) if a else 0}[config.adapter]
    return tasks * per_task


def shared_adapter_params(config: ModelConfig) -> int:
    """Per-task adapter parameters outside the layers, all tasks: PALs' encoder/decoder
    projections shared by every layer, or the top projected attention (down projection,
    ``top_attention_layers`` attention blocks with output Dense and LayerNorm, up projection)."""
    u, a, tasks = config.units, config.adapter_units, config.num_tasks
    if config.adapter == "pals":
        return tasks * (_dense(u, a) + _dense(a, u))
    if config.adapter == "top":
        block = 4 * _dense(a, a) + _layer_norm(a)
        return tasks * (_dense(u, a) + config.top_attention_layers * block + _dense(a, u))
    if config.adapter == "top_layer":   # a whole BERT layer per task
        f = config.ffn_units
        return tasks * (4 * _dense(u, u) + _dense(u, f) + _dense(f, u) + 2 * _layer_norm(u))
    return 0


def adapter_params(config: ModelConfig) -> int:
    """Every per-task adapter parameter (all tasks); 0 without adapters."""
    return config.num_layers * layer_adapter_params(config) + shared_adapter_params(config)


def _matrix_weights(config: ModelConfig, index: int, matrix: str) -> int:
    """Weights (no bias) of one encoder matrix: in * out, or r * (in + out) when the config
    stores it as two factors of rank r (``low_rank``). Also its multiply-adds per token."""
    n_in, n_out = config.matrix_shape(matrix)
    rank = config.layer_ranks(index).get(matrix)
    return n_in * n_out if rank is None else rank * (n_in + n_out)


def layer_params(config: ModelConfig, index: int = 0) -> int:
    """Encoder layer ``index``: attention, FFN, two LayerNorms and its adapters. A layer with
    factored matrices (``low_rank``: dot-product attention, no in-layer adapters, as the
    config checks) counts r * (in + out) weights for each of them."""
    u, f = config.units, config.ffn_units
    if config.layer_ranks(index):
        weights = sum(_matrix_weights(config, index, m) for m in LOW_RANK_MATRICES)
        return weights + 5 * u + f + 2 * _layer_norm(u)
    ffn = _dense(u, f) + _dense(f, u)
    return attention_params(config) + ffn + 2 * _layer_norm(u) + layer_adapter_params(config)


def encoder_params(config: ModelConfig) -> int:
    final_norm = _layer_norm(config.units) if config.layer_norm_position == "pre" else 0
    return sum(layer_params(config, i) for i in range(config.num_layers)) + final_norm \
        + shared_adapter_params(config)


def pooler_params(config: ModelConfig) -> int:
    return _dense(config.units, config.units) if config.use_pooler else 0


def mlm_head_params(config: ModelConfig) -> int:
    """Transform (Dense units->embed_size, GELU, LayerNorm) + output bias; decoder tied."""
    e = config.embed_size
    return _dense(config.units, e) + _layer_norm(e) + config.vocab_size


def classifier_params(config: ModelConfig, num_labels: int, pooling: str = "cls") -> int:
    """Classification/regression head: on the pooler, or Bort's own Dense(tanh) without one;
    with mean pooling only the output layer."""
    own_pooler = 0 if config.use_pooler or pooling == "mean" else _dense(config.units,
                                                                          config.units)
    return own_pooler + _dense(config.units, num_labels)


def multitask_head_params(config: ModelConfig, num_labels, pooling: str = "cls") -> int:
    """One classification/regression head per task (``num_labels[t]`` outputs for task t)."""
    return sum(classifier_params(config, n, pooling) for n in num_labels)


def count_params(config: ModelConfig) -> int:
    """Total trainable scalars of the encoder model (embeddings + encoder + pooler)."""
    return embedding_params(config) + encoder_params(config) + pooler_params(config)


def flops_per_sequence(config: ModelConfig, seq_length: int = 128,
                       mlm_head: bool = False) -> int:
    """Floating-point operations (2 per multiply-add) of one forward pass on one sequence.

    Counts the matrix products, which dominate: Q/K/V/output projections (Dense or
    convolutions), attention scores and context, the convq/convk relative terms, the FFN, one
    task's adapters, the factorised projection, the pooler and optionally the MLM head over
    every position. Element-wise work (softmax, GELU, LayerNorm, convfixed's bias) is left out.
    """
    if seq_length <= 0:
        raise ValueError(f"seq_length must be positive, got {seq_length}")
    t, u, f = seq_length, config.units, config.ffn_units
    macs = 0
    if config.factorized_embeddings:
        macs += t * config.embed_size * u
    projections = sum(_projection_macs(config, kind, t) for kind in
                      (config.qk_projection, config.qk_projection, config.value_projection))
    dense_layer = projections + t * u * u + 2 * t * t * u + 2 * t * u * f \
        + _relative_macs(config, t) + _adapter_layer_macs(config, t)
    for i in range(config.num_layers):
        if config.layer_ranks(i):                        # factored matrices: r * (in + out)
            macs += t * sum(_matrix_weights(config, i, m) for m in LOW_RANK_MATRICES)
            macs += 2 * t * t * u                        # scores and context
        else:
            macs += dense_layer
    macs += _top_macs(config, t)
    if config.use_pooler:
        macs += u * u
    if mlm_head:
        macs += t * (u * config.embed_size + config.embed_size * config.vocab_size)
    return 2 * macs


def _projection_macs(config: ModelConfig, kind: str, t: int) -> int:
    """Multiply-adds of one query/key/value projection over t tokens."""
    u = config.units
    if kind == "linear":
        return t * u * u
    width = 2 * config.projection_kernel_each_dir + 1
    conv = u // 2 if "mixed" in kind else u
    macs = t * u * width + t * u * conv if "depth" in kind \
        else t * conv * (u // config.projection_groups) * width
    return macs + (t * u * (u - conv) if "mixed" in kind else 0)


def _relative_macs(config: ModelConfig, t: int) -> int:
    """convq/convk: q.w (t x U x R) and the one-hot gather (H x t x t x R), per term."""
    r = 2 * config.relative_positions_each_dir + 1
    terms = sum(term in config.attention_terms for term in ("convq", "convk"))
    convolution = t * config.units * r if "convolution" in config.attention_terms else 0
    return terms * (t * config.units * r + config.num_heads * t * t * r) + convolution


def _adapter_layer_macs(config: ModelConfig, t: int) -> int:
    """One task's adapters in one layer."""
    u, a = config.units, config.adapter_units or 0
    return {"pals": 2 * t * u * a + 3 * t * a * a + 2 * t * t * a,
            "low_rank": 2 * t * u * a, "houlsby": 4 * t * u * a}.get(config.adapter, 0)


def _top_macs(config: ModelConfig, t: int) -> int:
    if config.adapter == "top_layer":   # one BERT layer: Q, K, V, output, FFN, scores
        u, f = config.units, config.ffn_units
        return 4 * t * u * u + 2 * t * u * f + 2 * t * t * u
    if config.adapter != "top":
        return 0
    a = config.adapter_units
    return 2 * t * config.units * a + config.top_attention_layers * (4 * t * a * a + 2 * t * t * a)


@dataclass(frozen=True)
class ParamTable:
    """Breakdown of a config's parameters; ``str(table)`` prints it as a table."""

    config: ModelConfig
    embeddings: int
    encoder: int
    pooler: int
    mlm_head: int
    total: int
    adapters: int = 0              # part of ``encoder``: all tasks' adapters
    alternate: Optional["ParamTable"] = field(default=None, repr=False)

    @property
    def total_with_mlm_head(self) -> int:
        return self.total + self.mlm_head

    @property
    def encoder_proportion(self) -> float:
        """(total - embeddings) / total, as the Bort paper reports it."""
        return (self.total - self.embeddings) / self.total

    def as_dict(self) -> dict:
        return {"embeddings": self.embeddings, "encoder": self.encoder,
                "pooler": self.pooler, "total": self.total, "mlm_head": self.mlm_head,
                "total_with_mlm_head": self.total_with_mlm_head, "adapters": self.adapters,
                "encoder_proportion": round(self.encoder_proportion, 4)}

    def __str__(self) -> str:
        lines = [_format_rows(self, f"units={self.config.units} "
                                    f"ffn_units={self.config.ffn_units}")]
        if self.alternate is not None:
            alt = self.alternate.config
            lines.append("")
            lines.append(_format_rows(self.alternate,
                                      f"swapped reading: units={alt.units} "
                                      f"ffn_units={alt.ffn_units}"))
            lines.append("(the swapped reading is what a framework whose 'hidden_size' means "
                         "the other width would build; see README, 'Two readings of Bort')")
        return "\n".join(lines)


def _format_rows(table: ParamTable, title: str) -> str:
    rows = [("embeddings", table.embeddings), ("encoder", table.encoder)]
    if table.adapters:
        rows.append((f"  adapters ({table.config.num_tasks} tasks)", table.adapters))
    rows += [("pooler", table.pooler), ("total", table.total),
             ("mlm head (optional)", table.mlm_head),
             ("total with mlm head", table.total_with_mlm_head)]
    out = [title, f"{'component':<22}{'parameters':>14}{'':>10}"]
    for name, value in rows:
        out.append(f"{name:<22}{value:>14,}{value / 1e6:>9.1f}M")
    out.append(f"{'encoder proportion':<22}{table.encoder_proportion:>14.1%}")
    return "\n".join(out)


def _table(config: ModelConfig, alternate: Optional[ParamTable] = None) -> ParamTable:
    return ParamTable(config=config, embeddings=embedding_params(config),
                      encoder=encoder_params(config), pooler=pooler_params(config),
                      mlm_head=mlm_head_params(config), total=count_params(config),
                      adapters=adapter_params(config), alternate=alternate)


def param_table(config: ModelConfig) -> ParamTable:
    """Breakdown by component (embeddings / encoder / pooler / optional MLM head).

    When ``units != ffn_units`` the table also carries the *swapped reading*, the same
    config with the two widths exchanged. GluonNLP calls the FFN width ``hidden_size`` and
    Hugging Face calls the model width ``hidden_size``; Bort's paper count (56M, 39M of it
    embeddings) is the swapped reading of its released checkpoint (75.1M).
    """
    alternate = None
    if config.units != config.ffn_units and config.ffn_units % config.num_heads == 0 \
            and not config.low_rank:
        embed = config.ffn_units if config.embed_size == config.units else config.embed_size
        alternate = _table(config.replace(units=config.ffn_units, ffn_units=config.units,
                                          embed_size=embed))
    return _table(config, alternate)

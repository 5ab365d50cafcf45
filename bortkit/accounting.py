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


def _matrix_weights(config: ModelConfig, index: int, matrix: str) -> int:
    """Weights (no bias) of one encoder matrix: in * out, or r * (in + out) when the config
    stores it as two factors of rank r (``low_rank``). Also its multiply-adds per token."""
    n_in, n_out = config.matrix_shape(matrix)
    rank = config.layer_ranks(index).get(matrix)
    return n_in * n_out if rank is None else rank * (n_in + n_out)


def layer_params(config: ModelConfig, index: int = 0) -> int:
    """Encoder layer ``index``: Q, K, V and output projections, FFN, two LayerNorms."""
    weights = sum(_matrix_weights(config, index, m) for m in LOW_RANK_MATRICES)
    biases = 5 * config.units + config.ffn_units
    return weights + biases + 2 * _layer_norm(config.units)


def encoder_params(config: ModelConfig) -> int:
    final_norm = _layer_norm(config.units) if config.layer_norm_position == "pre" else 0
    return sum(layer_params(config, i) for i in range(config.num_layers)) + final_norm


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


def count_params(config: ModelConfig) -> int:
    """Total trainable scalars of the encoder model (embeddings + encoder + pooler)."""
    return embedding_params(config) + encoder_params(config) + pooler_params(config)


def flops_per_sequence(config: ModelConfig, seq_length: int = 128,
                       mlm_head: bool = False) -> int:
    """Floating-point operations (2 per multiply-add) of one forward pass on one sequence.

    Counts the matrix products, which dominate: Q/K/V/output projections, attention scores
    and context, the FFN, the factorised projection, the pooler and optionally the MLM head
    over every position. Element-wise work (softmax, GELU, LayerNorm) is left out.
    """
    if seq_length <= 0:
        raise ValueError(f"seq_length must be positive, got {seq_length}")
    t, u = seq_length, config.units
    macs = 0
    if config.factorized_embeddings:
        macs += t * config.embed_size * u
    for i in range(config.num_layers):
        macs += t * sum(_matrix_weights(config, i, m) for m in LOW_RANK_MATRICES)
        macs += 2 * t * t * u                            # scores and context
    if config.use_pooler:
        macs += u * u
    if mlm_head:
        macs += t * (u * config.embed_size + config.embed_size * config.vocab_size)
    return 2 * macs


@dataclass(frozen=True)
class ParamTable:
    """Breakdown of a config's parameters; ``str(table)`` prints it as a table."""

    config: ModelConfig
    embeddings: int
    encoder: int
    pooler: int
    mlm_head: int
    total: int
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
                "total_with_mlm_head": self.total_with_mlm_head,
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
    rows = [("embeddings", table.embeddings), ("encoder", table.encoder),
            ("pooler", table.pooler), ("total", table.total),
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
                      alternate=alternate)


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

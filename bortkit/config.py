"""The parametric BERT family: one configuration dataclass for every model bortkit builds.

Names say what they mean, whatever the source framework called them:

=================  ======================  ==========================  ======================
bortkit            Hugging Face            GluonNLP 0.x                meaning
=================  ======================  ==========================  ======================
``units``          ``hidden_size``         ``units``                   model width
``ffn_units``      ``intermediate_size``   ``hidden_size``             feed-forward width
``embed_size``     ``embedding_size``      ``embed_size``              embedding width
``num_layers``     ``num_hidden_layers``   ``num_layers``              encoder depth
``num_heads``      ``num_attention_heads`` ``num_heads``               attention heads
=================  ======================  ==========================  ======================

Presets live in ``configs/<name>.json`` (``bert-base``, ``bert-large``, ``roberta-base``,
``bort``, ``minilm-l6-h384``) and load with :func:`load_config`.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "tanh", "sigmoid", "identity")
POSITION_EMBEDDINGS = ("learned", "none")
LAYER_NORM_POSITIONS = ("post", "pre")
ATTENTIONS = ("dot_product",)
# Encoder matrices a config may store as two low-rank factors (``low_rank``), by their name
# inside a layer; ``in``/``out`` widths from :meth:`ModelConfig.matrix_shape`.
LOW_RANK_MATRICES = ("attention.query", "attention.key", "attention.value",
                     "attention.output", "ffn.ffn_1", "ffn.ffn_2")
_LOW_RANK_NAME = re.compile(r"encoder\.(\d+)\.(" + "|".join(
    re.escape(m) for m in LOW_RANK_MATRICES) + r")")


@dataclass(frozen=True)
class ModelConfig:
    """Shape and behaviour of a BERT-family encoder. Defaults are BERT-base (Devlin et al.)."""

    num_layers: int = 12             # encoder depth (Bort: 4)
    num_heads: int = 12              # attention heads per layer (Bort: 8)
    units: int = 768                 # model width (Bort's released checkpoint: 1024)
    ffn_units: int = 3072            # feed-forward inner width (Bort's released checkpoint: 768)
    embed_size: Optional[int] = None  # embedding width; None = units; else factorised + projection
    vocab_size: int = 30522
    max_length: int = 512            # rows of the learned position table
    type_vocab_size: int = 2         # 0 = no token-type embedding (RoBERTa-style models use 1)
    position_embedding: str = "learned"  # "learned" absolute positions, or "none"
    position_offset: int = 0         # first position id (RoBERTa/HF: padding_idx + 1 = 2)
    activation: str = "gelu"         # exact erf GELU as BERT; "gelu_tanh" for the approximation
    layer_norm_eps: float = 1e-12
    layer_norm_position: str = "post"  # "post" (BERT, RoBERTa, Bort) or "pre"
    dropout: float = 0.1             # embeddings, residual branches, heads
    attention_dropout: float = 0.1   # on attention probabilities
    use_pooler: bool = True          # tanh(Dense(h[CLS])) as BERT; Bort and RoBERTa-MLM: False
    pad_token_id: int = 0
    attention: str = "dot_product"   # attention block; variants register more
    # Matrices stored as two factors (FLOP-compacted models, ``bortkit.prune``): bortkit name
    # of the matrix -> rank, e.g. {"encoder.3.ffn.ffn_1": 96}; every other matrix is dense.
    low_rank: Optional[Mapping[str, int]] = field(default=None, hash=False)

    def __post_init__(self):
        if self.embed_size is None:
            object.__setattr__(self, "embed_size", self.units)
        if isinstance(self.low_rank, Mapping):  # one spelling: sorted by layer, then matrix
            object.__setattr__(self, "low_rank", dict(sorted(
                self.low_rank.items(), key=lambda kv: _low_rank_order(kv[0]))) or None)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self, path: Optional[os.PathLike | str] = None) -> None:
        """Raise :class:`ConfigError` naming ``path`` and the first impossible field."""
        def fail(problem: str):
            raise ConfigError(f"invalid model config: {problem}", path=path)

        for name in ("num_layers", "num_heads", "units", "ffn_units", "embed_size",
                     "vocab_size", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                fail(f"{name} must be a positive integer, got {value!r}")
        for name in ("type_vocab_size", "position_offset", "pad_token_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                fail(f"{name} must be a non-negative integer, got {value!r}")
        if self.units % self.num_heads:
            fail(f"units ({self.units}) must be divisible by num_heads ({self.num_heads})")
        if self.pad_token_id >= self.vocab_size:
            fail(f"pad_token_id ({self.pad_token_id}) must be < vocab_size ({self.vocab_size})")
        for name, allowed in (("activation", ACTIVATIONS),
                              ("position_embedding", POSITION_EMBEDDINGS),
                              ("layer_norm_position", LAYER_NORM_POSITIONS),
                              ("attention", ATTENTIONS)):
            if getattr(self, name) not in allowed:
                fail(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                fail(f"{name} must be in [0, 1), got {value!r}")
        if not isinstance(self.layer_norm_eps, (int, float)) or self.layer_norm_eps <= 0:
            fail(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if self.low_rank is not None and not isinstance(self.low_rank, Mapping):
            fail(f"low_rank must map matrix names to ranks, got {self.low_rank!r}")
        for name, rank in (self.low_rank or {}).items():
            match = _LOW_RANK_NAME.fullmatch(name)
            if not match or int(match.group(1)) >= self.num_layers:
                fail(f"low_rank: {name!r} is not a matrix of this encoder (encoder.I.M with "
                     f"I < {self.num_layers} and M one of {', '.join(LOW_RANK_MATRICES)})")
            if match.group(2).startswith("attention.") and self.attention != "dot_product":
                fail(f"low_rank: {name} needs attention 'dot_product', got {self.attention!r}")
            limit = min(self.matrix_shape(match.group(2)))
            if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= limit:
                fail(f"low_rank: rank of {name} must be an integer in [1, {limit}], "
                     f"got {rank!r}")

    # ------------------------------------------------------------------ views
    @property
    def head_units(self) -> int:
        """Width of one attention head."""
        return self.units // self.num_heads

    @property
    def factorized_embeddings(self) -> bool:
        return self.embed_size != self.units

    def matrix_shape(self, matrix: str) -> tuple[int, int]:
        """(in, out) widths of an encoder matrix named as in :data:`LOW_RANK_MATRICES`."""
        if matrix == "ffn.ffn_1":
            return self.units, self.ffn_units
        if matrix == "ffn.ffn_2":
            return self.ffn_units, self.units
        return self.units, self.units

    def layer_ranks(self, index: int) -> dict:
        """Low-rank matrices of layer ``index``: {"ffn.ffn_1": 96, ...} (empty: all dense)."""
        prefix = f"encoder.{index}."
        return {name[len(prefix):]: rank for name, rank in (self.low_rank or {}).items()
                if name.startswith(prefix)}

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated)."""
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))


def _low_rank_order(name: str):
    match = _LOW_RANK_NAME.fullmatch(name)
    if not match:  # invalid names sort last; validate() reports them
        return (1 << 30, 0, name)
    return (int(match.group(1)), LOW_RANK_MATRICES.index(match.group(2)), name)


def from_dict(data: Mapping[str, Any], path: Optional[os.PathLike | str] = None) -> ModelConfig:
    """Build a config from a mapping; unknown fields and bad values name ``path``."""
    if not isinstance(data, Mapping):
        raise ConfigError("model config must be a JSON object", path=path)
    data = {k: v for k, v in data.items() if not k.startswith("_")}  # "_comment" keys
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ConfigError(f"unknown model config field(s): {', '.join(unknown)} "
                          f"(known: {', '.join(FIELDS)})", path=path)
    try:
        return ModelConfig(**data)
    except ConfigError as err:
        raise ConfigError(err.problem, path=path) from None
    except TypeError as err:  # e.g. a list where an int belongs
        raise ConfigError(f"invalid model config: {err}", path=path) from None


def configs_dir() -> Path:
    """The repository's ``configs/`` folder (presets and experiment configs)."""
    return Path(__file__).resolve().parent.parent / "configs"


def preset_names() -> list[str]:
    return sorted(p.stem for p in configs_dir().glob("*.json"))


def load_config(name_or_path: os.PathLike | str) -> ModelConfig:
    """Load a preset by name (``"bort"``) or a ``config.json`` / checkpoint directory."""
    path = Path(name_or_path)
    if path.is_dir():
        path = path / "config.json"
    elif not path.suffix and not path.exists():
        path = configs_dir() / f"{name_or_path}.json"
        if not path.exists():
            raise ConfigError(f"unknown architecture {str(name_or_path)!r}; presets: "
                              f"{', '.join(preset_names())}")
    if not path.exists():
        raise ConfigError("config file not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"not valid JSON ({err})", path=path) from None
    return from_dict(data, path=path)

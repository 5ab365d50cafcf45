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

Presets live in ``bortkit/resources/configs/<name>.json`` (``bert-base``, ``bert-large``, ``roberta-base``,
``bort``, ``minilm-l6-h384``) and load with :func:`load_config`.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "tanh", "sigmoid", "identity")
POSITION_EMBEDDINGS = ("learned", "none")
LAYER_NORM_POSITIONS = ("post", "pre")
ATTENTIONS = ("dot_product",)


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

    def __post_init__(self):
        if self.embed_size is None:
            object.__setattr__(self, "embed_size", self.units)
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

    # ------------------------------------------------------------------ views
    @property
    def head_units(self) -> int:
        """Width of one attention head."""
        return self.units // self.num_heads

    @property
    def factorized_embeddings(self) -> bool:
        return self.embed_size != self.units

    def replace(self, **changes) -> "ModelConfig":
        """A copy with some fields changed (validated)."""
        return from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))


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
    """``bortkit/resources/configs``: the presets and experiment configs, shipped with the
    package (so a wheel has them too)."""
    return Path(__file__).resolve().parent / "resources" / "configs"


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

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
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

from .errors import ConfigError

ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "tanh", "sigmoid", "identity")
POSITION_EMBEDDINGS = ("learned", "none")
LAYER_NORM_POSITIONS = ("post", "pre")
#: Terms of composite attention (Chang et al., 2021), in the order a kind names them: four
#: score terms and "convolution", a fixed depthwise convolution of the values added to the
#: attention's output.
ATTENTION_TERMS = ("qk", "convfixed", "convq", "convk", "convolution")
#: "dot_product" is the fused block; every other kind is some of ATTENTION_TERMS joined by "_".
ATTENTIONS = ("dot_product",) + tuple(
    "_".join(t for i, t in enumerate(ATTENTION_TERMS) if mask >> i & 1)
    for mask in range(1, 2 ** len(ATTENTION_TERMS)))
#: Query/key and value projections: a Dense, or a convolution over 2K+1 tokens, plain or
#: depthwise-separable ("_depth", with GELU between the two unless "_no_act"), for all heads
#: or for the first half of them ("_mixed", the other half linear).
PROJECTIONS = ("linear", "convolution", "convolution_mixed", "convolution_depth",
               "convolution_depth_mixed", "convolution_depth_no_act",
               "convolution_depth_mixed_no_act")
#: Per-task adapters (Stickland & Murray, 2019) and their default width (``adapter_units``).
ADAPTER_UNITS = {"none": None, "pals": 204, "low_rank": 100, "houlsby": 50, "lhuc": None,
                 "top": 204, "top_layer": None}
ADAPTERS = tuple(ADAPTER_UNITS)
ADAPTER_HEADS = {"pals": 6, "top": 12}   # heads of the projected attention


def attention_terms(kind: str) -> tuple:
    """The score terms of an attention kind: ``"qk_convq"`` -> ``("qk", "convq")``."""
    return ("qk",) if kind == "dot_product" else tuple(kind.split("_"))
# Encoder matrices a config may store as two low-rank factors (``low_rank``), by their name
# inside a layer; ``in``/``out`` widths from :meth:`ModelConfig.matrix_shape`.
LOW_RANK_MATRICES = ("attention.query", "attention.key", "attention.value",
                     "attention.output", "ffn.ffn_1", "ffn.ffn_2")
#: Weights one table may hold: MXNet without large-tensor support indexes with int32.
MAX_ELEMENTS = 2 ** 31 - 1
#: Weights a whole model may hold (16 GB in fp32; BERT-large holds 0.34e9).
MAX_PARAMETERS = 2 ** 32
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
    attention: str = "dot_product"   # fused dot-product block, or composite terms (ATTENTIONS)
    relative_positions_each_dir: int = 8  # k of convfixed/convq/convk: offsets -k..k have
    #                                       their own bucket (width 2k+1), farther ones the edge's
    qk_projection: str = "linear"    # queries and keys: "linear" or a convolution (PROJECTIONS)
    value_projection: str = "linear"  # values: "linear" or a convolution (PROJECTIONS)
    projection_kernel_each_dir: int = 4  # K: a convolutional projection spans 2K+1 tokens
    projection_groups: int = 1       # G: groups of a plain (not depthwise) convolution
    adapter: str = "none"            # per-task adapters: none, pals, low_rank, houlsby, lhuc,
                                     # top, top_layer
    num_tasks: int = 1               # tasks with their own adapters (and heads)
    adapter_units: Optional[int] = None  # adapter width; None = pals/top 204, low_rank 100,
    #                                      houlsby 50 (the paper's)
    adapter_heads: Optional[int] = None  # projected-attention heads; None = pals 6, top 12
    top_attention_layers: int = 6    # attention blocks of the "top" adapter
    # Matrices stored as two factors (FLOP-compacted models, ``bortkit.prune``): bortkit name
    # of the matrix -> rank, e.g. {"encoder.3.ffn.ffn_1": 96}; every other matrix is dense.
    low_rank: Optional[Mapping[str, int]] = field(default=None, hash=False)

    def __post_init__(self):
        if self.embed_size is None:
            object.__setattr__(self, "embed_size", self.units)
        if self.adapter_units is None and ADAPTER_UNITS.get(self.adapter):
            object.__setattr__(self, "adapter_units", ADAPTER_UNITS[self.adapter])
        if self.adapter_heads is None and self.adapter in ADAPTER_HEADS:
            object.__setattr__(self, "adapter_heads", ADAPTER_HEADS[self.adapter])
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
        if not isinstance(self.use_pooler, bool):
            fail(f"use_pooler must be true or false, got {self.use_pooler!r}")
        self._validate_sizes(fail)
        if self.position_embedding == "learned" and self.position_offset >= self.max_length:
            fail(f"position_offset ({self.position_offset}) must be < max_length "
                 f"({self.max_length}): the position table would hold no position")
        if self.units % self.num_heads:
            fail(f"units ({self.units}) must be divisible by num_heads ({self.num_heads})")
        if self.pad_token_id >= self.vocab_size:
            fail(f"pad_token_id ({self.pad_token_id}) must be < vocab_size ({self.vocab_size})")
        for name, allowed in (("activation", ACTIVATIONS),
                              ("position_embedding", POSITION_EMBEDDINGS),
                              ("layer_norm_position", LAYER_NORM_POSITIONS),
                              ("qk_projection", PROJECTIONS),
                              ("value_projection", PROJECTIONS),
                              ("adapter", ADAPTERS)):
            if getattr(self, name) not in allowed:
                fail(f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        self._validate_attention(fail)
        self._validate_adapter(fail)
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            if not _real(value) or not 0.0 <= value < 1.0:
                fail(f"{name} must be a number in [0, 1), got {value!r}")
        if not _real(self.layer_norm_eps) or not 0.0 < self.layer_norm_eps < 1.0:
            fail(f"layer_norm_eps must be a number in (0, 1), got {self.layer_norm_eps!r}")
        if self.low_rank is not None and not isinstance(self.low_rank, Mapping):
            fail(f"low_rank must map matrix names to ranks, got {self.low_rank!r}")
        if self.low_rank and self.adapter not in ("none", "top", "top_layer"):
            fail(f"low_rank (FLOP-compacted matrices) and adapter {self.adapter!r} cannot be "
                 f"combined: adapter layers have no factored matrices")
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

    def _validate_sizes(self, fail) -> None:
        """Every weight table must fit one tensor (:data:`MAX_ELEMENTS`), and the whole model
        :data:`MAX_PARAMETERS`: a size typed with a few zeros too many is refused here, not
        by the framework halfway through building it."""
        tables = (("vocab_size", "embed_size"), ("max_length", "embed_size"),
                  ("type_vocab_size", "embed_size"), ("units", "ffn_units"),
                  ("units", "units"), ("embed_size", "units"))
        for rows, columns in tables:
            size = getattr(self, rows) * getattr(self, columns)
            if size > MAX_ELEMENTS:
                fail(f"{rows} x {columns} = {getattr(self, rows)} x {getattr(self, columns)} "
                     f"= {size} weights exceeds the {MAX_ELEMENTS} one tensor can hold")
        layer = 4 * self.units * self.units + 2 * self.units * self.ffn_units
        total = self.num_layers * layer + \
            (self.vocab_size + self.max_length + self.type_vocab_size) * self.embed_size
        if total > MAX_PARAMETERS:
            fail(f"num_layers ({self.num_layers}) x {layer} weights per layer + embeddings "
                 f"= {total} weights exceeds the {MAX_PARAMETERS} a model may hold")

    def _validate_attention(self, fail) -> None:
        if self.attention not in ATTENTIONS:
            hint = (" (give the kernel width as relative_positions_each_dir)"
                    if isinstance(self.attention, str) and " " in self.attention else "")
            fail(f"attention must be 'dot_product' or the terms {', '.join(ATTENTION_TERMS)} "
                 f"joined by '_' in that order (e.g. 'qk_convfixed_convq_convk'); got "
                 f"{self.attention!r}{hint}")
        for name in ("relative_positions_each_dir", "projection_kernel_each_dir",
                     "projection_groups", "num_tasks", "top_attention_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                fail(f"{name} must be a positive integer, got {value!r}")
        k = self.relative_positions_each_dir
        if set(attention_terms(self.attention)) - {"qk"} and k >= self.max_length:
            fail(f"relative_positions_each_dir must be in [1, max_length - 1 = "
                 f"{self.max_length - 1}], got {k}: offsets beyond it never occur in a "
                 f"sequence, so their buckets would never train")
        projections = (self.qk_projection, self.value_projection)
        convolutions = [p for p in projections if p != "linear"]
        if not convolutions:
            if self.projection_groups != 1:
                fail(f"projection_groups ({self.projection_groups}) needs a convolutional "
                     f"qk_projection or value_projection; both are 'linear'")
            return
        if self.attention == "dot_product":
            fail(f"convolutional projections ({', '.join(convolutions)}) need a composite "
                 f"attention such as 'qk'; 'dot_product' is the fused linear block")
        width = 2 * self.projection_kernel_each_dir + 1
        if width > self.max_length:
            fail(f"projection_kernel_each_dir must be in [1, {(self.max_length - 1) // 2}] "
                 f"(kernel width 2K+1 <= max_length {self.max_length}), got "
                 f"{self.projection_kernel_each_dir} (width {width})")
        if any("mixed" in p for p in convolutions) and self.num_heads % 2:
            fail(f"a '_mixed' projection makes half the heads convolutional: num_heads "
                 f"({self.num_heads}) must be even")
        plain = [p for p in convolutions if "depth" not in p]
        g = self.projection_groups
        if g != 1 and not plain:
            fail(f"projection_groups ({g}) applies to plain 'convolution' projections only; "
                 f"depthwise-separable ones ({', '.join(convolutions)}) have no groups")
        for p in plain:
            out = self.units // 2 if "mixed" in p else self.units
            if self.units % g or out % g:
                fail(f"projection_groups ({g}) must divide units ({self.units}) and the "
                     f"convolution's {out} output channels ({p})")

    def _validate_adapter(self, fail) -> None:
        for name in ("adapter_units", "adapter_heads"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                fail(f"{name} must be a positive integer, got {value!r}")
        if self.adapter_units is not None and not ADAPTER_UNITS.get(self.adapter):
            fail(f"adapter_units ({self.adapter_units}) applies to the pals, low_rank, houlsby "
                 f"and top adapters; adapter is {self.adapter!r}")
        if self.adapter_heads is not None and self.adapter not in ADAPTER_HEADS:
            fail(f"adapter_heads ({self.adapter_heads}) applies to the pals and top adapters; "
                 f"adapter is {self.adapter!r}")
        if self.adapter_heads is not None and self.adapter_units % self.adapter_heads:
            fail(f"adapter_units ({self.adapter_units}) must be divisible by adapter_heads "
                 f"({self.adapter_heads})")
        if self.adapter != "none" and self.layer_norm_position != "post":
            fail(f"adapters are defined for post-LN layers (BERT's); layer_norm_position is "
                 f"{self.layer_norm_position!r}")

    # ------------------------------------------------------------------ views
    @property
    def head_units(self) -> int:
        """Width of one attention head."""
        return self.units // self.num_heads

    @property
    def attention_terms(self) -> tuple:
        """Score terms of the attention, e.g. ``("qk", "convfixed")``."""
        return attention_terms(self.attention)

    @property
    def longest_sequence(self) -> Optional[int]:
        """Tokens per sequence the position table holds (None: no limit, no table)."""
        if self.position_embedding != "learned":
            return None
        return self.max_length - self.position_offset

    def check_sequence_length(self, length: Any, option: str = "max_length",
                              path: Optional[os.PathLike | str] = None) -> None:
        """``--OPTION`` must fit this model's position table (never silently reuse its last
        row); the message names the option, the allowed range and the value given."""
        high = self.longest_sequence  # (bortkit.options is the same layer: not imported)
        where = f" (the position table of {os.fspath(path)})" if path is not None else \
            " (the model's position table)"
        integer = isinstance(length, int) and not isinstance(length, bool)
        if integer and length >= 1 and (high is None or length <= high):
            return
        allowed = "a positive integer" if high is None else f"an integer in [1, {high}]{where}"
        flag = "--" + option.replace("_", "-")
        raise ConfigError(f"{flag} must be {allowed}, got {length!r}")

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


def _real(value: Any) -> bool:
    """A finite int or float (not a bool, NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


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
    if "model_type" in data or "hidden_size" in data:  # not a field list gone wrong
        raise ConfigError("a Hugging Face config.json (model_type/hidden_size) without its "
                          "weights: a Hugging Face checkpoint is read from its folder with "
                          "model.safetensors beside config.json, which is missing here "
                          "(bortkit's own configs name the width units)", path=path)
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
        if os.sep in str(name_or_path) or str(name_or_path).startswith((".", "~")):
            raise ConfigError(f"no such file or folder (nor a preset: "
                              f"{', '.join(preset_names())})", path=name_or_path)
        path = configs_dir() / f"{name_or_path}.json"
        if not path.exists():
            raise ConfigError(f"unknown architecture {str(name_or_path)!r}; presets: "
                              f"{', '.join(preset_names())}")
    if not path.exists():
        raise ConfigError("config file not found", path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # not UTF-8, not JSON, an integer of 5,000 digits
        raise ConfigError(f"not valid JSON ({err})", path=path) from None
    return from_dict(data, path=path)

"""Reading and writing checkpoints: bortkit directories, Hugging Face directories, GluonNLP
``.params`` files.

A **bortkit checkpoint** is a directory that outlives the framework::

    config.json        ModelConfig fields (+ "_format", "_bortkit_version", optional "_head")
    model.safetensors  weights by bortkit name (safetensors' numpy API; tied weights once)
    provenance.json    bortkit version, command line, seed, source, time
    vocab.txt | vocab.json + merges.txt | spm.model, tokenizer_config.json  (tokenizer)

Everything is written into a temporary directory and renamed into place, so a killed
process never leaves half a checkpoint.
"""
from __future__ import annotations

import datetime
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from .. import __version__
from ..config import ModelConfig, from_dict, load_config
from ..errors import CheckpointError, ConfigError
from ..io import STAGING, atomic_directory, atomic_write, write_json
from .heads import (EmbeddingSpec, TaskHead, read_json, sentence_transformers_embedding,
                    sentence_transformers_files)
from .names import gluonnlp_names, huggingface_head_names, huggingface_names
from ..resolve import resolve_model_path

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PROVENANCE = "provenance.json"
TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "spm.model",
                   "tokenizer_config.json", "special_tokens_map.json")


@dataclass
class State:
    """A checkpoint read into memory: config plus numpy tensors under bortkit names."""

    config: ModelConfig
    tensors: dict
    kind: str                          # "bortkit", "huggingface" or "gluonnlp"
    weights_path: Path
    tokenizer_dir: Optional[Path] = None
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- reading
def _read_json(path: Path) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise CheckpointError("expected a JSON object", path=path)
    return data


def _read_safetensors(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError("weights file not found", path=path)
    from safetensors.numpy import load_file
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for bad bytes
        raise CheckpointError(f"corrupt or truncated weights file ({err})", path=path) from None


def _is_huggingface(config: dict) -> bool:
    return "model_type" in config or "hidden_size" in config


def config_from_huggingface(hf: dict, path: Path, has_pooler: bool,
                            has_token_types: bool = True) -> ModelConfig:
    """Translate a Hugging Face BERT/RoBERTa ``config.json`` into a :class:`ModelConfig`."""
    model_type = hf.get("model_type", "bert")
    if model_type not in ("bert", "roberta"):
        raise CheckpointError(f"unsupported model_type {model_type!r} (bert, roberta)",
                              path=path)
    if hf.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError("only absolute position embeddings load into the BERT family",
                              path=path)
    activations = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                   "relu": "relu", "tanh": "tanh"}
    act = hf.get("hidden_act", "gelu")
    if act not in activations:
        raise CheckpointError(f"unsupported hidden_act {act!r}", path=path)
    pad = int(hf.get("pad_token_id", 1 if model_type == "roberta" else 0))
    fields = dict(
        num_layers=hf["num_hidden_layers"], num_heads=hf["num_attention_heads"],
        units=hf["hidden_size"], ffn_units=hf["intermediate_size"],
        embed_size=hf.get("embedding_size", hf["hidden_size"]),
        vocab_size=hf["vocab_size"], max_length=hf.get("max_position_embeddings", 512),
        type_vocab_size=hf.get("type_vocab_size", 2) if has_token_types else 0,
        activation=activations[act],
        position_offset=pad + 1 if model_type == "roberta" else 0,
        layer_norm_eps=hf.get("layer_norm_eps", 1e-12),
        dropout=hf.get("hidden_dropout_prob", 0.1),
        attention_dropout=hf.get("attention_probs_dropout_prob", 0.1),
        use_pooler=has_pooler, pad_token_id=pad)
    try:
        return ModelConfig(**fields)
    except ConfigError as err:
        raise CheckpointError(err.problem, path=path) from None
    except TypeError as err:
        raise CheckpointError(f"invalid config ({err})", path=path) from None


def _read_huggingface(directory: Path, hf: dict) -> State:
    weights = directory / WEIGHTS
    if not weights.exists() and (directory / "pytorch_model.bin").exists():
        raise CheckpointError("only model.safetensors weights are read (convert the "
                              "PyTorch pickle with safetensors first)",
                              path=directory / "pytorch_model.bin")
    raw = _read_safetensors(weights)
    prefix = next((p for p in ("bert.", "roberta.", "") if f"{p}embeddings.word_embeddings.weight"
                   in raw), None)
    if prefix is None:
        raise CheckpointError("no embeddings.word_embeddings.weight tensor: not a BERT/RoBERTa "
                              "checkpoint", path=weights)
    # Old checkpoints name LayerNorm parameters gamma/beta.
    tensors = {k[len(prefix):].replace("LayerNorm.gamma", "LayerNorm.weight")
               .replace("LayerNorm.beta", "LayerNorm.bias"): v
               for k, v in raw.items() if k.startswith(prefix)}
    tensors.update({k: v for k, v in raw.items() if k.startswith(("cls.", "lm_head."))})
    roberta = hf.get("model_type") == "roberta"
    head = _huggingface_head(hf, raw, roberta, directory)
    # The pooler belongs to the encoder unless the config says there is none (bortkit's
    # exports of pooler-free models) or the head is RoBERTa's, which never reads it.
    has_pooler = ("pooler.dense.weight" in tensors and hf.get("add_pooling_layer", True)
                  and not (head is not None and roberta))
    # A one-row token-type table of zeros adds nothing: bortkit's export of a model without
    # token types (HF BERT always has the table). Read back as no token types.
    types = tensors.get("embeddings.token_type_embeddings.weight")
    has_token_types = not (types is not None and types.shape[0] == 1 and not types.any())
    config = config_from_huggingface(hf, directory / CONFIG, has_pooler=bool(has_pooler),
                                     has_token_types=has_token_types)
    has_mlm = "cls.predictions.bias" in tensors
    state = State(config, _rename(tensors, huggingface_names(config, mlm_head=has_mlm), weights),
                  "huggingface", weights, directory)
    if head is not None:
        state.tensors.update(_rename(raw, huggingface_head_names(config, roberta), weights))
        state.meta.update(head.to_meta())
    embedding = sentence_transformers_embedding(directory)
    if embedding is not None:
        state.meta.update(embedding.to_meta())
    return state


def _huggingface_head(hf: dict, raw: dict, roberta: bool,
                      directory: Path) -> Optional[TaskHead]:
    """The task head of a ``...ForSequenceClassification`` directory, None without one."""
    key = "classifier.out_proj.weight" if roberta else "classifier.weight"
    if key not in raw:
        return None
    offset = int(hf.get("pad_token_id", 1)) + 1 if roberta else 0
    return TaskHead.from_huggingface(hf, num_labels=int(raw[key].shape[0]),
                                     max_positions=int(hf.get("max_position_embeddings", 512))
                                     - offset, path=directory / CONFIG)


def _read_bortkit(directory: Path, data: dict) -> State:
    config = from_dict(data, path=directory / CONFIG)
    meta = {k: v for k, v in data.items() if k.startswith("_")}
    weights = directory / WEIGHTS
    return State(config, _read_safetensors(weights), "bortkit", weights, directory, meta)


def _gluonnlp_config(tensors: dict, path: Path, config: Optional[ModelConfig]) -> ModelConfig:
    """Shapes give everything but the heads count and LayerNorm epsilon: take those from
    ``config``, a ``config.json`` beside the file, or the Bort preset when shapes match it."""
    try:
        vocab, embed = tensors["word_embed.0.weight"].shape
        max_length, units = tensors["encoder.position_weight"].shape
        ffn = tensors["encoder.transformer_cells.0.ffn.ffn_1.weight"].shape[0]
    except KeyError as err:
        raise CheckpointError(f"missing tensor {err.args[0]}: not a GluonNLP BERT/RoBERTa "
                              "parameter file", path=path) from None
    layers = len({k.split(".")[2] for k in tensors if k.startswith("encoder.transformer_cells.")})
    shapes = dict(num_layers=layers, units=units, ffn_units=ffn, embed_size=embed,
                  vocab_size=vocab, max_length=max_length,
                  type_vocab_size=tensors["token_type_embed.0.weight"].shape[0]
                  if "token_type_embed.0.weight" in tensors else 0,
                  use_pooler="pooler.weight" in tensors)
    if config is None and (path.parent / CONFIG).exists():
        config = load_config(path.parent / CONFIG)
    if config is None:
        bort = load_config("bort")
        if all(getattr(bort, k) == v for k, v in shapes.items()):
            config = bort
    if config is None:
        raise CheckpointError("a .params file does not record num_heads; pass "
                              "from_pretrained(path, config=...) or put a config.json beside it",
                              path=path)
    try:
        return config.replace(**shapes)
    except ConfigError as err:
        raise CheckpointError(err.problem, path=path) from None


def _read_gluonnlp(path: Path, config: Optional[ModelConfig]) -> State:
    import mxnet as mx
    try:
        loaded = mx.nd.load(str(path))
    except Exception as err:  # MXNetError for truncated/corrupt files
        raise CheckpointError(f"corrupt or truncated .params file "
                              f"({str(err).splitlines()[0]})", path=path) from None
    if not isinstance(loaded, dict):
        raise CheckpointError("expected named parameters in the .params file", path=path)
    tensors = {k.split(":", 1)[-1]: v.asnumpy() for k, v in loaded.items()}
    config = _gluonnlp_config(tensors, path, config)
    names = gluonnlp_names(config, mlm_head="decoder.3.bias" in tensors)
    return State(config, _rename(tensors, names, path), "gluonnlp", path,
                 path.parent if any((path.parent / f).exists() for f in TOKENIZER_FILES)
                 else None)


def _rename(tensors: Mapping, names: Mapping[str, str], path: Path) -> dict:
    """Foreign tensors -> bortkit names; a required tensor that is absent is an error."""
    out = {}
    for ours, theirs in names.items():
        if theirs not in tensors:
            raise CheckpointError(f"missing tensor {theirs}", path=path)
        out[ours] = np.asarray(tensors[theirs], dtype=np.float32)
    return out


def read_state(path: os.PathLike | str, config: Optional[ModelConfig] = None) -> State:
    """Read any supported checkpoint into a :class:`State` (no MXNet network is built).

    ``path`` may also be ``minilm`` or an installed model package's name
    (:func:`~bortkit.resolve.resolve_model_path`)."""
    path = resolve_model_path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found (expected a path, minilm or an installed "
                              "model package's name)", path=path)
    if path.is_file() and path.suffix == ".params":
        return check_finite(_read_gluonnlp(path, config))
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if path.is_file():
        raise CheckpointError("not a checkpoint: expected a directory with config.json and "
                              "model.safetensors, or a GluonNLP .params file", path=path)
    if not (path / CONFIG).exists():
        raise CheckpointError(f"no {CONFIG} in checkpoint directory", path=path)
    data = _read_json(path / CONFIG)
    state = _read_huggingface(path, data) if _is_huggingface(data) else \
        _read_bortkit(path, data)
    return check_finite(state)


def check_finite(state: State) -> State:
    """Refuse weights holding NaN or infinity (a diverged run's save, a corrupted file): a
    model built from them answers NaN for every input."""
    for name, value in state.tensors.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            bad = int(value.size - np.isfinite(value).sum())
            raise CheckpointError(f"tensor {name} holds {bad} NaN or infinite value(s) of "
                                  f"{value.size}: the weights are corrupt or come from a "
                                  f"diverged run", path=state.weights_path)
    return state


# --------------------------------------------------------------------------- into MXNet
def named_parameters(block) -> dict:
    """bortkit name -> Gluon Parameter of ``block`` (:func:`bortkit.model.names.named_parameters`;
    imported on use, so importing this module needs no MXNet)."""
    from ..model.names import named_parameters as names
    return names(block)


def assign(block, state: State, required_prefixes=("embeddings.", "encoder.", "pooler.",
                                                   "final_norm.")) -> list:
    """Copy ``state.tensors`` into ``block``'s (initialised) parameters after checking every
    shape; returns the names of parameters the checkpoint did not provide (new heads)."""
    import mxnet as mx
    params = named_parameters(block)
    missing = []
    for name, param in params.items():
        if name not in state.tensors:
            if name.startswith(required_prefixes):
                raise CheckpointError(f"missing tensor {name}", path=state.weights_path)
            missing.append(name)
            continue
        value = state.tensors[name]
        if tuple(value.shape) != tuple(param.shape):
            raise CheckpointError(f"tensor {name} has shape {tuple(value.shape)} but the config "
                                  f"needs {tuple(param.shape)}", path=state.weights_path)
        param.set_data(mx.nd.array(value, dtype=param.dtype))
    return missing


def from_pretrained(path: os.PathLike | str, config: Optional[ModelConfig] = None, ctx=None):
    """Load a bortkit, Hugging Face (BERT/RoBERTa, safetensors; ``...ForSequenceClassification``
    heads and sentence-transformers pooling included) or GluonNLP ``.params`` checkpoint, or
    ``minilm``, as a :class:`~bortkit.model.Model`: encoder + pooler, the task head the
    checkpoint declares (``model.head``, used by ``model.logits`` and :func:`bortkit.pipeline`),
    its embedding pooling (``model.embed``) and its tokenizer (``model.tokenizer``).
    ``bortkit.from_pretrained`` adds the int8 path (``quantize=``, ``calibration=``)."""
    import mxnet as mx
    from ..model import BertNetwork, Model
    state = read_state(path, config)
    where = state.tokenizer_dir or state.weights_path
    head = TaskHead.from_meta(state.meta, Path(where))
    classifier = None
    if head is None:
        network = BertNetwork(state.config, prefix="bert_")
        network.initialize(mx.init.Normal(0.02), ctx=ctx or mx.cpu())
        assign(network, state)
    else:
        classifier, missing = classifier_from_state(state, head.num_labels, head.pooling, ctx)
        if missing:
            raise CheckpointError(f"missing tensor {missing[0]} of the {head.kind} head that "
                                  "config.json declares", path=state.weights_path)
        network = classifier.network
    return Model(state.config, network, ctx=ctx, classifier=classifier, head=head,
                 embedding=EmbeddingSpec.from_meta(state.meta, Path(where)),
                 source=state.tokenizer_dir, meta=state.meta)


def classifier_from_state(state: State, num_labels: int, pooling: str = "cls",
                          ctx=None, first_position: bool = True) -> tuple:
    """A :class:`~bortkit.model.SequenceClassifier` holding ``state``'s weights; returns
    ``(classifier, names the state did not provide)`` (a new task head). With mean pooling
    the pooler takes no part, so it is frozen. ``first_position``: see the classifier."""
    import mxnet as mx
    from ..model import BertNetwork, SequenceClassifier
    network = BertNetwork(state.config, prefix="bert_")
    classifier = SequenceClassifier(network, num_labels, pooling=pooling,
                                    first_position=first_position, prefix="clf_")
    classifier.initialize(mx.init.Normal(0.02), ctx=ctx or mx.cpu())
    missing = assign(classifier, state)
    if pooling == "mean" and state.config.use_pooler:
        network.pooler.collect_params().setattr("grad_req", "null")
    return classifier, missing


# --------------------------------------------------------------------------- writing
def provenance(seed: Optional[int] = None, source: Optional[str] = None, **extra) -> dict:
    return {"bortkit_version": __version__, "command": " ".join(sys.argv), "seed": seed,
            "source": source,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **extra}


def _copy_tokenizer(source: Optional[Path], directory: Path, tokenizer) -> None:
    if tokenizer is not None:
        tokenizer.save(directory)
    elif source is not None:
        for name in TOKENIZER_FILES:
            if (Path(source) / name).is_file():
                shutil.copyfile(Path(source) / name, directory / name)


def _write_weights(path: Path, tensors: dict, fmt: str) -> None:
    """safetensors bytes through :func:`~bortkit.io.atomic_write` (safetensors' own
    ``save_file`` creates files with mode 0600 whatever the umask)."""
    from safetensors.numpy import save
    with atomic_write(path, "wb") as fh:
        fh.write(save(tensors, metadata={"format": fmt}))


_WRITTEN_BY_SAVE = ("_format", "_bortkit_version")


def save_pretrained(block_or_model, directory: os.PathLike | str, config: ModelConfig = None,
                    tokenizer=None, source: Optional[os.PathLike | str] = None,
                    meta: Optional[dict] = None, seed: Optional[int] = None,
                    card: Optional[dict] = None) -> Path:
    """Write a bortkit checkpoint directory atomically, with its model card (``README.md``,
    :mod:`bortkit.checkpoint.card`); ``card`` (``base_model``, ``metrics``) replaces the
    ``"_card"`` entry of ``meta``.

    ``block_or_model`` is a :class:`~bortkit.model.Model` (saved with its task head and the
    ``_head``/``_embedding`` declarations it was loaded with) or any Gluon block containing
    the network (classifier, masked-LM model); its heads are saved too. Tokenizer files come
    from ``tokenizer.save`` or are copied from ``source`` (default: where the model came from).
    """
    from ..model import Model
    if isinstance(block_or_model, Model):
        block = block_or_model.classifier or block_or_model.network
        if meta is None:
            meta = {k: v for k, v in block_or_model.meta.items() if k not in _WRITTEN_BY_SAVE}
    else:  # any Gluon block (classifier, MLM model) is saved whole, heads included
        block = block_or_model
    if not hasattr(block, "collect_params"):
        raise ConfigError("save_pretrained needs a Model or a Gluon block")
    config = config or block_or_model.config
    source = source or getattr(block_or_model, "source", None)
    tensors = {name: p.data().asnumpy() for name, p in named_parameters(block).items()}
    from .card import card_meta, write_card
    meta = {**(meta or {}), **(card_meta(**card) if card is not None else {})}
    directory = Path(directory)
    record = provenance(seed=seed, source=str(source) if source else None)
    with atomic_directory(directory) as tmp:
        _write_weights(tmp / WEIGHTS, tensors, "bortkit")
        write_json(tmp / CONFIG, {**config.to_dict(), "_format": "bortkit",
                                  "_bortkit_version": __version__, **meta})
        write_json(tmp / PROVENANCE, record)
        _copy_tokenizer(source, tmp, tokenizer)
        write_card(tmp, meta, record, "bortkit", card_name(directory))
    return directory


def card_name(directory: Path) -> str:
    """The model card's title: the folder's name (with its parent's for ``best/``), also
    when ``directory`` is a staging folder."""
    directory = Path(directory).resolve()
    name = directory.name.split(STAGING)[0].lstrip(".") or directory.name
    return f"{directory.parent.name}/{name}" if name in ("best", "checkpoint") else name


def set_model_max_length(directory: Path, length: int) -> None:
    """Write ``model_max_length`` into ``directory``'s ``tokenizer_config.json`` (made when
    missing): the length ``transformers``' tokenizers truncate to with ``truncation=True``."""
    path = Path(directory) / "tokenizer_config.json"
    data = _read_json(path) if path.is_file() else {}
    write_json(path, {**data, "model_max_length": int(length)})


def export_max_length(config: ModelConfig, head_length: Optional[int] = None,
                      embedding_length: Optional[int] = None) -> int:
    """The length an export's tokenizer declares: the length the head was trained with,
    else the declared embedding length, else the model's positions."""
    positions = config.max_length - config.position_offset
    return min(head_length or embedding_length or positions, positions)


#: Every name a checkpoint or export directory may hold (``--overwrite`` replaces only a
#: folder of these: it never deletes a file bortkit did not write).
WRITTEN_NAMES = (CONFIG, WEIGHTS, PROVENANCE, "model.onnx", "int8.json", "modules.json",
                 "sentence_bert_config.json", "1_Pooling", "2_Normalize",
                 "README.md") + TOKENIZER_FILES  # README.md: the model card (card.py)


def check_output_dir(output_dir: os.PathLike | str, source: os.PathLike | str,
                     overwrite: bool = False, option: str = "--output-dir") -> Path:
    """Refuse, before any work, an output folder that would destroy something: the source
    checkpoint's folder, a folder inside it or holding it (replacing it would delete the
    source), a file, an existing folder without ``overwrite``, and with ``overwrite`` a
    folder holding anything but what bortkit writes there (:data:`WRITTEN_NAMES`)."""
    out = Path(output_dir)
    src = Path(source)
    src = (src if src.is_dir() else src.parent).resolve()
    target = out.resolve()
    if target == src or src in target.parents or target in src.parents:
        where = "is" if target == src else ("is inside" if src in target.parents
                                            else "holds")
        raise ConfigError(f"{option}: {out} {where} the model's folder {src}; an output "
                          f"must be apart from its source (replacing it would delete the "
                          f"model); choose another folder")
    if out.exists() and not out.is_dir():
        raise ConfigError("output directory is a file", path=out)
    if out.exists() and not overwrite:
        raise ConfigError("output directory already exists (pass --overwrite to replace it)",
                          path=out)
    if out.exists():
        foreign = sorted(p.name for p in out.iterdir() if p.name not in WRITTEN_NAMES)
        if foreign:
            raise ConfigError(f"--overwrite replaces only a folder bortkit wrote; it holds "
                              f"{foreign[0]!r}" + (f" and {len(foreign) - 1} more"
                                                  if len(foreign) > 1 else "") +
                              ", which bortkit did not write; move it or choose another "
                              "folder", path=out)
    return out


def huggingface_layout_problem(config: ModelConfig) -> Optional[str]:
    """Why the Hugging Face BERT/RoBERTa layout cannot hold ``config`` (None: it can), so
    commands can refuse an export before they train."""
    if config.factorized_embeddings or config.layer_norm_position != "post" \
            or config.position_embedding != "learned":
        return ("the Hugging Face BERT layout needs embed_size == units, post-LN and "
                "learned positions")
    if config.attention != "dot_product" or config.adapter != "none" \
            or (config.qk_projection, config.value_projection) != ("linear", "linear"):
        return (f"the Hugging Face BERT layout has dot-product attention with linear "
                f"projections and no adapters; this model has attention "
                f"{config.attention!r}, projections {config.qk_projection!r}/"
                f"{config.value_projection!r} and adapter {config.adapter!r}")
    if config.position_offset and config.position_offset != config.pad_token_id + 1:
        return (f"position_offset {config.position_offset} has no Hugging Face "
                "equivalent (0 for BERT, pad_token_id + 1 for RoBERTa)")
    return None


def export_huggingface(model, directory: os.PathLike | str, tokenizer=None,
                       include_head: bool = True, merge_low_rank: bool = False) -> Path:
    """Write a Hugging Face directory (config.json + model.safetensors + tokenizer files)
    that ``transformers`` loads as it is and :func:`from_pretrained` reads back.

    Without a task head the layout is ``BertModel``/``RobertaModel``; with one (``model.head``)
    it is ``BertForSequenceClassification``/``RobertaForSequenceClassification`` with
    ``id2label``/``label2id`` and ``problem_type`` (``include_head=False`` exports the encoder
    alone). A model without token types gets a one-row table of zeros (adds nothing). A
    model without a pooler gets a pooler of zeros, so ``transformers``' ``pooler_output`` is
    0 rather than random: it has no meaning for such a model (``add_pooling_layer`` is false
    in config.json; ``transformers`` 5 ignores that key, bortkit reads it). Hidden states and
    logits equal bortkit's. A model whose checkpoint declared its sentence embedding (a
    sentence-transformers directory, ``_embedding``) keeps it: the export holds
    ``modules.json``, ``1_Pooling/config.json`` and ``sentence_bert_config.json``.

    A ``BertConfig`` has one shape for every layer, so matrices a FLOP-compacted model keeps
    as two factors (``config.low_rank``) have no layout there: such a model is refused,
    unless ``merge_low_rank`` multiplies the factors back into full matrices (the same
    outputs, at the dense model's size and speed).
    """
    config = model.config
    if config.low_rank and not merge_low_rank:
        raise ConfigError(f"low_rank: {len(config.low_rank)} matrices are stored as two "
                          "factors, which a Hugging Face BertConfig cannot express; pass "
                          "--merge-low-rank (merge_low_rank=True in Python) to export them "
                          "multiplied back into full matrices (same outputs, dense size), "
                          "or export with --format onnx, which keeps the factors")
    problem = huggingface_layout_problem(config)
    if problem:
        raise ConfigError(problem)
    roberta = config.position_offset == config.pad_token_id + 1
    head = model.head if include_head else None
    if head is not None and head.pooling != "cls":
        raise ConfigError(f"a head trained with --pooling {head.pooling} has no Hugging Face "
                          "...ForSequenceClassification layout (those read [CLS]); export the "
                          "encoder alone with include_head=False")
    block = model.classifier if head is not None else model.network
    tensors = {name: p.data().asnumpy() for name, p in named_parameters(block).items()}
    for matrix in config.low_rank or {}:  # W (out, in) = up (out, r) @ down (r, in)
        tensors[f"{matrix}.weight"] = tensors.pop(f"{matrix}.up.weight") \
            @ tensors.pop(f"{matrix}.down.weight")
        tensors[f"{matrix}.bias"] = tensors.pop(f"{matrix}.up.bias")
    hf_tensors = {theirs: tensors[ours] for ours, theirs in huggingface_names(config).items()}
    if not config.type_vocab_size:  # HF BERT always has a token-type table; a zero row is a no-op
        hf_tensors["embeddings.token_type_embeddings.weight"] = \
            np.zeros((1, config.embed_size), np.float32)
    if head is None and not config.use_pooler:
        for name, shape in (("weight", (config.units, config.units)), ("bias", (config.units,))):
            hf_tensors[f"pooler.dense.{name}"] = np.zeros(shape, np.float32)
    hf_config = _huggingface_config(config, roberta)
    if head is not None:
        if roberta and config.use_pooler:
            # RoBERTa's head is tanh(Dense) on <s> followed by out_proj: the pooler is that Dense.
            for name in ("weight", "bias"):
                hf_tensors.pop(f"pooler.dense.{name}")
                tensors[f"head.dense.{name}"] = tensors[f"pooler.dense.{name}"]
            config = config.replace(use_pooler=False)
        base = "roberta." if roberta else "bert."
        hf_tensors = {base + name: value for name, value in hf_tensors.items()}
        hf_tensors.update({theirs: tensors[ours]
                           for ours, theirs in huggingface_head_names(config, roberta).items()})
        kind = "RobertaForSequenceClassification" if roberta else "BertForSequenceClassification"
        hf_config.update(architectures=[kind], add_pooling_layer=config.use_pooler,
                         **head.to_huggingface())
    directory = Path(directory)
    from .card import write_card
    with atomic_directory(directory) as tmp:
        _write_weights(tmp / WEIGHTS, hf_tensors, "pt")
        write_json(tmp / CONFIG, hf_config)
        _copy_tokenizer(getattr(model, "source", None), tmp, tokenizer)
        set_model_max_length(tmp, export_max_length(
            config, head.max_length if head is not None else None,
            getattr(model.embedding, "max_length", None)))
        meta = TaskHead.strip(model.meta)
        if head is not None:
            meta.update(head.to_meta())
        source = getattr(model, "source", None)
        write_card(tmp, meta, provenance(source=str(source) if source else None),
                   "huggingface", card_name(directory))
        if "_embedding" in model.meta and head is None:  # a declared sentence embedding
            for name, content in sentence_transformers_files(model.embedding,
                                                             config.units).items():
                write_json(tmp / name, content)
    return directory


def _huggingface_config(config: ModelConfig, roberta: bool) -> dict:
    """``config.json`` of a ``BertModel``/``RobertaModel`` with ``config``'s shape."""
    return {
        "architectures": ["RobertaModel" if roberta else "BertModel"],
        "model_type": "roberta" if roberta else "bert",
        "vocab_size": config.vocab_size, "hidden_size": config.units,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "intermediate_size": config.ffn_units,
        "hidden_act": {"gelu_tanh": "gelu_new"}.get(config.activation, config.activation),
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_length,
        "type_vocab_size": config.type_vocab_size or 1,
        "layer_norm_eps": config.layer_norm_eps, "pad_token_id": config.pad_token_id,
        "position_embedding_type": "absolute", "initializer_range": 0.02,
        "add_pooling_layer": config.use_pooler,
    }

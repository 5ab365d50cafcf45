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
import json
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
from ..io import atomic_directory, write_json
from .names import gluonnlp_names, huggingface_names

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
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read JSON ({err.__class__.__name__}: {err})",
                              path=path) from None
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


def config_from_huggingface(hf: dict, path: Path, has_pooler: bool) -> ModelConfig:
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
        type_vocab_size=hf.get("type_vocab_size", 2), activation=activations[act],
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
    config = config_from_huggingface(hf, directory / CONFIG,
                                     has_pooler="pooler.dense.weight" in tensors)
    has_mlm = "cls.predictions.bias" in tensors
    names = huggingface_names(config, mlm_head=has_mlm)
    return State(config, _rename(tensors, names, weights), "huggingface", weights, directory)


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
    """Read any supported checkpoint into a :class:`State` (no MXNet network is built)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found", path=path)
    if path.is_file() and path.suffix == ".params":
        return _read_gluonnlp(path, config)
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if path.is_file():
        raise CheckpointError("not a checkpoint: expected a directory with config.json and "
                              "model.safetensors, or a GluonNLP .params file", path=path)
    if not (path / CONFIG).exists():
        raise CheckpointError(f"no {CONFIG} in checkpoint directory", path=path)
    data = _read_json(path / CONFIG)
    if _is_huggingface(data):
        return _read_huggingface(path, data)
    return _read_bortkit(path, data)


# --------------------------------------------------------------------------- into MXNet
def named_parameters(block) -> dict:
    """bortkit name -> Gluon Parameter of ``block``; tied parameters appear once, under the
    first (embedding) name; a wrapper's ``network.`` prefix is dropped."""
    out, seen = {}, set()
    for name, param in block._collect_params_with_prefix().items():
        if id(param) in seen:
            continue
        seen.add(id(param))
        out[name[len("network."):] if name.startswith("network.") else name] = param
    return out


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
    """Load a bortkit, Hugging Face (BERT/RoBERTa, safetensors) or GluonNLP ``.params``
    checkpoint as a :class:`~bortkit.model.Model` (encoder + pooler)."""
    import mxnet as mx
    from ..model import BertNetwork, Model
    state = read_state(path, config)
    network = BertNetwork(state.config, prefix="bert_")
    network.initialize(mx.init.Normal(0.02), ctx=ctx or mx.cpu())
    assign(network, state)
    model = Model(state.config, network, ctx=ctx)
    model.source = state.tokenizer_dir
    model.meta = state.meta
    return model


def classifier_from_state(state: State, num_labels: int, pooling: str = "cls") -> tuple:
    """A :class:`~bortkit.model.SequenceClassifier` holding ``state``'s weights; returns
    ``(classifier, names the state did not provide)`` (a new task head). With mean pooling
    the pooler takes no part, so it is frozen."""
    import mxnet as mx
    from ..model import BertNetwork, SequenceClassifier
    network = BertNetwork(state.config, prefix="bert_")
    classifier = SequenceClassifier(network, num_labels, pooling=pooling, prefix="clf_")
    classifier.initialize(mx.init.Normal(0.02))
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


def save_pretrained(block_or_model, directory: os.PathLike | str, config: ModelConfig = None,
                    tokenizer=None, source: Optional[os.PathLike | str] = None,
                    meta: Optional[dict] = None, seed: Optional[int] = None) -> Path:
    """Write a bortkit checkpoint directory atomically.

    ``block_or_model`` is a :class:`~bortkit.model.Model` or any Gluon block containing the
    network (classifier, masked-LM model); its heads are saved too. Tokenizer files come
    from ``tokenizer.save`` or are copied from ``source`` (default: where the model came from).
    """
    from safetensors.numpy import save_file
    from ..model import Model
    # A Model is unwrapped to its network; any Gluon block (classifier, MLM model) is saved
    # whole, heads included.
    block = block_or_model.network if isinstance(block_or_model, Model) else block_or_model
    if not hasattr(block, "collect_params"):
        raise ConfigError("save_pretrained needs a Model or a Gluon block")
    config = config or block_or_model.config
    source = source or getattr(block_or_model, "source", None)
    tensors = {name: p.data().asnumpy() for name, p in named_parameters(block).items()}
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "bortkit"})
        write_json(tmp / CONFIG, {**config.to_dict(), "_format": "bortkit",
                                  "_bortkit_version": __version__, **(meta or {})})
        write_json(tmp / PROVENANCE, provenance(seed=seed, source=str(source) if source else None))
        _copy_tokenizer(source, tmp, tokenizer)
    return directory


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


def export_huggingface(model, directory: os.PathLike | str, tokenizer=None) -> Path:
    """Write a Hugging Face ``BertModel``/``RobertaModel`` directory (config.json +
    model.safetensors + tokenizer files) that ``transformers`` loads as it is."""
    from safetensors.numpy import save_file
    config = model.config
    problem = huggingface_layout_problem(config)
    if problem:
        raise ConfigError(problem)
    roberta = config.position_offset == config.pad_token_id + 1
    tensors = {name: p.data().asnumpy() for name, p in named_parameters(model.network).items()}
    names = huggingface_names(config)
    hf_tensors = {names[k]: v for k, v in tensors.items() if k in names}
    type_vocab = config.type_vocab_size
    if not type_vocab:  # HF BERT always has a token-type table; a zero row is a no-op
        type_vocab = 1
        hf_tensors["embeddings.token_type_embeddings.weight"] = \
            np.zeros((1, config.embed_size), np.float32)
    hf_config = {
        "architectures": ["RobertaModel" if roberta else "BertModel"],
        "model_type": "roberta" if roberta else "bert",
        "vocab_size": config.vocab_size, "hidden_size": config.units,
        "num_hidden_layers": config.num_layers, "num_attention_heads": config.num_heads,
        "intermediate_size": config.ffn_units,
        "hidden_act": {"gelu_tanh": "gelu_new"}.get(config.activation, config.activation),
        "hidden_dropout_prob": config.dropout,
        "attention_probs_dropout_prob": config.attention_dropout,
        "max_position_embeddings": config.max_length, "type_vocab_size": type_vocab,
        "layer_norm_eps": config.layer_norm_eps, "pad_token_id": config.pad_token_id,
        "position_embedding_type": "absolute", "initializer_range": 0.02,
        "add_pooling_layer": config.use_pooler,
    }
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        save_file(hf_tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        write_json(tmp / CONFIG, hf_config)
        _copy_tokenizer(getattr(model, "source", None), tmp, tokenizer)
    return directory

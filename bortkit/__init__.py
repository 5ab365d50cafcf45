"""bortkit: find, distil, fine-tune and ship small BERT models.

The public API is small; heavy modules (MXNet) load only when first used:

- :func:`from_pretrained` — load a bortkit, Hugging Face or GluonNLP checkpoint.
- :func:`pipeline` — raw text in, transformers' text-classification format out, from a
  fine-tuned checkpoint, a loaded or int8 model or an ONNX export;
  ``from_pretrained(path).embed(texts)`` gives sentence vectors (sentence-transformers'
  ``encode`` arguments).
- :func:`load_tokenizer` — WordPiece, byte-level BPE or SentencePiece from local files.
- :func:`count_params`, :func:`param_table` — exact analytic parameter accounting.
- :class:`ModelConfig` — the parametric BERT family.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["ModelConfig", "count_params", "param_table", "flops_per_sequence",
           "from_pretrained", "pipeline", "load_tokenizer", "BortkitError", "__version__"]


def from_pretrained(path, config=None, ctx=None, quantize=None, calibration=None):
    """Load a bortkit, Hugging Face (BERT/RoBERTa, with a sequence-classification head or
    sentence-transformers pooling) or GluonNLP ``.params`` checkpoint, or ``minilm``, as a
    :class:`~bortkit.model.Model` (:func:`bortkit.checkpoint.from_pretrained`).

    ``quantize="int8"`` with ``calibration`` (a few hundred sentences of real text) returns a
    :class:`~bortkit.quantize.QuantizedModel` instead: oneDNN int8, calibrated on that text,
    with the task head when the checkpoint has one; the encoder's dense layers run on
    bortkit's fused int8 operator (AMX, AVX-512 VNNI or AVX2; ``model.dense``). A directory that such
    a model's ``save`` wrote loads as that int8 model, without calibration."""
    if quantize is not None or calibration is not None:
        from .checkpoint import read_state
        from .quantize import check_calibration, quantize_int8
        check_calibration(quantize, calibration)
        return quantize_int8(read_state(path, config), calibration)
    from .quantize import is_quantized, load_int8
    if is_quantized(path):
        return load_int8(path, config)
    from .checkpoint import from_pretrained as load
    return load(path, config, ctx)


def __getattr__(name):  # PEP 562: lazy imports keep `import bortkit` free of MXNet
    if name in ("ModelConfig",):
        from .config import ModelConfig
        return ModelConfig
    if name in ("count_params", "param_table", "flops_per_sequence"):
        from . import accounting
        return getattr(accounting, name)
    if name == "pipeline":
        from .inference import pipeline
        return pipeline
    if name == "load_tokenizer":
        from .tokenizers import load_tokenizer
        return load_tokenizer
    if name == "BortkitError":
        from .errors import BortkitError
        return BortkitError
    raise AttributeError(f"module 'bortkit' has no attribute {name!r}")

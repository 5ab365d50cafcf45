"""bortkit: find, distil, fine-tune and ship small BERT models.

The public API is small; heavy modules (MXNet) load only when first used:

- :func:`from_pretrained` — load a bortkit, Hugging Face or GluonNLP checkpoint.
- :func:`pipeline` — raw text in, ``{"label", "score"}`` / ``{"value"}`` out, from a
  fine-tuned checkpoint; ``from_pretrained(path).embed(texts)`` gives sentence vectors.
- :func:`load_tokenizer` — WordPiece, byte-level BPE or SentencePiece from local files.
- :func:`count_params`, :func:`param_table` — exact analytic parameter accounting.
- :class:`ModelConfig` — the parametric BERT family.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["ModelConfig", "count_params", "param_table", "flops_per_sequence",
           "from_pretrained", "pipeline", "load_tokenizer", "BortkitError", "__version__"]


def __getattr__(name):  # PEP 562: lazy imports keep `import bortkit` free of MXNet
    if name in ("ModelConfig",):
        from .config import ModelConfig
        return ModelConfig
    if name in ("count_params", "param_table", "flops_per_sequence"):
        from . import accounting
        return getattr(accounting, name)
    if name == "from_pretrained":
        from .checkpoint import from_pretrained
        return from_pretrained
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

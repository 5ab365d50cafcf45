"""Data for pretraining: streaming corpus -> token shards, and dynamically masked batches.

- :class:`PretrainingDataset` — masked-LM batches (dynamic masking, data-parallel slices).
- :func:`tokenize_corpus` — the packed examples of a text corpus, streamed.
- ``bortkit.data.pretraining.create_pretraining_data`` — write a shard directory (also the
  command ``python -m bortkit.data.create_pretraining_data``; the function is not re-exported
  here because the command module has the same name).
"""
from __future__ import annotations

from .pretraining import (FORMAT, Batch, PretrainingDataset, PretrainingExample, read_meta,
                          tokenize_corpus, tokenizer_fingerprint)

__all__ = ["FORMAT", "Batch", "PretrainingExample", "PretrainingDataset", "read_meta",
           "tokenize_corpus", "tokenizer_fingerprint"]

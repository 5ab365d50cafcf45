"""Data for pretraining: streaming corpus -> token shards, and dynamically masked batches.

One idea a module:

- :mod:`~bortkit.data.corpus` — reading a text corpus (files, checked lines, chunks, samples);
- :mod:`~bortkit.data.packing` — :func:`tokenize_corpus`: the packed examples of a corpus;
- :mod:`~bortkit.data.shards` — the directory layout on disk (one ``.npy`` per array);
- :mod:`~bortkit.data.pretraining` — ``create_pretraining_data``: write a shard directory
  (also ``python -m bortkit.data.create_pretraining_data``; the function is not re-exported
  here because the command module has the same name);
- :mod:`~bortkit.data.convert_shards` — convert a directory of the old ``.npz`` format;
- :mod:`~bortkit.data.masking` — deterministic BERT masking;
- :mod:`~bortkit.data.dataset` — :class:`PretrainingDataset`: masked, data-parallel batches.
"""
from __future__ import annotations

from .dataset import Batch, PretrainingDataset
from .packing import PretrainingExample, tokenize_corpus
from .shards import FORMAT, read_meta, tokenizer_fingerprint

__all__ = ["FORMAT", "Batch", "PretrainingExample", "PretrainingDataset", "read_meta",
           "tokenize_corpus", "tokenizer_fingerprint"]

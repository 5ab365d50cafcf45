"""Featurised task data with dynamic padding and length bucketing (plain NumPy).

Examples are tokenised once. Each epoch the order is a permutation drawn from
``(seed, epoch)``; the permutation is cut into chunks of ``batch_size * bucket_chunks``
examples, each chunk sorted by length and cut into batches, so a batch holds sequences of
similar length and pads little. Lengths are rounded up to a multiple of ``pad_multiple`` to
keep the number of distinct shapes (and hybridized graph bindings) small.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from ..errors import DataError
from ..tasks import Example, Task


@dataclass
class Features:
    """Token ids of every example, unpadded, with labels."""

    ids: list            # list of int32 arrays
    types: list          # list of int32 arrays
    labels: np.ndarray   # (N,) int64 class ids or float32 scores; -1 / nan when unlabeled
    pad_id: int

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))


def featurize(task: Task, examples: Sequence[Example], tokenizer, max_length: int) -> Features:
    """Tokenise ``examples`` (pairs where the task has them), truncating to ``max_length``."""
    if not examples:
        raise DataError(f"{task.name}: no examples to featurise")
    ids, types = [], []
    for ex in examples:
        enc = tokenizer(ex.text_a, ex.text_b, max_length=max_length)
        ids.append(np.asarray(enc["input_ids"], dtype=np.int32))
        types.append(np.asarray(enc["token_type_ids"], dtype=np.int32))
    if task.kind == "regression":
        labels = np.array([np.nan if e.label is None else e.label for e in examples], np.float32)
    else:
        labels = np.array([-1 if e.label is None else e.label for e in examples], np.int64)
    return Features(ids, types, labels, tokenizer.pad_id)


@dataclass
class TaskBatch:
    input_ids: np.ndarray       # (B, T) float32 (Gluon embedding input)
    token_type_ids: np.ndarray  # (B, T)
    attention_mask: np.ndarray  # (B, T) 1 real, 0 pad
    labels: np.ndarray          # (B,)
    index: np.ndarray           # (B,) positions in the Features


def make_batch(features: Features, index: np.ndarray, pad_multiple: int = 8) -> TaskBatch:
    longest = max(len(features.ids[i]) for i in index)
    width = int(np.ceil(longest / pad_multiple) * pad_multiple)
    ids = np.full((len(index), width), features.pad_id, np.float32)
    types = np.zeros((len(index), width), np.float32)
    mask = np.zeros((len(index), width), np.float32)
    for row, i in enumerate(index):
        n = len(features.ids[i])
        ids[row, :n] = features.ids[i]
        types[row, :n] = features.types[i]
        mask[row, :n] = 1.0
    return TaskBatch(ids, types, mask, features.labels[index], np.asarray(index))


def epoch_batches(features: Features, batch_size: int, seed: int, epoch: int,
                  bucket_chunks: int = 50) -> list:
    """Index arrays of one training epoch: shuffled, bucketed by length, batches shuffled."""
    rng = np.random.RandomState((seed * 100_003 + epoch) % (2 ** 32))
    order = rng.permutation(len(features))
    lengths = features.lengths
    chunk = batch_size * bucket_chunks
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def eval_batches(features: Features, batch_size: int) -> Iterator[np.ndarray]:
    """Length-sorted batches for inference; callers scatter results back by ``index``."""
    order = np.argsort(features.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def subsample(examples: list, limit: Optional[int], seed: int) -> list:
    """A fixed random subset of ``limit`` examples (all when ``limit`` is None)."""
    if limit is None or limit >= len(examples):
        return examples
    keep = np.sort(np.random.RandomState(seed).choice(len(examples), limit, replace=False))
    return [examples[i] for i in keep]

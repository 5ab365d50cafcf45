"""Masking: BERT's masked-LM corruption of a batch, deterministic and stateless.

The random numbers of an example are a pure function of ``(seed, epoch, example index,
position)`` (a counter-based SplitMix64 stream), so the masks are the same whatever the
number of ranks, the batch an example lands in or the step a run resumed from.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import numpy as np

__all__ = ["Masker"]


_GAMMA = np.uint64(0x9E3779B97F4A7C15)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijective, well-avalanching hash of uint64 values."""
    with np.errstate(over="ignore"):
        z = values + _GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniforms(seed: int, epoch: int, indices: np.ndarray, length: int,
              streams: int) -> np.ndarray:
    """Uniform [0, 1) numbers, shape (streams, B, length), a pure function of (seed, epoch,
    example index, stream, position): counter-based, so no state to carry across batches."""
    key = _mix(_mix(np.array([seed], np.uint64)) ^ np.uint64(epoch))
    keys = _mix(key ^ indices.astype(np.uint64))
    counters = np.arange(1, streams * length + 1, dtype=np.uint64).reshape(streams, 1, length)
    with np.errstate(over="ignore"):
        bits = _mix(keys[None, :, None] + counters * _GAMMA)
    return (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


class Masker:
    """BERT's masked-LM corruption: choose ~``probability`` of the maskable tokens (at least
    1, at most ``max_predictions``), then 80% -> [MASK], 10% -> a random ordinary token,
    10% unchanged."""

    def __init__(self, tokenizer_meta: Dict[str, Any], seed: int, probability: float,
                 max_predictions: int, whole_word: bool):
        self.seed = seed
        self.probability = probability
        self.max_predictions = max_predictions
        self.whole_word = whole_word
        self.mask_id = tokenizer_meta["mask_id"]
        self.is_special = np.zeros(tokenizer_meta["vocab_size"], bool)
        self.is_special[tokenizer_meta["special_ids"]] = True
        self.ordinary_ids = np.flatnonzero(~self.is_special).astype(np.int32)

    def __call__(self, ids: np.ndarray, lengths: np.ndarray, word_starts: np.ndarray,
                 indices: np.ndarray, epoch: int
                 ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(masked ids, flat positions, labels, weights) of a batch of rows."""
        batch, length = ids.shape
        maskable = (np.arange(length) < lengths[:, None]) & ~self.is_special[ids]
        available = maskable.sum(axis=1)
        targets = np.clip(np.rint(available * self.probability), 1, self.max_predictions)
        targets = np.minimum(targets, available).astype(np.int64)
        random_numbers = _uniforms(self.seed, epoch, indices, length, streams=3)
        if self.whole_word:
            chosen = _choose_words(random_numbers[0], maskable, word_starts, lengths, targets,
                                   self.max_predictions)
        else:
            chosen = _choose_tokens(random_numbers[0], maskable, targets)

        action, pick = random_numbers[1], random_numbers[2]
        masked_ids = ids.copy()
        masked_ids[chosen & (action < 0.8)] = self.mask_id
        replace = chosen & (action >= 0.8) & (action < 0.9)
        picks = (pick[replace] * len(self.ordinary_ids)).astype(np.int64)
        masked_ids[replace] = self.ordinary_ids[picks]
        return (masked_ids, *self._predictions(chosen, ids))

    def _predictions(self, chosen: np.ndarray, ids: np.ndarray
                     ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat positions ``b*L + t``, labels and weights, P slots a row, padded with
        (``b*L``, 0, 0)."""
        batch, length = ids.shape
        slots = self.max_predictions
        rows, columns = np.nonzero(chosen)
        counts = chosen.sum(axis=1)
        first = np.cumsum(counts) - counts
        flat = rows * slots + np.arange(len(rows)) - np.repeat(first, counts)
        positions = np.repeat(np.arange(batch, dtype=np.int32) * length, slots)
        labels = np.zeros(batch * slots, np.int32)
        weights = np.zeros(batch * slots, np.float32)
        positions[flat] = rows * length + columns
        labels[flat] = ids[rows, columns]
        weights[flat] = 1.0
        return positions, labels, weights


def _choose_tokens(scores: np.ndarray, maskable: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The ``targets[b]`` maskable tokens of each row with the lowest scores."""
    scores = np.where(maskable, scores, 2.0)
    order = np.argsort(scores, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(scores.shape[1])[None, :].repeat(len(order), 0),
                      axis=1)
    return ranks < targets[:, None]


def _choose_words(scores: np.ndarray, maskable: np.ndarray, word_starts: np.ndarray,
                  lengths: np.ndarray, targets: np.ndarray, max_predictions: int) -> np.ndarray:
    """Whole words in random order, skipping any that would overshoot the row's target (as
    BERT does); if no word fits, the first word (at most ``max_predictions`` of its tokens)."""
    chosen = np.zeros_like(maskable)
    for row, (length, target) in enumerate(zip(lengths, targets)):
        starts = np.flatnonzero(word_starts[row, :length])
        ends = np.append(starts[1:], length)
        candidates = np.flatnonzero(maskable[row, starts])
        order = candidates[np.argsort(scores[row, starts[candidates]], kind="stable")]
        total = 0
        for word in order:
            size = ends[word] - starts[word]
            if total + size <= target:
                chosen[row, starts[word]:ends[word]] = True
                total += size
                if total == target:
                    break
        if total == 0 and len(order):
            first = starts[order[0]]
            chosen[row, first:min(ends[order[0]], first + max_predictions)] = True
    return chosen

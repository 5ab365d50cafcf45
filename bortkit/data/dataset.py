"""The dataset: dynamically masked, data-parallel batches of a shard directory.

Training reads the shards through :class:`PretrainingDataset`, which masks at batch time
(dynamic masking, as in RoBERTa): the masks of an example depend only on ``(seed, epoch,
example index)`` (:mod:`bortkit.data.masking`), so they are the same whatever the number of
ranks or the step a run resumed from.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from ..errors import ConfigError
from .checks import check_int
from .corpus import PathLike
from .masking import Masker
from .shards import TOKENIZER_DIR, open_shard, read_meta

__all__ = ["Batch", "PretrainingDataset"]

MAX_OPEN_SHARDS = 64    # shards whose memory maps a dataset keeps open


@dataclass
class Batch:
    """One rank's share of a global batch; every array has a static shape.

    ``masked_positions`` are flat indices ``b * L + t`` into the ``(B, L)`` inputs, P =
    ``max_predictions`` slots a row; unused slots point at ``b * L`` with label 0, weight 0.
    """

    input_ids: np.ndarray        # (B, L) int32, after masking
    token_type_ids: np.ndarray   # (B, L) int32
    attention_mask: np.ndarray   # (B, L) float32, 1 on real tokens
    masked_positions: np.ndarray  # (B*P,) int32
    masked_labels: np.ndarray    # (B*P,) int32, the original ids
    masked_weights: np.ndarray   # (B*P,) float32
    num_tokens: int              # real (non-padding) tokens in the batch
    example_indices: np.ndarray  # (B,) int64, dataset indices of the rows
    epoch: int


class PretrainingDataset:
    """Dynamically masked batches from a directory written by :func:`create_pretraining_data`.

    Global batch ``g`` of epoch ``e`` holds ``batch_size * world_size`` examples, taken in
    the order of a permutation drawn from ``(seed, e)``; rank ``r`` gets the ``r``-th
    contiguous ``batch_size`` of them, so 2 ranks x b and 1 rank x 2b see the same examples
    in the same order. Masks depend only on ``(seed, e, example index)``. ``batch(step)`` is
    a pure function of the step, so resuming at any step continues the same stream.

    Args:
        directory: the shard directory.
        batch_size: examples per rank and step.
        seed: seed of the epoch permutations and of the masks.
        rank, world_size: this process's place among the data-parallel workers.
        mlm_probability: share of the maskable (non-special) tokens to predict.
        max_predictions: P, predictions a row at most (the static width of the outputs).
        whole_word: mask whole words (using the shards' ``word_starts``).
        shuffle: permute the examples every epoch (else corpus order).
        drop_last: drop an incomplete last global batch (else it wraps round to the
            beginning of the epoch's order, keeping the shapes static).
    """

    def __init__(self, directory: PathLike, batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1, mlm_probability: float = 0.15, max_predictions: int = 20,
                 whole_word: bool = False, shuffle: bool = True, drop_last: bool = True):
        self.directory = Path(directory)
        meta = read_meta(self.directory)
        self.max_seq_length: int = meta["max_seq_length"]
        check_int("batch_size", batch_size, 1)
        check_int("world_size", world_size, 1)
        check_int("seed", seed, 0)
        check_int("max_predictions", max_predictions, 1)
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) \
                or not 0 <= rank < world_size:
            raise ConfigError(f"rank must be an integer in [0, {world_size}), got {rank!r}")
        if not isinstance(mlm_probability, (float, int)) or not 0.0 < mlm_probability < 1.0:
            raise ConfigError(f"mlm_probability must be in (0, 1), got {mlm_probability!r}")
        if max_predictions > self.max_seq_length:
            raise ConfigError(f"max_predictions ({max_predictions}) cannot exceed "
                              f"max_seq_length ({self.max_seq_length})")
        self.meta = meta
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.max_predictions = max_predictions
        self.num_examples: int = meta["num_examples"]
        self.global_batch_size = batch_size * world_size
        if drop_last:
            self._num_batches = self.num_examples // self.global_batch_size
        else:
            self._num_batches = -(-self.num_examples // self.global_batch_size)
        if self._num_batches == 0:
            raise ConfigError(f"{self.num_examples} examples are fewer than one global batch "
                              f"of {self.global_batch_size} ({batch_size} x {world_size} "
                              f"ranks); lower batch_size or use drop_last=False",
                              path=self.directory)
        self._masker = Masker(meta["tokenizer"], seed, mlm_probability, max_predictions,
                               whole_word)
        self._shard_sizes = [shard["num_examples"] for shard in meta["shards"]]
        self._shard_offsets = np.concatenate([[0], np.cumsum(self._shard_sizes)])
        self._open: "collections.OrderedDict[int, Dict[str, np.ndarray]]" = \
            collections.OrderedDict()
        self._open_lock = threading.Lock()  # batches may be prepared in a background thread
        self._permutation_cache: Tuple[int, Optional[np.ndarray]] = (-1, None)

    # ------------------------------------------------------------------- description
    def __len__(self) -> int:
        """Global batches (steps) per epoch."""
        return self._num_batches

    @property
    def tokenizer_meta(self) -> Dict[str, Any]:
        return dict(self.meta["tokenizer"])

    @property
    def tokenizer_fingerprint(self) -> str:
        return self.meta["tokenizer_fingerprint"]

    @property
    def tokenizer_dir(self) -> Path:
        return self.directory / TOKENIZER_DIR

    def __repr__(self) -> str:
        return (f"PretrainingDataset({str(self.directory)!r}, batch_size={self.batch_size}, "
                f"rank={self.rank}, world_size={self.world_size}, "
                f"num_examples={self.num_examples}, steps_per_epoch={len(self)})")

    # ------------------------------------------------------------------------ batches
    def batches(self, start_step: int = 0, num_steps: Optional[int] = None
                ) -> Iterator[Tuple[int, Batch]]:
        """Yield ``(step, batch)`` from ``start_step`` on, across epochs (forever when
        ``num_steps`` is None)."""
        check_int("start_step", start_step, 0)
        step = start_step
        while num_steps is None or step < start_step + num_steps:
            yield step, self.batch(step)
            step += 1

    def batch(self, step: int) -> Batch:
        """This rank's batch at global ``step`` (epoch ``step // len(self)``)."""
        check_int("step", step, 0)
        epoch, index = divmod(step, self._num_batches)
        first = index * self.global_batch_size + self.rank * self.batch_size
        order = (first + np.arange(self.batch_size)) % self.num_examples
        indices = self._permutation(epoch)[order]
        rows = self._gather(indices)
        masked_ids, positions, labels, weights = self._masker(
            rows["input_ids"], rows["lengths"], rows["word_starts"], indices, epoch)
        attention = np.arange(self.max_seq_length) < rows["lengths"][:, None]
        return Batch(input_ids=masked_ids,
                     token_type_ids=rows["token_type_ids"].astype(np.int32),
                     attention_mask=attention.astype(np.float32),
                     masked_positions=positions, masked_labels=labels, masked_weights=weights,
                     num_tokens=int(rows["lengths"].sum()), example_indices=indices,
                     epoch=epoch)

    def example(self, index: int) -> Dict[str, np.ndarray]:
        """The stored (unmasked) example ``index``: its ids, token types and word starts,
        without padding."""
        check_int("index", index, 0)
        if index >= self.num_examples:
            raise ConfigError(f"index {index} out of range for {self.num_examples} examples")
        rows = self._gather(np.array([index]))
        length = int(rows["lengths"][0])
        return {name: rows[name][0, :length]
                for name in ("input_ids", "token_type_ids", "word_starts")}

    # ------------------------------------------------------------------------ helpers
    def _permutation(self, epoch: int) -> np.ndarray:
        cached_epoch, order = self._permutation_cache
        if cached_epoch != epoch or order is None:
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
            else:
                order = np.arange(self.num_examples)
            self._permutation_cache = (epoch, order)
        return order

    def _gather(self, indices: np.ndarray) -> Dict[str, np.ndarray]:
        """The stored rows of dataset ``indices`` (read shard by shard)."""
        shards = np.searchsorted(self._shard_offsets, indices, side="right") - 1
        rows = indices - self._shard_offsets[shards]
        length = self.max_seq_length
        out = {"input_ids": np.empty((len(indices), length), np.int32),
               "lengths": np.empty(len(indices), np.int32),
               "token_type_ids": np.empty((len(indices), length), np.int8),
               "word_starts": np.empty((len(indices), length), bool)}
        for shard in np.unique(shards):
            where = shards == shard
            arrays = self._shard(int(shard))
            for name, array in out.items():
                array[where] = arrays[name][rows[where]]
        return out

    def _shard(self, shard: int) -> Dict[str, np.ndarray]:
        """The arrays of a shard, from a small LRU of open memory maps."""
        with self._open_lock:
            arrays = self._open.get(shard)
            if arrays is None:
                path = self.directory / self.meta["shards"][shard]["directory"]
                arrays = open_shard(path, self._shard_sizes[shard], self.max_seq_length)
                self._open[shard] = arrays
                if len(self._open) > MAX_OPEN_SHARDS:
                    self._open.popitem(last=False)
            else:
                self._open.move_to_end(shard)
            return arrays

"""Shards on disk: the layout of a pretraining data directory, written and read.

Layout (format ``bortkit-pretraining-v2``)::

    DIR/shard-00000/input_ids.npy       int32 (N, L), right-padded with pad_id
    DIR/shard-00000/lengths.npy         int32 (N,)
    DIR/shard-00000/token_type_ids.npy  int8 (N, L)
    DIR/shard-00000/word_starts.npy     bool (N, L)
    DIR/tokenizer/                      the tokenizer (Tokenizer.save)
    DIR/meta.json                       written last: a directory without it is incomplete

One plain ``.npy`` file per array, so a reader memory-maps it with ``np.load(mmap_mode="r")``
and reads random rows without loading the shard. Directories of the previous format
(``bortkit-pretraining-v1``: one ``shard-NNNNN.npz`` per shard) are refused with the command
that converts them (``python -m bortkit.data.convert_shards DIR``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping

import numpy as np

from ..errors import BortkitError, DataError
from ..io import atomic_write
from ..tokenizers import Tokenizer
from .corpus import PathLike
from .packing import PretrainingExample

__all__ = ["FORMAT", "FORMAT_V1", "META_NAME", "TOKENIZER_DIR", "ARRAYS", "ShardWriter",
           "write_shard", "open_shard", "read_meta", "shard_entries", "tokenizer_meta", "tokenizer_fingerprint"]

FORMAT = "bortkit-pretraining-v2"
FORMAT_V1 = "bortkit-pretraining-v1"   # one .npz per shard; see convert_shards
META_NAME = "meta.json"
TOKENIZER_DIR = "tokenizer"
SHARD_NAME = "shard-{:05d}"
#: The arrays of a shard and their dtypes.
ARRAYS = {"input_ids": np.int32, "lengths": np.int32, "token_type_ids": np.int8,
          "word_starts": np.bool_}


class ShardWriter:
    """Collects examples into fixed-size arrays and writes a shard each time they fill."""

    def __init__(self, directory: Path, max_seq_length: int, shard_size: int, pad_id: int):
        self.directory = directory
        self.shard_size = shard_size
        self.pad_id = pad_id
        self.shards: List[Dict[str, Any]] = []
        self.num_tokens = 0
        self._arrays = {name: np.empty((shard_size,) if name == "lengths"
                                       else (shard_size, max_seq_length), dtype)
                        for name, dtype in ARRAYS.items()}
        self._count = 0
        self._clear()

    def add(self, example: PretrainingExample) -> None:
        row, length = self._count, len(example.input_ids)
        self._arrays["input_ids"][row, :length] = example.input_ids
        self._arrays["lengths"][row] = length
        self._arrays["token_type_ids"][row, :length] = example.token_type_ids
        self._arrays["word_starts"][row, :length] = example.word_starts
        self.num_tokens += length
        self._count += 1
        if self._count == self.shard_size:
            self._flush()

    def close(self) -> List[Dict[str, Any]]:
        if self._count:
            self._flush()
        return self.shards

    def _clear(self) -> None:
        self._arrays["input_ids"].fill(self.pad_id)
        self._arrays["token_type_ids"].fill(0)
        self._arrays["word_starts"].fill(False)

    def _flush(self) -> None:
        name = SHARD_NAME.format(len(self.shards))
        write_shard(self.directory / name, {key: array[:self._count]
                                            for key, array in self._arrays.items()})
        self.shards.append({"directory": name, "num_examples": self._count})
        self._count = 0
        self._clear()


def tokenizer_meta(tokenizer: Tokenizer) -> Dict[str, Any]:
    return {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size,
            "pad_id": tokenizer.pad_id, "unk_id": tokenizer.unk_id,
            "cls_id": tokenizer.cls_id, "sep_id": tokenizer.sep_id,
            "mask_id": tokenizer.mask_id, "special_ids": sorted(tokenizer.special_ids),
            "pair_format": tokenizer.pair_format}


def tokenizer_fingerprint(directory: PathLike) -> str:
    """SHA-256 over the names and bytes of the files of a tokenizer directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BortkitError("tokenizer directory does not exist", path=directory)
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        data = path.read_bytes()
        digest.update(f"{path.name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def write_shard(directory: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the arrays of one shard as ``directory/<name>.npy`` files (each atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ARRAYS:
        with atomic_write(directory / f"{name}.npy", "wb") as fh:
            np.save(fh, np.ascontiguousarray(arrays[name], dtype=ARRAYS[name]))


def read_meta(directory: PathLike) -> Dict[str, Any]:
    """The checked ``meta.json`` of a shard directory."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BortkitError("pretraining data directory does not exist", path=directory)
    path = directory / META_NAME
    if not path.is_file():
        raise DataError("no meta.json: not a pretraining data directory, or its creation "
                        "did not finish", path=directory)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:  # not JSON, not UTF-8, an integer of 5,000 digits
        raise DataError(f"not valid JSON: {err}", path=path) from None
    found = meta.get("format") if isinstance(meta, dict) else None
    if found == FORMAT_V1:
        raise DataError(f"shards in the old format {FORMAT_V1!r} (one .npz per shard); "
                        f"convert them in place with: python -m bortkit.data.convert_shards "
                        f"{directory}", path=path)
    if found != FORMAT:
        raise DataError(f"format must be {FORMAT!r}, got {found!r}", path=path)
    for key in ("max_seq_length", "num_examples", "shards", "tokenizer"):
        if key not in meta:
            raise DataError(f"missing key {key!r}", path=path)
    counts = [size for _, size in shard_entries(meta, "directory", path)]
    if sum(counts) != meta["num_examples"]:
        raise DataError("shard sizes do not add up to num_examples", path=path)
    return meta


def shard_entries(meta: Mapping[str, Any], key: str, path: Path) -> List[tuple]:
    """``[(name, num_examples)]`` of ``meta["shards"]``, checked (``path``: the meta.json):
    each entry names its shard by ``key`` (``"directory"``; ``"file"`` in the old format)
    as a plain name inside the data folder, never a path that leads out of it."""
    def fail(problem: str):
        raise DataError(problem, path=path)

    for name in ("max_seq_length", "num_examples"):
        value = meta.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            fail(f"{name} must be a positive integer, got {value!r}")
    shards = meta.get("shards")
    if not isinstance(shards, list) or not shards:
        fail(f"shards must be a non-empty list, got {shards!r}")
    entries = []
    for index, shard in enumerate(shards):
        if not isinstance(shard, dict) or key not in shard:
            fail(f"shards[{index}] must be an object with {key!r} and 'num_examples', got "
                 f"{shard!r}")
        name, size = shard[key], shard.get("num_examples")
        if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name \
                or "\\" in name:
            fail(f"shards[{index}].{key} must be a name inside the data folder, got {name!r}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            fail(f"shards[{index}].num_examples must be a positive integer, got {size!r}")
        entries.append((name, size))
    return entries


def open_shard(directory: Path, num_examples: int, max_seq_length: int
               ) -> Dict[str, np.ndarray]:
    """The arrays of a shard, memory-mapped read-only, checked against ``meta.json``."""
    expected = {"input_ids": (num_examples, max_seq_length), "lengths": (num_examples,),
                "token_type_ids": (num_examples, max_seq_length),
                "word_starts": (num_examples, max_seq_length)}
    arrays = {}
    for name, shape in expected.items():
        path = directory / f"{name}.npy"
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise DataError("shard file does not exist", path=path) from None
        except (ValueError, OSError) as err:
            raise DataError(f"not a valid .npy array file ({err})", path=path) from None
        if array.shape != shape:
            raise DataError(f"{name} has shape {array.shape}, meta.json says {shape}",
                            path=path)
        if array.dtype != ARRAYS[name]:
            raise DataError(f"{name} has dtype {array.dtype}, expected "
                            f"{np.dtype(ARRAYS[name])}", path=path)
        arrays[name] = array
    return arrays

"""Pretraining data: raw text -> packed token shards -> dynamically masked batches.

Creating shards (:func:`create_pretraining_data`, behind ``python -m
bortkit.data.create_pretraining_data``) streams the corpus: lines are read one at a time,
tokenized in chunks, packed and written out a shard at a time, so memory stays flat however
large the corpus is. The corpus is a sequence of *units*:

- by default a unit is a document, a run of non-blank lines ended by a blank line or the end
  of a file (text flows across the lines of a document);
- with ``one_sentence_per_line`` every non-blank line is a unit of its own.

Units are packed greedily, in order, into examples of at most ``max_seq_length`` tokens
(specials included): a unit that no longer fits starts the next example, and a unit too long
for an example of its own fills examples to the brim, cut at word boundaries. No token is
lost or repeated. With ``sentence_pairs`` each example is split in two, ``A`` and its
continuation ``B``, at a randomly chosen unit boundary (else word boundary) and laid out
with the tokenizer's pair format (``[CLS] A [SEP] B [SEP]`` with B typed 1 for BERT;
``<s> A </s></s> B </s>`` typed 0 for RoBERTa-style BPE).

Output directory::

    DIR/shard-00000.npz   input_ids int32 (N, L) right-padded with pad_id, lengths int32 (N,),
                          token_type_ids int8 (N, L), word_starts bool (N, L)
    DIR/tokenizer/        the tokenizer (Tokenizer.save)
    DIR/meta.json         written last: a directory without it is incomplete

Everything is built in a temporary directory beside ``DIR`` and renamed into place at the
end, so a failed run leaves nothing behind.

Training reads the shards through :class:`PretrainingDataset`, which masks at batch time
(dynamic masking, as in RoBERTa): the masks of an example depend only on ``(seed, epoch,
example index)``, so they are the same whatever the number of ranks or the step a run
resumed from.
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import random
import struct
import sys
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import (Any, Deque, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple,
                    Union)

import numpy as np
from tqdm import tqdm

from ..errors import BortkitError, ConfigError, DataError
from ..io import atomic_directory, atomic_write, write_json
from ..tokenizers import Tokenizer, load_tokenizer, train_sentencepiece

__all__ = ["FORMAT", "PretrainingExample", "Batch", "PretrainingDataset", "create_pretraining_data",
           "tokenize_corpus", "tokenizer_fingerprint", "read_meta", "input_files"]

FORMAT = "bortkit-pretraining-v1"
META_NAME = "meta.json"
TOKENIZER_DIR = "tokenizer"
SHARD_NAME = "shard-{:05d}.npz"
ARRAYS = ("input_ids", "lengths", "token_type_ids", "word_starts")

#: Lines sampled (reservoir sampling) to train a SentencePiece tokenizer on.
SPM_SAMPLE_LINES = 300_000
_CHUNK_BYTES = 1 << 20   # text handed to the tokenizer at a time
_MAX_OPEN_SHARDS = 64    # memory-mapped shards kept open by a dataset

PathLike = Union[str, os.PathLike]


# ============================================================================ reading text
def input_files(inputs: Union[PathLike, Sequence[PathLike]]) -> List[Path]:
    """The files named by ``inputs``: files as given, folders as their files (recursively,
    sorted, hidden ones skipped)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    files: List[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise DataError("input folder has no files", path=path)
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise DataError("input is not a regular file or folder", path=path)
        else:
            raise BortkitError("input does not exist", path=path)
    if not files:
        raise ConfigError("no input files given")
    return files


def _raw_lines(path: Path) -> Iterator[Tuple[int, int, bytes]]:
    """(line number, byte offset, raw bytes) of every line of a file."""
    offset = 0
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                yield number, offset, raw
                offset += len(raw)
    except OSError as err:
        raise BortkitError(f"cannot read file: {err.strerror or err}", path=path) from None


def _decode_line(raw: bytes, path: Path, number: int) -> str:
    """The stripped text of a line; binary data or invalid UTF-8 is a DataError."""
    if b"\x00" in raw:
        raise DataError(f"binary data, not text: NUL byte at column {raw.index(0) + 1}",
                        path=path, line=number)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"not valid UTF-8 text (byte {err.start + 1} of the line)",
                        path=path, line=number) from None
    if number == 1:
        text = text.lstrip("\ufeff")
    return text.strip()


def _read_chunks(files: Sequence[Path], bar: tqdm) -> Iterator[List[Optional[str]]]:
    """Chunks of the corpus: the text of each non-blank line, None for a blank line or the
    end of a file (a unit boundary)."""
    chunk: List[Optional[str]] = []
    size = 0
    for path in files:
        for number, _, raw in _raw_lines(path):
            text = _decode_line(raw, path, number)
            chunk.append(text or None)
            size += len(raw)
            if size >= _CHUNK_BYTES:
                bar.update(size)
                yield chunk
                chunk, size = [], 0
        chunk.append(None)
    bar.update(size)
    if chunk:
        yield chunk


# =============================================================================== tokenizing
Encoded = Tuple[List[int], List[bool]]


class _LineEncoder:
    """Ids and word starts of lines of text.

    Special tokens written literally in the text (other than the unknown token) are dropped:
    they would break the example layout. Whether a WordPiece or SentencePiece token starts a
    word depends on the token alone (``##`` / ``▁``) and on whether a special token precedes
    it, so for those kinds ``Tokenizer.word_start_mask`` is asked once for the whole
    vocabulary and its answers tabulated; byte-level BPE also looks at the previous ordinary
    token, so it is asked line by line.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.layout_ids = {tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id,
                           tokenizer.mask_id}
        self.starts_word: Optional[List[bool]] = None
        if tokenizer.kind in ("wordpiece", "sentencepiece"):
            ordinary = [i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_ids]
            answers = tokenizer.word_start_mask(ordinary[:1] + ordinary)[1:]
            self.starts_word = [True] * tokenizer.vocab_size
            for index, starts in zip(ordinary, answers):
                self.starts_word[index] = starts

    def __call__(self, texts: Sequence[str]) -> List[Encoded]:
        encoded = []
        for text in texts:
            ids = [index for index in self.tokenizer.encode(text) if index not in self.layout_ids]
            encoded.append((ids, self._word_starts(ids)))
        return encoded

    def _word_starts(self, ids: List[int]) -> List[bool]:
        if self.starts_word is None:
            return self.tokenizer.word_start_mask(ids)
        starts = [self.starts_word[index] for index in ids]
        starts[:1] = [True]
        unk = self.tokenizer.unk_id  # the only special token left in the text
        if unk in ids:
            for position in range(1, len(ids)):
                if ids[position - 1] == unk:
                    starts[position] = True
        return starts


_worker_encoder: Optional[_LineEncoder] = None


def _set_worker_encoder(encoder: _LineEncoder) -> None:
    global _worker_encoder
    _worker_encoder = encoder


def _encode_in_worker(texts: Sequence[str]) -> List[Encoded]:
    return _worker_encoder(texts)


def _encoded_chunks(chunks: Iterator[List[Optional[str]]], encoder: _LineEncoder,
                    workers: int) -> Iterator[Tuple[List[Optional[str]], List[Encoded]]]:
    """(chunk, encodings of its texts) in corpus order; ``workers`` > 1 tokenizes in forked
    processes with at most ``2 * workers`` chunks in flight (so memory stays bounded)."""
    if workers == 1:
        for chunk in chunks:
            yield chunk, encoder([text for text in chunk if text is not None])
        return
    context = multiprocessing.get_context("fork")  # the encoder is inherited, not pickled
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                initializer=_set_worker_encoder,
                                                initargs=(encoder,)) as pool:
        pending: Deque[Tuple[List[Optional[str]], concurrent.futures.Future]] = \
            collections.deque()
        for chunk in chunks:
            texts = [text for text in chunk if text is not None]
            pending.append((chunk, pool.submit(_encode_in_worker, texts)))
            if len(pending) >= 2 * workers:
                done_chunk, future = pending.popleft()
                yield done_chunk, future.result()
        while pending:
            done_chunk, future = pending.popleft()
            yield done_chunk, future.result()


# ================================================================================= packing
class PretrainingExample(NamedTuple):
    """One packed sequence, specials included."""

    input_ids: List[int]
    token_type_ids: List[int]
    word_starts: List[bool]


class _Packer:
    """Packs a stream of units (each fed as one or more lines of ids) into examples.

    The buffer holds the tokens of the next example(s); ``_unit_start`` is where the current
    unit begins in it and ``_boundaries`` every unit start after position 0 (the candidate
    A/B split points of sentence pairs).
    """

    def __init__(self, tokenizer: Tokenizer, max_seq_length: int, sentence_pairs: bool,
                 seed: int):
        self.tokenizer = tokenizer
        self.sentence_pairs = sentence_pairs
        self.capacity = max_seq_length - tokenizer.num_special_tokens(pair=sentence_pairs)
        self._rng = random.Random(seed)
        self._ids: List[int] = []
        self._starts: List[bool] = []
        self._boundaries: List[int] = []
        self._unit_start = 0
        self._in_unit = False
        self.ready: List[PretrainingExample] = []

    def add(self, ids: List[int], starts: List[bool]) -> None:
        """Append a line of the current unit (starting a unit if none is open)."""
        if not ids:
            return
        if not self._in_unit:
            self._in_unit = True
            self._unit_start = len(self._ids)
            if self._unit_start > 0:
                self._boundaries.append(self._unit_start)
        self._ids.extend(ids)
        self._starts.extend(starts)
        while len(self._ids) > self.capacity:
            unit_length = len(self._ids) - self._unit_start
            if 0 < self._unit_start and unit_length <= self.capacity:
                self._emit(self._unit_start)  # the unit fits in the next example whole
            else:
                self._emit(self._last_word_start())

    def end_unit(self) -> None:
        self._in_unit = False

    def finish(self) -> None:
        """Emit what is left in the buffer."""
        while self._ids:
            self._emit(min(len(self._ids), self.capacity))
        self._in_unit = False

    def _last_word_start(self) -> int:
        """The cut that fills an example most while keeping words whole (if possible)."""
        for position in range(self.capacity, 0, -1):
            if self._starts[position]:
                return position
        return self.capacity

    def _emit(self, length: int) -> None:
        ids, starts = self._ids[:length], self._starts[:length]
        split = self._split_point(length) if self.sentence_pairs else length
        self.ready.append(self._layout(ids[:split], starts[:split],
                                       ids[split:], starts[split:]))
        del self._ids[:length], self._starts[:length]
        self._boundaries = [b - length for b in self._boundaries if b > length]
        self._unit_start = max(self._unit_start - length, 0)

    def _split_point(self, length: int) -> int:
        """Where B begins: a random unit boundary, else a random word start, else anywhere."""
        if length < 2:
            return length
        candidates = [b for b in self._boundaries if b < length]
        if not candidates:
            candidates = [i for i in range(1, length) if self._starts[i]]
        if not candidates:
            return self._rng.randrange(1, length)
        return self._rng.choice(candidates)

    def _layout(self, ids_a: List[int], starts_a: List[bool], ids_b: List[int],
                starts_b: List[bool]) -> PretrainingExample:
        """The example with the tokenizer's specials; word starts follow the ids (specials
        and the token after one start a word)."""
        encoding = self.tokenizer.format_ids(ids_a, ids_b or None)
        input_ids = encoding["input_ids"]
        word_starts = [True] * len(input_ids)
        word_starts[2:1 + len(ids_a)] = starts_a[1:]
        if ids_b:
            end = len(input_ids) - 1
            word_starts[end - len(ids_b) + 1:end] = starts_b[1:]
        return PretrainingExample(input_ids, encoding["token_type_ids"], word_starts)


def tokenize_corpus(inputs: Union[PathLike, Sequence[PathLike]],
                    tokenizer: Union[Tokenizer, PathLike], *, max_seq_length: int = 128,
                    sentence_pairs: bool = False, one_sentence_per_line: bool = False,
                    seed: int = 0, workers: int = 1, progress: bool = False
                    ) -> Iterator[PretrainingExample]:
    """Stream the packed examples of a text corpus (files or folders), in corpus order.

    ``seed`` only drives where sentence pairs are split. ``workers`` > 1 tokenizes in that
    many processes. ``progress`` shows a tqdm bar of bytes read on stderr.
    """
    tokenizer = _as_tokenizer(tokenizer)
    _check_length(tokenizer, max_seq_length, sentence_pairs)
    _check_int("workers", workers, 1)
    _check_int("seed", seed, 0)
    files = input_files(inputs)
    packer = _Packer(tokenizer, max_seq_length, sentence_pairs, seed)
    total = sum(path.stat().st_size for path in files)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="tokenizing",
              disable=not progress, file=sys.stderr) as bar:
        chunks = _encoded_chunks(_read_chunks(files, bar), _LineEncoder(tokenizer), workers)
        for chunk, encoded in chunks:
            pieces = iter(encoded)
            for text in chunk:
                if text is None:
                    packer.end_unit()
                    continue
                packer.add(*next(pieces))
                if one_sentence_per_line:
                    packer.end_unit()
                if packer.ready:
                    yield from packer.ready
                    packer.ready.clear()
        packer.finish()
        yield from packer.ready


# ================================================================================= writing
class _ShardWriter:
    """Collects examples into fixed-size arrays and writes a shard each time they fill."""

    def __init__(self, directory: Path, max_seq_length: int, shard_size: int, pad_id: int):
        self.directory = directory
        self.shard_size = shard_size
        self.pad_id = pad_id
        self.shards: List[Dict[str, Any]] = []
        self.num_tokens = 0
        self._arrays = {
            "input_ids": np.empty((shard_size, max_seq_length), np.int32),
            "lengths": np.empty(shard_size, np.int32),
            "token_type_ids": np.empty((shard_size, max_seq_length), np.int8),
            "word_starts": np.empty((shard_size, max_seq_length), bool),
        }
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
        with atomic_write(self.directory / name, "wb") as fh:
            np.savez(fh, **{key: array[:self._count] for key, array in self._arrays.items()})
        self.shards.append({"file": name, "num_examples": self._count})
        self._count = 0
        self._clear()


def create_pretraining_data(inputs: Union[PathLike, Sequence[PathLike]],
                            tokenizer: Union[Tokenizer, PathLike, None],
                            output_dir: PathLike, *, max_seq_length: int = 128,
                            sentence_pairs: bool = False, one_sentence_per_line: bool = False,
                            shard_size: int = 10_000,
                            train_sentencepiece_vocab: Optional[int] = None,
                            spm_sample_lines: int = SPM_SAMPLE_LINES, seed: int = 0,
                            workers: int = 1, overwrite: bool = False,
                            progress: bool = False) -> Dict[str, Any]:
    """Tokenize and pack a corpus into a shard directory; return its ``meta.json`` content.

    Args:
        inputs: text files or folders of them (UTF-8, one paragraph or sentence a line).
        tokenizer: a :class:`~bortkit.tokenizers.Tokenizer` or a path for
            :func:`~bortkit.tokenizers.load_tokenizer`; None with ``train_sentencepiece_vocab``.
        output_dir: the directory to create (it must not exist unless ``overwrite``).
        max_seq_length: L, tokens per example including the specials.
        sentence_pairs: lay examples out as ``A`` + its continuation ``B``.
        one_sentence_per_line: every line is a unit (default: blank-line separated blocks).
        shard_size: examples per shard file.
        train_sentencepiece_vocab: train a SentencePiece tokenizer of this vocabulary size
            on (a sample of at most ``spm_sample_lines`` lines of) the inputs first.
        seed: seed of the pair split points and of the SentencePiece sample.
        workers: tokenizer processes.
        overwrite: replace an existing ``output_dir``.
        progress: show tqdm progress bars on stderr.
    """
    if (tokenizer is None) == (train_sentencepiece_vocab is None):
        raise ConfigError("give exactly one of a tokenizer and train_sentencepiece_vocab")
    for name, value, minimum in (("shard_size", shard_size, 1), ("workers", workers, 1),
                                 ("seed", seed, 0)):
        _check_int(name, value, minimum)
    if train_sentencepiece_vocab is not None:
        _check_int("train_sentencepiece_vocab", train_sentencepiece_vocab, 6)
        _check_int("spm_sample_lines", spm_sample_lines, 1)
        _check_int("max_seq_length", max_seq_length, 5 if sentence_pairs else 3)
    else:
        tokenizer = _as_tokenizer(tokenizer)
        _check_length(tokenizer, max_seq_length, sentence_pairs)
    files = input_files(inputs)
    output_dir = Path(output_dir)
    _check_output(output_dir, overwrite)

    with atomic_directory(output_dir) as tmp:
        if train_sentencepiece_vocab is not None:
            tokenizer = _train_sentencepiece(files, tmp, train_sentencepiece_vocab,
                                             spm_sample_lines, seed, progress)
            _check_length(tokenizer, max_seq_length, sentence_pairs)
        else:
            tokenizer.save(tmp / TOKENIZER_DIR)
        writer = _ShardWriter(tmp, max_seq_length, shard_size, tokenizer.pad_id)
        for example in tokenize_corpus(files, tokenizer, max_seq_length=max_seq_length,
                                       sentence_pairs=sentence_pairs,
                                       one_sentence_per_line=one_sentence_per_line,
                                       seed=seed, workers=workers, progress=progress):
            writer.add(example)
        shards = writer.close()
        if not shards:
            raise DataError("the corpus has no tokens (empty or blank lines only)",
                            path=_describe(inputs))
        meta = {
            "format": FORMAT,
            "max_seq_length": max_seq_length,
            "num_examples": sum(shard["num_examples"] for shard in shards),
            "num_tokens": writer.num_tokens,
            "shards": shards,
            "tokenizer": _tokenizer_meta(tokenizer),
            "tokenizer_fingerprint": tokenizer_fingerprint(tmp / TOKENIZER_DIR),
            "sentence_pairs": sentence_pairs,
            "one_sentence_per_line": one_sentence_per_line,
            "seed": seed,
            "sources": [str(path.resolve()) for path in files],
        }
        write_json(tmp / META_NAME, meta)
    return meta


def _as_tokenizer(tokenizer: Union[Tokenizer, PathLike]) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        return load_tokenizer(tokenizer)
    raise ConfigError(f"tokenizer must be a Tokenizer or a path, got {type(tokenizer).__name__}")


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_length(tokenizer: Tokenizer, max_seq_length: int, sentence_pairs: bool) -> None:
    """An example must hold the specials and at least one token (two for a pair)."""
    specials = tokenizer.num_special_tokens(pair=sentence_pairs)
    _check_int("max_seq_length", max_seq_length, specials + 1 + int(sentence_pairs))


def _describe(inputs: Union[PathLike, Sequence[PathLike]]) -> str:
    """The inputs as named by the user, for error messages."""
    if isinstance(inputs, (str, os.PathLike)):
        return os.fspath(inputs)
    return ", ".join(map(os.fspath, inputs))


def _check_output(output_dir: Path, overwrite: bool) -> None:
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise BortkitError("output exists and is not a directory", path=output_dir)
    if not overwrite and any(output_dir.iterdir()):
        raise BortkitError("output directory exists and is not empty (use overwrite / "
                           "--overwrite to replace it)", path=output_dir)


def _tokenizer_meta(tokenizer: Tokenizer) -> Dict[str, Any]:
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


def _train_sentencepiece(files: Sequence[Path], directory: Path, vocab_size: int,
                         sample_lines: int, seed: int, progress: bool) -> Tokenizer:
    """Train a SentencePiece tokenizer on a reservoir sample of the corpus lines and save it
    in ``directory/tokenizer``."""
    sample = directory / "spm-sample.txt"
    _write_line_sample(files, sample, sample_lines, seed, progress)
    try:
        return train_sentencepiece([sample], directory / TOKENIZER_DIR, vocab_size=vocab_size,
                                   seed=seed)
    finally:
        sample.unlink()


def _write_line_sample(files: Sequence[Path], output: Path, size: int, seed: int,
                       progress: bool) -> None:
    """Write a uniform sample of at most ``size`` non-blank lines (reservoir sampling over
    (file, offset) pairs, so only the positions are held in memory), checking every line."""
    rng = random.Random(seed)
    reservoir: List[Tuple[int, int]] = []
    seen = 0
    total = sum(path.stat().st_size for path in files)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc="sampling for SentencePiece", disable=not progress, file=sys.stderr) as bar:
        for file_index, path in enumerate(files):
            for number, offset, raw in _raw_lines(path):
                bar.update(len(raw))
                if not _decode_line(raw, path, number):
                    continue
                if seen < size:
                    reservoir.append((file_index, offset))
                else:
                    slot = rng.randrange(seen + 1)
                    if slot < size:
                        reservoir[slot] = (file_index, offset)
                seen += 1
    if not reservoir:
        raise DataError("the corpus has no text (empty or blank lines only)",
                        path=", ".join(map(str, files)))
    reservoir.sort()
    with atomic_write(output, "w", encoding="utf-8") as out:
        for file_index, group in _group_by_file(reservoir):
            with open(files[file_index], "rb") as fh:
                for offset in group:
                    fh.seek(offset)
                    out.write(fh.readline().decode("utf-8").strip() + "\n")


def _group_by_file(positions: List[Tuple[int, int]]) -> Iterator[Tuple[int, List[int]]]:
    groups: Dict[int, List[int]] = collections.defaultdict(list)
    for file_index, offset in positions:
        groups[file_index].append(offset)
    return iter(sorted(groups.items()))


# ============================================================================ reading shards
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
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON: {err}", path=path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise DataError(f"format must be {FORMAT!r}, got {found!r}", path=path)
    for key in ("max_seq_length", "num_examples", "shards", "tokenizer"):
        if key not in meta:
            raise DataError(f"missing key {key!r}", path=path)
    counts = [shard.get("num_examples", -1) for shard in meta["shards"]]
    if sum(counts) != meta["num_examples"] or min(counts, default=0) < 1:
        raise DataError("shard sizes do not add up to num_examples", path=path)
    return meta


def _open_shard(path: Path, num_examples: int, max_seq_length: int) -> Dict[str, np.ndarray]:
    """The arrays of a shard, memory-mapped (np.savez stores members uncompressed) so that
    random rows can be read without loading the shard; compressed shards load whole."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {name: archive.getinfo(f"{name}.npy") for name in ARRAYS}
    except FileNotFoundError:
        raise DataError("shard file does not exist", path=path) from None
    except KeyError as err:
        raise DataError(f"shard has no array {err.args[0]}", path=path) from None
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"not a valid shard (.npz) file: {err}", path=path) from None
    if any(info.compress_type != zipfile.ZIP_STORED for info in infos.values()):
        with np.load(path) as data:
            arrays = {name: data[name] for name in ARRAYS}
    else:
        whole = np.memmap(path, dtype=np.uint8, mode="r")
        with open(path, "rb") as fh:
            arrays = {name: _member_view(fh, whole, info) for name, info in infos.items()}
    expected = {"input_ids": (num_examples, max_seq_length), "lengths": (num_examples,),
                "token_type_ids": (num_examples, max_seq_length),
                "word_starts": (num_examples, max_seq_length)}
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise DataError(f"{name} has shape {arrays[name].shape}, meta.json says {shape}",
                            path=path)
    return arrays


def _member_view(fh, whole: np.memmap, info: zipfile.ZipInfo) -> np.ndarray:
    """A view into ``whole`` (the memory-mapped .npz) of one stored .npy member."""
    fh.seek(info.header_offset)
    header = fh.read(30)
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    fh.seek(info.header_offset + 30 + name_length + extra_length)
    version = np.lib.format.read_magic(fh)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran_order, dtype = read_header(fh)
    start = fh.tell()
    count = int(np.prod(shape))
    flat = whole[start:start + count * dtype.itemsize].view(dtype)
    return flat.reshape(shape, order="F" if fortran_order else "C")


# ================================================================================= masking
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


class _Masker:
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


# ================================================================================= batches
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
        _check_int("batch_size", batch_size, 1)
        _check_int("world_size", world_size, 1)
        _check_int("seed", seed, 0)
        _check_int("max_predictions", max_predictions, 1)
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
        self._masker = _Masker(meta["tokenizer"], seed, mlm_probability, max_predictions,
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
        _check_int("start_step", start_step, 0)
        step = start_step
        while num_steps is None or step < start_step + num_steps:
            yield step, self.batch(step)
            step += 1

    def batch(self, step: int) -> Batch:
        """This rank's batch at global ``step`` (epoch ``step // len(self)``)."""
        _check_int("step", step, 0)
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
        _check_int("index", index, 0)
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
                path = self.directory / self.meta["shards"][shard]["file"]
                arrays = _open_shard(path, self._shard_sizes[shard], self.max_seq_length)
                self._open[shard] = arrays
                if len(self._open) > _MAX_OPEN_SHARDS:
                    self._open.popitem(last=False)
            else:
                self._open.move_to_end(shard)
            return arrays

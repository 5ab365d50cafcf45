"""Reading a text corpus: its files, its lines (checked UTF-8 text), chunks of lines for the
tokenizer, and a uniform sample of lines (for training a SentencePiece tokenizer).

The corpus is a sequence of *units*: by default a unit is a document, a run of non-blank
lines ended by a blank line or the end of a file; with ``one_sentence_per_line`` every
non-blank line is a unit of its own. :func:`read_chunks` marks unit boundaries with None.
"""
from __future__ import annotations

import collections
import os
import random
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

from tqdm import tqdm

from ..errors import BortkitError, ConfigError, DataError
from ..io import atomic_write

__all__ = ["PathLike", "input_files", "raw_lines", "decode_line", "read_chunks",
           "write_line_sample", "describe_inputs"]

PathLike = Union[str, os.PathLike]
CHUNK_BYTES = 1 << 20   # text handed to the tokenizer at a time


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


def raw_lines(path: Path) -> Iterator[Tuple[int, int, bytes]]:
    """(line number, byte offset, raw bytes) of every line of a file."""
    offset = 0
    try:
        with open(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                yield number, offset, raw
                offset += len(raw)
    except OSError as err:
        raise BortkitError(f"cannot read file: {err.strerror or err}", path=path) from None


def decode_line(raw: bytes, path: Path, number: int) -> str:
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


def read_chunks(files: Sequence[Path], bar: tqdm) -> Iterator[List[Optional[str]]]:
    """Chunks of the corpus: the text of each non-blank line, None for a blank line or the
    end of a file (a unit boundary)."""
    chunk: List[Optional[str]] = []
    size = 0
    for path in files:
        for number, _, raw in raw_lines(path):
            text = decode_line(raw, path, number)
            chunk.append(text or None)
            size += len(raw)
            if size >= CHUNK_BYTES:
                bar.update(size)
                yield chunk
                chunk, size = [], 0
        chunk.append(None)
    bar.update(size)
    if chunk:
        yield chunk


def write_line_sample(files: Sequence[Path], output: Path, size: int, seed: int,
                       progress: bool) -> None:
    """Write a uniform sample of at most ``size`` non-blank lines (reservoir sampling over
    (file, offset) pairs, so only the positions are held in memory), checking every line."""
    rng = random.Random(seed)
    reservoir: List[Tuple[int, int]] = []
    seen = 0
    total = sum(path.stat().st_size for path in files)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc="sampling for SentencePiece", disable=None if progress else True,
              file=sys.stderr) as bar:
        for file_index, path in enumerate(files):
            for number, offset, raw in raw_lines(path):
                bar.update(len(raw))
                if not decode_line(raw, path, number):
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


def describe_inputs(inputs: Union[PathLike, Sequence[PathLike]]) -> str:
    """The inputs as named by the user, for error messages."""
    if isinstance(inputs, (str, os.PathLike)):
        return os.fspath(inputs)
    return ", ".join(map(os.fspath, inputs))

"""Convert a pretraining data directory of the old format to the current one, in place.

    python -m bortkit.data.convert_shards DIR [DIR ...]

``bortkit-pretraining-v1`` directories hold one ``shard-NNNNN.npz`` per shard; the current
format (:mod:`bortkit.data.shards`) holds one ``.npy`` per array in ``shard-NNNNN/``, read
through memory maps. The conversion reads one shard at a time (memory stays at one shard),
writes its new directory, then replaces ``meta.json`` (the switch-over, atomic) and only then
deletes the ``.npz`` files. Interrupted at any point, the directory is still readable in one
of the two formats, and running the command again finishes the job. The tokenizer, the
examples and their order are unchanged, so training batches are identical.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from ..errors import BortkitError, DataError, run_cli
from ..io import write_json
from .corpus import PathLike
from .shards import (ARRAYS, FORMAT, FORMAT_V1, META_NAME, SHARD_NAME, read_meta,
                     shard_entries, write_shard)

__all__ = ["convert_shards", "conversion_plan"]


def convert_shards(directory: PathLike) -> bool:
    """Convert ``directory`` in place; False if it was already in the current format."""
    plan = conversion_plan(directory)
    if plan is None:
        return False
    directory, meta, entries = Path(directory), *plan
    path = directory / META_NAME
    shards = []
    for index, (name, size) in enumerate(entries):
        arrays = _read_npz(directory / name, size, meta["max_seq_length"])
        target = directory / SHARD_NAME.format(index)
        if target.exists():  # left by an interrupted conversion
            shutil.rmtree(target)
        write_shard(target, arrays)
        shards.append({"directory": target.name, "num_examples": size})
    old_files = [directory / name for name, _ in entries]
    write_json(path, {**meta, "format": FORMAT, "shards": shards})
    read_meta(directory)
    for old in old_files:
        old.unlink()
    return True


def conversion_plan(directory: PathLike) -> Optional[tuple]:
    """Every check of a conversion, with nothing written: ``(meta, [(shard file name,
    examples)])`` of an old-format folder, None when it is already in the current format.
    The shard names must be plain names inside ``directory`` and the files must exist."""
    directory = Path(directory)
    path = directory / META_NAME
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no meta.json: not a pretraining data directory", path=directory) \
            from None
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read meta.json ({err})", path=path) from None
    found = meta.get("format") if isinstance(meta, dict) else None
    if found == FORMAT:
        read_meta(directory)  # check it
        return None
    if found != FORMAT_V1:
        raise DataError(f"format must be {FORMAT_V1!r} (or already {FORMAT!r}), got "
                        f"{found!r}", path=path)
    entries = shard_entries(meta, "file", path)
    for name, _ in entries:
        if not (directory / name).is_file():
            raise DataError("shard file does not exist", path=directory / name)
    return meta, entries


def _read_npz(path: Path, num_examples: int, max_seq_length: int) -> Dict[str, np.ndarray]:
    """The arrays of a v1 shard (stored or compressed ``.npz``), checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in ARRAYS}
    except FileNotFoundError:
        raise DataError("shard file does not exist", path=path) from None
    except KeyError as err:
        raise DataError(f"shard has no array {err.args[0]}", path=path) from None
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise DataError(f"not a valid shard (.npz) file: {err}", path=path) from None
    for name, array in arrays.items():
        rows = (num_examples,) if name == "lengths" else (num_examples, max_seq_length)
        if array.shape != rows:
            raise DataError(f"{name} has shape {array.shape}, meta.json says {rows}", path=path)
    return arrays


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bortkit.data.convert_shards", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directories", nargs="+", metavar="DIR",
                        help="pretraining data directories to convert in place")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    for directory in args.directories:
        if not Path(directory).is_dir():
            raise BortkitError("pretraining data directory does not exist", path=directory)
    for directory in args.directories:  # every folder checked before any is touched
        conversion_plan(directory)
    from ..rundir import claim
    for directory in args.directories:
        with claim(directory, create=False, option="the data folder"):  # one converter
            done = convert_shards(directory)
        print(f"{directory}: {'converted to' if done else 'already in'} {FORMAT}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

"""``python -m bortkit.predict --model best/ --input texts.txt --output preds.jsonl``

Runs a fine-tuned checkpoint (a ``best/`` directory of ``python -m bortkit.finetune``, a Hugging
Face ``...ForSequenceClassification`` directory) over a file and writes one JSON object per
input, in input order: ``{"label": ..., "score": ...}`` for a classifier, ``{"value": ...}``
for a regression head. Inputs:

- ``.txt``: one text per line (an empty line is an empty text);
- ``.csv`` / ``.tsv``: a header row; ``--text-column`` (default ``text``) and, for pair tasks,
  ``--text-pair-column``;
- ``.jsonl``: one object per line with the same columns as keys.

The output is written atomically and never replaces an existing file without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Optional, Sequence

from .errors import ConfigError, DataError, run_cli

FORMATS = (".txt", ".csv", ".tsv", ".jsonl")


def _row_input(row: dict, text: str, pair: Optional[str], path: Path, line: int):
    values = []
    for column in (text, pair) if pair else (text,):
        value = row.get(column)
        if not isinstance(value, str):
            got = "missing" if value is None else f"a {type(value).__name__}"
            raise DataError(f"column {column!r} must hold text, got {got}", path=path, line=line)
        values.append(value)
    return tuple(values) if pair else values[0]


def _check_columns(found: Sequence[str], text: str, pair: Optional[str], path: Path,
                   line: int) -> None:
    for option, column in (("--text-column", text), ("--text-pair-column", pair)):
        if column is not None and column not in found:
            raise DataError(f"no column {column!r} (columns: {', '.join(found)}); pass "
                            f"{option}", path=path, line=line)


def read_inputs(path: Path, text_column: str = "text",
                pair_column: Optional[str] = None) -> list:
    """Texts (or (text, pair) tuples) of a .txt, .csv, .tsv or .jsonl file, in file order."""
    if path.suffix not in FORMATS:
        raise DataError(f"unsupported input format {path.suffix or '(none)'!r} "
                        f"({', '.join(FORMATS)})", path=path)
    if not path.is_file():
        raise DataError("input file not found", path=path)
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text ({err.reason} at byte {err.start})", path=path) from None
    lines = content.splitlines()
    if path.suffix == ".txt":
        inputs = lines
    elif path.suffix == ".jsonl":
        inputs = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON ({err.msg})", path=path, line=number) from None
            if not isinstance(row, dict):
                raise DataError("expected a JSON object", path=path, line=number)
            _check_columns(list(row), text_column, pair_column, path, number)
            inputs.append(_row_input(row, text_column, pair_column, path, number))
    else:
        reader = csv.reader(lines, delimiter="\t" if path.suffix == ".tsv" else ",")
        try:
            header = next(reader, None)
            if header is None:
                raise DataError("empty file: expected a header row", path=path)
            _check_columns(header, text_column, pair_column, path, 1)
            inputs = []
            for values in reader:
                if len(values) != len(header):
                    raise DataError(f"row has {len(values)} fields, the header {len(header)}",
                                    path=path, line=reader.line_num)
                inputs.append(_row_input(dict(zip(header, values)), text_column, pair_column,
                                         path, reader.line_num))
        except csv.Error as err:
            raise DataError(f"malformed {path.suffix[1:].upper()} ({err})", path=path,
                            line=reader.line_num) from None
    if not inputs:
        raise DataError("no inputs in the file", path=path)
    return inputs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bortkit.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="fine-tuned checkpoint (best/), Hugging Face classifier directory")
    p.add_argument("--input", required=True, type=Path, help=f"file ({', '.join(FORMATS)})")
    p.add_argument("--output", required=True, type=Path, help="JSONL file to write")
    p.add_argument("--text-column", default="text", help="csv/tsv/jsonl column of the texts")
    p.add_argument("--text-pair-column", help="csv/tsv/jsonl column of the second texts")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int,
                   help="tokens per input, specials included (default: as trained)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_length is not None and args.max_length < 3:
        raise ConfigError(f"--max-length must be at least 3, got {args.max_length}")
    if args.output.exists() and not args.overwrite:
        raise DataError("already exists (pass --overwrite to replace it)", path=args.output)
    inputs = read_inputs(args.input, args.text_column, args.text_pair_column)
    from tqdm import tqdm
    from .inference import pipeline
    from .io import atomic_write
    classify = pipeline(args.model, batch_size=args.batch_size)
    positions = classify.model.config.max_length - classify.model.config.position_offset
    if args.max_length is not None:
        if args.max_length > positions:
            raise ConfigError(f"--max-length must be at most {positions} (the model's "
                              f"positions), got {args.max_length}")
        classify.max_length = args.max_length
    with tqdm(total=len(inputs), unit="input", disable=None if args.progress else True) as bar:
        predictions = classify(inputs, progress=bar.update)
    with atomic_write(args.output, "w", encoding="utf-8") as fh:
        for prediction in predictions:
            fh.write(json.dumps(prediction) + "\n")
    print(f"{len(predictions)} predictions -> {args.output}")
    return 0


if __name__ == "__main__":
    run_cli(main)

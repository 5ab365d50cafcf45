"""``python -m bortkit.predict --model best/ --input texts.txt --output preds.csv``

Runs a fine-tuned model (a ``best/`` directory of ``python -m bortkit.finetune``, a Hugging
Face ``...ForSequenceClassification`` directory, a saved int8 model or an ONNX export folder)
over a file, through :func:`bortkit.pipeline`, and writes one row per input, in input order:
the input's ``id`` (its line number, or the ``--id-column`` value), its ``text`` (and
``text_pair``), the predicted ``label`` and its ``score`` (a regression head: ``LABEL_0`` and
the predicted value, as transformers' pipeline). Inputs:

- ``.txt``: one text per line; lines end in ``\\n`` or ``\\r\\n`` only (a form feed, NEL or
  U+2028 stays inside its line); an empty line is an error naming it;
- ``.csv`` / ``.tsv``: a header row; ``--text-column`` (default ``text``) and, for pair tasks,
  ``--text-pair-column``; quoted fields may span lines;
- ``.jsonl``: one object per line with the same columns as keys.

The output's extension names its format: ``.jsonl`` (one JSON object per line), ``.csv`` or
``.tsv`` (a header row). It is written atomically and never replaces an existing file
without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Optional, Sequence

from .errors import ConfigError, DataError, run_cli

FORMATS = (".txt", ".csv", ".tsv", ".jsonl")
OUTPUT_FORMATS = (".jsonl", ".csv", ".tsv")


def _row_input(row: dict, text: str, pair: Optional[str], path: Path, line: int):
    values = []
    for column in (text, pair) if pair else (text,):
        value = row.get(column)
        if not isinstance(value, str):
            got = "missing" if value is None else f"a {type(value).__name__}"
            raise DataError(f"column {column!r} must hold text, got {got}", path=path, line=line)
        if not value.strip():
            raise DataError(f"column {column!r} is empty: nothing to classify", path=path,
                            line=line)
        values.append(value)
    return tuple(values) if pair else values[0]


def _row_id(row: dict, id_column: Optional[str], path: Path, line: int):
    if id_column is None:
        return line
    value = row.get(id_column)
    if value is None or isinstance(value, (dict, list)):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise DataError(f"column {id_column!r} must hold an id, got {got}", path=path, line=line)
    return value


def _check_columns(found: Sequence[str], columns: dict, path: Path, line: int) -> None:
    duplicates = sorted({name for name in found if list(found).count(name) > 1})
    if duplicates:
        raise DataError(f"duplicate column name(s) in the header: {', '.join(duplicates)}",
                        path=path, line=line)
    for option, column in columns.items():
        if column is not None and column not in found:
            raise DataError(f"no column {column!r} (columns: {', '.join(found)}); pass "
                            f"{option}", path=path, line=line)


def _unique_keys(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate key(s) {', '.join(map(repr, duplicates))}")
    return dict(pairs)


def read_inputs(path: Path, text_column: str = "text", pair_column: Optional[str] = None,
                id_column: Optional[str] = None) -> tuple[list, list]:
    """(ids, inputs) of a .txt, .csv, .tsv or .jsonl file, in file order: an input is a text
    or a (text, pair) tuple; an id the input's line number (where its row starts) or its
    ``id_column`` value."""
    from .tasks.base import read_text_lines
    if path.suffix not in FORMATS:
        raise DataError(f"unsupported input format {path.suffix or '(none)'!r} "
                        f"({', '.join(FORMATS)})", path=path)
    if not path.is_file():
        raise DataError("input file not found", path=path)
    if path.suffix == ".txt" and id_column is not None:
        raise ConfigError("--id-column needs a .csv, .tsv or .jsonl --input (a .txt line's id "
                          "is its line number)")
    columns = {"--text-column": text_column, "--text-pair-column": pair_column,
               "--id-column": id_column}
    lines = read_text_lines(path)  # \n and \r\n only; UTF-8 and BOM checks
    ids, inputs = [], []
    if path.suffix == ".txt":
        for number, line in enumerate(lines, 1):
            if not line.strip():
                raise DataError("empty line: nothing to classify", path=path, line=number)
            ids.append(number)
            inputs.append(line)
    elif path.suffix == ".jsonl":
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as err:
                raise DataError(f"invalid JSON ({err.msg})", path=path, line=number) from None
            except ValueError as err:  # e.g. an integer of more digits than Python converts
                raise DataError(f"invalid JSON ({err})", path=path, line=number) from None
            if not isinstance(row, dict):
                raise DataError("expected a JSON object", path=path, line=number)
            _check_columns(list(row), columns, path, number)
            ids.append(_row_id(row, id_column, path, number))
            inputs.append(_row_input(row, text_column, pair_column, path, number))
    else:
        # with their newlines back, so a quoted field may span lines as spreadsheets write it
        reader = csv.reader((line + "\n" for line in lines),
                            delimiter="\t" if path.suffix == ".tsv" else ",", strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise DataError("empty file: expected a header row", path=path)
            _check_columns(header, columns, path, 1)
            start = reader.line_num + 1
            for values in reader:
                if len(values) != len(header):
                    raise DataError(f"row has {len(values)} fields, the header {len(header)}",
                                    path=path, line=start)
                row = dict(zip(header, values))
                ids.append(_row_id(row, id_column, path, start))
                inputs.append(_row_input(row, text_column, pair_column, path, start))
                start = reader.line_num + 1
        except csv.Error as err:
            raise DataError(f"malformed {path.suffix[1:].upper()} ({err})", path=path,
                            line=reader.line_num) from None
    if not inputs:
        raise DataError("no inputs in the file", path=path)
    return ids, inputs


def output_rows(ids: Sequence, inputs: Sequence, predictions: Sequence[dict]) -> list[dict]:
    """One record per input: id, text (text_pair), label, score."""
    rows = []
    for id_, item, prediction in zip(ids, inputs, predictions):
        text = {"text": item} if isinstance(item, str) else \
            {"text": item[0], "text_pair": item[1]}
        rows.append({"id": id_, **text, **prediction})
    return rows


def write_rows(path: Path, rows: Sequence[dict]) -> None:
    """``rows`` in the format ``path``'s extension names, atomically."""
    from .io import atomic_write
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        if path.suffix == ".jsonl":
            for row in rows:
                fh.write(json.dumps(row) + "\n")  # ASCII: no U+2028 in a line
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]),
                                delimiter="\t" if path.suffix == ".tsv" else ",",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bortkit.predict", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="fine-tuned checkpoint (best/), Hugging Face classifier directory, "
                        "saved int8 model or ONNX export folder")
    p.add_argument("--input", required=True, type=Path, help=f"file ({', '.join(FORMATS)})")
    p.add_argument("--output", required=True, type=Path,
                   help=f"file to write; its extension names the format "
                        f"({', '.join(OUTPUT_FORMATS)})")
    p.add_argument("--text-column", default="text", help="csv/tsv/jsonl column of the texts")
    p.add_argument("--text-pair-column", help="csv/tsv/jsonl column of the second texts")
    p.add_argument("--id-column", help="csv/tsv/jsonl column of the ids (default: line number)")
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
    if args.output.suffix not in OUTPUT_FORMATS:
        raise ConfigError(f"--output must end in one of {', '.join(OUTPUT_FORMATS)} (the "
                          f"format to write), got {args.output.suffix or '(none)'!r}")
    if args.output.exists() and not args.overwrite:
        raise DataError("already exists (pass --overwrite to replace it)", path=args.output)
    ids, inputs = read_inputs(args.input, args.text_column, args.text_pair_column,
                              args.id_column)
    from tqdm import tqdm
    from .inference import pipeline
    classify = pipeline(args.model, batch_size=args.batch_size)
    if args.max_length is not None:
        if args.max_length > classify.positions:
            raise ConfigError(f"--max-length must be at most {classify.positions} (the model's "
                              f"positions), got {args.max_length}")
        classify.max_length = args.max_length
    with tqdm(total=len(inputs), unit="input", disable=None if args.progress else True) as bar:
        predictions = classify(inputs, progress=bar.update)
    from .rundir import writing
    with writing(args.output, overwrite=args.overwrite, option="--output", folder=False):
        write_rows(args.output, output_rows(ids, inputs, predictions))
    print(f"{len(predictions)} predictions -> {args.output}")
    return 0


if __name__ == "__main__":
    run_cli(main)

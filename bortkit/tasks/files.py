"""A task read from the user's own files: CSV, TSV or JSON lines with named columns.

>>> from bortkit.tasks.files import file_task
>>> task = file_task("reviews.csv", "reviews_dev.csv", text_column="review", label_column="stars")
>>> task.labels, task.metrics                   # the label set found in the training file
(('1', '2', '3', '4', '5'), ('accuracy', 'macro_f1'))
>>> examples = task.read(None, "dev")           # a FileTask ignores the data folder

The format comes from the file name: ``.csv`` (comma, standard CSV quoting as spreadsheets and
pandas write it), ``.tsv``/``.tab`` (tab, the same quoting rules) or ``.jsonl``/``.json`` (one
JSON object per line). Labels are kept as the strings the file holds, in the order
:func:`label_order` gives (numbers numerically, otherwise alphabetically), so the checkpoint
keeps their names. ``task_type`` is ``"classification"`` unless given; a label column of
non-integer numbers must say which it is. Every problem is one :class:`DataError` naming the
file and line.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ..errors import BortkitError, DataError
from .base import Example, Task, is_number, numeric_label, numeric_labels, read_text_lines

PathLike = Union[str, os.PathLike]
TASK_TYPES = ("classification", "regression")
FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class FileColumns:
    """Which columns hold the text, the optional second text and the label."""

    text: str
    label: Optional[str]
    text_pair: Optional[str] = None


@dataclass(frozen=True)
class FileTask(Task):
    """A :class:`Task` whose splits are files given by path rather than found in a folder."""

    files: Mapping[str, Path] = field(default_factory=dict, compare=False)
    columns: Optional[FileColumns] = field(default=None, compare=False)

    def path(self, data_dir, split: str) -> Path:
        if split not in self.files:
            raise BortkitError(f"{self.name} has no {split} file; it was given: "
                               f"{', '.join(self.files) or 'none'}")
        return self.files[split]


def file_format(path: PathLike) -> str:
    """``"csv"``, ``"tsv"`` or ``"jsonl"`` from the file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"unknown file type {suffix or '(no extension)'!r}; use one of "
                        f"{', '.join(sorted(FORMATS))}", path=path)
    return FORMATS[suffix]


def read_rows(path: PathLike, columns: Sequence[str]) -> Iterator[Tuple[int, Dict[str, str]]]:
    """``(line, {column: text})`` for each row of a CSV/TSV/JSONL file, checking ``columns``."""
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise DataError("file does not exist" if not path.exists() else "not a file", path=path)
    if fmt == "jsonl":
        yield from _json_rows(path, columns)
    else:
        yield from _delimited_rows(path, columns, "," if fmt == "csv" else "\t")


def _delimited_rows(path: Path, columns: Sequence[str], delimiter: str):
    lines = read_text_lines(path)  # UTF-8 checks, BOM, line endings: one place for all readers
    if not lines:
        raise DataError("empty file: expected a header line", path=path)
    # with their newlines back, so a quoted field may span lines as spreadsheets write it
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
        _check_header(path, header, columns)
        index = {name: header.index(name) for name in columns}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"row has {len(row)} fields, the header has {len(header)}",
                                path=path, line=line)
            yield line, {name: row[i] for name, i in index.items()}
    except csv.Error as err:
        raise DataError(f"malformed {'CSV' if delimiter == ',' else 'TSV'}: {err}", path=path,
                        line=reader.line_num) from None


def _check_header(path: Path, header: Sequence[str], columns: Sequence[str]) -> None:
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"duplicate column name(s) in the header: {', '.join(duplicates)}",
                        path=path, line=1)
    for name in columns:
        if name not in header:
            raise DataError(f"no column {name!r}; the header has: {', '.join(header)}",
                            path=path, line=1)


def _json_rows(path: Path, columns: Sequence[str]):
    for line, text in enumerate(read_text_lines(path), start=1):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"not valid JSON: {err.msg} at column {err.colno}", path=path,
                            line=line) from None
        except ValueError:  # Python refuses to read an integer of more than 4,300 digits
            raise DataError("not readable JSON: a number with more than 4300 digits",
                            path=path, line=line) from None
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object per line, got {type(row).__name__}",
                            path=path, line=line)
        for name in columns:
            if name not in row:
                raise DataError(f"no field {name!r}; this line has: {', '.join(row)}",
                                path=path, line=line)
            if not isinstance(row[name], (str, int, float)) or isinstance(row[name], bool):
                raise DataError(f"field {name!r} must be a string or a number, got "
                                f"{type(row[name]).__name__}", path=path, line=line)
        yield line, {name: str(row[name]) for name in columns}


def label_order(values) -> Tuple[str, ...]:
    """Distinct label strings: numerically when all are numbers, else alphabetically."""
    distinct = set(values)
    if distinct and all(is_number(v) for v in distinct):
        return tuple(sorted(distinct, key=float))
    return tuple(sorted(distinct))


def _float(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"label column {column!r} must hold numbers for regression, got "
                        f"{text!r}", path=path, line=line) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise DataError(f"label {text!r} is not a finite number", path=path, line=line)
    return value


def _task_type(given: Optional[str], labels: Sequence[str], path: Path, column: str) -> str:
    if given is not None:
        if given not in TASK_TYPES:
            raise BortkitError(f"--task-type must be one of {', '.join(TASK_TYPES)}; "
                               f"got {given!r}")
        return given
    if not numeric_labels(labels):
        return "classification"
    for label in labels:
        value = float(label)  # canonical and finite (file_task checked them)
        if not value.is_integer():
            raise DataError(f"label column {column!r} holds non-integer numbers (e.g. "
                            f"{label}); pass --task-type regression, or --task-type "
                            f"classification to treat each value as a class", path=path)
    return "classification"


def file_task(train: PathLike, dev: Optional[PathLike] = None, *, text_column: str,
              label_column: str, text_pair_column: Optional[str] = None,
              task_type: Optional[str] = None, name: Optional[str] = None,
              test: Optional[PathLike] = None) -> FileTask:
    """A task over the user's files; reads ``train`` once to find the label set."""
    train = Path(train)
    columns = FileColumns(text_column, label_column, text_pair_column)
    wanted = [c for c in (text_column, text_pair_column, label_column) if c is not None]
    if len(set(wanted)) != len(wanted):
        raise BortkitError(f"--text-column, --text-pair-column and --label-column must name "
                           f"different columns; got {', '.join(wanted)}")
    found = []
    for line, row in read_rows(train, wanted):
        found.append((line, row[label_column].strip()))
        if not found[-1][1]:
            raise DataError(f"empty label in column {label_column!r}", path=train, line=line)
    if not found:
        raise DataError("no data rows after the header", path=train)
    if numeric_labels([text for _, text in found]):  # normalised once: 1 and 1.0 are one class
        found = [(line, numeric_label(text, train, line)) for line, text in found]
    labels = label_order(text for _, text in found)
    kind = _task_type(task_type, labels, train, label_column)
    if kind == "classification" and len(labels) < 2:
        raise DataError(f"label column {label_column!r} has a single value ({labels[0]!r}) in "
                        f"the training file; classification needs at least 2", path=train)
    files = {"train": train}
    if dev is not None:
        files["dev"] = Path(dev)
    if test is not None:
        files["test"] = Path(test)
    return FileTask(
        name=name or train.stem, benchmark="files", kind=kind,
        labels=labels if kind == "classification" else (),
        metrics=("accuracy", "macro_f1") if kind == "classification" else ("pearson", "spearman"),
        splits={split: str(path) for split, path in files.items()}, folders=(),
        reader=_read_examples, files=files, columns=columns)


FILE_OPTIONS = ("train", "dev", "test", "text_column", "text_pair_column", "label_column",
                "task_type")


def load_task(name: Optional[str], files: Optional[Mapping] = None) -> Task:
    """The task a run names: a registered GLUE/SuperGLUE task, or, when ``files`` (keyword
    arguments of :func:`file_task`, as the argument dataclasses keep them) is given, the
    user's files (``name``, when given, names that task)."""
    if not files:
        from .base import get_task
        return get_task(name)
    unknown = sorted(set(files) - set(FILE_OPTIONS))
    if unknown:
        raise BortkitError(f"unknown file-task setting(s): {', '.join(unknown)}")
    return file_task(**{"name": name, **files})


def task_identity(task: Task) -> str:
    """What a study or a teacher records to recognise a task: the registry name, or, for
    the user's files, the training file's absolute path."""
    if isinstance(task, FileTask):
        return str(task.files["train"].resolve())
    return task.name


def _read_examples(task: FileTask, path: Path, split: str) -> List[Example]:
    columns = task.columns
    wanted = [c for c in (columns.text, columns.text_pair) if c is not None]
    has_labels = split != "test"
    if has_labels:
        wanted.append(columns.label)
    examples = []
    for index, (line, row) in enumerate(read_rows(path, wanted)):
        label = None
        if has_labels:
            label = _label(task, row[columns.label].strip(), path, line)
        examples.append(Example(guid=f"{split}-{index}", text_a=row[columns.text],
                                text_b=row[columns.text_pair] if columns.text_pair else None,
                                label=label, line=line))
    if not examples:
        raise DataError("no data rows after the header", path=path)
    return examples


def _label(task: FileTask, text: str, path: Path, line: int):
    if not text:
        raise DataError(f"empty label in column {task.columns.label!r}", path=path, line=line)
    if task.kind == "regression":
        return _float(text, path, line, task.columns.label)
    if numeric_labels(task.labels) and is_number(text):
        text = numeric_label(text, path, line)
    if text not in task.labels:
        raise DataError(f"label {text!r} is not among the training file's labels "
                        f"({', '.join(task.labels)})", path=path, line=line)
    return task.labels.index(text)

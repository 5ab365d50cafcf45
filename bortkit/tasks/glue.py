"""GLUE tasks: readers for the TSV files of ``download_glue_data.py`` and the submission writer.

GLUE TSVs are not CSV: fields are split on tabs only and quote characters are kept literally
(MRPC has a lone ``"`` in some rows). Columns are found by name in each file's header, so train,
dev and test files with different column sets are read by one layout; CoLA train/dev have no
header and use the fixed layout ``source, label, author's label, sentence``. The item index in
:attr:`Example.guid` is the file's ``index`` (QQP: ``id``) column, else the 0-based data row.

Label ids (the order of :attr:`Task.labels`) follow the Hugging Face ``glue`` datasets:
``0``/``1`` for CoLA, SST-2, MRPC, QQP, WNLI; ``entailment, not_entailment`` for RTE and QNLI;
``entailment, neutral, contradiction`` for MNLI and AX. STS-B is regression on ``[0, 5]``.

Submission files (``write_predictions``): ``CoLA.tsv``... ``AX.tsv`` with the header
``index<TAB>prediction``; classes are written as the label strings above, STS-B scores clipped
to ``[0, 5]`` with three decimals. MNLI is submitted through the ``MNLI-m`` and ``MNLI-mm``
views (``MNLI-m.tsv``, ``MNLI-mm.tsv``).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import BortkitError, DataError
from ..io import atomic_write
from .base import (Example, Task, check_predictions, is_number, item_ids, numeric_label,
                   numeric_labels, read_text_lines, register)

STANDARD_SPLITS = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
BINARY = ("0", "1")
ENTAILMENT = ("entailment", "not_entailment")
NLI = ("entailment", "neutral", "contradiction")
STSB_RANGE = (0.0, 5.0)
INDEX_COLUMNS = ("index", "id")


@dataclass(frozen=True)
class Columns:
    """Where a task's fields are: header column names (or positions for headerless files)."""

    text_a: str
    text_b: Optional[str]
    label: str
    headerless: Tuple[str, ...] = ()  # column names of train/dev files without a header row


def _read_tsv(task: Task, path: Path, split: str, *, columns: Columns) -> List[Example]:
    lines = read_text_lines(path)
    if columns.headerless and not split.startswith("test"):
        header, first_row = columns.headerless, 0
    elif not lines:
        raise DataError("empty file: no header line", path=path)
    else:
        header, first_row = tuple(lines[0].split("\t")), 1
    where = _column_positions(header, columns, labeled=not split.startswith("test"),
                              path=path)
    examples = []
    for row, text in enumerate(lines[first_row:]):
        line = first_row + row + 1
        fields = text.split("\t")
        if len(fields) != len(header):
            problem = "too many tabs" if len(fields) > len(header) else "missing column(s)"
            raise DataError(f"{problem}: {len(fields)} tab-separated fields, expected "
                            f"{len(header)} ({', '.join(header)})", path=path, line=line)
        examples.append(_example(task, split, fields, header, where, row, path, line))
    if not examples:
        raise DataError("no data rows", path=path)
    return examples


def _column_positions(header: Sequence[str], columns: Columns, labeled: bool,
                      path: Path) -> Dict[str, Optional[int]]:
    """Position of each needed column in ``header`` (``None`` for an absent optional one)."""
    def find(name: Optional[str], required: bool) -> Optional[int]:
        if name is None or name not in header:
            if name is not None and required:
                raise DataError(f"header has no {name!r} column (found: {', '.join(header)})",
                                path=path, line=1)
            return None
        return header.index(name)

    index = next((header.index(name) for name in INDEX_COLUMNS if name in header), None)
    return {"text_a": find(columns.text_a, True), "text_b": find(columns.text_b, True),
            "label": find(columns.label, labeled), "index": index}


def _example(task: Task, split: str, fields: List[str], header: Sequence[str],
             where: Mapping[str, Optional[int]], row: int, path: Path, line: int) -> Example:
    for part in ("text_a", "text_b"):
        if where[part] is not None and not fields[where[part]].strip():
            raise DataError(f"empty {header[where[part]]}", path=path, line=line)
    if where["index"] is None:
        index = str(row)
    else:
        index = fields[where["index"]].strip()
        if not index.isdigit():
            raise DataError(f"{header[where['index']]} {index!r} is not a number",
                            path=path, line=line)
    label = None
    if where["label"] is not None:
        label = _parse_label(task, fields[where["label"]], path, line)
    return Example(guid=f"{split}-{index}", text_a=fields[where["text_a"]],
                   text_b=None if where["text_b"] is None else fields[where["text_b"]],
                   label=label, line=line)


def _parse_label(task: Task, value: str, path: Path, line: int):
    value = value.strip()
    if task.kind == "regression":
        try:
            score = float(value)
        except ValueError:
            raise DataError(f"score {value!r} is not a number", path=path, line=line) from None
        low, high = STSB_RANGE
        if not low <= score <= high:
            raise DataError(f"score {value!r} outside [{low:g}, {high:g}]", path=path, line=line)
        return score
    if value not in task.labels and numeric_labels(task.labels) and is_number(value):
        value = numeric_label(value, path, line)  # 1.0 is the class 1
    if value not in task.labels:
        allowed = ", ".join(repr(label) for label in task.labels)
        raise DataError(f"unknown {task.name} label {value!r}; allowed: {allowed}",
                        path=path, line=line)
    return task.labels.index(value)


def _write_tsv(task: Task, examples: Sequence[Example], predictions, path: Path) -> Path:
    values = check_predictions(task, predictions, len(examples))
    rows, seen = [], set()
    for example, value in zip(examples, values):
        ids = item_ids(example)
        if len(ids) != 1:
            raise BortkitError(f"example id {example.guid!r} is not a {task.name} id")
        if ids[0] in seen:
            raise BortkitError(f"two predictions for {task.name} index {ids[0]}")
        seen.add(ids[0])
        rows.append(f"{ids[0]}\t{_prediction_text(task, value)}\n")
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("index\tprediction\n")
        fh.writelines(rows)
    return path


def _prediction_text(task: Task, value) -> str:
    if task.kind == "regression":
        low, high = STSB_RANGE
        return f"{float(np.clip(value, low, high)):.3f}"
    return task.labels[int(value)]


def _glue(name: str, labels: Tuple[str, ...], metrics: Tuple[str, ...], columns: Columns, *,
          kind: str = "classification", splits: Mapping[str, str] = STANDARD_SPLITS,
          folders: Tuple[str, ...] = (), submission: Optional[str] = None,
          aliases: Sequence[str] = ()) -> Task:
    task = Task(name=name, benchmark="glue", kind=kind, labels=labels, metrics=metrics,
                splits=splits, folders=folders or (name,),
                submission_file=f"{name}.tsv" if submission is None else submission,
                reader=partial(_read_tsv, columns=columns),
                writer=_write_tsv if submission != "" else None)
    return register(task, aliases)


PAIR = Columns("sentence1", "sentence2", "label")
MNLI_COLUMNS = Columns("sentence1", "sentence2", "gold_label")

COLA = _glue("CoLA", BINARY, ("mcc",), Columns(
    "sentence", None, "label", headerless=("source", "label", "author_label", "sentence")))
SST2 = _glue("SST-2", BINARY, ("accuracy",), Columns("sentence", None, "label"), aliases=["SST"])
MRPC = _glue("MRPC", BINARY, ("f1", "accuracy"), Columns("#1 String", "#2 String", "Quality"))
STSB = _glue("STS-B", (), ("pearson", "spearman"), Columns("sentence1", "sentence2", "score"),
             kind="regression", aliases=["STS"])
QQP = _glue("QQP", BINARY, ("f1", "accuracy"), Columns("question1", "question2", "is_duplicate"))
MNLI = _glue("MNLI", NLI, ("accuracy",), MNLI_COLUMNS, submission="", splits={
    "train": "train.tsv", "dev_matched": "dev_matched.tsv", "dev_mismatched": "dev_mismatched.tsv",
    "test_matched": "test_matched.tsv", "test_mismatched": "test_mismatched.tsv"})
MNLI_M = _glue("MNLI-m", NLI, ("accuracy",), MNLI_COLUMNS, folders=("MNLI",),
               aliases=["MNLI-matched"], splits={
                   "train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"})
MNLI_MM = _glue("MNLI-mm", NLI, ("accuracy",), MNLI_COLUMNS, folders=("MNLI",),
                aliases=["MNLI-mismatched"], splits={
                    "train": "train.tsv", "dev": "dev_mismatched.tsv",
                    "test": "test_mismatched.tsv"})
QNLI = _glue("QNLI", ENTAILMENT, ("accuracy",), Columns("question", "sentence", "label"))
RTE = _glue("RTE", ENTAILMENT, ("accuracy",), PAIR)
WNLI = _glue("WNLI", BINARY, ("accuracy",), PAIR)
AX = _glue("AX", NLI, ("mcc",), PAIR, splits={"test": "diagnostic.tsv"},
           folders=("diagnostic", "AX"), aliases=["GLUE-AX", "diagnostic"])

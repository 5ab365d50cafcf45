"""Tasks, examples and the task registry.

A :class:`Task` describes one GLUE or SuperGLUE task: where its files live, how to read them
into :class:`Example` objects, which metrics the leaderboard reports and how to write the file
the evaluation server accepts. Every task is recast as (pair) classification or regression of
``text_a`` / ``text_b``, so one fine-tuning loop serves them all.

Data folders
------------
``task.read(data_dir, split)`` accepts either the benchmark root (the folder holding ``SST-2/``,
``MNLI/``, ``BoolQ/``...; folder names match case-insensitively) or the task's own folder. The
root layout is tried first. Files are read exactly as the benchmarks distribute them; anything
malformed raises a one-line :class:`~bortkit.errors.DataError` naming the file and line.

Predictions
-----------
Functions that take ``predictions`` (:func:`write_predictions`, :func:`bortkit.metrics.task_scores`)
accept one row per example, either

- a 1-D array: label ids for classification (floats for regression), or
- a 2-D array of per-class scores/logits, shape ``(n, num_labels)``; the argmax is the label.

For tasks that choose one candidate per group (COPA, ReCoRD: ``task.pick_best``) the candidate with
the highest positive-class score wins: ``scores[:, 1] - scores[:, 0]`` for 2-D input (monotone in
the softmax probability), the value itself for 1-D input (a 0/1 label works; ties go to the first
candidate), so pass scores rather than hard labels to these tasks.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import BortkitError, DataError

Label = Union[int, float, None]


@dataclass(frozen=True)
class Example:
    """One model input: a text or text pair with its label.

    Attributes:
        guid: ``"<split>-<item index>"`` (MultiRC ``"<split>-<paragraph>-<question>-<answer>"``,
            ReCoRD ``"<split>-<passage>-<query>-<candidate no.>"``, COPA
            ``"<split>-<item>-<choice 0|1>"``). The item index is the file's index column where
            it has one, else the 0-based data row.
        text_a: first segment.
        text_b: second segment, or ``None`` for single-sentence tasks.
        label: class id (``int``), score (``float``, regression) or ``None`` (unlabeled test data).
        line: 1-based line number of the item in its source file.
        group: items scored together: MultiRC question, ReCoRD query, COPA item, AX-g
            gender pair; ``None`` otherwise.
        candidate: the candidate this example scores in a group: ReCoRD entity text, COPA
            choice, MultiRC answer; ``None`` otherwise.
    """

    guid: str
    text_a: str
    text_b: Optional[str]
    label: Label
    line: int
    group: Optional[str] = None
    candidate: Optional[str] = None


Reader = Callable[["Task", Path, str], List[Example]]
Writer = Callable[["Task", Sequence[Example], np.ndarray, Path], Path]


@dataclass(frozen=True)
class Task:
    """A GLUE or SuperGLUE task (get one with :func:`get_task`).

    Attributes:
        name: canonical name, e.g. ``"SST-2"``, ``"MNLI-m"``, ``"SuperGLUE-RTE"``.
        benchmark: ``"glue"`` or ``"superglue"``.
        kind: ``"classification"`` or ``"regression"``.
        labels: label strings in id order (empty for regression).
        metrics: the leaderboard metrics, in leaderboard order (keys of ``task_scores``).
        main_metric: the headline metric (the first leaderboard metric).
        splits: split name -> file name (``"train" -> "train.tsv"``).
        folders: folder names the files live in under the benchmark root (first is canonical).
        submission_file: file name the evaluation server expects (``""`` if none).
        pick_best: the prediction for a group is its best-scoring candidate (COPA, ReCoRD).
    """

    name: str
    benchmark: str
    kind: str
    labels: Tuple[str, ...]
    metrics: Tuple[str, ...]
    splits: Mapping[str, str] = field(compare=False)
    folders: Tuple[str, ...] = field(compare=False)
    submission_file: str = field(default="", compare=False)
    pick_best: bool = field(default=False, compare=False)
    reader: Optional[Reader] = field(default=None, repr=False, compare=False)
    writer: Optional[Writer] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "splits", MappingProxyType(dict(self.splits)))

    @property
    def main_metric(self) -> str:
        return self.metrics[0]

    @property
    def num_labels(self) -> int:
        """Width of the model's output layer: the number of classes, 1 for regression."""
        return 1 if self.kind == "regression" else len(self.labels)

    def path(self, data_dir: Union[str, os.PathLike], split: str) -> Path:
        """The file holding ``split``, under the benchmark root or the task folder ``data_dir``."""
        file_name = self._split_file(split)
        data_dir = Path(data_dir)
        if not data_dir.exists():
            raise DataError("data folder does not exist", path=data_dir)
        if not data_dir.is_dir():
            raise DataError("expected a data folder, found a file", path=data_dir)
        for folder in self._task_folders(data_dir):
            if (folder / file_name).is_file():
                return folder / file_name
        if (data_dir / file_name).is_file():
            return data_dir / file_name
        if not _has_task_files(data_dir):
            raise DataError(f"empty data folder: no GLUE/SuperGLUE task files in it (looked for "
                            f"{self.folders[0]}/{file_name})", path=data_dir)
        raise DataError(f"missing {self.name} {split} file: expected {self.folders[0]}/{file_name}"
                        f" in this folder, or {file_name} if it is the {self.name} folder",
                        path=data_dir)

    def read(self, data_dir: Union[str, os.PathLike], split: str) -> List[Example]:
        """Read ``split`` (one of ``task.splits``) from ``data_dir`` into examples."""
        return self.reader(self, self.path(data_dir, split), split)

    def _split_file(self, split: str) -> str:
        if split not in self.splits:
            raise BortkitError(f"{self.name} has no split {split!r}; "
                               f"valid splits: {', '.join(self.splits)}")
        return self.splits[split]

    def _task_folders(self, data_dir: Path) -> List[Path]:
        wanted = {name.lower(): rank for rank, name in enumerate(self.folders)}
        found = [p for p in data_dir.iterdir() if p.is_dir() and p.name.lower() in wanted]
        return sorted(found, key=lambda p: (wanted[p.name.lower()], p.name != self.folders[0]))


def _has_task_files(data_dir: Path) -> bool:
    """True if ``data_dir`` or a direct sub-folder holds a .tsv or .jsonl file."""
    for child in data_dir.iterdir():
        if child.is_file() and child.suffix in (".tsv", ".jsonl"):
            return True
        if child.is_dir() and any(p.suffix in (".tsv", ".jsonl") for p in child.iterdir()):
            return True
    return False


# --------------------------------------------------------------------------- registry

_REGISTRY: Dict[str, Task] = {}
_ALIASES: Dict[str, str] = {}


def _key(name: str) -> str:
    """Lookup key: case and punctuation do not matter (``sst2`` == ``SST-2``)."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


def register(task: Task, aliases: Sequence[str] = ()) -> Task:
    """Add ``task`` to the registry under its name and ``aliases``."""
    for name in (task.name, *aliases):
        key = _key(name)
        if key in _ALIASES and _ALIASES[key] != task.name:
            raise ValueError(f"task name {name!r} already registered for {_ALIASES[key]}")
        _ALIASES[key] = task.name
    _REGISTRY[task.name] = task
    return task


def get_task(name: Union[str, Task]) -> Task:
    """The task called ``name`` (case-insensitive; ``sst2``, ``mnli_mm``, ``axb`` also work)."""
    if isinstance(name, Task):
        return name
    if not isinstance(name, str):
        raise BortkitError(f"task name must be a string, got {type(name).__name__}")
    canonical = _ALIASES.get(_key(name))
    if canonical is None:
        raise BortkitError(f"unknown task {name!r}; valid tasks: {', '.join(_REGISTRY)}")
    return _REGISTRY[canonical]


def list_tasks(benchmark: Optional[str] = None) -> List[str]:
    """Canonical task names, GLUE first, optionally only ``"glue"`` or ``"superglue"``."""
    if benchmark is not None and benchmark.lower() not in ("glue", "superglue"):
        raise BortkitError(f"unknown benchmark {benchmark!r}; use 'glue' or 'superglue'")
    return [name for name, task in _REGISTRY.items()
            if benchmark is None or task.benchmark == benchmark.lower()]


# --------------------------------------------------------------------------- file reading

def read_text_lines(path: Path) -> List[str]:
    """The lines of a UTF-8 file, without line endings (``\\n`` or ``\\r\\n``) or a leading BOM.

    Only ``\\n`` ends a line: other Unicode line separators inside a field stay in the text.
    A final line without a newline is kept. Trailing blank lines are dropped.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read file: {err.strerror}", path=path) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(f"not valid UTF-8: byte 0x{data[err.start]:02x} at column {column}",
                        path=path, line=line) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if "\r" in line:  # CR-only (classic Mac) endings, or a stray CR inside a line
            raise DataError(f"carriage return (CR) without a line feed at column "
                            f"{line.index(chr(13)) + 1}: lines must end in \\n or \\r\\n "
                            f"(convert CR-only line endings, e.g. with: tr '\\r' '\\n')",
                            path=path, line=number)
    return lines


# --------------------------------------------------------------------------- numeric labels
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf|infinity)",
                     re.IGNORECASE)


def is_number(text: str) -> bool:
    """A label spelled as a decimal number (``1``, ``-0.5``, ``1e3``, ``nan``, ``inf``)."""
    return _NUMBER.fullmatch(text.strip()) is not None


def canonical_number(text: str) -> Optional[str]:
    """The one spelling of a numeric label, so that ``1``, ``1.0``, ``01`` and ``1e0`` are one
    class: an integral value as a plain integer, any other as Python's shortest float repr
    (``0.50`` -> ``0.5``). ``None`` when it is not finite as a float64 (``nan``, ``inf``,
    ``1e400``): such a label is refused, as a class and as a score."""
    from decimal import Decimal
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value.is_integer():
        return str(int(value)) if abs(value) < 2 ** 53 else str(int(Decimal(text.strip())))
    return repr(value)


def numeric_labels(labels: Sequence[str]) -> bool:
    """True when every label is a number: then each label is read in its one spelling
    (:func:`canonical_number`: ``1`` and ``1.0`` are one class)."""
    return bool(labels) and all(is_number(label) for label in labels)


def numeric_label(text: str, path: Path, line: Optional[int] = None) -> str:
    """:func:`canonical_number` of a label known to be numeric; not finite: a DataError."""
    canonical = canonical_number(text)
    if canonical is None:
        raise DataError(f"label {text.strip()!r} is not a finite number", path=path, line=line)
    return canonical


# --------------------------------------------------------------------------- predictions

def check_predictions(task: Task, predictions, num_examples: int) -> np.ndarray:
    """Validate ``predictions`` and return one label id (or float score) per example."""
    values = _as_array(predictions, num_examples)
    if task.kind == "regression":
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.ndim != 1:
            raise BortkitError(f"{task.name} predictions must be one score per example, "
                               f"got shape {values.shape}")
        return values.astype(np.float64)
    if values.ndim == 2:
        if values.shape[1] != task.num_labels:
            raise BortkitError(f"{task.name} has {task.num_labels} labels but the prediction "
                               f"scores have {values.shape[1]} columns")
        return values.argmax(axis=1)
    if values.ndim != 1:
        raise BortkitError(f"predictions must be 1-D label ids or 2-D scores, "
                           f"got shape {values.shape}")
    ids = values.astype(np.int64)
    if np.any(ids != values) or np.any(ids < 0) or np.any(ids >= task.num_labels):
        bad = values[(ids != values) | (ids < 0) | (ids >= task.num_labels)][0]
        raise BortkitError(f"{task.name} prediction {bad!r} is not a label id "
                           f"0..{task.num_labels - 1}")
    return ids


def candidate_scores(task: Task, predictions, num_examples: int) -> np.ndarray:
    """Positive-class score per example, for tasks that pick the best candidate in a group."""
    values = _as_array(predictions, num_examples)
    if values.ndim == 2:
        if values.shape[1] != 2:
            raise BortkitError(f"{task.name} scores must have 2 columns, got {values.shape[1]}")
        return values[:, 1] - values[:, 0]
    if values.ndim != 1:
        raise BortkitError(f"predictions must be 1-D scores or 2-D (n, 2) scores, "
                           f"got shape {values.shape}")
    return values.astype(np.float64)


def _as_array(predictions, num_examples: int) -> np.ndarray:
    try:
        values = np.asarray(predictions, dtype=np.float64)
    except (TypeError, ValueError):
        raise BortkitError("predictions must be numbers (label ids or scores)") from None
    if values.ndim == 0 or len(values) != num_examples:
        got = 1 if values.ndim == 0 else len(values)
        raise BortkitError(f"got {got} predictions for {num_examples} examples")
    if not np.all(np.isfinite(values)):
        raise BortkitError("predictions contain NaN or infinity")
    return values


def group_members(examples: Sequence[Example]) -> Dict[str, List[int]]:
    """Example positions per ``group``, in order of first appearance."""
    members: Dict[str, List[int]] = {}
    for position, example in enumerate(examples):
        if example.group is None:
            raise BortkitError(f"example {example.guid} has no group")
        members.setdefault(example.group, []).append(position)
    return members


def best_candidates(examples: Sequence[Example], scores: np.ndarray) -> Dict[str, int]:
    """Position of the highest-scoring example in each group (first one on ties)."""
    return {group: positions[int(np.argmax(scores[positions]))]
            for group, positions in group_members(examples).items()}


def item_ids(example: Example) -> List[int]:
    """The numeric ids in ``example.guid`` after the split name (see :class:`Example`)."""
    try:
        return [int(part) for part in example.guid.split("-")[1:]]
    except ValueError:
        raise BortkitError(f"example id {example.guid!r} is not <split>-<number>...") from None


def write_predictions(task: Union[str, Task], examples: Sequence[Example], predictions,
                      out_dir: Union[str, os.PathLike]) -> Path:
    """Write the file the task's evaluation server accepts into ``out_dir``; return its path.

    GLUE: ``<Task>.tsv`` with header ``index<TAB>prediction``; SuperGLUE: ``<Task>.jsonl`` with
    ``{"idx": ..., "label": ...}`` lines. The file is written atomically.
    """
    task = get_task(task)
    if task.writer is None or not task.submission_file:
        raise BortkitError(f"{task.name} has no submission file; "
                           f"write MNLI predictions through the MNLI-m and MNLI-mm tasks")
    if len(examples) == 0:
        raise BortkitError("no examples to write predictions for")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BortkitError("output folder is a file", path=out_dir)
    return task.writer(task, examples, predictions, out_dir / task.submission_file)

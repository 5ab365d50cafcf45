"""SuperGLUE tasks: readers for the official ``.jsonl`` files and the submission writer.

Every item is recast as (pair) classification of ``text_a`` / ``text_b``:

=============  ==========================================  =====================================
task           text_a / text_b                             label
=============  ==========================================  =====================================
BoolQ          question / passage                          false, true
CB             premise / hypothesis                        entailment, contradiction, neutral
COPA           premise / "because <choice>" (cause) or     per choice: 1 if it is the answer;
               "so <choice>" (effect); 2 examples per      the item's prediction is the higher-
               item, grouped by item                       scoring choice
MultiRC        paragraph / "<question> <answer>"; one      per answer: 0, 1 (F1a over answers,
               example per answer, grouped by question     EM per question)
ReCoRD         passage / query with ``@placeholder``       per entity: 1 if it is a gold answer;
               replaced by the entity; one example per     the query's prediction is the best
               distinct entity text, grouped by query      entity
SuperGLUE-RTE  premise / hypothesis                        entailment, not_entailment
WiC            sentence1 / sentence2 with the target       false, true
               word marked ``*like this*`` in both
WSC            text / "<span2> refers to <span1>"          False, True
AX-b           sentence1 / sentence2                       entailment, not_entailment
AX-g           premise / hypothesis; grouped by            entailment, not_entailment
               ``pair_id`` (else consecutive items)
=============  ==========================================  =====================================

The SuperGLUE version of RTE is registered as ``SuperGLUE-RTE`` (alias ``RTE-SG``) so that
``RTE`` keeps meaning the GLUE task; its files are ``RTE/*.jsonl``. Splits are ``train``
(``train.jsonl``), ``dev`` (``val.jsonl``), ``test`` (``test.jsonl``); AX-b and AX-g have only
``test`` (``AX-b.jsonl``/``AX-g.jsonl``, which carry labels).

Submission files follow the formats of jiant's SuperGLUE writer (the benchmark authors' code):
``{"idx": i, "label": l}`` per line with ``l`` the label strings above (BoolQ/WiC ``"true"``,
WSC ``"True"``, CB/RTE/AX entailment strings), COPA the chosen choice ``0``/``1``, ReCoRD the
chosen entity text keyed by the query ``idx``, and MultiRC one line per paragraph:
``{"idx": p, "passage": {"questions": [{"idx": q, "answers": [{"idx": a, "label": 0|1}]}]}}``.
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ..errors import BortkitError, DataError
from ..io import atomic_write
from .base import (Example, Task, best_candidates, candidate_scores, check_predictions,
                   item_ids, read_text_lines, register)

STANDARD_SPLITS = {"train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl"}
ENTAILMENT = ("entailment", "not_entailment")
BINARY = ("0", "1")
COPA_CONNECTIVES = {"cause": "because", "effect": "so"}
WORD_MARK = "*"


class Item:
    """One JSON object of a SuperGLUE file, with typed field access and precise errors."""

    def __init__(self, task: Task, split: str, data: Dict[str, Any], path: Path, line: int,
                 position: int):
        self.task, self.split, self.data = task, split, data
        self.path, self.line, self.position = path, line, position
        self.labeled = not split.startswith("test")

    def error(self, problem: str) -> DataError:
        return DataError(problem, path=self.path, line=self.line)

    def field(self, key: str, kind: type, within: Optional[Dict[str, Any]] = None) -> Any:
        data = self.data if within is None else within
        if key not in data:
            raise self.error(f"missing field {key!r}")
        value = data[key]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise self.error(f"field {key!r} must be {_KIND_NAMES[kind]}, "
                             f"got {json.dumps(value)[:40]}")
        return value

    def text(self, key: str, within: Optional[Dict[str, Any]] = None) -> str:
        value = self.field(key, str, within)
        if not value.strip():
            raise self.error(f"empty {key}")
        return value

    def label(self, within: Optional[Dict[str, Any]] = None,
              style: str = "string") -> Optional[int]:
        """The label id, ``None`` if the (test) item has none. ``style``: how JSON spells it."""
        data = self.data if within is None else within
        if "label" not in data:
            if self.labeled:
                raise self.error("missing field 'label'")
            return None
        value = data["label"]
        allowed = {"bool": "true, false", "int": "0, 1"}.get(
            style, ", ".join(repr(label) for label in self.task.labels))
        if style == "bool" and isinstance(value, bool):
            return int(value)
        if style == "int" and value in (0, 1) and not isinstance(value, float):
            return int(value)
        if style == "string" and isinstance(value, str) and value in self.task.labels:
            return self.task.labels.index(value)
        raise self.error(f"unknown {self.task.name} label {json.dumps(value)}; "
                         f"allowed: {allowed}")

    def guid(self, *ids: int) -> str:
        return "-".join([self.split, *map(str, ids)])


_KIND_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}

Convert = Callable[[Item], List[Example]]


def _read_jsonl(task: Task, path: Path, split: str, *, convert: Convert) -> List[Example]:
    examples: List[Example] = []
    for item in _items(task, path, split):
        examples.extend(convert(item))
    if not examples:
        raise DataError("no data rows", path=path)
    return examples


def _items(task: Task, path: Path, split: str) -> Iterator[Item]:
    position = 0
    for line, text in enumerate(read_text_lines(path), start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON: {err.msg} at column {err.colno}",
                            path=path, line=line) from None
        except ValueError:  # Python refuses to read an integer of more than 4,300 digits
            raise DataError("not readable JSON: a number with more than 4300 digits",
                            path=path, line=line) from None
        if not isinstance(data, dict):
            raise DataError("expected a JSON object", path=path, line=line)
        yield Item(task, split, data, path, line, position)
        position += 1


# --------------------------------------------------------------------------- converters

def _pair(item: Item, first: str, second: str, style: str = "string") -> List[Example]:
    """Text-pair items: BoolQ, CB, RTE, AX-b."""
    return [Example(item.guid(item.field("idx", int)), item.text(first), item.text(second),
                    item.label(style=style), item.line)]


def _copa(item: Item) -> List[Example]:
    idx = item.field("idx", int)
    premise = item.text("premise")
    question = item.field("question", str)
    if question not in COPA_CONNECTIVES:
        raise item.error(f"question {question!r} must be 'cause' or 'effect'")
    answer = item.label(style="int")
    examples = []
    for choice, key in enumerate(("choice1", "choice2")):
        text = item.text(key)
        label = None if answer is None else int(answer == choice)
        examples.append(Example(item.guid(idx, choice), premise,
                                f"{COPA_CONNECTIVES[question]} {text}", label, item.line,
                                group=item.guid(idx), candidate=text))
    return examples


def _multirc(item: Item) -> List[Example]:
    paragraph_id = item.field("idx", int)
    passage = item.field("passage", dict)
    paragraph = item.text("text", passage)
    examples = []
    for question_data in _objects(item, "questions", passage):
        question_id = item.field("idx", int, question_data)
        question = item.text("question", question_data)
        group = item.guid(paragraph_id, question_id)
        for answer_data in _objects(item, "answers", question_data):
            answer = item.text("text", answer_data)
            examples.append(Example(
                item.guid(paragraph_id, question_id, item.field("idx", int, answer_data)),
                paragraph, f"{question} {answer}", item.label(answer_data, style="int"),
                item.line, group=group, candidate=answer))
    return examples


def _record(item: Item) -> List[Example]:
    passage_id = item.field("idx", int)
    passage = item.field("passage", dict)
    text = item.text("text", passage)
    entities = _record_entities(item, passage, text)
    examples = []
    for query_data in _objects(item, "qas", item.data):
        query_id = item.field("idx", int, query_data)
        query = item.text("query", query_data)
        if "@placeholder" not in query:
            raise item.error(f"query {query_id} has no @placeholder")
        answers = _record_answers(item, query_data)
        for number, entity in enumerate(entities):
            label = None if answers is None else int(entity in answers)
            examples.append(Example(
                item.guid(passage_id, query_id, number), text,
                query.replace("@placeholder", entity), label, item.line,
                group=item.guid(passage_id, query_id), candidate=entity))
    return examples


def _record_entities(item: Item, passage: Dict[str, Any], text: str) -> List[str]:
    """Distinct entity strings of the passage, in order of first mention."""
    entities: Dict[str, None] = {}
    for span in _objects(item, "entities", passage):
        start, end = item.field("start", int, span), item.field("end", int, span)
        if not 0 <= start <= end < len(text):
            raise item.error(f"entity span {start}..{end} outside the passage "
                             f"({len(text)} characters)")
        entities.setdefault(text[start:end + 1], None)
    return list(entities)


def _record_answers(item: Item, query_data: Dict[str, Any]) -> Optional[set]:
    if "answers" not in query_data:
        if item.labeled:
            raise item.error(f"query {query_data['idx']} has no 'answers'")
        return None
    return {item.text("text", answer) for answer in _objects(item, "answers", query_data)}


def _wic(item: Item) -> List[Example]:
    marked = [_mark(item, number) for number in (1, 2)]
    item.text("word")
    return [Example(item.guid(item.field("idx", int)), marked[0], marked[1],
                    item.label(style="bool"), item.line)]


def _mark(item: Item, number: int) -> str:
    sentence = item.text(f"sentence{number}")
    start, end = item.field(f"start{number}", int), item.field(f"end{number}", int)
    if not 0 <= start < end <= len(sentence):
        raise item.error(f"word span {start}..{end} outside sentence{number} "
                         f"({len(sentence)} characters)")
    return (f"{sentence[:start]}{WORD_MARK}{sentence[start:end]}{WORD_MARK}"
            f"{sentence[end:]}")


def _wsc(item: Item) -> List[Example]:
    target = item.field("target", dict)
    claim = f"{item.text('span2_text', target)} refers to {item.text('span1_text', target)}"
    return [Example(item.guid(item.field("idx", int)), item.text("text"), claim,
                    item.label(style="bool"), item.line)]


def _axg(item: Item) -> List[Example]:
    (example,) = _pair(item, "premise", "hypothesis")
    pair = item.data.get("pair_id", item.position // 2)
    if isinstance(pair, bool) or not isinstance(pair, (int, str)):
        raise item.error("field 'pair_id' must be an integer or a string")
    return [Example(example.guid, example.text_a, example.text_b, example.label, example.line,
                    group=f"pair-{pair}")]


def _objects(item: Item, key: str, within: Dict[str, Any]) -> List[Dict[str, Any]]:
    values = item.field(key, list, within)
    if not values:
        raise item.error(f"empty {key!r} list")
    if not all(isinstance(value, dict) for value in values):
        raise item.error(f"every entry of {key!r} must be an object")
    return values


# --------------------------------------------------------------------------- writers

def _write_jsonl(task: Task, examples: Sequence[Example], predictions, path: Path, *,
                 records: Callable[[Task, Sequence[Example], Any], List[dict]]) -> Path:
    lines = [json.dumps(record) + "\n" for record in records(task, examples, predictions)]
    with atomic_write(path, "w", encoding="utf-8", newline="") as fh:
        fh.writelines(lines)
    return path


def _label_records(task: Task, examples: Sequence[Example], predictions) -> List[dict]:
    ids = check_predictions(task, predictions, len(examples))
    return [{"idx": _single_id(task, example), "label": task.labels[int(label)]}
            for example, label in zip(examples, ids)]


def _copa_records(task: Task, examples: Sequence[Example], predictions) -> List[dict]:
    best = best_candidates(examples, candidate_scores(task, predictions, len(examples)))
    return [{"idx": item_ids(examples[position])[0], "label": item_ids(examples[position])[1]}
            for position in best.values()]


def _record_records(task: Task, examples: Sequence[Example], predictions) -> List[dict]:
    best = best_candidates(examples, candidate_scores(task, predictions, len(examples)))
    return [{"idx": item_ids(examples[position])[1], "label": examples[position].candidate}
            for position in best.values()]


def _multirc_records(task: Task, examples: Sequence[Example], predictions) -> List[dict]:
    ids = check_predictions(task, predictions, len(examples))
    paragraphs: Dict[int, Dict[int, List[dict]]] = {}
    for example, label in zip(examples, ids):
        paragraph, question, answer = _ids(task, example, 3)
        answers = paragraphs.setdefault(paragraph, {}).setdefault(question, [])
        answers.append({"idx": answer, "label": int(label)})
    return [{"idx": paragraph,
             "passage": {"questions": [{"idx": question, "answers": answers}
                                       for question, answers in questions.items()]}}
            for paragraph, questions in paragraphs.items()]


def _single_id(task: Task, example: Example) -> int:
    return _ids(task, example, 1)[0]


def _ids(task: Task, example: Example, count: int) -> List[int]:
    ids = item_ids(example)
    if len(ids) != count:
        raise BortkitError(f"example id {example.guid!r} is not a {task.name} id")
    return ids


# --------------------------------------------------------------------------- registry

def _superglue(name: str, labels: Tuple[str, ...], metrics: Tuple[str, ...], convert: Convert,
               records=_label_records, *, folder: Optional[str] = None,
               splits: Optional[Dict[str, str]] = None, pick_best: bool = False,
               aliases: Sequence[str] = ()) -> Task:
    folder = folder or name
    task = Task(name=name, benchmark="superglue", kind="classification", labels=labels,
                metrics=metrics, splits=splits or STANDARD_SPLITS, folders=(folder,),
                submission_file=f"{folder}.jsonl", pick_best=pick_best,
                reader=partial(_read_jsonl, convert=convert),
                writer=partial(_write_jsonl, records=records))
    return register(task, aliases)


def _diagnostic_splits(folder: str) -> Dict[str, str]:
    return {"test": f"{folder}.jsonl"}


BOOLQ = _superglue("BoolQ", ("false", "true"), ("accuracy",),
                   partial(_pair, first="question", second="passage", style="bool"))
CB = _superglue("CB", ("entailment", "contradiction", "neutral"), ("macro_f1", "accuracy"),
                partial(_pair, first="premise", second="hypothesis"))
COPA = _superglue("COPA", BINARY, ("accuracy",), _copa, _copa_records, pick_best=True)
MULTIRC = _superglue("MultiRC", BINARY, ("f1a", "em"), _multirc, _multirc_records)
RECORD = _superglue("ReCoRD", BINARY, ("f1", "em"), _record, _record_records, pick_best=True)
SUPERGLUE_RTE = _superglue("SuperGLUE-RTE", ENTAILMENT, ("accuracy",),
                           partial(_pair, first="premise", second="hypothesis"), folder="RTE",
                           aliases=["RTE-SG", "SG-RTE"])
WIC = _superglue("WiC", ("false", "true"), ("accuracy",), _wic)
WSC = _superglue("WSC", ("False", "True"), ("accuracy",), _wsc)
AX_B = _superglue("AX-b", ENTAILMENT, ("mcc",),
                  partial(_pair, first="sentence1", second="sentence2"),
                  splits=_diagnostic_splits("AX-b"))
AX_G = _superglue("AX-g", ENTAILMENT, ("gender_parity", "accuracy"), _axg,
                  splits=_diagnostic_splits("AX-g"))

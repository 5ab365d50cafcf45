"""Tasks over the user's own CSV/TSV/JSONL files (bortkit.tasks.files)."""
import csv
import json

import numpy as np
import pytest

from bortkit.errors import BortkitError, DataError
from bortkit.metrics import task_scores
from bortkit.tasks import get_task
from bortkit.tasks.files import file_task, label_order


@pytest.fixture(scope="module")
def sst2_rows(shared_dir):
    """Real SST-2 dev rows (sentence, label)."""
    examples = get_task("SST-2").read(shared_dir / "data" / "glue", "dev")[:60]
    return [(ex.text_a, ex.label) for ex in examples]


def _write_csv(path, header, rows, delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_with_other_column_names_and_order_reads_like_glue(tmp_path, sst2_rows):
    names = {0: "negative", 1: "positive"}
    rows = [(i, names[label], text) for i, (text, label) in enumerate(sst2_rows)]
    path = _write_csv(tmp_path / "train.csv", ["id", "sentiment", "review"], rows)
    task = file_task(path, path, text_column="review", label_column="sentiment")
    assert task.kind == "classification" and task.labels == ("negative", "positive")
    assert task.name == "train" and task.num_labels == 2
    examples = task.read(None, "dev")
    assert [ex.text_a for ex in examples] == [text for text, _ in sst2_rows]
    assert [ex.label for ex in examples] == [label for _, label in sst2_rows]
    assert examples[0].line == 2 and examples[0].text_b is None
    # scored with scikit-learn's metrics through the ordinary path
    perfect = task_scores(task, np.array([ex.label for ex in examples]), examples)
    assert perfect["accuracy"] == 1.0 and perfect["macro_f1"] == 1.0


def test_tsv_and_jsonl_give_the_same_examples_as_csv(tmp_path, sst2_rows):
    rows = [(text, str(label)) for text, label in sst2_rows]
    csv_path = _write_csv(tmp_path / "a.csv", ["text", "label"], rows)
    tsv_path = _write_csv(tmp_path / "a.tsv", ["text", "label"], rows, delimiter="\t")
    jsonl_path = tmp_path / "a.jsonl"
    jsonl_path.write_text("".join(json.dumps({"label": int(label), "text": text}) + "\n"
                                  for text, label in rows), encoding="utf-8")
    read = [file_task(p, p, text_column="text", label_column="label").read(None, "train")
            for p in (csv_path, tsv_path, jsonl_path)]
    as_tuples = [[(ex.text_a, ex.label) for ex in examples] for examples in read]
    assert as_tuples[0] == as_tuples[1] == as_tuples[2]


def test_pairs_regression_and_quoted_fields(tmp_path):
    rows = [("A man, with a \"hat\".", "Someone\twaits.", "3.8"), ("x", "y", "0.5"),
            ("line\nbreak", "z", "5")]
    path = _write_csv(tmp_path / "sts.csv", ["s1", "s2", "score"], rows)
    with pytest.raises(DataError, match=r"sts.csv: label column 'score' holds non-integer"):
        file_task(path, text_column="s1", text_pair_column="s2", label_column="score")
    task = file_task(path, path, text_column="s1", text_pair_column="s2", label_column="score",
                     task_type="regression")
    examples = task.read(None, "dev")
    assert [(ex.text_a, ex.text_b, ex.label) for ex in examples] == [
        (a, b, float(s)) for a, b, s in rows]
    assert task.labels == () and task.metrics == ("pearson", "spearman")


def test_label_order_is_numeric_when_labels_are_numbers():
    assert label_order(["10", "2", "1"]) == ("1", "2", "10")
    assert label_order(["b", "a", "10"]) == ("10", "a", "b")


@pytest.mark.parametrize("content, kwargs, message", [
    ("text,label\nhi,1\n", {"text_column": "review"}, r"x.csv:1: no column 'review'; the header has: text, label"),
    ("text,label\nhi,1\nho\n", {}, r"x.csv:3: row has 1 fields, the header has 2"),
    ("text,label\nhi,\n", {}, r"x.csv:2: empty label in column 'label'"),
    ("text,label\nhi,1\nho,1\n", {}, r"x.csv: label column 'label' has a single value"),
    ("text,label\n", {}, r"x.csv: no data rows after the header"),
    ("text,text,label\na,b,1\n", {}, r"x.csv:1: duplicate column name\(s\) in the header: text"),
    ("text,label\n\"open,1\n", {}, r"x.csv:\d+: malformed CSV"),
    ("text,label\nhi,1\nho,0\n", {"task_type": "ranking"}, r"--task-type must be one of classification, regression; got 'ranking'"),
    ("text,label\nhi,1\nho,0\n", {"label_column": "text"}, r"must name different columns"),
])
def test_bad_files_name_the_file_and_line(tmp_path, content, kwargs, message):
    path = tmp_path / "x.csv"
    path.write_text(content, encoding="utf-8")
    args = {"text_column": "text", "label_column": "label", **kwargs}
    with pytest.raises(BortkitError, match=message):
        file_task(path, path, **args)


def test_bad_dev_labels_json_and_types(tmp_path):
    train = _write_csv(tmp_path / "train.csv", ["text", "label"], [("a", "pos"), ("b", "neg")])
    dev = _write_csv(tmp_path / "dev.csv", ["text", "label"], [("c", "pos"), ("d", "meh")])
    task = file_task(train, dev, text_column="text", label_column="label")
    with pytest.raises(DataError, match=r"dev.csv:3: label 'meh' is not among the training "
                                        r"file's labels \(neg, pos\)"):
        task.read(None, "dev")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "a", "label": 1}\n{"text": "b", label: 0}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        file_task(bad_json, text_column="text", label_column="label")
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"text": ["a"], "label": 1}\n')
    with pytest.raises(DataError, match=r"nested.jsonl:1: field 'text' must be a string or a number, got list"):
        file_task(nested, text_column="text", label_column="label")
    with pytest.raises(DataError, match=r"x.parquet: unknown file type '.parquet'"):
        file_task(tmp_path / "x.parquet", text_column="text", label_column="label")
    with pytest.raises(DataError, match=r"missing.csv: file does not exist"):
        file_task(tmp_path / "missing.csv", text_column="text", label_column="label")
    with pytest.raises(BortkitError, match=r"has no test file; it was given: train, dev"):
        task.read(None, "test")


@pytest.mark.parametrize("name, content", [
    ("x.csv", "text,label\na,1\nb,1.0\nc,0\nd,0.0\ne,01\nf,1e0\n"),
    ("x.tsv", "text\tlabel\na\t1\nb\t1.0\nc\t0\nd\t-0\ne\t01\nf\t1E0\n"),
    ("x.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 1.0}\n'
                '{"text": "c", "label": 0}\n{"text": "d", "label": "0.0"}\n'
                '{"text": "e", "label": "01"}\n{"text": "f", "label": 1e0}\n'),
])
def test_numeric_labels_are_read_in_one_spelling(tmp_path, name, content):
    """Issue 26: 1, 1.0, 01 and 1e0 are one class in CSV, TSV and JSON lines (before, the
    labels 1 and 1.0 were two classes); a dev file's spelling maps to the same class."""
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    dev = tmp_path / "dev.csv"
    dev.write_text("text,label\nx,1.00\ny,+0\n", encoding="utf-8")
    task = file_task(path, dev, text_column="text", label_column="label")
    assert task.labels == ("0", "1") and task.num_labels == 2
    assert [e.label for e in task.read(None, "train")] == [1, 1, 0, 0, 1, 1]
    assert [e.label for e in task.read(None, "dev")] == [1, 0]


def test_labels_that_are_not_all_numbers_stay_strings(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("text,label\na,1\nb,1.0\nc,nan\nd,cat\n", encoding="utf-8")
    task = file_task(path, text_column="text", label_column="label")
    assert task.labels == ("1", "1.0", "cat", "nan")


@pytest.mark.parametrize("label, task_type", [
    ("nan", None), ("inf", None), ("-Infinity", None), ("1e400", None),
    ("nan", "classification"), ("1e400", "regression"), ("-inf", "regression"),
])
def test_labels_that_are_not_finite_are_one_line(tmp_path, label, task_type):
    """Before: a traceback without --task-type (int(nan), int(inf))."""
    path = tmp_path / "x.csv"
    path.write_text(f"text,label\na,0\nb,{label}\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        task = file_task(path, text_column="text", label_column="label", task_type=task_type)
        task.read(None, "train")
    assert str(err.value) == f"{path}:3: label {label!r} is not a finite number"


def test_a_json_integer_of_5000_digits_and_cr_only_endings_are_one_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a", "label": 0}\n{"text": "b", "label": ' + "1" * 5000 + "}\n")
    with pytest.raises(DataError) as err:
        file_task(path, text_column="text", label_column="label")
    assert str(err.value) == f"{path}:2: not readable JSON: a number with more than 4300 digits"
    path = tmp_path / "x.csv"
    path.write_bytes(b"text,label\ra,0\rb,1\r")
    with pytest.raises(DataError) as err:
        file_task(path, text_column="text", label_column="label")
    assert str(err.value).startswith(f"{path}:1: carriage return (CR) without a line feed at "
                                     "column 11: lines must end in \\n or \\r\\n")
    assert "universal-newline" not in str(err.value)


def test_glue_reads_a_numeric_label_in_any_spelling(tmp_path):
    folder = tmp_path / "SST-2"
    folder.mkdir()
    (folder / "train.tsv").write_text("sentence\tlabel\na fine film\t1.0\na dull one\t0\n")
    assert [e.label for e in get_task("SST-2").read(tmp_path, "train")] == [1, 0]

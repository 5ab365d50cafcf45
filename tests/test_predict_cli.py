"""python -m bortkit.predict and python -m bortkit.export: files in, predictions out; bad
input is one `bortkit: error:` line before any work."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest

import bortkit
from bortkit.errors import run_cli
from bortkit.predict import main


def assert_same(got, expected):
    """Same labels, scores equal up to float32 rounding (batches of other sizes)."""
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    np.testing.assert_allclose([g["score"] for g in got], [e["score"] for e in expected],
                               atol=1e-6)


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["--no-progress", *argv])
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def read_output(path):
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))


def test_predict_txt_and_csv_files(finetuned_sst2, tmp_path, capsys):
    best = finetuned_sst2 / "best"
    # form feed, file/group/record separators, NEL, U+2028/9 stay inside their line
    lines = ["A gripping, funny film.", "page\x0cbreak \x1c\x1d\x1e sep", "Dull\x85and\u2028far"
             "\u2029too long.", "tab\tand\vvertical"]
    (tmp_path / "in.txt").write_bytes(("\r\n".join(lines[:2]) + "\n" + "\n".join(lines[2:]) +
                                       "\n").encode("utf-8"))
    code, out, err = run(capsys, "--model", str(best), "--input", str(tmp_path / "in.txt"),
                         "--output", str(tmp_path / "preds.jsonl"), "--batch-size", "2")
    assert code == 0, err
    got = read_output(tmp_path / "preds.jsonl")
    assert [(g["id"], g["text"]) for g in got] == list(enumerate(lines, 1))
    assert_same(got, bortkit.pipeline(best)(lines))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "preds.jsonl"]

    # CSV with other columns first, quotes, a comma, a quoted newline and U+2028 in a text
    texts = ["Slow, but lovely.", "Awful.\nTruly.", "odd\u2028line"]
    (tmp_path / "in.csv").write_text('id,review,stars\nr1,"Slow, but lovely.",4\n'
                                     'r2,"Awful.\nTruly.",1\nr3,odd\u2028line,2\n',
                                     encoding="utf-8")
    for output, id_args, ids in (("csv.jsonl", ["--id-column", "id"], ["r1", "r2", "r3"]),
                                 ("out.csv", [], ["2", "3", "5"]),
                                 ("out.tsv", ["--id-column", "stars"], ["4", "1", "2"])):
        code, _, err = run(capsys, "--model", str(best), "--input", str(tmp_path / "in.csv"),
                           "--text-column", "review", "--output", str(tmp_path / output),
                           *id_args)
        assert code == 0, err
        got = read_output(tmp_path / output)
        assert [list(g) for g in got] == [["id", "text", "label", "score"]] * 3
        assert [str(g["id"]) for g in got] == ids and [g["text"] for g in got] == texts
        if output.endswith(".jsonl"):
            assert_same(got, bortkit.pipeline(best)(texts))
        else:
            assert_same([{**g, "score": float(g["score"])} for g in got],
                        bortkit.pipeline(best)(texts))


def test_predict_pairs_from_jsonl(finetuned_sst2, tmp_path, capsys):
    best = finetuned_sst2 / "best"
    rows = [{"a": "A man plays a guitar.", "b": "Someone plays music."},
            {"a": "Short.", "b": "Another one."}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, _, err = run(capsys, "--model", str(best), "--input", str(tmp_path / "in.jsonl"),
                       "--text-column", "a", "--text-pair-column", "b",
                       "--output", str(tmp_path / "out.jsonl"))
    assert code == 0, err
    got = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert_same(got, bortkit.pipeline(best)([(r["a"], r["b"]) for r in rows]))
    singles = bortkit.pipeline(best)([r["a"] for r in rows])
    assert not np.allclose([g["score"] for g in got], [s["score"] for s in singles], atol=1e-6)


@pytest.mark.parametrize("name, content, extra, message", [
    ("nope.txt", None, [], "{input}: input file not found"),
    ("in.docx", "x", [], "{input}: unsupported input format '.docx' (.txt, .csv, .tsv, .jsonl)"),
    ("empty.txt", "", [], "{input}: no inputs in the file"),
    ("in.csv", "sentence,label\nfine,1\n", [],
     "{input}:1: no column 'text' (columns: sentence, label); pass --text-column"),
    ("in.csv", "text,label\nfine,1\nshort\n", [], "{input}:3: row has 1 fields, the header 2"),
    ("in.tsv", "text\tother\nfine\tx\n", ["--text-pair-column", "pair"],
     "{input}:1: no column 'pair' (columns: text, other); pass --text-pair-column"),
    ("in.jsonl", '{"text": "fine"}\n{"text": "broken\n', [],
     "{input}:2: invalid JSON (Unterminated string starting at)"),
    ("in.jsonl", '{"text": 3}\n', [], "{input}:1: column 'text' must hold text, got a int"),
    ("in.txt", "fine\n", ["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    ("in.txt", "fine\n", ["--max-length", "2"], "--max-length must be at least 3, got 2"),
    ("in.txt", "fine\n", ["--max-length", "1000"],
     "--max-length must be at most 128 (the model's positions), got 1000"),
    ("in.txt", "fine\n\n  \ngood\n", [], "{input}:2: empty line: nothing to classify"),
    ("in.txt", "fine\rgood\n", [], "{input}:1: carriage return (CR) without a line feed"),
    ("in.csv", "text,text\nfine,good\n", [],
     "{input}:1: duplicate column name(s) in the header: text"),
    ("in.csv", "text,id\nfine,1\n,2\n", [], "{input}:3: column 'text' is empty: nothing to "
     "classify"),
    ("in.jsonl", '{"text": "fine", "text": "good"}\n', [],
     "{input}:1: invalid JSON (duplicate key(s) 'text')"),
    ("in.jsonl", '{"text": "fine"}\n', ["--id-column", "key"],
     "{input}:1: no column 'key' (columns: text); pass --id-column"),
    ("in.txt", "fine\n", ["--id-column", "id"],
     "--id-column needs a .csv, .tsv or .jsonl --input (a .txt line's id is its line number)"),
    ("in.txt", "fine\n", ["--output-format-probe"], None),
])
def test_predict_bad_input_is_one_line(finetuned_sst2, tmp_path, capsys, name, content, extra,
                                       message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content, newline="")
    output = tmp_path / "preds.jsonl"
    if message is None:  # an output extension that names no format
        extra, output = [], tmp_path / "preds.json"
        message = "--output must end in one of .jsonl, .csv, .tsv (the format to write), got " \
                  "'.json'"
    code, out, err = run(capsys, "--model", str(finetuned_sst2 / "best"), "--input", str(path),
                         "--output", str(output), *extra)
    assert code == 2
    assert err.startswith(f"bortkit: error: {message.format(input=path)}")
    assert err.count("\n") == 1
    assert not (tmp_path / "preds.jsonl").exists()


def test_predict_refuses_to_overwrite_and_models_without_a_head(finetuned_sst2, tiny_model,
                                                                tmp_path, capsys):
    (tmp_path / "in.txt").write_text("fine\n")
    (tmp_path / "preds.jsonl").write_text("earlier results\n")
    common = ["--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "preds.jsonl")]
    code, _, err = run(capsys, "--model", str(finetuned_sst2 / "best"), *common)
    assert code == 2 and err == (f"bortkit: error: {tmp_path / 'preds.jsonl'}: already exists "
                                 "(pass --overwrite to replace it)\n")
    assert (tmp_path / "preds.jsonl").read_text() == "earlier results\n"
    code, _, err = run(capsys, "--model", str(tiny_model), *common, "--overwrite")
    assert code == 2 and err.startswith(f"bortkit: error: {tiny_model}: this checkpoint has no "
                                        "task head (fine-tune it first")
    assert (tmp_path / "preds.jsonl").read_text() == "earlier results\n"


def test_export_cli_writes_a_transformers_classifier(finetuned_sst2, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    best = finetuned_sst2 / "best"
    done = subprocess.run([sys.executable, "-m", "bortkit.export", "--model", str(best),
                           "--output-dir", str(tmp_path / "hf")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == f"wrote {tmp_path / 'hf'} (huggingface)\n"
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "hf").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    texts = ["A gripping, funny film.", "Dull."]
    with torch.no_grad():
        logits = hf(**tokenizer(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(logits, bortkit.pipeline(best).logits(texts), atol=1e-4)
    again = subprocess.run([sys.executable, "-m", "bortkit.export", "--model", str(best),
                            "--output-dir", str(tmp_path / "hf")],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2
    assert again.stderr == (f"bortkit: error: {tmp_path / 'hf'}: output directory already "
                            "exists (pass --overwrite to replace it)\n")

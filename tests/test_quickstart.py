"""The README's quick start, run as written: its fine-tuning command on the CSV pair in
examples/ (cut to a few steps by options appended after it; argparse keeps the last value)
and then its Python snippet."""
import ast
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

README = REPO / "README.md"
FAST = ["--max-train-examples", "48", "--max-eval-examples", "32", "--max-steps", "3",
        "--no-progress"]


def quickstart():
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    command = next(c for c in bash.replace("\\\n", " ").splitlines() if "bortkit.finetune" in c)
    snippet = re.search(r"<!-- quickstart:python -->\n```python\n(.*?)```", section,
                        re.S).group(1)
    return shlex.split(command), snippet


@pytest.mark.slow
def test_readme_quickstart_runs_as_written(tmp_path, shared_dir, monkeypatch, capsys):
    command, snippet = quickstart()
    assert command[:3] == [".venv/bin/python", "-m", "bortkit.finetune"]
    assert "--model" in command and command[command.index("--model") + 1] == "minilm"
    assert command[command.index("--train") + 1] == "examples/my.csv"  # the user's own CSV
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "shared").symlink_to(shared_dir)  # the README's ../shared
    (work / "examples").symlink_to(REPO / "examples")  # run from the checkout, as written
    done = subprocess.run([sys.executable, *command[1:], *FAST], cwd=work,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (work / "runs/quick/my/seed-0/best/config.json").is_file()

    ast.parse(snippet)
    monkeypatch.chdir(work)
    exec(compile(snippet, f"{README}:quickstart", "exec"), {"__name__": "__quickstart__"})
    lines = capsys.readouterr().out.splitlines()
    predictions = ast.literal_eval(lines[0])
    assert [set(p) for p in predictions] == [{"label", "score"}] * 2
    assert all(p["label"] in ("negative", "positive") for p in predictions)  # names kept
    assert re.match(r"\(3, 384\) \[\[\s*1\.\s", lines[1])  # unit vectors: cosine 1 with self
    hf = ast.literal_eval(lines[-1])
    assert hf[0]["label"] == predictions[0]["label"]
    assert hf[0]["score"] == pytest.approx(predictions[0]["score"], abs=1e-4)
    assert (work / "runs/quick/hf/config.json").is_file()

"""The README and the guide (docs/) cannot rot: every link resolves, every Python block
parses, every option a shell block passes to a ``python -m bortkit.*`` command is one that
command lists in its --help, the blocks marked ``<!-- runs -->`` run, and the pages a user
reads carry no machine paths or load averages."""
import ast
import re
import shlex
import subprocess
import sys
from functools import lru_cache

import pytest

from conftest import REPO

README = REPO / "README.md"
GUIDE = sorted((REPO / "docs").glob("*.md"))
USER_PAGES = [README, *GUIDE]
PAGES = [*USER_PAGES, REPO / "ARCHITECTURE.md", REPO / "bench" / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
RUNS = re.compile(r"<!-- runs -->\s*\n```(\w*)\n(.*?)^```", re.S | re.M)


def blocks(page, languages):
    return [body for lang, body in FENCE.findall(page.read_text(encoding="utf-8"))
            if lang in languages]


def commands(body):
    """Each shell command of a block, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", body)
    for line in joined.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            yield line


def bortkit_invocations(line):
    """(module, words after it) for `python -m bortkit.X ...`, and the script's `-- flags`
    (they go to bortkit.distill)."""
    words = shlex.split(line.replace("|", " "), comments=True)
    for i, word in enumerate(words):
        if word == "-m" and i + 1 < len(words) and words[i + 1].startswith("bortkit"):
            yield words[i + 1], words[i + 2:]
        if word.endswith("run_pretraining_distillation.sh") and "--" in words[i:]:
            yield "bortkit.distill", words[words.index("--", i) + 1:]


@lru_cache(maxsize=None)
def help_text(module, sub):
    env_python = [sys.executable, "-m", module]
    if sub:
        done = subprocess.run([*env_python, sub, "--help"], capture_output=True, text=True,
                              cwd=REPO, timeout=120)
        if done.returncode == 0:
            return done.stdout
    done = subprocess.run([*env_python, "--help"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, f"{module} --help: {done.stderr[-500:]}"
    return done.stdout


def test_readme_is_a_short_users_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 400
    for heading in ("## Install", "## Quick start", "## The five jobs", "## Where to go next"):
        assert heading in text
    for job in ("Search", "Distil", "Fine-tune", "Variants", "Ship"):
        assert re.search(rf"^### \d\. {job}", text, re.M), job
    # every guide page is reachable from the README
    for page in GUIDE:
        assert f"docs/{page.name}" in text, page.name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_links_resolve(page):
    text = page.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://|#|mailto:", target):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize("page", [*USER_PAGES, REPO / "bench" / "README.md"],
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_machine_paths_or_load_averages(page):
    text = page.read_text(encoding="utf-8")
    for pattern in (r"/work/", r"/root/", r"/home/\w", r"/tmp/", r"load average",
                    r"\bload \d"):
        assert not re.search(pattern, text), f"{page.name}: {pattern!r} in a user's page"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_python_blocks_parse(page):
    for body in blocks(page, {"python"}):
        ast.parse(body, filename=str(page))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_blocks_use_options_their_commands_have(page):
    for body in blocks(page, {"bash", "sh", "console", "shell"}):
        for line in commands(body):
            for module, words in bortkit_invocations(line):
                sub = words[0] if words and re.fullmatch(r"[a-z][a-z_-]*", words[0]) else None
                text = help_text(module, sub)
                for word in words:
                    option = word.lstrip("[").split("=", 1)[0].rstrip("]")
                    if re.fullmatch(r"--[a-z][a-z0-9-]*", option):
                        assert re.search(rf"{re.escape(option)}\b", text), (
                            f"{page.name}: `{module}` has no option {option} (in: {line})")


def runnable():
    for page in USER_PAGES:
        for lang, body in RUNS.findall(page.read_text(encoding="utf-8")):
            yield pytest.param(lang, body, id=f"{page.name}:{body.splitlines()[0][:40]}")


@pytest.mark.parametrize("lang,body", list(runnable()))
def test_marked_blocks_run(lang, body):
    """Blocks marked `<!-- runs -->` are cheap and run as written, from the checkout."""
    if lang == "python":
        argv = [sys.executable, "-c", body]
    else:
        script = re.sub(r"(^|\s)(\.venv/bin/)?python(\s)", rf"\1{sys.executable}\3", body)
        argv = ["bash", "-euo", "pipefail", "-c", script]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() or lang == "bash"


def test_some_blocks_are_marked_to_run():
    assert len(list(runnable())) >= 3

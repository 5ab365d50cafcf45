"""One child process of the hostile-input suite: runs many bad inputs through one entry
point's ``main(argv)`` (via ``run_cli``, as ``python -m`` does) or through the Python API,
and reports for each the exit status, stderr, any traceback and what changed on disk.

    python tests/hostile_child.py < job.json > results.json

``job``: ``{"module": "bortkit.finetune.__main__", "sandbox": DIR, "cases": [{"id", "argv"}]}``;
a case whose ``argv[0]`` is ``"api:NAME"`` calls ``API[NAME](sandbox)`` instead. One
interpreter per entry point keeps the MXNet import (seconds) out of every case.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import sys
import traceback
from pathlib import Path


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: kind, size and modification time."""
    out = {}
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(parent) / name
            info = path.lstat()
            out[str(path.relative_to(root))] = (path.is_dir(), info.st_size, info.st_mtime_ns)
    return out


def changes(before: dict, after: dict) -> list:
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


# ------------------------------------------------------------------ Python API cases
def _model(sandbox):
    import bortkit
    return bortkit.from_pretrained(str(Path(sandbox) / "model"))


def _encode(**kwargs):
    def case(sandbox):
        import numpy as np
        model = _model(sandbox)
        ids = kwargs.pop("input_ids", np.array([[101, 2023, 102]]))
        model.encode(ids, **kwargs)
    return case


def _api_cases():
    import numpy as np
    ids = np.array([[101, 2023, 102]])
    return {
        "encode-token-type-2": _encode(token_type_ids=np.array([[0, 2, 0]])),
        "encode-token-type-99": _encode(token_type_ids=np.array([[0, 99, 0]])),
        "encode-token-type-neg": _encode(token_type_ids=np.array([[0, -1, 0]])),
        "encode-empty-batch": _encode(input_ids=np.zeros((0, 3), np.int64)),
        "encode-zero-length": _encode(input_ids=np.zeros((2, 0), np.int64)),
        "encode-id-too-big": _encode(input_ids=np.array([[101, 10 ** 6, 102]])),
        "encode-id-negative": _encode(input_ids=np.array([[101, -5, 102]])),
        "encode-3d": _encode(input_ids=ids[None]),
        "encode-float-ids": _encode(input_ids=np.array([[101.5, 2.0, 102.0]])),
        "encode-strings": _encode(input_ids=np.array([["a", "b"]])),
        "encode-mask-2": _encode(attention_mask=np.array([[1, 2, 1]])),
        "encode-mask-shape": _encode(attention_mask=np.array([[1, 1]])),
        "encode-too-long": _encode(input_ids=np.full((1, 1000), 2023)),
        "finetune-api-max-length": lambda sandbox: __import__("bortkit.finetune").finetune
        .finetune(task="SST-2", model=str(Path(sandbox) / "model"),
                  data_dir=str(Path(sandbox) / "glue"),
                  output_dir=str(Path(sandbox) / "out" / "api"), max_length=1024,
                  progress=False),
        "from-pretrained-missing": lambda sandbox: __import__("bortkit").from_pretrained(
            str(Path(sandbox) / "nope")),
        "from-pretrained-hf-no-weights": lambda sandbox: __import__("bortkit").from_pretrained(
            str(Path(sandbox) / "hf-no-weights")),
        # round two (issue 26): the case's argv[1] names an input under the sandbox
        "from-pretrained": lambda sandbox, name: __import__("bortkit").from_pretrained(
            str(Path(sandbox) / name)),
        "load-config": lambda sandbox, name: importlib.import_module("bortkit.config")
        .load_config(Path(sandbox) / name),
        "file-task": _file_task,
        "finetune-space": lambda sandbox, name: importlib.import_module(
            "bortkit.finetune.space").load_space(Path(sandbox) / name),
        "search-space": lambda sandbox, name: importlib.import_module("bortkit.search")
        .load_space(Path(sandbox) / name),
        "int8-save": lambda sandbox, target: __import__("bortkit").from_pretrained(
            str(Path(sandbox) / "int8")).save(target),
    }


def _file_task(sandbox, name):
    """Read the whole training file as ``finetune --train`` does."""
    from bortkit.tasks.files import file_task
    task = file_task(Path(sandbox) / name, text_column="text", label_column="label")
    task.read(None, "train")


def run_case(module, argv, sandbox: Path) -> dict:
    from bortkit.errors import BortkitError, run_cli
    from search.errors import SearchError
    err = io.StringIO()
    code, trace = None, None
    before = snapshot(sandbox)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            if argv and argv[0].startswith("api:"):
                try:
                    _api_cases()[argv[0][4:]](sandbox, *argv[1:])
                    code = 0
                except (BortkitError, SearchError) as error:  # what a caller of the API sees
                    print(f"bortkit: error: {error}", file=sys.stderr)
                    code = 2
                except OSError as error:  # an output the OS refused: it must name the output
                    print(f"bortkit: error: {error.filename}: {error.strerror}", file=sys.stderr)
                    code = 2
            else:
                run_cli(module.main, argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - the suite reports it as a traceback
            trace = traceback.format_exc()
            code = 1
    return {"code": code, "stderr": err.getvalue(), "traceback": trace,
            "changed": changes(before, snapshot(sandbox))}


def main() -> None:
    job = json.load(sys.stdin)
    sandbox = Path(job["sandbox"])
    module = importlib.import_module(job["module"]) if job["module"] else None
    results = {case["id"]: run_case(module, case["argv"], sandbox) for case in job["cases"]}
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()

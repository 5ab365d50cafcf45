"""The layers of ARCHITECTURE.md, checked over the import graph of every source file."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BORTKIT = REPO / "bortkit"

# ARCHITECTURE.md's table: a unit imports only from lower layers (and from itself).
LAYERS = {
    "errors": 0,
    "io": 1, "resolve": 1,
    "config": 2, "options": 2, "rundir": 2, "tokenizers": 2, "tasks": 2, "ops": 2,
    "model": 3, "data": 3, "accounting": 3, "metrics": 3,
    "checkpoint": 4, "info": 4,
    "train": 5, "inference": 5, "quantize": 5,
    "finetune": 6, "distill": 6, "predict": 6, "export": 6,
    "agora": 7, "search": 7, "prune": 7, "analyze": 7, "multitask": 7,
    "sweep": 8,
}
FACADE = "bortkit"  # bortkit/__init__.py: lazy re-exports, outside the layers


def _module(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    if parts[1:] == ["__main__"]:  # the `bortkit` console script: a facade over the commands
        return FACADE
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path, root: Path = REPO):
    """(line, imported module, imported names) of every import in ``path``."""
    module = _module(path, root)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []


def _sources(root: Path):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_unit_has_a_layer():
    units = {_unit(_module(p)) for p in _sources(BORTKIT)} - {FACADE}
    assert units <= set(LAYERS), f"add {sorted(units - set(LAYERS))} to ARCHITECTURE.md"


def test_imports_go_down_the_layers():
    wrong = []
    for path in _sources(BORTKIT):
        unit = _unit(_module(path))
        for line, target, names in _imports(path):
            if not target.startswith("bortkit"):
                continue
            other = _unit(target)
            if other == FACADE and names and names[0] in LAYERS:  # `from .. import model`
                other = names[0]
            if unit == FACADE or other in (unit, FACADE) or other not in LAYERS:
                continue
            if LAYERS[other] >= LAYERS[unit]:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {unit} (layer {LAYERS[unit]}) "
                             f"imports {target} ({other}, layer {LAYERS[other]})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("unit,forbidden", [
    ("train", ("finetune", "distill", "agora", "sweep", "search")),
    ("agora", ("sweep",)),
    ("model", ("train", "finetune", "distill", "agora", "sweep", "search")),
])
def test_named_contracts(unit, forbidden):
    """The contracts the issue names, stated on their own (the layers imply them)."""
    for path in _sources(BORTKIT / unit):
        for line, target, _ in _imports(path):
            assert _unit(target) not in forbidden or not target.startswith("bortkit."), \
                f"{path.relative_to(REPO)}:{line} imports {target}"


def test_top_level_search_imports_nothing_from_bortkit():
    for path in _sources(REPO / "search"):
        for line, target, _ in _imports(path):
            assert not target.startswith("bortkit"), f"{path.relative_to(REPO)}:{line}"


def _private_reads(path: Path, modules: set, root: Path = REPO):
    """``from bortkit.x import _y`` and ``m._y`` where ``m`` is an imported bortkit module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases = {}
    for line, target, names in _imports(path, root):
        if target.startswith("bortkit"):
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    yield line, f"from {target} import {name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("bortkit"):
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                full = None
                if node.level or (node.module or "").startswith("bortkit"):
                    full = f"{node.module or ''}.{alias.name}"
                if full and alias.name in modules:
                    aliases[alias.asname or alias.name] = full
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in aliases and node.attr.startswith("_") \
                and not node.attr.startswith("__"):
            yield node.lineno, f"{node.value.id}.{node.attr}"


def test_no_module_reads_another_modules_private_names():
    modules = {p.stem if p.name != "__init__.py" else p.parent.name for p in _sources(BORTKIT)}
    wrong = [f"{path.relative_to(REPO)}:{line}: {what}"
             for root in (BORTKIT, REPO / "bench", REPO / "search")
             for path in _sources(root) for line, what in _private_reads(path, modules)]
    assert not wrong, "\n".join(wrong)


def test_the_checks_catch_wrong_way_imports(tmp_path):
    """The checks themselves: a planted wrong-way import and private reads are found."""
    planted = tmp_path / "bortkit" / "train" / "bad.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("from ..finetune import Finetuner\nfrom ..model.kernels import _lib\n"
                       "from ..model import kernels\nkernels._build()\n")
    targets = [target for _, target, _ in _imports(planted, tmp_path)]
    reads = [what for _, what in _private_reads(planted, {"kernels", "model"}, tmp_path)]
    assert targets[0] == "bortkit.finetune" and _unit(targets[0]) == "finetune"
    assert LAYERS["finetune"] >= LAYERS["train"]  # so test_imports_go_down_the_layers fails
    assert reads == ["from bortkit.model.kernels import _lib", "kernels._build"]


def test_one_class_per_name():
    """``SearchSpace``, ``Example`` and ``Batch`` were each defined twice (issue 10)."""
    where: dict = {}
    for root in (BORTKIT, REPO / "search"):
        for path in _sources(root):
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.ClassDef):
                    where.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not twice, twice


# Private names of other libraries read on purpose, each with its reason.
ALLOWED_PRIVATE = {
    "_replace": "namedtuple's public API (urllib's SplitResult)",
    "_collect_params_with_prefix": "Gluon 1.x has no public way to get parameters by their "
                                   "structural names (bortkit/checkpoint/core.py)",
    "_exit": "os._exit is documented public API: a search worker ends at once when its "
             "parent dies (bortkit/search/worker.py)",
}


def test_no_private_reads_of_other_libraries():
    """``x._y`` only on self/cls/super(): e.g. Optuna is used through its public API (the
    sweep read ``study._storage``, ``trial._trial_id``, ``optuna.storages._heartbeat``)."""
    wrong = []
    for path in _sources(BORTKIT):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and any(
                    part.startswith("_") and not part.startswith("__")
                    for part in node.module.split(".")):
                wrong.append(f"{path.relative_to(REPO)}:{node.lineno}: from {node.module}")
            if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") \
                    or node.attr.startswith("__") or node.attr in ALLOWED_PRIVATE:
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "super":
                continue
            wrong.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert not wrong, "\n".join(wrong)


# A run's life (claim, lock, resume check, training state) is bortkit.train.Run's, over
# bortkit/rundir.py's claims and bortkit/io.py's atomic writes: no trainer or writer may use
# these pieces below Run itself, or read a run's files by name.
RUN_INTERNALS = ("save_training_state", "load_training_state", "check_resume(", "RunDir(",
                 "lock_path(", "O_EXCL", "TRAINING_STATE", "OPTIMIZER_STATES", '"state.json"',
                 "'state.json'", "def _this_run", "RESUME_FIELDS", "stored_state(")
RUN_OWNERS = ("bortkit/train/", "bortkit/rundir.py", "bortkit/io.py")
# Every trainer builds a Run; every writer of a whole folder claims it with writing().
TRAINERS = {"bortkit/finetune/trainer.py": "Run(", "bortkit/multitask/trainer.py": "Run(",
            "bortkit/prune/args.py": "Run(", "bortkit/distill/plan.py": "Run(",
            "bortkit/agora/loop.py": "Run(", "bortkit/export/core.py": "writing("}


def _run_internals(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "bortkit").rglob("*.py")):
        where = path.relative_to(root).as_posix()
        if where.startswith(RUN_OWNERS):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found += [f"{where}:{number}: {name}" for name in RUN_INTERNALS if name in line]
    return found


def test_no_trainer_or_writer_has_its_own_run_lifecycle():
    """How issue 24 checked "no own claim, lock, resume or state code": every use of the
    pieces under :class:`bortkit.train.Run` outside bortkit/train, rundir.py and io.py."""
    assert not _run_internals(REPO), "\n".join(_run_internals(REPO))
    for where, call in TRAINERS.items():
        assert call in (REPO / where).read_text(encoding="utf-8"), (where, call)


def test_the_lifecycle_check_catches_a_private_resume(tmp_path):
    planted = tmp_path / "bortkit" / "prune" / "run.py"
    planted.parent.mkdir(parents=True)
    planted.write_text('state = json.loads((out / "state.json").read_text())\n'
                       "check_resume(state['args'], args, out)\n")
    assert _run_internals(tmp_path) == ['bortkit/prune/run.py:1: "state.json"',
                                        "bortkit/prune/run.py:2: check_resume("]


# The task head's record in config.json ("_head") is read and written by
# bortkit.checkpoint.TaskHead alone (from_meta, to_meta, strip); everyone else handles a
# TaskHead, so a head is checked the same way wherever it is used.
HEAD_RECORD_OWNERS = ("bortkit/checkpoint/heads.py",)


def _raw_head_records(root: Path) -> list[str]:
    """Every "_head" string (an index, a .get, a key, a comparison) in bortkit/ and bench/
    outside its owner; docstrings and longer messages that mention it do not count."""
    found = []
    for folder in ("bortkit", "bench"):
        for path in _sources(root / folder):
            where = path.relative_to(root).as_posix()
            if where in HEAD_RECORD_OWNERS:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            found += [f"{where}:{node.lineno}" for node in ast.walk(tree)
                      if isinstance(node, ast.Constant) and node.value == "_head"]
    return found


def test_the_head_record_is_handled_only_through_task_head():
    assert not _raw_head_records(REPO), "\n".join(_raw_head_records(REPO))


def test_the_head_record_check_catches_a_raw_read(tmp_path):
    planted = tmp_path / "bortkit" / "export" / "graph.py"
    planted.parent.mkdir(parents=True)
    planted.write_text('"""Reads the ``"_head`` record."""\n'
                       'head = state.meta.get("_head")\n'
                       'labels = meta["_head"]["labels"]\n'
                       'keep = {k: v for k, v in meta.items() if k != "_head"}\n')
    owner = tmp_path / "bortkit" / "checkpoint" / "heads.py"
    owner.parent.mkdir(parents=True)
    owner.write_text('KEY = "_head"\n')
    assert _raw_head_records(tmp_path) == ["bortkit/export/graph.py:2",
                                           "bortkit/export/graph.py:3",
                                           "bortkit/export/graph.py:4"]

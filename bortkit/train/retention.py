"""How many training checkpoints a run keeps (``--save-total-limit``).

A run's latest training state is always ``checkpoint/`` (what ``--resume`` reads; see
:mod:`bortkit.train.state`). With a limit N > 1, each saved state is also kept as
``checkpoint-STEP/``, hard links to the files of ``checkpoint/`` (which are replaced whole,
never written in place, so a link keeps the old version and costs no space until then), and
only the N most recent of those stay. Framework-free.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..io import atomic_directory

SNAPSHOT = re.compile(r"^checkpoint-(\d+)$")


def link_or_copy(source: str, target: str) -> None:
    """Hard-link a file, or copy it where links are not possible (another filesystem)."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def snapshots(run_dir: Path) -> list[Path]:
    """The ``checkpoint-STEP/`` directories of ``run_dir``, oldest step first."""
    found = [(int(m.group(1)), p) for p in Path(run_dir).glob("checkpoint-*")
             if p.is_dir() and (m := SNAPSHOT.match(p.name))]
    return [p for _, p in sorted(found)]


def keep_snapshot(run_dir: Path, step: int, limit: int) -> list[Path]:
    """After ``checkpoint/`` was saved at ``step``: keep it as ``checkpoint-STEP/`` and delete
    the oldest snapshots beyond ``limit`` (no snapshot at all when ``limit`` <= 1: the latest
    ``checkpoint/`` is the one kept). Returns the deleted directories."""
    run_dir = Path(run_dir)
    if limit <= 1:
        return []
    target = run_dir / f"checkpoint-{step}"
    if not target.exists():
        with atomic_directory(target) as tmp:
            shutil.copytree(run_dir / "checkpoint", tmp, dirs_exist_ok=True,
                            copy_function=link_or_copy)
    old = snapshots(run_dir)[:-limit]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return old

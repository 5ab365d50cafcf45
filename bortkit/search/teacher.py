"""The search's teacher: a checkpoint with a masked-LM head, fitted once and cached.

The bundled all-MiniLM-L6-v2 is a sentence encoder without an MLM head. Distillation needs
the teacher's token distributions, so the teacher is first trained as a masked LM on the
training corpus (every weight by default; ``scope="head"`` freezes the encoder). That takes
minutes, and its result depends only on the teacher, the corpus, the step count, the
learning rate and the batch settings; it is stored under the user
cache directory (``$BORTKIT_CACHE``, else ``$XDG_CACHE_HOME/bortkit``, else
``~/.cache/bortkit``) in ``teacher-heads/<key>/`` and reused by every later search.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional, Sequence

ENV_CACHE = "BORTKIT_CACHE"


def user_cache_dir() -> Path:
    """The root of bortkit's user cache (the same root the fused kernels are built in)."""
    root = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bortkit")
    return Path(root)


def fingerprint(paths: Sequence[Path]) -> str:
    """Short SHA-256 of the names and bytes of ``paths``."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def head_key(teacher: Path, corpus_id: str, steps: int, batch_size: int, seq_length: int,
             seed: int, scope: str = "head", learning_rate: float = 2e-4) -> str:
    """What the fitted head depends on: the teacher's files, the corpus and the settings."""
    files = sorted(p for p in Path(teacher).iterdir() if p.is_file())
    settings = {"teacher": fingerprint(files), "corpus": corpus_id, "steps": steps,
                "batch_size": batch_size, "seq_length": seq_length, "seed": seed}
    if scope != "head" or learning_rate != 2e-4:  # the first head-only fits keep their keys
        settings.update(scope=scope, learning_rate=learning_rate)
    settings = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(settings.encode()).hexdigest()[:20]


def teacher_with_head(base: Path, train_dir: Path, key: str, steps: int, batch_size: int,
                      seed: int, cache: Optional[Path], scratch: Path, progress: bool,
                      scope: str = "head", learning_rate: float = 2e-4) -> Path:
    """A checkpoint of ``base`` with a fitted MLM head: from ``cache/teacher-heads/key`` when
    it is there, else fitted now (:func:`bortkit.distill.fit_mlm_head`: the head alone with the
    encoder frozen, or with ``scope="all"`` every weight, as the distillation script does)
    and stored there. ``cache=None`` fits into ``scratch`` (the search's own folder) and
    keeps it only for that search. The checkpoint is written atomically."""
    home = (cache / "teacher-heads" / key) if cache is not None else scratch / "fitted"
    if not (home / "config.json").is_file():
        from ..distill import fit_mlm_head
        fit_mlm_head(base, train_dir, home, steps, learning_rate=learning_rate, scope=scope,
                     batch_size=batch_size, seed=seed, progress=progress)
    return home

"""Atomic file writes for the search's reports: a reader never sees half a file.

A small copy of ``bortkit.io.atomic_write`` so that this package stays usable without
bortkit: write to a temporary name beside the target, fsync, rename over it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path: os.PathLike | str, mode: str = "w", **kwargs) -> Iterator[Any]:
    """Open a temporary file next to ``path``; rename it over ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

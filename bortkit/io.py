"""Atomic file and directory writes: readers never see half a file.

A file is written to a temporary name in the same directory, flushed, fsynced and renamed
over the target (``os.replace`` is atomic on POSIX). A directory is filled under a temporary
name and swapped in the same way, so a killed process leaves either the old or the new one.
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

# Every temporary name below contains STAGING (or OLD, for a directory being replaced), so a
# run that starts in a folder can remove what a killed save left there (:func:`clean_staging`).
STAGING = ".bortkit-staging-"
OLD = ".bortkit-old-"


def current_umask() -> int:
    """The process umask now (a user may change it after import; there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: os.PathLike | str, mode: str = "w", **kwargs) -> Iterator[Any]:
    """Open a temporary file next to ``path``; rename it over ``path`` on success."""
    path = Path(path)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
        fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path), suffix=".tmp",
                                   dir=path.parent)
    os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600: give the usual mode
    try:
        with output_errors(path, tmp):
            with os.fdopen(fd, mode, **kwargs) as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: os.PathLike | str, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_write(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=False)
        fh.write("\n")


@contextlib.contextmanager
def atomic_directory(path: os.PathLike | str) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``path`` whole."""
    path = Path(path)
    with output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(path)
        tmp = Path(tempfile.mkdtemp(prefix=staging_prefix(path), suffix=".tmp",
                                    dir=path.parent))
    os.chmod(tmp, 0o777 & ~current_umask())
    try:
        with output_errors(path, tmp):
            yield tmp
        with output_errors(path):
            old = None
            if path.exists():
                old = path.with_name(f".{path.name}{OLD}{os.getpid()}")
                os.replace(path, old)
            os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def output_errors(path: os.PathLike | str, staging: os.PathLike | str | None = None
                  ) -> Iterator[None]:
    """Make every ``OSError`` (read-only folder, full disk, a file in the way...) name the
    output: a write error without a file name (``ENOSPC`` from ``write``) gets ``path``, and
    a name inside the temporary ``staging`` copy is shown as the same name inside ``path``,
    so :func:`bortkit.errors.run_cli` prints one line ``bortkit: error: PATH: problem``."""
    try:
        yield
    except OSError as err:
        if err.errno is None:
            raise
        name = os.fspath(path) if err.filename is None else os.fspath(err.filename)
        if staging is not None and name.startswith(os.fspath(staging)):
            name = os.fspath(path) + name[len(os.fspath(staging)):]
        elif STAGING in os.path.basename(name):  # the staging name itself could not be made
            name = os.fspath(path)
        if name == err.filename:
            raise
        raise type(err)(err.errno, err.strerror, name) from err


def staging_prefix(path: Path) -> str:
    """The name prefix of this process's temporary copies of ``path``: it holds the process
    id, so a later writer can tell a killed writer's leftovers from a live one's."""
    return f".{path.name}{STAGING}{os.getpid()}-"


def _owner(rest: str) -> int | None:
    """The process id at the start of what follows STAGING/OLD in a name (None: not one)."""
    digits = rest.split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def process_alive(pid: int) -> bool:
    """True while process ``pid`` runs (the owner of a lock or a staging copy)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale(path: os.PathLike | str) -> list[Path]:
    """Remove what a killed atomic write of ``path`` (:func:`atomic_write`,
    :func:`atomic_directory`) left beside it: staging copies whose process is gone go, and a
    replaced original (:data:`OLD`) whose new version never arrived is renamed back. Copies
    of live processes are never touched. Every atomic write calls it first, so the next run
    of an interrupted export or save leaves nothing behind. Returns the paths handled."""
    path = Path(path)
    touched = []
    for marker in (STAGING, OLD):
        prefix = f"{path.name}{marker}"
        for entry in path.parent.glob(".*" + glob.escape(prefix) + "*"):
            if not entry.name.lstrip(".").startswith(prefix):  # (staging of a staging copy:
                continue                                         # "..NAME" + STAGING...)
            pid = _owner(entry.name.lstrip(".")[len(prefix):])
            if pid is None or pid == os.getpid() or process_alive(pid):
                continue
            if marker == STAGING or path.exists():
                remove(entry)
            else:
                os.replace(entry, path)
            touched.append(entry)
    return touched


def clean_staging(root: os.PathLike | str) -> list[Path]:
    """Remove what interrupted saves left under ``root``: staging files and folders
    (:data:`STAGING`) go; a replaced folder (:data:`OLD`) whose new version never arrived is
    renamed back. Call it only while holding the folder (no save can be running). Returns
    the paths removed or restored."""
    touched = []
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(parent) / name
            if STAGING in name:
                remove(path)
                touched.append(path)
            elif OLD in name and name.startswith("."):
                target = path.with_name(name[1:name.index(OLD)])
                if target.exists():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.replace(path, target)
                touched.append(path)
        dirs[:] = [d for d in dirs if STAGING not in d and OLD not in d]
    return touched


def remove(path: Path) -> None:
    """Delete a file or a whole folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def save_png(fig, path: os.PathLike | str, dpi: int = 110, **savefig_options) -> Path:
    """Write a matplotlib figure as a PNG, atomically, and close it."""
    import matplotlib.pyplot as plt
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, **savefig_options)
    plt.close(fig)
    return Path(path)

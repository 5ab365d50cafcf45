"""Output directories of runs: claimed before work starts, checked on resume, one line on
failure. Every trainer and writer goes through here (fine-tuning, distillation, Agora, the
sweep, the search, create_pretraining_data), so the rules live once:

- a file where the folder should be, or a folder that cannot be written, is refused at once;
- a finished run (``finished`` names, e.g. ``result.json``) is refused unless ``overwrite``;
  a started one (``started`` names, e.g. ``checkpoint/``) unless ``resume`` or ``overwrite``;
- a folder another live process holds is refused: the holder's pid is in a lock file next to
  the folder (``.NAME.bortkit-lock``); a lock whose process is dead is taken over;
- the folder is created only when work starts (:meth:`RunDir.__enter__`), and removed again
  if the run fails before writing anything, so failed runs leave no empty folders;
- staging folders of a save that was killed are removed when the next run starts
  (:func:`bortkit.io.clean_staging`);
- :func:`check_resume` compares the settings a run recorded with the new ones and refuses a
  mismatch, listing every difference.

Framework-free (no MXNet), so command lines can claim before importing the work. It sits in
layer 1 so that the data writers (layer 2) claim their folders too; the runtime re-exports
it (``from bortkit.train import claim``).
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional, Sequence

from .errors import ConfigError, OutputError
from .io import STAGING, clean_staging, output_errors, process_alive, remove

LOCK = ".bortkit-lock"


def lock_path(directory: os.PathLike | str) -> Path:
    """The lock file of ``directory``: a sibling, so a folder swapped in whole is covered."""
    directory = Path(directory)
    return directory.with_name(f".{directory.name}{LOCK}")


def _writable_folder(path: Path, option: str) -> None:
    """``path`` (existing or to be created) is a folder this process can write into."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} is a file, expected a folder", path=path)
    probe = path
    while not probe.exists():  # the nearest existing ancestor must be a writable folder
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{option} lies under a file ({probe}), expected a folder", path=path)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"{option}: folder is not writable ({probe})", path=path)


class RunDir:
    """The claim on one output folder; use as ``with claim(...) as out:`` around the work.

    Checking (the constructor) writes nothing; entering takes the lock, creates the folder,
    cleans staging leftovers and (with ``overwrite``) removes the previous run's ``finished``
    and ``started`` entries; leaving releases the lock and removes the folder again if it was
    created here and is still empty. ``create=False`` (a writer that swaps in the whole
    folder, e.g. :func:`bortkit.io.atomic_directory`) only locks.
    """

    def __init__(self, path: os.PathLike | str, *, option: str = "--output-dir",
                 finished: Sequence[str] = (), started: Sequence[str] = (),
                 resume: bool = False, overwrite: bool = False, create: bool = True,
                 enabled: bool = True, folder: bool = True):
        self.path = Path(path)
        self.option, self.create, self.enabled = option, create, enabled
        self.finished, self.started = tuple(finished), tuple(started)
        self.overwrite, self.resume = overwrite, resume
        self.created: Optional[Path] = None
        self._locked = False
        if not enabled:  # a Horovod rank other than 0 writes nothing
            return
        # a folder, or (``folder=False``) a file written in one piece, e.g. predictions
        _writable_folder(self.path if folder else self.path.parent, option)
        self._check_holder()
        if self.path.is_dir() and not overwrite:
            done = [n for n in self.finished if (self.path / n).exists()]
            if done and not resume:
                raise ConfigError(f"holds a finished run ({done[0]}); pass --overwrite to "
                                  f"replace it or choose another {option}", path=self.path)
            begun = [n for n in self.started if (self.path / n).exists()]
            if begun and not resume and not done:
                raise ConfigError(f"holds a started run ({begun[0]}); pass --resume to "
                                  f"continue it, --overwrite to replace it, or choose another "
                                  f"{option}", path=self.path)

    def _check_holder(self) -> None:
        lock = lock_path(self.path)
        try:
            pid = int(lock.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        if pid != os.getpid() and process_alive(pid):
            raise ConfigError(f"is in use by another running bortkit process (pid {pid}, "
                              f"lock {lock.name}); wait for it or choose another "
                              f"{self.option}", path=self.path)

    def _take_lock(self) -> None:
        lock = lock_path(self.path)
        with output_errors(lock):
            lock.parent.mkdir(parents=True, exist_ok=True)
            # the lock appears with its pid already inside (written aside, then hard-linked,
            # which fails if it exists), so no other process ever reads an empty lock and
            # takes it for a stale one
            mine = lock.with_name(f"{lock.name}.{os.getpid()}")
            mine.write_text(f"{os.getpid()}\n")
            try:
                for _ in range(2):
                    try:
                        os.link(mine, lock)
                    except FileExistsError:
                        self._check_holder()  # raises if a live process holds it
                        lock.unlink(missing_ok=True)  # stale: its process is gone
                        continue
                    self._locked = True
                    return
            finally:
                mine.unlink(missing_ok=True)
        raise OutputError("could not take the lock (another run is starting)", path=lock)

    def __enter__(self) -> Path:
        if not self.enabled:
            return self.path
        top = self.path  # the first of path and its parents that does not exist yet
        while not top.parent.exists():
            top = top.parent
        self.created = None if self.path.exists() else top
        self._take_lock()
        try:
            with output_errors(self.path):
                if self.create and not self.path.exists():
                    self.path.mkdir(parents=True)
                for sibling in self.path.parent.glob(f".{self.path.name}{STAGING}*"):
                    remove(sibling)  # a whole-folder swap (atomic_directory) that was killed
                if self.path.is_dir():
                    clean_staging(self.path)
                    if self.overwrite:
                        for name in self.finished + self.started:
                            entry = self.path / name
                            if entry.exists():
                                remove(entry)
        except BaseException as err:
            self.__exit__(type(err), err, None)
            raise
        return self.path

    def __exit__(self, kind, value, trace) -> None:
        if not self.enabled:
            return
        if self._locked:
            lock_path(self.path).unlink(missing_ok=True)
            self._locked = False
        if self.created is not None and kind is not None:
            # a failed run leaves no folder it made, as long as it wrote nothing there
            folder = self.path
            while True:
                try:
                    folder.rmdir()
                except FileNotFoundError:
                    pass
                except OSError as err:
                    if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                        break
                    raise
                if folder == self.created:
                    break
                folder = folder.parent


def claim(path: os.PathLike | str, **kwargs) -> RunDir:
    """Check ``path`` as an output folder now; ``with`` the result around the work."""
    return RunDir(path, **kwargs)


@contextlib.contextmanager
def writing(path: os.PathLike | str, *, overwrite: bool = False,
            option: str = "--output-dir", folder: bool = True) -> Iterator[Path]:
    """The claim of a writer that swaps in a whole folder (export, the int8 save, compact;
    :func:`bortkit.io.atomic_directory` inside) or, with ``folder=False``, one file
    (predictions; :func:`bortkit.io.atomic_write`): the lock, so that of two concurrent
    writers the second is refused, and the cleanup of a killed write's staging copy. An
    output that appeared since the writer's checks (another writer finished first) is
    refused unless ``overwrite``."""
    with RunDir(path, option=option, create=False, overwrite=overwrite, folder=folder) as out:
        if not overwrite and (out.is_file() or (out.is_dir() and any(out.iterdir()))):
            raise ConfigError(f"was written by another process meanwhile; pass --overwrite "
                              f"to replace it or choose another {option}", path=out)
        yield out


def _flag(name: str) -> str:  # bortkit.options.flag (same layer, so not imported)
    return "--" + name.replace("_", "-")


def differences(stored: Mapping, current: Mapping,
                keys: Optional[Iterable[str]] = None) -> list[str]:
    """``--name OLD -> NEW`` for every key whose value differs (``keys``: only these)."""
    keys = list(keys) if keys is not None else sorted(set(stored) | set(current))
    out = []
    for key in keys:
        old, new = stored.get(key), current.get(key)
        if key in stored and old != new:
            if isinstance(old, Mapping) and isinstance(new, Mapping):  # e.g. a model config
                inner = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}"
                                  for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
                out.append(f"{key} ({inner})")
            else:
                out.append(f"{_flag(key)} {old!r} -> {new!r}")
    return out


def check_resume(stored: Mapping, current: Mapping, path: os.PathLike | str,
                 keys: Optional[Iterable[str]] = None) -> None:
    """Refuse to resume the run at ``path`` with settings other than it recorded."""
    found = differences(stored, current, keys)
    if found:
        raise ConfigError("cannot resume: settings differ from the run's ("
                          + "; ".join(found) + "); use the same settings or another "
                          "--output-dir", path=path)

"""User-facing errors: one line naming the file (and line) and the problem.

Every check at a public boundary raises a :class:`BortkitError` subclass (the framework-free
``search`` package raises its own ``search.SearchError``, same form). Command-line entry
points run through :func:`run_cli`, which prints ``bortkit: error: <message>`` for either on
a single line and exits with status 2 instead of showing a traceback.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Optional, Sequence

from search.errors import SearchError  # the bortkit-free search core's own user error


class BortkitError(Exception):
    """An error the user can fix. ``str(err)`` is ``path[:line]: problem``."""

    def __init__(self, problem: str, path: Optional[os.PathLike | str] = None,
                 line: Optional[int] = None):
        self.problem = " ".join(str(problem).split())  # always a single line
        self.path = None if path is None else os.fspath(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.problem
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.problem}"


class ConfigError(BortkitError, ValueError):
    """A model, search-space or experiment configuration is invalid."""


class CheckpointError(BortkitError):
    """A checkpoint is missing, corrupt, or disagrees with its config."""


class DataError(BortkitError, ValueError):
    """An input data file is malformed."""


def run_cli(main: Callable[[Optional[Sequence[str]]], Optional[int]],
            argv: Optional[Sequence[str]] = None) -> None:
    """Run a ``main(argv)`` function as a command: user errors become one line on stderr."""
    try:
        code = main(argv)
    except (BortkitError, SearchError) as err:
        print(f"bortkit: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("bortkit: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)

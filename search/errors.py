"""The search core's one error type: a problem the user can fix, on one line.

``str(err)`` is ``path[:line]: problem``, the form bortkit's command lines print after
``bortkit: error:`` (``bortkit.errors.run_cli`` catches it). Kept here, not imported from
bortkit, so that this package stays usable without bortkit.
"""
from __future__ import annotations

import os
from typing import Optional

__all__ = ["SearchError"]


class SearchError(ValueError):
    """Invalid search input: a space file, a budget, costs, settings or a state file."""

    def __init__(self, problem: str, path: Optional[os.PathLike | str] = None,
                 line: Optional[int] = None):
        self.problem = " ".join(str(problem).split())  # always a single line
        self.path = None if path is None else os.fspath(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.problem
        return f"{self.path if self.line is None else f'{self.path}:{self.line}'}: {self.problem}"

"""The hyperparameter set Θ: a YAML file of training settings, each trained per representative.

Two forms, both giving a list of mappings (one θ each)::

    # explicit settings
    - {learning_rate: 5.0e-4}
    - {learning_rate: 1.0e-3, warmup_ratio: 0.2}

    # or a grid: the Cartesian product of the lists, in file order
    learning_rate: [5.0e-4, 1.0e-3]
    warmup_ratio: [0.1]

The core does not know what a hyperparameter means: the caller passes ``known``, a mapping
of each allowed name to a check returning None (fine) or the problem as text. An unknown
name, a wrong value, a duplicate or an empty file is a one-line :class:`SearchError` naming
the file and line, raised before anything is trained.
"""
from __future__ import annotations

import difflib
import itertools
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

from .errors import SearchError

from .space import read_yaml
from .store import arch_key

Check = Callable[[Any], Optional[str]]


def load_thetas(path: os.PathLike | str, known: Mapping[str, Check]) -> List[Dict[str, Any]]:
    """Θ from a YAML file: a list of settings or a grid of lists (see the module docstring)."""
    path = Path(path)
    data, lines = read_yaml(path, "hyperparameter set (Θ) file")

    def fail(problem: str, *where) -> SearchError:
        return SearchError(problem, path=path, line=lines.get(tuple(where)))

    if isinstance(data, Mapping):  # a grid
        for name, values in data.items():
            if not isinstance(values, list) or not values:
                raise fail(f"grid entry {name!r} must be a non-empty list of values like "
                           f"[1.0e-4, 5.0e-4], got {values!r}", name)
        names = list(data)
        settings = [dict(zip(names, combo)) for combo in itertools.product(*data.values())]
        where = [tuple() for _ in settings]
        for name in names:
            _check_name(name, known, lambda problem: fail(problem, name))
            for index, value in enumerate(data[name]):
                _check_value(name, value, known, lambda problem: fail(problem, name, index))
    elif isinstance(data, list) and data:
        settings, where = [], []
        for index, theta in enumerate(data):
            if not isinstance(theta, Mapping) or not theta:
                raise fail(f"setting {index} must be a mapping of hyperparameter: value like "
                           f"{{learning_rate: 5.0e-4}}, got {theta!r}", index)
            for name, value in theta.items():
                _check_name(name, known, lambda problem: fail(problem, index, name))
                _check_value(name, value, known, lambda problem: fail(problem, index, name))
            settings.append(dict(theta))
            where.append((index,))
    else:
        raise fail("the hyperparameter set must be a non-empty list of settings "
                   "(- {learning_rate: 5.0e-4}) or a grid (learning_rate: [5.0e-4, 1.0e-3])")
    seen: Dict[str, int] = {}
    for index, theta in enumerate(settings):
        key = arch_key(theta)
        if key in seen:
            raise fail(f"settings {seen[key]} and {index} are the same: {key}", *where[index])
        seen[key] = index
    return settings


def _check_name(name: Any, known: Mapping[str, Check], fail) -> None:
    if name not in known:
        close = difflib.get_close_matches(str(name), list(known), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise fail(f"unknown hyperparameter {name!r}{hint}; known: {', '.join(known)}")


def _check_value(name: str, value: Any, known: Mapping[str, Check], fail) -> None:
    problem = known[name](value)
    if problem is not None:
        raise fail(f"{name}: {problem}, got {value!r}")

"""The command-line convention of every ``python -m bortkit.*`` entry point, and the one
check that every option value goes through.

Messages always name the option, the allowed values and the value given::

    bortkit: error: --learning-rate must be > 0, got -1.0

Shared ideas have one spelling everywhere (:data:`SHARED`): ``--output-dir``,
``--learning-rate``, ``--batch-size``, ``--seed``, ``--max-length``, ``--max-grad-norm``,
``--no-progress``. :func:`add_shared` adds them to a parser with the defaults of the
trainer's argument dataclass, so defaults are stated once. This module imports no framework,
so ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from typing import Any, Iterable, Optional, Sequence

from .errors import ConfigError

# option -> help; the destination is the option without dashes (``--no-progress``: progress)
SHARED = {
    "output_dir": "directory of the run's outputs (log.jsonl, checkpoints, results)",
    "learning_rate": "peak learning rate",
    "batch_size": "sequences per optimizer step (per worker and micro-batch in distillation)",
    "seed": "random seed (data order, initialisation, dropout)",
    "max_length": "tokens per sequence",
    "max_grad_norm": "clip the global gradient norm to this (0 = no clipping)",
    "progress": "progress bars (on by default on a terminal); --no-progress turns them off",
}


def flag(name: str) -> str:
    """``learning_rate`` -> ``--learning-rate``."""
    return "--" + name.replace("_", "-")


def check(name: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise ``ConfigError('--NAME must be ALLOWED, got VALUE')`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{flag(name)} must be {allowed}, got {value!r}")


def check_range(name: str, value: Any, low: Optional[float] = None,
                high: Optional[float] = None, low_open: bool = False,
                high_open: bool = False, integer: bool = False,
                optional: bool = False) -> None:
    """``value`` must be a (finite) number within the bounds; ``integer``: a whole int;
    ``optional``: None is allowed too."""
    if optional and value is None:
        return
    kind = "an integer" if integer else "a number"
    number = isinstance(value, int) if integer else isinstance(value, (int, float))
    number = number and not isinstance(value, bool) and math.isfinite(value)
    ok = number and (low is None or (value > low if low_open else value >= low)) and \
        (high is None or (value < high if high_open else value <= high))
    check(name, value, ok, _describe(kind, low, high, low_open, high_open))


def check_choice(name: str, value: Any, choices: Iterable) -> None:
    choices = tuple(choices)
    check(name, value, value in choices, "one of " + ", ".join(map(str, choices)))


def _describe(kind: str, low, high, low_open: bool, high_open: bool) -> str:
    if high is None and ((low == 1 and kind == "an integer" and not low_open)
                         or (low == 0 and low_open)):
        return "a positive " + kind.split()[-1]
    if low is not None and high is not None:
        return f"{kind} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{kind} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{kind} {'<' if high_open else '<='} {high:g}"
    return kind


def defaults_of(cls) -> dict:
    """The default of every field of the dataclass ``cls`` that has one."""
    out = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            out[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            out[field.name] = field.default_factory()  # type: ignore[misc]
    return out


def add_shared(parser: argparse.ArgumentParser, defaults: Any,
               names: Sequence[str] = tuple(SHARED), aliases: Optional[dict] = None,
               required: Sequence[str] = (), helps: Optional[dict] = None) -> None:
    """Add the shared options ``names`` to ``parser``; defaults from ``defaults`` (an
    argument dataclass, or a dict). ``aliases`` (name -> old spellings) are accepted but not
    shown in ``--help``; ``helps`` overrides the shared help texts."""
    values = defaults if isinstance(defaults, dict) else defaults_of(defaults)
    aliases, helps = aliases or {}, helps or {}
    types = {"learning_rate": float, "batch_size": int, "seed": int, "max_length": int,
             "max_grad_norm": float, "output_dir": str}
    for name in names:
        text = helps.get(name, SHARED[name])
        if name == "progress":
            parser.add_argument("--no-progress", dest="progress", action="store_false",
                                help=text)
            parser.set_defaults(progress=values.get("progress", True))
            continue
        if name in required:  # a required group, so that a hidden alias satisfies it too
            group = parser.add_mutually_exclusive_group(required=True)
            group.add_argument(flag(name), dest=name, type=types[name], help=text)
            for alias in aliases.get(name, ()):
                group.add_argument(alias, dest=name, type=types[name],
                                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            continue
        else:
            default = values.get(name)
            shown = f" (default {default})" if default is not None else ""
            parser.add_argument(flag(name), dest=name, type=types[name], default=default,
                                help=text + shown)
        for alias in aliases.get(name, ()):
            parser.add_argument(alias, dest=name, type=types[name], default=argparse.SUPPRESS,
                                help=argparse.SUPPRESS)

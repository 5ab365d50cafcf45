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
    "report_to": "also write the JSONL log's numbers as TensorBoard scalars in "
                 "OUTPUT/tensorboard/ (tensorboard; needs tensorboardX) or not (none)",
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


#: Options that cap how many examples a run reads (None: all of them).
EXAMPLE_LIMITS = ("max_train_examples", "max_eval_examples")


def check_example_limits(args: Any) -> None:
    """``--max-train-examples``/``--max-eval-examples`` of an argument dataclass: None or a
    positive integer (every trainer that has them checks them here)."""
    for name in EXAMPLE_LIMITS:
        if hasattr(args, name):
            check_range(name, getattr(args, name), 1, integer=True, optional=True)


#: ``--report-to``: where the JSONL log's numbers are mirrored besides ``log.jsonl``.
REPORT_TO = ("none", "tensorboard")


def check_report_to(value: Any) -> None:
    """``--report-to`` is one of :data:`REPORT_TO`, and its writer is installed."""
    check_choice("report_to", value, REPORT_TO)
    if value == "tensorboard":
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise ConfigError("--report-to tensorboard needs tensorboardX: pip install "
                              "'bortkit[tensorboard]'") from None


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


# ----------------------------------------------------------------- declared constraints
# As scikit-learn's ``_param_validation``: an argument dataclass declares each field's
# constraint once (``arg(default, Interval(...))``); ``check_fields`` validates every field
# with the one message shape, and ``resume_keys`` lists the fields a resumed run must share.


@dataclasses.dataclass(frozen=True)
class Interval:
    """A finite number (``integer``: a whole int) within the bounds; ``optional``: or None."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False

    def check(self, name: str, value: Any) -> None:
        check_range(name, value, self.low, self.high, self.low_open, self.high_open,
                    self.integer, self.optional)


@dataclasses.dataclass(frozen=True)
class OneOf:
    """One of ``choices``."""

    choices: tuple

    def check(self, name: str, value: Any) -> None:
        check_choice(name, value, self.choices)


@dataclasses.dataclass(frozen=True)
class Text:
    """A string (``non_empty``: with a character other than white space); ``what`` names
    it in the message (``--study must be a non-empty name, got ' '``)."""

    what: str = "a string"
    non_empty: bool = False

    def check(self, name: str, value: Any) -> None:
        check(name, value, isinstance(value, str) and (bool(value.strip()) or
                                                       not self.non_empty), self.what)


def arg(default: Any = dataclasses.MISSING, constraint: Any = None, *, resume: bool = True,
        sweep: bool = False, factory: Any = dataclasses.MISSING):
    """A dataclass field with its ``constraint`` (:class:`Interval`, :class:`OneOf`,
    :class:`Text`, or any object with ``check(name, value)``); ``resume=False``: a resumed
    run may change it; ``sweep=True``: a sweep trial (or an Agora setting) may set it
    (:func:`sweep_params`)."""
    metadata = {"constraint": constraint, "resume": resume, "sweep": sweep}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_fields(args: Any) -> None:
    """Every declared constraint of the argument dataclass ``args``, in field order."""
    for field in dataclasses.fields(args):
        constraint = field.metadata.get("constraint")
        if constraint is not None:
            constraint.check(field.name, getattr(args, field.name))


def sweep_params(cls: Any) -> dict:
    """name -> type of the fields of ``cls`` declared ``sweep=True``, the type read from the
    field's constraint (an integer :class:`Interval`: int; other numbers: float; a
    :class:`OneOf`: its choices' type)."""
    out = {}
    for field in dataclasses.fields(cls):
        if field.metadata.get("sweep"):
            constraint = field.metadata["constraint"]
            out[field.name] = type(constraint.choices[0]) if isinstance(constraint, OneOf) \
                else int if constraint.integer else float
    return out


def resume_keys(cls: Any) -> tuple:
    """The fields of ``cls`` a resumed run must share with the run it continues."""
    return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get("resume", True))


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
        if name == "report_to":  # checked (with the writer's import) by the trainer's args
            default = values.get("report_to", "none")
            parser.add_argument("--report-to", dest="report_to", default=default,
                                metavar="{none,tensorboard}", help=f"{text} (default {default})")
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

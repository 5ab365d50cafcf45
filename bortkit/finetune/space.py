"""Hyperparameter spaces over fine-tuning settings: the Bort README grid, or a YAML file.

A space file maps parameter names (fields of :class:`~bortkit.finetune.FinetuneArgs`, or the
names of another table given as ``params``, e.g. the sweep's ``agora_*`` settings) to what a
trial may use::

    learning_rate: [1.0e-4, 1.0e-5, 9.0e-6]      # a list: categorical choices
    warmup_ratio: {low: 0.35, high: 0.50, step: 0.05}   # a mapping: a float or int range
    weight_decay: {low: 1.0e-3, high: 1.0, log: true}   # log-uniform
    epochs: 3                                    # a scalar: fixed for every trial

Ranges are float or int according to the parameter. Mistakes (unknown names, empty lists or
ranges, values of the wrong type or out of range) raise a one-line
:class:`~bortkit.errors.ConfigError` naming the file and the line.
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import numpy as np

from ..errors import ConfigError
from .args import FINETUNE_PARAMS, FinetuneArgs

# The grid the Bort README recommends for fine-tuning (alexa/bort, "Fine-tuning").
BORT_README_SPACE: dict[str, Any] = {
    "seed": [0, 1, 2, 3, 4],
    "learning_rate": [1e-4, 1e-5, 9e-6],
    "weight_decay": [0.0, 10.0, 100.0, 350.0],
    "warmup_ratio": {"low": 0.35, "high": 0.50, "step": 0.05},
    "batch_size": [8, 16],
}

Value = Union[int, float, str, bool]


@dataclass(frozen=True)
class Categorical:
    name: str
    choices: tuple

    def suggest(self, trial) -> Value:
        return trial.suggest_categorical(self.name, list(self.choices))

    def sample(self, rng: np.random.RandomState) -> Value:
        return self.choices[rng.randint(len(self.choices))]

    def to_dict(self) -> list:
        return list(self.choices)


@dataclass(frozen=True)
class Range:
    name: str
    low: float
    high: float
    integer: bool = False
    log: bool = False
    step: Optional[float] = None

    def suggest(self, trial) -> Value:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        value = trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)
        return round(value, 12) if self.step else value  # 0.39999999999999997 -> 0.4

    def sample(self, rng: np.random.RandomState) -> Value:
        if self.log:
            value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            value = rng.uniform(self.low, self.high)
        if self.step:
            value = self.low + round((value - self.low) / self.step) * self.step
            value = min(value, self.high)
        return int(round(value)) if self.integer else float(round(value, 12))

    def to_dict(self) -> dict:
        out = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


Param = Union[Categorical, Range]


@dataclass(frozen=True)
class HyperparameterSpace:
    """Searched parameters plus fixed settings; ``source`` names where it came from."""

    params: Mapping[str, Param]
    fixed: Mapping[str, Value]
    source: str = "Bort README"

    def suggest(self, trial) -> dict:
        """Ask an Optuna trial for every searched parameter; returns them with the fixed ones."""
        return {**self.fixed, **{name: p.suggest(trial) for name, p in self.params.items()}}

    def sample(self, count: int, seed: int = 0) -> list[dict]:
        """``count`` distinct random settings (fewer if the space is smaller)."""
        rng = np.random.RandomState(seed)
        settings, seen = [], set()
        for _ in range(count * 50):
            setting = {**self.fixed, **{n: p.sample(rng) for n, p in self.params.items()}}
            key = tuple(sorted(setting.items()))
            if key not in seen:
                seen.add(key)
                settings.append(setting)
            if len(settings) == count:
                break
        return settings

    def to_dict(self) -> dict:
        return {**self.fixed, **{name: p.to_dict() for name, p in self.params.items()}}

    def names(self) -> set:
        """Every parameter the space sets, searched or fixed."""
        return {*self.params, *self.fixed}


# --------------------------------------------------------------------------- parsing
def _where(path, lines: Mapping[str, int], name: Optional[str] = None) -> dict:
    return {"path": path, "line": lines.get(name) if name else None}


def _coerce(name: str, value: Any, kind: type, where: dict) -> Value:
    """``value`` as the parameter's type; YAML reads ``1e-4`` as a string, so accept that."""
    if kind is str:
        if isinstance(value, str):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    expected = {int: "an integer", float: "a number", str: "a string"}[kind]
    raise ConfigError(f"parameter {name!r}: expected {expected}, got {value!r}", **where)


def _check_value(name: str, value: Value, where: dict) -> None:
    """Reject values a run would refuse (negative rates, zero batch...) before any trial."""
    if name not in FINETUNE_PARAMS:
        if isinstance(value, (int, float)) and value < 0:
            raise ConfigError(f"parameter {name!r}: must be >= 0, got {value!r}", **where)
        return
    args = FinetuneArgs(task="", model="", data_dir="", output_dir="", **{name: value})
    try:
        args.validate()
    except ConfigError as err:
        raise ConfigError(f"parameter {name!r}: {err.problem}", **where) from None


def _parse_range(name: str, spec: Mapping, kind: type, where: dict) -> Range:
    unknown = sorted(set(spec) - {"low", "high", "log", "step"})
    if unknown:
        raise ConfigError(f"parameter {name!r}: unknown key(s) {', '.join(map(repr, unknown))} "
                          "in range (expected low, high, log, step)", **where)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"parameter {name!r}: a range needs both low and high", **where)
    if kind is str:
        raise ConfigError(f"parameter {name!r}: takes a list of choices, not a range", **where)
    low, high = (_coerce(name, spec[k], kind, where) for k in ("low", "high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"parameter {name!r}: log must be true or false, got {log!r}", **where)
    step = None if spec.get("step") is None else _coerce(name, spec["step"], kind, where)
    if low > high:
        raise ConfigError(f"parameter {name!r}: empty range: low {low} > high {high}", **where)
    if log and low <= 0:
        raise ConfigError(f"parameter {name!r}: a log range needs low > 0, got {low}", **where)
    if step is not None and (step <= 0 or log):
        raise ConfigError(f"parameter {name!r}: step must be > 0 and cannot be combined "
                          "with log", **where)
    return Range(name, low, high, integer=kind is int, log=log, step=step)


def parse_space(data: Any, path: Optional[os.PathLike | str] = None,
                lines: Optional[Mapping[str, int]] = None, check_values: bool = True,
                table: Mapping[str, type] = FINETUNE_PARAMS) -> HyperparameterSpace:
    """Build a :class:`HyperparameterSpace` from a mapping (a loaded YAML document) over the
    parameter table ``table`` (name -> type).

    Names and shapes are checked first; then, with ``check_values``, every choice and range
    bound is checked as a run would check it (:meth:`FinetuneArgs.validate`).
    """
    lines = lines or {}
    if not isinstance(data, Mapping) or not data:
        raise ConfigError("a search space is a mapping from parameter name to a list of "
                          "choices, a range {low, high} or a fixed value", path=path)
    params, fixed, values = {}, {}, []
    for name, spec in data.items():
        where = _where(path, lines, str(name))
        if name not in table:
            close = difflib.get_close_matches(str(name), table, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else \
                f" (known: {', '.join(sorted(table))})"
            raise ConfigError(f"unknown parameter {name!r}{hint}", **where)
        kind = table[name]
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"parameter {name!r}: empty list of choices", **where)
            choices = tuple(_coerce(name, v, kind, where) for v in spec)
            if len(set(choices)) != len(choices):
                raise ConfigError(f"parameter {name!r}: repeated choices {list(choices)}", **where)
            values += [(name, choice, where) for choice in choices]
            params[name] = Categorical(name, choices)
        elif isinstance(spec, Mapping):
            params[name] = _parse_range(name, spec, kind, where)
            values += [(name, params[name].low, where), (name, params[name].high, where)]
        else:
            fixed[name] = _coerce(name, spec, kind, where)
            values.append((name, fixed[name], where))
    for name, value, where in values if check_values else ():
        _check_value(name, value, where)
    source = str(path) if path is not None else "Bort README"
    return HyperparameterSpace(params, fixed, source)


def bundled_spaces() -> dict:
    """Name -> file of the sweep spaces shipped with bortkit (``bort``, ``small-student``:
    ``bortkit/resources/configs/sweeps/NAME.yaml``, in the wheel too)."""
    from ..config import configs_dir
    return {p.stem: p for p in sorted((configs_dir() / "sweeps").glob("*.yaml"))}


def bundled_space(path: os.PathLike | str) -> Path:
    """``path`` itself, or the bundled space of that name when no such file exists."""
    path = Path(path)
    named = bundled_spaces().get(str(path))
    return named if named is not None and not path.exists() else path


def load_space(path: Optional[os.PathLike | str] = None,
               table: Mapping[str, type] = FINETUNE_PARAMS) -> HyperparameterSpace:
    """The space in the YAML file at ``path``; the Bort README grid when ``path`` is None."""
    if path is None:
        return parse_space(BORT_README_SPACE, check_values=False)  # valid by construction
    import yaml
    from search.yamlfile import load_yaml
    path = bundled_space(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read search space ({err.__class__.__name__}: "
                          f"{getattr(err, 'strerror', None) or err}; bundled spaces by name: "
                          f"{', '.join(bundled_spaces())})", path=path) from None
    data, root = load_yaml(text, path, "the search space", error=ConfigError)
    lines = {}
    if isinstance(root, yaml.MappingNode):
        lines = {key.value: key.start_mark.line + 1 for key, _ in root.value}
    return parse_space(data, path, lines, table=table)


def apply_overrides(space: HyperparameterSpace, overrides: Mapping[str, str],
                    table: Mapping[str, type] = FINETUNE_PARAMS) -> HyperparameterSpace:
    """Fix parameters from ``--set NAME=VALUE`` (values read as YAML scalars or lists)."""
    if not overrides:
        return space
    extra = parse_space({name: yaml_value(text, f"--set {name}")
                         for name, text in overrides.items()}, "--set", table=table)
    params = {n: p for n, p in space.params.items() if n not in overrides}
    return HyperparameterSpace({**params, **extra.params},
                               {**{n: v for n, v in space.fixed.items() if n not in overrides},
                                **extra.fixed}, space.source)


def yaml_value(text: str, option: str):
    """One command-line value read as YAML (``1e-4``, ``[8, 16]``), through the one bounded
    YAML reader (:func:`search.yamlfile.load_yaml`)."""
    from search.yamlfile import load_yaml
    return load_yaml(text, what=option, error=ConfigError)[0]


def parse_assignments(items) -> dict[str, str]:
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value.strip()
    return out

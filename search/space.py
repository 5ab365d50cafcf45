"""Search spaces: which architectures the extraction considers (the paper's Ξ).

A space is a YAML file with one list of values per searched dimension and a ``fixed:``
mapping copied into every candidate::

    num_layers: [2, 4, 6, 8, 10, 12]     # D
    num_heads: [4, 8, 12, 16]            # A
    units: [512, 768, 1024]              # H
    ffn_units: [256, 512, 768, 1024, 3072]   # I
    attention: [qk, qk_convfixed]        # optional: attention kinds (checked against choices)
    fixed:
      vocab_size: 50265
      embed_size: null                   # null = units

Candidates are the Cartesian product, in file order, minus the points the family cannot
build (``units`` not divisible by ``num_heads``), which are counted in
:attr:`SearchSpace.skipped`. Every problem is a one-line :class:`SearchError` naming the
file and line.
"""
from __future__ import annotations

import difflib
import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping, Optional, Tuple

import yaml

from .errors import SearchError
from .yamlfile import load_yaml

#: Dimensions a space may search (enumerated in the order the file lists them).
SEARCHABLE = ("num_layers", "num_heads", "units", "ffn_units", "embed_size", "attention")
#: Searched dimensions whose values are names (attention kinds), not positive integers. Which
#: names exist is the model family's business: the caller passes them as ``choices``.
NAMED = ("attention",)
_META = ("name", "description", "fixed")
_SCALARS = (int, float, str, bool, type(None))

Lines = Dict[Tuple, int]


def bundled_dir() -> Path:
    """``search/spaces``: the spaces shipped with this package, loadable by name
    (``bert-space``, ``attention-space``)."""
    return Path(__file__).resolve().parent / "spaces"


def default_space_path() -> Path:
    """``search/spaces/bert-space.yaml``: the Bort paper's BERT space (300 candidates),
    shipped with this package."""
    return Path(__file__).resolve().parent / "spaces" / "bert-space.yaml"


@dataclass(frozen=True, eq=False)
class SearchSpace:
    """A validated search space. Build with :meth:`from_yaml` or directly (also validated)."""

    dimensions: Mapping[str, Tuple[int, ...]]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""
    path: Optional[str] = None
    _lines: Lines = field(default_factory=dict, repr=False)
    choices: Mapping[str, Tuple[str, ...]] = field(default_factory=dict, repr=False)
    #: the model's field names: a ``fixed:`` key outside them is refused (empty: unchecked)
    fields: Tuple[str, ...] = field(default=(), repr=False)

    def __post_init__(self):
        object.__setattr__(self, "dimensions", {k: tuple(v) for k, v in self.dimensions.items()})
        object.__setattr__(self, "fixed", dict(self.fixed))
        self._validate()
        if len(self) == 0:
            sizes = " x ".join(f"{len(v)} {k}" for k, v in self.dimensions.items())
            self._fail(f"the space is empty: all {sizes} combinations have units not "
                       f"divisible by num_heads")

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_yaml(cls, path: os.PathLike | str | None = None,
                  choices: Optional[Mapping[str, Tuple[str, ...]]] = None,
                  fields: Tuple[str, ...] = ()) -> "SearchSpace":
        """Load a space file; ``None`` loads :func:`default_space_path`. ``choices`` gives the
        allowed values of named dimensions (``{"attention": (...)}``), ``fields`` the names a
        ``fixed:`` mapping may set (the model's config fields)."""
        path = Path(path) if path is not None else default_space_path()
        if not path.exists() and (bundled_dir() / f"{path}.yaml").is_file():
            path = bundled_dir() / f"{path}.yaml"  # a bundled space by name: bert-space, ...
        data, lines = read_yaml(path, "search space file")
        return cls.from_dict(data, path=path, lines=lines, choices=choices, fields=fields)

    @classmethod
    def from_dict(cls, data: Any, path: os.PathLike | str | None = None,
                  lines: Optional[Lines] = None,
                  choices: Optional[Mapping[str, Tuple[str, ...]]] = None,
                  fields: Tuple[str, ...] = ()) -> "SearchSpace":
        """Build from parsed YAML; unknown keys and wrong types raise :class:`SearchError`."""
        path = None if path is None else os.fspath(path)
        lines = lines or {}

        def fail(problem: str, *where) -> SearchError:
            return SearchError(problem, path=path, line=lines.get(tuple(where)))

        if data is None:
            raise fail("the search space file is empty")
        if not isinstance(data, Mapping):
            raise fail("a search space must be a mapping of dimension: [values] "
                       f"(got {type(data).__name__})")
        for key in data:
            if key not in SEARCHABLE and key not in _META:
                known = SEARCHABLE + _META
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise fail(f"unknown key {key!r}{hint}; known keys: {', '.join(known)}", key)
        fixed = data.get("fixed")
        fixed = {} if fixed is None else fixed
        if not isinstance(fixed, Mapping):
            raise fail(f"'fixed' must be a mapping of field: value, got {_kind(fixed)}", "fixed")
        name = data.get("name", "")
        if not isinstance(name, str):
            raise fail(f"'name' must be a string, got {_kind(name)}", "name")
        dimensions = {}
        for key in data:  # file order
            if key in SEARCHABLE:
                values = data[key]
                if not isinstance(values, list):
                    raise fail(f"{key} must be a list of values like [2, 4, 6], got "
                               f"{_kind(values)}", key)
                dimensions[key] = tuple(values)
        return cls(dimensions=dimensions, fixed=dict(fixed), name=name, path=path,
                   _lines=dict(lines), choices=dict(choices or {}), fields=tuple(fields))

    # ------------------------------------------------------------------ enumeration
    def candidates(self) -> Iterator[dict]:
        """Every buildable architecture: ``{**searched values, **fixed}``, in file order."""
        for arch in self._product():
            if _buildable(arch):
                yield arch

    def __iter__(self) -> Iterator[dict]:
        return self.candidates()

    def __len__(self) -> int:
        return sum(1 for _ in self.candidates())

    @property
    def total(self) -> int:
        """Size of the Cartesian product before invalid points are dropped."""
        count = 1
        for values in self.dimensions.values():
            count *= len(values)
        return count

    @property
    def skipped(self) -> int:
        """Points of the product that cannot be built (units not divisible by num_heads)."""
        return self.total - len(self)

    def describe(self, arch: Mapping[str, Any]) -> str:
        """``'num_layers=4 num_heads=8 units=1024 ffn_units=768'``: the searched values only."""
        return " ".join(f"{k}={arch.get(k)}" for k in self.dimensions)

    # ------------------------------------------------------------------ checks
    def _product(self) -> Iterator[dict]:
        names = list(self.dimensions)
        for values in itertools.product(*self.dimensions.values()):
            yield {**dict(zip(names, values)), **self.fixed}

    def _fail(self, problem: str, *where) -> None:
        raise SearchError(problem, path=self.path, line=self._lines.get(tuple(where)))

    def _validate(self) -> None:
        if not self.dimensions:
            self._fail(f"the space searches nothing: give at least one of {', '.join(SEARCHABLE)}")
        for key, values in self.dimensions.items():
            if key not in SEARCHABLE:
                self._fail(f"cannot search {key!r}; searchable: {', '.join(SEARCHABLE)}", key)
            if not values:
                self._fail(f"{key} is an empty list; give at least one value", key)
            seen = set()
            for index, value in enumerate(values):
                if key in NAMED:
                    allowed = self.choices.get(key)
                    if not isinstance(value, str) or not value:
                        self._fail(f"{key}[{index}] must be a name, got {value!r}", key, index)
                    if allowed is not None and value not in allowed:
                        self._fail(f"{key}[{index}] must be one of {', '.join(allowed)}; "
                                   f"got {value!r}", key, index)
                elif isinstance(value, bool) or not isinstance(value, int):
                    self._fail(f"{key}[{index}] must be an integer, got {value!r}", key, index)
                elif value <= 0:
                    self._fail(f"{key}[{index}] must be positive, got {value}", key, index)
                if value in seen:
                    self._fail(f"{key} lists {value} twice", key, index)
                seen.add(value)
        for key, value in self.fixed.items():
            if not isinstance(key, str):
                self._fail(f"fixed field names must be strings, got {key!r}", "fixed")
            if self.fields and key not in self.fields:
                close = difflib.get_close_matches(key, self.fields, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else \
                    f"; known: {', '.join(self.fields)}"
                self._fail(f"unknown fixed field {key!r}{hint}", "fixed", key)
            if key in self.dimensions:
                self._fail(f"fixed field {key}={value!r} contradicts the searched {key} "
                           f"{list(self.dimensions[key])}; remove one of them", "fixed", key)
            if not isinstance(value, _SCALARS):
                self._fail(f"fixed field {key} must be a single value, got {_kind(value)}",
                           "fixed", key)


def read_yaml(path: Path, what: str) -> Tuple[Any, Lines]:
    """The parsed YAML of ``path`` and the 1-based line of every key and list item; every
    problem is a one-line :class:`SearchError` naming ``what`` and the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SearchError(f"{what} not found", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SearchError(f"cannot read {what} ({err})", path=path) from None
    data, node = load_yaml(text, path, f"the {what}")
    lines: Lines = {}
    collect_lines(node, (), lines, path)
    return data, lines


def _buildable(arch: Mapping[str, Any]) -> bool:
    units, heads = arch.get("units"), arch.get("num_heads")
    if isinstance(units, int) and isinstance(heads, int) and heads > 0:
        return units % heads == 0
    return True


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: f"the string {value!r}"}.get(
        type(value), repr(value))


def collect_lines(node: Optional[yaml.Node], where: Tuple, lines: Lines, path) -> None:
    """Record the 1-based line of every mapping key and list item; refuse duplicate keys."""
    if node is None:
        return
    if where:
        lines.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise SearchError(f"key {key!r} is given twice", path=path,
                                  line=key_node.start_mark.line + 1)
            seen.add(key)
            lines[where + (key,)] = key_node.start_mark.line + 1
            collect_lines(value_node, where + (key,), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[where + (index,)] = item.start_mark.line + 1
            collect_lines(item, where + (index,), lines, path)

"""Parameter budgets: parse ``56M``-style counts and drop over-budget candidates up front.

The budget is a hard constraint applied *before* anything is trained: candidates whose
parameter count exceeds it are removed (and counted), so no training time is ever spent on
an architecture that could not be shipped.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Callable, Mapping, Sequence, Tuple, TypeVar

from .errors import SearchError

_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}
_COUNT = re.compile(r"^(\d+(?:_\d+)*(?:\.\d+)?)([kmbgt]?)$", re.IGNORECASE)

Arch = TypeVar("Arch", bound=Mapping)


def parse_count(text: str | int, option: str = "--max-params") -> int:
    """``"56M"`` -> 56_000_000. Accepts ``56M``, ``1.2B``, ``300k``, ``56_000_000``, ``56000000``.

    Suffixes (case-insensitive): k = 10^3, M = 10^6, B or G = 10^9, T = 10^12. The result
    must be a positive whole number; anything else raises :class:`SearchError` naming
    ``option``.
    """
    def fail(detail: str = "") -> SearchError:
        return SearchError(f"{option}: expected a positive count like 56M, 1.2B or 56000000, "
                           f"got {str(text)!r}{detail}")

    if isinstance(text, bool):
        raise fail()
    if isinstance(text, int):
        if text <= 0:
            raise fail()
        return text
    if not isinstance(text, str):
        raise fail()
    match = _COUNT.match(text.strip())
    if match is None:
        raise fail()
    digits, suffix = match.groups()
    try:
        value = Decimal(digits.replace("_", "")) * _SUFFIXES[suffix.lower()]
    except InvalidOperation:  # pragma: no cover - the regex only lets decimals through
        raise fail() from None
    if value != value.to_integral_value():
        raise fail(f" ({value.normalize():f} is not a whole number)")
    if value <= 0:
        raise fail()
    return int(value)


def format_count(count: int | float) -> str:
    """Short human form: 56_012_345 -> ``'56.0M'``, 1_200_000_000 -> ``'1.2B'``."""
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k")):
        if abs(count) >= scale:
            return f"{count / scale:.1f}{suffix}"
    return f"{count:g}" if isinstance(count, float) else str(count)


def apply_budget(candidates: Sequence[Arch], params: Sequence[int], max_params: int | str | None,
                 describe: Callable[[Arch], str] = repr,
                 option: str = "--max-params") -> Tuple[list[int], int]:
    """Indices of the candidates with ``params <= max_params``, and how many were removed.

    ``params[k]`` is the parameter count of ``candidates[k]``. A budget that no candidate
    fits raises :class:`SearchError` naming the smallest candidate and its size.
    """
    if len(candidates) != len(params):
        raise ValueError(f"{len(candidates)} candidates but {len(params)} parameter counts")
    if max_params is None:
        return list(range(len(candidates))), 0
    limit = parse_count(max_params, option)
    kept = [k for k, p in enumerate(params) if p <= limit]
    if not kept:
        if not candidates:
            raise SearchError(f"{option} {format_count(limit)}: there are no candidates")
        smallest = min(range(len(params)), key=lambda k: params[k])
        raise SearchError(
            f"{option} {format_count(limit)} ({limit}): no candidate fits; the smallest, "
            f"{describe(candidates[smallest])}, has {format_count(params[smallest])} "
            f"({params[smallest]}) parameters")
    return kept, len(candidates) - len(kept)

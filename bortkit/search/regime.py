"""Which space a search runs on: the teacher's sub-networks, or the given (paper's) space.

ê is a candidate's distance to the teacher's outputs, the teacher standing in for the space's
maximum point T. When the teacher is *smaller* than T (the bundled all-MiniLM-L6-v2, 22.7M
parameters, against the Bort space's candidates of 28.6M and up), a larger candidate can
gain nothing the teacher lacks: function-preserving extraction gives it the teacher's
function and ten steps cannot add to it, so ê hardly moves with size and W is decided by
size and latency alone (the smallest candidate always wins). The search then runs, as
whittle and AutoTinyBERT do, over the teacher's own sub-networks, fractions of its depth,
heads, width and FFN units, so that the maximum point *is* the teacher and every candidate
loses something measurable from it (:func:`teacher_subnetworks`).

- ``auto`` (the default): the teacher's sub-networks when no ``--space`` is given and the
  teacher has fewer parameters than the default space's largest candidate; the space
  otherwise (a user's larger teacher keeps the paper's space).
- ``space``: the given or default space, whatever the teacher's size.
- ``subnetworks``: the teacher's sub-networks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

REGIMES = ("auto", "space", "subnetworks")
SEARCHED = ("num_layers", "num_heads", "units", "ffn_units")
#: Fractions of the teacher's depth, heads, width and FFN units a sub-network may keep.
FRACTIONS = {"num_layers": (1 / 3, 1 / 2, 2 / 3, 5 / 6, 1.0),
             "num_heads": (1 / 3, 1 / 2, 1.0),
             "units": (1 / 2, 3 / 4, 1.0),
             "ffn_units": (1 / 4, 1 / 2, 3 / 4, 1.0)}


@dataclass(frozen=True)
class Regime:
    name: str          # "space" or "subnetworks"
    space: object      # a search.SearchSpace
    reason: str

    def describe(self) -> str:
        what = ("the teacher's sub-networks" if self.name == "subnetworks"
                else f"the space {self.space.name or self.space.path}")
        return f"regime: {what} ({len(self.space)} candidates): {self.reason}"


def teacher_subnetworks(config) -> "object":
    """The :class:`search.SearchSpace` of sub-networks of a teacher ``config``
    (:class:`bortkit.config.ModelConfig`): each of depth, heads, width and FFN units at the
    :data:`FRACTIONS` of the teacher's (whole numbers, at least 1), every other field the
    teacher's. Its largest point is the teacher itself."""
    import search
    teacher = config.to_dict()
    dimensions = {}
    for key in SEARCHED:
        full = int(teacher[key])
        dimensions[key] = sorted({max(1, int(round(full * f))) for f in FRACTIONS[key]})
    fixed = {k: v for k, v in teacher.items() if k not in SEARCHED and k != "embed_size"
             and (v is None or isinstance(v, (int, float, str, bool)))}
    if teacher.get("embed_size") not in (None, teacher["units"]):
        fixed["embed_size"] = teacher["embed_size"]   # a factorised embedding stays
    return search.SearchSpace(dimensions=dimensions, fixed=fixed, name="teacher-subnetworks")


def choose(regime: str, space_path: Optional[str], teacher_config, load_space) -> Regime:
    """The space to search and why (``load_space(path)`` loads a space file)."""
    from ..accounting import count_params
    from .costs import arch_config
    if regime == "subnetworks":
        return Regime("subnetworks", teacher_subnetworks(teacher_config),
                      "--regime subnetworks: the maximum point is the teacher")
    space = load_space(space_path)
    if regime == "space" or space_path is not None:
        why = "--regime space" if regime == "space" else "--space given"
        return Regime("space", space, f"{why}: the teacher stands in for the space's "
                                      "maximum point")
    teacher = count_params(teacher_config)
    largest = max(count_params(arch_config(a)) for a in space.candidates())
    if teacher < largest:
        return Regime("subnetworks", teacher_subnetworks(teacher_config),
                      f"the teacher ({teacher / 1e6:.1f}M parameters) is smaller than the "
                      f"default space's maximum point ({largest / 1e6:.1f}M), so larger "
                      "candidates cannot gain what it lacks; its sub-networks are searched "
                      "and it is the maximum point (--regime space keeps the paper's space)")
    return Regime("space", space, f"the teacher ({teacher / 1e6:.1f}M parameters) is at least "
                                  f"the space's maximum point ({largest / 1e6:.1f}M)")

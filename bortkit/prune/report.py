"""The pruning run's plot and the compaction table."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable


def plot_pruning(records: Iterable[dict], out_png: Path, metric: str = "accuracy",
                 title: str = "", target: float = None, sparsity_of: str = "dense") -> Path:
    """Sparsity on the left axis (of the factorised weights: expected, warmed-up target,
    realised; of the dense encoder weights: realised, and the run's ``target`` in its
    reading ``sparsity_of``) and the dev metric on the right one, against optimizer
    steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..io import save_png

    records = list(records)

    def series(event, field):
        points = sorted((r["step"], r[field]) for r in records
                        if r.get("event") == event and r.get(field) is not None)
        return tuple(zip(*points)) if points else ((), ())

    fig, left = plt.subplots(figsize=(7, 4))
    for (event, field, label, style) in (
            ("train", "expected_sparsity", "factorised: expected (train)", "-"),
            ("train", "target", "factorised: target (warmed up)", "--"),
            ("eval", "sparsity", "factorised: realised (eval gates)", "o-"),
            ("eval", "dense_sparsity", "dense: realised (eval gates)", "D-")):
        xs, ys = series(event, field)
        if xs:
            left.plot(xs, ys, style, label=label, markersize=4)
    if target is not None:
        left.axhline(target, color="black", linestyle=":", linewidth=1,
                     label=f"{sparsity_of}: target {target}")
    left.set_xlabel("optimizer step")
    left.set_ylabel("sparsity (fraction of weights removed)")
    left.set_ylim(0, 1)
    left.grid(alpha=0.3)
    right = left.twinx()
    xs, ys = series("eval", metric)
    if xs:
        right.plot(xs, ys, "s-", color="tab:red", label=f"dev {metric}", markersize=4)
    right.set_ylabel(f"dev {metric}")
    handles = left.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    left.legend(handles[0] + extra[0], handles[1] + extra[1], loc="lower right", fontsize=8)
    if title:
        left.set_title(title)
    fig.tight_layout()
    return save_png(fig, out_png)


def plan_table(plans: list) -> str:
    """One row per matrix: rank before, kept, stored, merged, weights before and after."""
    rows = [f"{'matrix':<28}{'rank':>6}{'kept':>6}{'stored':>8}{'form':>9}"
            f"{'weights':>13}{'dense':>13}"]
    for p in plans:
        rows.append(f"{p.name:<28}{p.rank:>6}{p.kept:>6}{p.stored:>8}"
                    f"{'merged' if p.merged else 'factors':>9}{p.weights:>13,}"
                    f"{p.in_units * p.out_units:>13,}")
    after = sum(p.weights for p in plans)
    before = sum(p.in_units * p.out_units for p in plans)
    rows.append(f"{'encoder matrices':<57}{after:>13,}{before:>13,}")
    return "\n".join(rows)

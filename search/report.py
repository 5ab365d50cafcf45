"""Search reports: ``results.csv``, ``results.json``, ``tradeoff.png`` and a terminal table.

Every file is written atomically (temporary file + rename), so a reader never sees half a
report. The plot uses Matplotlib's Agg canvas directly (no pyplot state, no display).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Dict, List

from .budget import format_count
from .fptas import SearchResult, pareto_front
from .io import atomic_write

CSV_COLUMNS = ("params", "inference_cost", "error", "w", "trained", "chosen", "interval")


def rows(result: SearchResult) -> List[Dict[str, Any]]:
    """One flat dict per candidate: the varying architecture fields, then the scores."""
    front = {id(c) for c in pareto_front(result)}
    out = []
    for c in result.candidates:
        row = {key: c.arch.get(key) for key in result.dimensions}
        row.update(params=c.params, inference_cost=c.inference_cost, error=c.error, w=c.w,
                   trained=c.trained, chosen=c is result.chosen, interval=c.interval,
                   pareto=id(c) in front)
        out.append(row)
    return out


def write_results(result: SearchResult, out_dir: os.PathLike | str,
                  error_label: str = "error", cost_label: str = "inference cost"
                  ) -> Dict[str, Path]:
    """Write the three report files into ``out_dir``; returns their paths by name. The labels
    name the plot's error axis and cost colour scale, with their units."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out_dir / "results.csv", "json": out_dir / "results.json",
             "png": out_dir / "tradeoff.png"}
    table = rows(result)
    columns = list(result.dimensions) + list(CSV_COLUMNS) + ["pareto"]
    with atomic_write(paths["csv"], "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in table:
            writer.writerow({k: "" if row[k] is None else row[k] for k in columns})
    document = result.to_dict()
    for entry, row in zip(document["candidates"], table):
        entry["chosen"], entry["pareto"] = row["chosen"], row["pareto"]
    with atomic_write(paths["json"], "w", encoding="utf-8") as fh:
        json.dump(document, fh, indent=2, allow_nan=False)
        fh.write("\n")
    png = plot_tradeoff(result, error_label, cost_label)
    with atomic_write(paths["png"], "wb") as fh:
        fh.write(png)
    return paths


def plot_tradeoff(result: SearchResult, error_label: str = "error",
                  cost_label: str = "inference cost") -> bytes:
    """PNG bytes: error against parameters, colour = inference cost, chosen point and front."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    trained = [c for c in result.candidates if c.trained]
    fig = Figure(figsize=(7.5, 5.6), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    points = ax.scatter([c.params for c in trained], [c.error for c in trained],
                        c=[c.inference_cost for c in trained], cmap="viridis", s=28,
                        edgecolors="none", label=f"trained ({len(trained)})")
    fig.colorbar(points, ax=ax, label=cost_label)
    front = _front_2d(trained)
    ax.step([c.params for c in front], [c.error for c in front], where="post", color="0.35",
            linewidth=1.0, label="Pareto front (params, error)")
    on_front = pareto_front(trained)
    ax.scatter([c.params for c in on_front], [c.error for c in on_front], s=70,
               facecolors="none", edgecolors="tab:orange", linewidths=1.0,
               label="Pareto front (params, cost, error)")
    best = result.chosen
    ax.scatter([best.params], [best.error], marker="*", s=260, color="tab:red", zorder=5,
               label=f"chosen: {result.describe(best.arch)}")
    ax.set_xlabel("parameters")
    ax.set_ylabel(error_label)
    ax.set_title(f"{result.algorithm}: {len(trained)} of {len(result.candidates)} "
                 f"candidates trained")
    ax.xaxis.set_major_formatter(lambda value, _: format_count(value))
    ax.grid(True, alpha=0.3)
    # below the axes: inside, it hid the trained points of the upper half
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def format_table(result: SearchResult, top: int = 10) -> str:
    """The ``top`` trained candidates by W, best first, as aligned text (chosen marked ``*``)."""
    if top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    dims = list(result.dimensions)
    header = ["rank", *dims, "params", "cost", "error", "W"]
    lines = []
    for rank, c in enumerate(result.ranked()[:top], start=1):
        mark = "*" if c is result.chosen else " "
        lines.append([f"{rank}{mark}", *(str(c.arch.get(k)) for k in dims),
                      format_count(c.params), f"{c.inference_cost:.4g}", f"{c.error:.4g}",
                      f"{c.w:.4g}"])
    widths = [max(len(r[k]) for r in [header] + lines) for k in range(len(header))]
    text = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in [header] + lines]
    summary = (f"{result.algorithm}: trained {result.num_trained} of {len(result.candidates)} "
               f"candidates ({result.num_reused} from the state file)")
    if result.algorithm == "fptas":
        summary += (f", {result.num_intervals} intervals, "
                    f"epsilon={result.settings.get('epsilon')}")
    if result.num_over_budget:
        summary += f"; {result.num_over_budget} over the parameter budget"
    if result.num_zero_w:
        summary += f"; {result.num_zero_w} with W = 0 not trained"
    return "\n".join(text + [summary])


def _front_2d(trained):
    """Candidates with a lower error than every smaller one (params ascending)."""
    front, best = [], float("inf")
    for c in sorted(trained, key=lambda c: (c.params, c.error)):
        if c.error < best:
            front.append(c)
            best = c.error
    return front

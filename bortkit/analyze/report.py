"""Tables (CSV and JSON, written atomically) and plots (matplotlib, Agg) of the analyses."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..io import atomic_write, save_png, write_json


def write_table(rows: Sequence[dict], directory: Path, name: str, meta: dict) -> dict:
    """``name.csv`` (the rows) and ``name.json`` (``meta`` + rows); returns the paths."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = {"csv": directory / f"{name}.csv", "json": directory / f"{name}.json"}
    with atomic_write(paths["csv"], "w", encoding="utf-8") as fh:
        fh.write(text.getvalue())
    write_json(paths["json"], {**meta, "rows": list(rows)})
    return paths


def _figure():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_nonlinearity(rows: Sequence[dict], path: Path, title: str) -> Path:
    """One panel per part: mean 1 - cos(y, f(x)) on real dev tokens against the layer, one
    line per approximator (closed-form least squares, least squares + a ReLU correction, the
    reference's Dense and Dense + ReLU trained by Adam on 1 - cos; those not fitted are left
    out) and, dotted grey, 1 - cos(y, x): how far the part moves its input."""
    plt = _figure()
    parts = list(dict.fromkeys(r["part"] for r in rows))
    columns = [("linear", "o-", "linear, closed form (least squares)"),
               ("linear_cosine", "s-.", "linear, Adam on 1 - cos (reference)"),
               ("mlp_cosine", "^--", "Dense + ReLU, Adam on 1 - cos (reference)"),
               ("mlp", "x:", "least squares + ReLU correction, Adam on 1 - cos")]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(parts), figsize=(3.2 * len(parts) + 1, 4.4), sharey=True,
                             squeeze=False)
    for ax, part in zip(axes[0], parts):
        mine = sorted((r for r in rows if r["part"] == part), key=lambda r: r["layer"])
        layers = [r["layer"] for r in mine]
        for color, (column, style, label) in zip(colors, columns):
            if all(r.get(column) is not None for r in mine):
                ax.plot(layers, [r[column] for r in mine], style, color=color, label=label,
                        markersize=4)
        ax.plot(layers, [r["change"] for r in mine], ":", color="grey",
                label="no map: 1 - cos(y, x)")
        ax.set_title(part)
        ax.set_xlabel("layer index (0 = first)")
        ax.set_xticks(layers)
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("mean 1 - cos(y, f(x)) over real dev tokens\n"
                          "(dimensionless; 0 = f reproduces the part)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=8,
               bbox_to_anchor=(0.5, -0.16))
    fig.suptitle(title)
    return save_png(fig, path, bbox_inches="tight")


def swap_matrix(rows: Sequence[dict], num_layers: int) -> np.ndarray:
    """(L, L) score of the model with layers i and j swapped (symmetric; NaN if not run)."""
    matrix = np.full((num_layers, num_layers), np.nan)
    for r in rows:
        matrix[r["i"], r["j"]] = matrix[r["j"], r["i"]] = r["score"]
    return matrix


def plot_swap(rows: Sequence[dict], num_layers: int, path: Path, title: str) -> Path:
    """Heatmap of the dev score after swapping layers i and j (diagonal: unswapped)."""
    plt = _figure()
    matrix = swap_matrix(rows, num_layers)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    image = ax.imshow(matrix, cmap="viridis", origin="upper")
    for i in range(num_layers):
        for j in range(num_layers):
            if not np.isnan(matrix[i, j]):
                ax.text(j, i, f"{100 * matrix[i, j]:.1f}", ha="center", va="center",
                        fontsize=8, color="white" if matrix[i, j] < np.nanmean(matrix) else "k")
    ax.set_xticks(range(num_layers))
    ax.set_yticks(range(num_layers))
    ax.set_xlabel("layer j")
    ax.set_ylabel("layer i")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="dev score (fraction) after swapping i and j")
    return save_png(fig, path, bbox_inches="tight")


def plot_scores(rows: Sequence[dict], x: str, path: Path, title: str, xlabel: str,
                baseline: Optional[float] = None, scatter: bool = False,
                also: Optional[tuple] = None) -> Path:
    """Dev score against ``x`` (a column), as points or bars, with the unedited baseline;
    ``also`` = (column, its baseline) adds a second bar per row (the score after
    fine-tuning beside the evaluation-only one)."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [str(r[x]) for r in rows]
    scores = [r["score"] for r in rows]
    if scatter:
        ax.scatter([r[x] for r in rows], scores, alpha=0.6)
    else:
        width = 0.4 if also else 0.8
        where = np.arange(len(rows)) - (width / 2 if also else 0)
        ax.bar(where, scores, width, label="evaluation only" if also else None)
        if also:
            ax.bar(where + width, [r[also[0]] for r in rows], width,
                   label=f"after fine-tuning ({also[0]})", color="tab:orange")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    if baseline is not None:
        ax.axhline(baseline, color="k", linestyle=":", label=f"unedited {baseline:.4f}")
    if also:
        ax.axhline(also[1], color="tab:orange", linestyle="--",
                   label=f"unedited, fine-tuned {also[1]:.4f}")
    if baseline is not None or also:
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("dev score (fraction)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return save_png(fig, path, bbox_inches="tight")

"""Run logs: one JSON object per line (appended and flushed as it happens), a progress bar
with messages for people, and PNG curves.

Only one worker of a data-parallel job writes: pass ``enabled=workers.is_root``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence


class JsonlLog:
    """Append-only JSONL log; every record gets a wall-clock ``time``. Safe across resumes."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()


def say(message: str) -> None:
    """One line on stderr that does not tear a progress bar."""
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


class Progress:
    """A tqdm bar on stderr (``enabled=False``: none, as with ``--no-progress``) and
    one-line messages that do not tear it.

    :meth:`say` prints evaluations and other news always, per-step lines (``always=False``)
    only when there is no bar to show them.
    """

    def __init__(self, total: int, initial: int = 0, desc: str = "", enabled: bool = True,
                 writer: bool = True, **tqdm_options):
        from tqdm import tqdm
        self.writer = writer
        self.bar_shown = enabled and writer
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
                        disable=not self.bar_shown, file=sys.stderr, **tqdm_options)

    def update(self, steps: int = 1, **postfix) -> None:
        if postfix:
            self.bar.set_postfix(**postfix, refresh=False)
        self.bar.update(steps)

    def say(self, message: str, always: bool = False) -> None:
        if self.writer and (always or not self.bar_shown):
            say(message)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSONL log; a torn last line (killed writer) is skipped."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_curves(records: Iterable[dict], out_png: Path, x: str = "step",
                series: Sequence[tuple[str, str]] = (("train", "loss"),),
                title: Optional[str] = None) -> Path:
    """Plot ``field`` against ``x`` for each (event, field) pair in ``series`` into a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ..io import save_png

    records = list(records)
    fig, ax = plt.subplots(figsize=(7, 4))
    for event, field in series:
        points = [(r[x], r[field]) for r in records
                  if r.get("event") == event and x in r and r.get(field) is not None]
        if points:
            xs, ys = zip(*sorted(points))
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, label=f"{event} {field}")
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_png(fig, out_png)

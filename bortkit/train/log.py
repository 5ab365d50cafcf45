"""Run logs: one JSON object per line (appended and flushed as it happens), a progress bar
with messages for people, and PNG curves.

Only one worker of a data-parallel job writes: pass ``enabled=workers.is_root``.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence


from ..options import REPORT_TO, check_report_to  # noqa: F401  (--report-to)

TENSORBOARD_DIR = "tensorboard"


class TensorBoardLog:
    """The numbers of each JSONL record as TensorBoard scalars ``EVENT/FIELD`` at the
    record's ``step`` (tensorboardX event files in ``directory``; flushed per record)."""

    def __init__(self, directory: Path):
        from tensorboardX import SummaryWriter
        self.writer = SummaryWriter(logdir=str(directory))
        self.count = 0

    def write(self, event: str, fields: dict, wall_time: float) -> None:
        step = fields.get("step")
        step = step if isinstance(step, int) and not isinstance(step, bool) else self.count
        self.count += 1
        wrote = False
        for name, value in fields.items():
            if name != "step" and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and math.isfinite(value):
                self.writer.add_scalar(f"{event}/{name}", value, global_step=step,
                                       walltime=wall_time)
                wrote = True
        if wrote:
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class JsonlLog:
    """Append-only JSONL log; every record gets a wall-clock ``time``. Safe across resumes.
    ``report_to="tensorboard"`` mirrors each record's numbers as TensorBoard scalars in
    ``tensorboard/`` beside the log (:class:`TensorBoardLog`)."""

    def __init__(self, path: Path, enabled: bool = True, report_to: str = "none"):
        self.path = Path(path)
        self.enabled = enabled
        check_report_to(report_to)
        self.report_to = report_to
        self._tensorboard: Optional[TensorBoardLog] = None
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields) -> None:
        if not self.enabled:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        if self.report_to == "tensorboard":
            if self._tensorboard is None:
                self._tensorboard = TensorBoardLog(self.path.parent / TENSORBOARD_DIR)
            self._tensorboard.write(event, fields, record["time"])

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None


def say(message: str) -> None:
    """One line on stderr that does not tear a progress bar."""
    from tqdm import tqdm
    tqdm.write(message, file=sys.stderr)


class Messages:
    """One-line news on stderr for people: ``say(message)`` prints on the ``writer`` (rank
    0) per-step lines (``always=False``) only when no progress bar shows them
    (``bar_shown``), other news (``always=True``) always. Usable before a bar exists."""

    def __init__(self, writer: bool = True, bar_shown: bool = False):
        # Bars only on a terminal: in a log file, per-step lines read better than bars.
        self.writer, self.bar_shown = writer, bar_shown and sys.stderr.isatty()

    def say(self, message: str, always: bool = False) -> None:
        if self.writer and (always or not self.bar_shown):
            say(message)


class Progress(Messages):
    """A tqdm bar on stderr when it is a terminal (``enabled=False``: none, as with
    ``--no-progress``) and one-line messages that do not tear it.

    :meth:`say` prints evaluations and other news always, per-step lines (``always=False``)
    only when there is no bar to show them.
    """

    def __init__(self, total: int, initial: int = 0, desc: str = "", enabled: bool = True,
                 writer: bool = True, **tqdm_options):
        from tqdm import tqdm
        super().__init__(writer, enabled and writer)
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
                        disable=not self.bar_shown, file=sys.stderr, **tqdm_options)

    def update(self, steps: int = 1, **postfix) -> None:
        if postfix:
            self.bar.set_postfix(**postfix, refresh=False)
        self.bar.update(steps)

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

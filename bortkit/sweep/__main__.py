"""``python -m bortkit.sweep --task RTE --model PATH --data-dir DIR --study NAME --n-trials N``

Runs one worker of an Optuna study over fine-tuning hyperparameters: the Bort README grid
(seeds 0-4; learning rates 1e-4, 1e-5, 9e-6; weight decay 0, 10, 100, 350; warmup 0.35-0.50;
batch sizes 8, 16) or the space in ``--space FILE.yaml``. Start as many workers as you like,
on one machine (the default SQLite file) or several (``--storage postgresql://...``): they
share the trials, and ``--n-trials`` is the study's total. A worker killed mid-trial is
noticed by the next worker to start (or, on another machine, once its heartbeat is older
than ``--grace``); the trial is re-run with the same parameters from its last checkpoint.
Under ``horovodrun -np K`` the K ranks train each trial together, data-parallel.

``--train FILE --dev FILE --text-column C --label-column L`` sweeps over your own files
instead of ``--task``.

Writes OUTPUT/trials/trial-NNNN/ (one run directory per trial), OUTPUT/best_model/ and
OUTPUT/best_params.json (the best trial), OUTPUT/plots/*.png and OUTPUT/report.json. A
finished trial keeps its logs and results; its training checkpoint (weights and optimizer
state) is deleted, and so is its best/ unless it is the best trial so far
(``--keep-trial-checkpoints`` keeps everything).
"""
from __future__ import annotations

import argparse
import json
import logging
from typing import Optional, Sequence

from ..errors import run_cli
from ..options import add_shared, defaults_of
from ..finetune.task_options import add_task_options, drop_task_options, task_choice
from .runner import PRUNERS, Sweep, SweepArgs
from .space import parse_assignments


def build_parser() -> argparse.ArgumentParser:
    d = defaults_of(SweepArgs)
    p = argparse.ArgumentParser(prog="python -m bortkit.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="pretrained checkpoint to fine-tune")
    add_task_options(p)
    p.add_argument("--study", required=True, help="study name (shared by all its workers)")
    p.add_argument("--n-trials", type=int, required=True,
                   help="total trials of the study, over all workers")
    p.add_argument("--storage", help="SQLAlchemy URL (default: sqlite:///OUTPUT/study.db)")
    add_shared(p, d, ["output_dir"], helps={"output_dir": "study outputs (default "
                                                         "runs/sweep/STUDY)"})
    p.add_argument("--space", help="search-space YAML, or a bundled space by name (bort, "
                                  "small-student; default: the Bort README grid)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                   help="fix a parameter for every trial, e.g. --set epochs=2 (repeatable)")
    p.add_argument("--pruner", default=d["pruner"], choices=PRUNERS)
    p.add_argument("--prune-warmup", type=int, default=d["prune_warmup"],
                   help="evaluations of a trial before it may be pruned")
    p.add_argument("--prune-below", type=float, default=d["prune_below"],
                   help="threshold pruner: stop trials whose dev score falls below this")
    p.add_argument("--agora", action="store_true", help="run each trial with Agora")
    p.add_argument("--teacher", help="fine-tuned teacher checkpoint (with --agora)")
    p.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler")
    p.add_argument("--heartbeat", type=int, default=d["heartbeat"],
                   help="seconds between heartbeats")
    p.add_argument("--grace", type=int,
                   help="seconds without heartbeat before a trial counts as dead "
                        "(default 4 heartbeats)")
    p.add_argument("--max-retry", type=int, default=d["max_retry"],
                   help="retries of a crashed trial")
    p.add_argument("--no-wait", dest="wait", action="store_false",
                   help="exit when no trial is left to start, without waiting for others")
    p.add_argument("--keep-trial-checkpoints", action="store_true",
                   help="keep every finished trial's training checkpoint and best/ (default: "
                        "only the best trial's best/ and what running trials resume from)")
    p.add_argument("--report-only", action="store_true",
                   help="run no trial; write the report of the study as it stands")
    add_shared(p, d, ["progress"], helps={"progress": "progress bars of each trial's "
                                                      "training (on by default on a terminal)"})
    p.add_argument("--progress", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the old spelling: bars are on by default now
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    task, data_dir, files = task_choice(args)
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    options = {k: v for k, v in drop_task_options(vars(args)).items()
               if k not in ("set", "report_only")}
    options.update(task=task, data_dir=data_dir, files=files)
    sweep_args = SweepArgs(overrides=parse_assignments(args.set), **options)
    if args.report_only:
        sweep_args.n_trials = max(sweep_args.n_trials, 1)
        sweep = Sweep(sweep_args)
        from .report import write_report
        summary = write_report(sweep.study, sweep.out)
    else:
        summary = Sweep(sweep_args).run()
    if "trials" in summary:
        print(json.dumps({k: summary[k] for k in ("trials", "best") if k in summary},
                         indent=2, default=str))
    return 0


if __name__ == "__main__":
    run_cli(main)

"""``python -m bortkit.finetune --task SST-2 --model PATH --data-dir DIR``
``python -m bortkit.finetune --train my.csv --dev my_dev.csv --text-column text --label-column label --model PATH``

Fine-tunes on one GLUE/SuperGLUE task (or ``--task ALL``: every task whose files are in the
data folder), or on your own CSV/TSV/JSONL files (the task is named after the training
file; its classes are the labels found there, kept by name in the checkpoint), for one or
more seeds, and writes per run ``OUT/TASK/seed-S/`` (log, best checkpoint, learning curve,
optional submission files) plus ``OUT/results.json`` and ``OUT/results.md`` with the median
and spread over seeds per task.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError, DataError, run_cli
from ..options import add_shared, defaults_of
from ..train import OPTIMIZERS
from .args import POOLINGS, FinetuneArgs
from .report import summarize, write_reports
from .task_options import add_task_options, drop_task_options, task_choice


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers like 0,1,2, got {text!r}")
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: expected distinct integers like 0,1,2, got {text!r}")
    return seeds


def resolve_tasks(name: str, data_dir: str) -> list[str]:
    from ..tasks import get_task, list_tasks
    if name.upper() != "ALL":
        return [get_task(name).name]
    tasks = []
    for task_name in list_tasks():
        task = get_task(task_name)
        if "train" not in task.splits:
            continue
        try:
            task.path(data_dir, "train")
            task.path(data_dir, "dev")
        except DataError:
            continue
        tasks.append(task.name)
    if not tasks:
        raise DataError("no task with both train and dev files in this folder", path=data_dir)
    return tasks


def build_parser() -> argparse.ArgumentParser:
    d = defaults_of(FinetuneArgs)
    p = argparse.ArgumentParser(prog="python -m bortkit.finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint: bortkit, Hugging Face or .params")
    add_task_options(p)
    add_shared(p, {**d, "output_dir": "runs/finetune"}, ["output_dir"])
    p.add_argument("--tokenizer", help="tokenizer path when the checkpoint has none")
    add_shared(p, d, ["learning_rate", "batch_size", "max_length", "max_grad_norm"],
               aliases={"learning_rate": ["--lr"]})
    p.add_argument("--epochs", type=float, default=d["epochs"])
    p.add_argument("--max-steps", type=int, help="optimizer steps per run (overrides --epochs)")
    p.add_argument("--warmup-ratio", type=float, default=d["warmup_ratio"])
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    p.add_argument("--accumulate", type=int, default=d["accumulate"],
                   help="gradient accumulation steps")
    p.add_argument("--optimizer", default=d["optimizer"], choices=OPTIMIZERS)
    p.add_argument("--pooling", default=d["pooling"], choices=POOLINGS,
                   help="sentence vector for the head: [CLS]/pooler, or the mean over tokens "
                        "(for mean-pooled sentence encoders such as all-MiniLM-L6-v2)")
    add_shared(p, d, ["seed"])
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (overrides --seed)")
    p.add_argument("--eval-every", type=int, default=d["eval_every"],
                   help="steps; 0 = once per epoch")
    p.add_argument("--eval-batch-size", type=int, default=d["eval_batch_size"])
    p.add_argument("--early-stopping", type=int, default=d["early_stopping"],
                   help="stop after this many evaluations without improvement (0 = off)")
    p.add_argument("--max-train-examples", type=int, help="random subset of the train split")
    p.add_argument("--max-eval-examples", type=int, help="random subset of the dev split")
    p.add_argument("--predict", action="store_true", help="write test-server files")
    p.add_argument("--resume", action="store_true", help="continue from OUT/.../checkpoint")
    p.add_argument("--save-total-limit", type=int, default=d["save_total_limit"],
                   help="training checkpoints (weights + optimizer) kept per run: 1 keeps the "
                        "latest (checkpoint/), N > 1 also checkpoint-STEP/ of the last N, 0 "
                        "none (no --resume); best/ is always kept")
    p.add_argument("--overwrite", action="store_true",
                   help="replace finished runs in --output-dir (default: refuse)")
    add_shared(p, d, ["progress", "report_to"])
    p.add_argument("--distributed", action="store_true",
                   help="Horovod data parallelism; launch with horovodrun -np N")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    out = Path(args.output_dir)
    name, data_dir, files = task_choice(args)
    if files is not None and args.predict:
        raise ConfigError("--predict writes GLUE/SuperGLUE server files; for your own files "
                          "use python -m bortkit.predict --model OUT/.../best --input FILE")
    options = {k: v for k, v in drop_task_options(vars(args)).items()
               if k not in ("seeds", "seed", "output_dir")}
    options.update(data_dir=data_dir, files=files)
    FinetuneArgs(task=name, seed=seeds[0], output_dir=args.output_dir,
                 **options).validate()  # every option, before any data is read
    from ..tasks.files import load_task
    if files is not None:
        tasks = [load_task(name, files).name]  # reads --train: bad rows stop here
    else:
        tasks = resolve_tasks(name, data_dir)
    from .trainer import Finetuner, open_run
    runs = [FinetuneArgs(task=task, seed=seed, output_dir=str(out / task / f"seed-{seed}"),
                         **options) for task in tasks for seed in seeds]
    read = {task: load_task(task, files) for task in tasks}
    for run in runs:  # every run's folder and resume, before the first one trains
        open_run(run, read[run.task])
    results = []
    writer = True
    for run in runs:
        finetuner = Finetuner(run)
        result = finetuner.run()
        writer = finetuner.is_writer  # under Horovod only rank 0 reports
        results.append(result)
        if writer:
            print(f"{run.task} seed {run.seed}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in result["best"].items()))
    if not writer:
        return 0
    summary = summarize(results)
    paths = write_reports(summary, results, out)
    print(paths["markdown"].read_text())
    return 0


if __name__ == "__main__":
    run_cli(main)

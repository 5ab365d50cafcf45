"""``python -m bortkit.finetune --task SST-2 --model PATH --data-dir DIR``

Fine-tunes on one GLUE/SuperGLUE task (or ``--task ALL``: every task whose files are in the
data folder) for one or more seeds, and writes per run ``OUT/TASK/seed-S/`` (log, best
checkpoint, learning curve, optional submission files) plus ``OUT/results.json`` and
``OUT/results.md`` with the median and spread over seeds per task.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError, DataError, run_cli
from .report import summarize, write_reports


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
    p = argparse.ArgumentParser(prog="python -m bortkit.finetune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="task name (SST-2, MRPC, BoolQ, ...) or ALL")
    p.add_argument("--model", required=True, help="checkpoint: bortkit, Hugging Face or .params")
    p.add_argument("--data-dir", required=True, help="benchmark root or the task's folder")
    p.add_argument("--output-dir", default="runs/finetune")
    p.add_argument("--tokenizer", help="tokenizer path when the checkpoint has none")
    p.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=5e-5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--max-steps", type=int, help="optimizer steps per run (overrides --epochs)")
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--accumulate", type=int, default=1, help="gradient accumulation steps")
    p.add_argument("--optimizer", default="bertadam", choices=("bertadam", "adamw", "lamb"))
    p.add_argument("--pooling", default="cls", choices=("cls", "mean"),
                   help="sentence vector for the head: [CLS]/pooler, or the mean over tokens "
                        "(for mean-pooled sentence encoders such as all-MiniLM-L6-v2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (overrides --seed)")
    p.add_argument("--eval-every", type=int, default=0, help="steps; 0 = once per epoch")
    p.add_argument("--early-stopping", type=int, default=0,
                   help="stop after this many evaluations without improvement (0 = off)")
    p.add_argument("--max-train-examples", type=int, help="random subset of the train split")
    p.add_argument("--max-eval-examples", type=int, help="random subset of the dev split")
    p.add_argument("--predict", action="store_true", help="write test-server files")
    p.add_argument("--resume", action="store_true", help="continue from OUT/.../checkpoint")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--distributed", action="store_true",
                   help="Horovod data parallelism; launch with horovodrun -np N")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from .trainer import FinetuneArgs, Finetuner
    seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    tasks = resolve_tasks(args.task, args.data_dir)
    out = Path(args.output_dir)
    options = {k: v for k, v in vars(args).items()
               if k not in ("task", "seeds", "seed", "output_dir")}
    results = []
    writer = True
    for task in tasks:
        for seed in seeds:
            run = FinetuneArgs(task=task, seed=seed, output_dir=str(out / task / f"seed-{seed}"),
                               **options)
            finetuner = Finetuner(run)
            result = finetuner.run()
            writer = finetuner.is_writer  # under Horovod only rank 0 reports
            results.append(result)
            if writer:
                print(f"{task} seed {seed}: " + ", ".join(
                    f"{k} {v:.4f}" for k, v in result["best"].items()))
    if not writer:
        return 0
    summary = summarize(results)
    paths = write_reports(summary, results, out)
    print(paths["markdown"].read_text())
    return 0


if __name__ == "__main__":
    run_cli(main)

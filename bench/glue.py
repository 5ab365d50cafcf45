"""Fine-tune the pretrained all-MiniLM-L6-v2 on real GLUE data on this CPU.

    python bench/glue.py [--glue-dir ../shared/data/glue] [--out runs/bench-glue] [--quick]
                         [--tasks SST-2,STS-B] [--pooling cls|mean]

Runs SST-2 (full 67,349-example train set, 1 epoch, [CLS] pooler head) and STS-B (full
5,749-example train set, 3 epochs, mean-pooling head: all-MiniLM-L6-v2 is a mean-pooled
sentence encoder whose [CLS] vector and pooler were never trained) through ``bortkit.finetune`` and prints a table of dev scores and wall time; writes
``bench/results/glue.json``. Targets (issue 3): SST-2 dev accuracy >= 0.88, STS-B dev
Spearman >= 0.80. ``--quick`` uses 2,000 training examples per task.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from bortkit.finetune import FinetuneArgs, Finetuner
from bortkit.info import bundled_minilm
from bortkit.io import write_json

REPO = Path(__file__).resolve().parents[1]

RUNS = {
    # task: (fine-tuning knobs, metric to report, target)
    "SST-2": (dict(epochs=1.0, batch_size=32, learning_rate=1e-4, max_length=66,
                   eval_every=500), "accuracy", 0.88),
    "STS-B": (dict(epochs=3.0, batch_size=16, learning_rate=1e-4, max_length=128,
                   eval_every=180, pooling="mean"), "spearman", 0.80),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    parser.add_argument("--out", default=str(REPO / "runs" / "bench-glue"))
    parser.add_argument("--tasks", default=",".join(RUNS))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pooling", choices=("cls", "mean"),
                        help="the head's pooling for every task (default: per task, above)")
    args = parser.parse_args()
    rows = []
    for task in args.tasks.split(","):
        knobs, metric, target = RUNS[task]
        knobs = {**knobs, **({"pooling": args.pooling} if args.pooling else {})}
        run = FinetuneArgs(task=task, model=str(bundled_minilm()), data_dir=args.glue_dir,
                           output_dir=str(Path(args.out) / task), seed=0,
                           max_train_examples=2000 if args.quick else None, **knobs)
        start = time.perf_counter()
        result = Finetuner(run).run()
        seconds = time.perf_counter() - start
        rows.append({"task": task, "metric": metric, "dev": result["best"][metric],
                     "target": target, "train_examples": result["train_examples"],
                     "steps": result["steps"], "wall_seconds": round(seconds, 1),
                     "knobs": knobs, "best_step": result["best_step"]})
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'task':<7}{'metric':<10}{'dev':>8}{'target':>8}{'train ex':>10}"
          f"{'steps':>7}{'wall min':>10}")
    for r in rows:
        print(f"{r['task']:<7}{r['metric']:<10}{r['dev']:>8.4f}{r['target']:>8.2f}"
              f"{r['train_examples']:>10,}{r['steps']:>7}{r['wall_seconds'] / 60:>10.1f}")
    path = REPO / "bench" / "results" / ("glue-quick.json" if args.quick else "glue.json")
    previous = json.loads(path.read_text())["runs"] if path.exists() else []
    merged = [r for r in previous if r["task"] not in {row["task"] for row in rows}] + rows
    write_json(path, {"machine": platform.processor() or platform.machine(),
                      "cpus": os.cpu_count(), "quick": args.quick, "runs": merged})


if __name__ == "__main__":
    main()

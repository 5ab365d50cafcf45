"""Do ``python -m bortkit.prune``'s defaults reach the target? A run with only
``--target-sparsity`` given (every schedule at its default, scaled to the default 400 steps),
on a model and task other than bench/prune.py's: all-MiniLM-L6-v2 fine-tuned briefly on
real STS-B (regression, Spearman).

    python bench/prune_defaults.py [--target 0.6] [--glue-dir ../shared/data/glue]
                                   [--work-dir runs/bench-prune-defaults]

Steps, each cached in ``--work-dir`` (a step whose output exists is not redone):

1. fine-tune the pretrained all-MiniLM-L6-v2 on STS-B with ``bortkit.finetune`` (mean
   pooling, max length 64, batch 32, lr 1e-4, 120 steps: brief on purpose);
2. ``python -m bortkit.prune --task STS-B --model M --data-dir D --target-sparsity T
   --output-dir O`` (plus ``--no-progress``): nothing else set.

Prints a table (target, realised dense and factorised sparsity of the kept model, its dev
Spearman against the dense model's, parameters) and writes
``bench/results/prune-defaults.json`` and ``bench/results/prune/defaults-<T>.png``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, format_table, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FINETUNE = dict(max_steps=120, eval_every=120, batch_size=32, learning_rate=1e-4,
                max_length=64, pooling="mean", seed=0)


def finetuned(work: Path, glue: str) -> Path:
    best = work / "ft-stsb" / "STS-B" / "seed-0" / "best"
    if best.exists():
        return best
    from bortkit.finetune import FinetuneArgs, Finetuner
    from bortkit.info import bundled_minilm
    Finetuner(FinetuneArgs(task="STS-B", model=str(bundled_minilm()), data_dir=glue,
                           output_dir=str(best.parent), progress=False, **FINETUNE)).run()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=0.6)
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "bench-prune-defaults"))
    args = parser.parse_args()
    work = Path(args.work_dir)
    model = finetuned(work, args.glue_dir)
    dense = json.loads((model.parent / "result.json").read_text())["best"] \
        if (model.parent / "result.json").exists() else None
    run = work / f"prune-stsb-{args.target}"
    argv = ["--task", "STS-B", "--model", str(model), "--data-dir", args.glue_dir,
            "--target-sparsity", str(args.target), "--output-dir", str(run), "--no-progress"]
    if not (run / "result.json").exists():
        from bortkit.prune.__main__ import main as prune
        started = time.time()
        prune(argv + (["--resume"] if (run / "log.jsonl").exists() else []))
        (run / "seconds").write_text(f"{time.time() - started:.0f}")
    result = json.loads((run / "result.json").read_text())
    kept = result["gated"]
    from bortkit.prune.args import PruneArgs
    from bortkit.prune.trainer import target_miss
    warning = target_miss(kept, PruneArgs(**result["args"]))
    rows = [["fine-tuned (dense)", "", "", "", dense and dense.get("spearman"),
             kept["dense_params"]],
            [f"pruned, target {args.target} (dense)", kept["step"], kept["dense_sparsity"],
             kept["sparsity"], kept.get("spearman"), kept["params"]]]
    print(format_table(["model", "step", "dense sparsity", "factorised sparsity",
                        "dev Spearman", "parameters"], rows))
    print(warning or f"dense sparsity within {result['args']['tolerance']} of the target")
    shutil.copyfile(run / "sparsity.png", RESULTS_DIR / "prune" / f"defaults-{args.target}.png")
    path = write_results("prune-defaults", {
        "prune_command": "python -m bortkit.prune " + " ".join(argv), "finetune": FINETUNE,
        "dense_dev": dense, "target": args.target, "kept": kept,
        "schedules": result["schedules"], "targets": result["targets"],
        "evaluations": result["evaluations"], "reached_target": result["reached_target"],
        "warning": warning,
        "seconds": float((run / "seconds").read_text()) if (run / "seconds").exists()
        else None})
    print(f"-> {path}")


if __name__ == "__main__":
    main()

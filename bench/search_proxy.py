"""Does the search's error estimate rank candidates? The same representatives, trained by
several recipes, against a reference trained 10x longer.

The representatives are the ones the FPTAS itself would train under ``--max-params``: the
budget's candidates sorted by size and cut into ``--representatives`` intervals, one per
interval (the largest size-and-latency factor), so they span the budget. î is the analytic
FLOP count here (the measured latency of the search needs a minute of probing and only
moves W, not the errors). Every recipe trains every representative with the search's own
code (:class:`bortkit.search.error.DistillationError`: worker process, held-out teacher
cross-entropy and MLM loss), and the bench reports, per recipe and per error kind:

- Kendall's τ (scipy) between the recipe's error ranking and each reference's (a reference
  is a recipe trained longer, ``--reference``, repeatable);
- τ between the W ranking from the recipe's errors and the final W ranking (W from the
  reference's errors);
- the wall time of the recipe (all representatives, worker start-up included).

Recipes are ``name:key=value,...`` over :class:`bortkit.search.error.Training` (steps,
learning_rate, warmup_ratio, init, ...); ``--reference`` names the ones the others are
ranked against. Results are kept per (recipe, candidate) under ``--work-dir``, so an
interrupted bench resumes. Prints a table, writes ``bench/results/search_proxy.json``::

    python bench/search_proxy.py                     # the full bench (about an hour)
    python bench/search_proxy.py --quick             # 3 representatives, 1 and 10 steps
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, fields
from pathlib import Path

import common  # bench/common.py: the script's directory is first on sys.path

DEFAULT_RECIPES = ("default:", "long:steps=100", "random:init=random,steps=30,learning_rate=5e-4")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-params", default="56M")
    parser.add_argument("--representatives", type=int, default=8)
    parser.add_argument("--recipe", action="append", dest="recipes",
                        help="name:key=value,... (repeatable; default: "
                             + " ".join(DEFAULT_RECIPES) + ")")
    parser.add_argument("--reference", action="append", dest="references",
                        help="a recipe every recipe is ranked against (repeatable; default: "
                             "long)")
    parser.add_argument("--teacher-mlm-steps", type=int, default=None,
                        help="default: the search's")
    parser.add_argument("--teacher-mlm-train", choices=("head", "all"), default=None,
                        help="default: the search's")
    parser.add_argument("--teacher-mlm-lr", type=float, default=None,
                        help="default: the search's")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--work-dir", default=str(Path.home() / ".cache" / "bortkit-bench"
                                                  / "search_proxy"))
    parser.add_argument("--out", default=None,
                        help="results JSON (default bench/results/search_proxy.json, "
                             "search_proxy_quick.json with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="3 representatives, recipes default:steps=1 long:steps=10")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.representatives = 3
        args.recipes = args.recipes or ["default:steps=1", "long:steps=10"]
        args.out = args.out or str(common.RESULTS_DIR / "search_proxy_quick.json")
        args.work_dir = args.work_dir + "-quick"
    args.out = args.out or str(common.RESULTS_DIR / "search_proxy.json")
    args.recipes = args.recipes or list(DEFAULT_RECIPES)
    args.references = args.references or ["long"]
    return args


def parse_recipe(text: str, training_type) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    known = {f.name: f.type for f in fields(training_type)}
    overrides = {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        if key not in known:
            raise SystemExit(f"search_proxy: recipe {name}: unknown setting {key!r}; "
                             f"known: {', '.join(known)}")
        overrides[key] = value if key == "init" else (
            int(value) if known[key] in ("int", int) else float(value))
    return name, overrides


def representatives(max_params: str, count: int) -> tuple[list, "object"]:
    """The FPTAS's own choice of ``count`` representatives under the budget (no training)."""
    import search
    from bortkit.search.costs import ParamCost, analytic_flops
    space = search.SearchSpace.from_yaml()
    candidates = list(space.candidates())
    params, flops = ParamCost(), analytic_flops()
    budget = search.parse_count(max_params)
    within = [a for a in candidates if params(a) <= budget]
    epsilon = math.ceil(len(within) / count)
    chosen = search.fptas(candidates, search.CostModel(params, flops, lambda arch: 1.0),
                          epsilon, max_params=budget)
    reps = [c for c in chosen.candidates if c.trained]
    return reps, chosen.maximum_point


def masked_lm(checkpoint):
    """A bortkit checkpoint with an MLM head, built and loaded (inference mode)."""
    from bortkit.checkpoint import read_state
    from bortkit.checkpoint.core import assign
    from bortkit.distill import build_masked_lm
    state = read_state(checkpoint)
    model = build_masked_lm(state.config)
    assign(model, state)
    return model


def teacher_quality(checkpoint, heldout_dir, batch_size: int, batches: int) -> dict:
    """A masked LM's own held-out entropy (``teacher-ce`` against itself) and MLM loss."""
    from bortkit.search.error import heldout_losses
    model = masked_lm(checkpoint)
    scores = heldout_losses(model, model, str(heldout_dir), batch_size, batches)
    return {"entropy": scores["teacher-ce"], "mlm": scores["mlm"]}


def kendall(a, b) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(a, b).statistic)


def main(argv=None) -> int:
    args = parse_args(argv)
    common.configure_threads(args.threads)
    from bortkit.search import error as search_error
    from bortkit.search.error import DistillationError, Training
    for name in ("teacher_mlm_steps", "teacher_mlm_train", "teacher_mlm_lr"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(search_error, name.upper()))
    from bortkit.search.teacher import user_cache_dir

    recipes = dict(parse_recipe(text, Training) for text in args.recipes)
    for reference in args.references:
        if reference not in recipes:
            raise SystemExit(f"search_proxy: --reference {reference} is not a recipe")
    reps, maximum = representatives(args.max_params, args.representatives)
    print(f"{len(reps)} representatives under {args.max_params}: "
          + ", ".join(f"{c.arch['num_layers']}-{c.arch['num_heads']}-{c.arch['units']}-"
                      f"{c.arch['ffn_units']}" for c in reps), flush=True)
    load = {"start": os.getloadavg()}
    errors = {}
    for name, overrides in recipes.items():
        errors[name] = DistillationError.prepare(
            Path(args.work_dir) / name, teacher=None, corpus=None, heldout=None,
            training=Training(**overrides), seq_length=args.max_length,
            teacher_mlm_steps=args.teacher_mlm_steps, teacher_mlm_train=args.teacher_mlm_train,
            teacher_mlm_lr=args.teacher_mlm_lr, cache=user_cache_dir(), progress=False)
    first = next(iter(errors.values()))
    teacher = teacher_quality(first.teacher_dir, first.heldout_dir, first.training.batch_size,
                              first.training.eval_batches)
    print(f"teacher: held-out entropy {teacher['entropy']:.3f}, MLM {teacher['mlm']:.3f}",
          flush=True)
    scores: dict = {name: {} for name in recipes}
    # Candidate by candidate (every recipe), in an order that spans the budget early, so an
    # interrupted bench still has every recipe on the same spread of candidates.
    for k in spread_order(len(reps)):
        c = reps[k]
        for name, error in errors.items():
            saved = error.run_dir(c.arch) / "error.json"
            if saved.is_file():   # resumed: this (recipe, candidate) finished before
                result = json.loads(saved.read_text())
            else:
                start = time.perf_counter()
                error(c.arch)
                result = {**error.last, "wall_seconds": time.perf_counter() - start,
                          "load": os.getloadavg()}
                saved.write_text(json.dumps({"arch": c.arch, **result}))
            scores[name][k] = result
            print(f"  {name:>14} {shape(c.arch)}: teacher-ce {result['teacher-ce']:.4f} "
                  f"mlm {result['mlm']:.4f} ({result.get('wall_seconds', 0):.0f} s)", flush=True)
        load["end"] = os.getloadavg()
        report(args, recipes, errors, reps, maximum, scores, load, teacher)
    return 0


def spread_order(n: int) -> list:
    """0, n-1, then the midpoints of the widest gaps: any prefix spans the range."""
    if n <= 2:
        return list(range(n))
    order, gaps = [0, n - 1], [(0, n - 1)]
    while len(order) < n:
        gaps.sort(key=lambda g: g[0] - g[1])
        low, high = gaps.pop(0)
        if high - low < 2:
            continue
        mid = (low + high) // 2
        order.append(mid)
        gaps += [(low, mid), (mid, high)]
    return order


def shape(arch) -> str:
    return "-".join(str(arch[k]) for k in ("num_layers", "num_heads", "units", "ffn_units"))


def report(args, recipes, errors, reps, maximum, scores, load, teacher) -> None:
    """τ over the candidates every recipe has finished; table on stdout, JSON written."""
    done = sorted(set.intersection(*(set(v) for v in scores.values())))
    surrogate = [reps[k].surrogate for k in done]
    summary = {}
    for name in recipes:
        wall = sum(scores[name][k].get("wall_seconds", 0.0) for k in done)
        row = {"wall_seconds": wall, "training": asdict(errors[name].training)}
        for kind in ("teacher-ce", "mlm"):
            ours = [scores[name][k][kind] for k in done]
            row[kind] = {"spread": max(ours) - min(ours), "against": {}}
            for reference in args.references:
                ref = [scores[reference][k][kind] for k in done]
                w_ref = [f / e for f, e in zip(surrogate, ref)]
                row[kind]["against"][reference] = {
                    "tau_error_vs_reference": kendall(ours, ref),
                    "tau_w_vs_final_w": kendall([f / e for f, e in zip(surrogate, ours)], w_ref),
                    "tau_error_vs_final_w": kendall([-e for e in ours], w_ref)}
        summary[name] = row
    headers = ["recipe", "steps", "init", "wall (s)", "reference", "τ err (tce)", "τ W (tce)",
               "spread (tce)", "τ err (mlm)", "τ W (mlm)", "spread (mlm)"]
    table = [[name, row["training"]["steps"], row["training"]["init"],
              f"{row['wall_seconds']:.0f}", reference,
              *(f"{value:.3f}" for k in ("teacher-ce", "mlm") for value in (
                  row[k]["against"][reference]["tau_error_vs_reference"],
                  row[k]["against"][reference]["tau_w_vs_final_w"], row[k]["spread"]))]
             for name, row in summary.items() for reference in args.references]
    print(common.format_table(headers, table))
    print(f"{len(done)} of {len(reps)} representatives; references: "
          f"{', '.join(args.references)}; load average {load['start']} -> {load['end']}",
          flush=True)
    payload = {"max_params": args.max_params, "references": args.references,
               "teacher": {"mlm_steps": args.teacher_mlm_steps, "train": args.teacher_mlm_train,
                           "learning_rate": args.teacher_mlm_lr,
                           "heldout": teacher},
               "complete": len(done) == len(reps),
               "representatives": [{"arch": {k: reps[i].arch[k] for k in
                                             ("num_layers", "num_heads", "units", "ffn_units")},
                                    "params": reps[i].params, "flops": reps[i].inference_cost,
                                    "surrogate": reps[i].surrogate,
                                    "scores": {name: scores[name][i] for name in recipes}}
                                   for i in done],
               "maximum_point": maximum.to_dict(), "summary": summary, "load_average": load}
    path = common.write_results("search_proxy", payload, args.out)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

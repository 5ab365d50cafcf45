"""``python -m bortkit.search --max-params 56M``: optimal subarchitecture extraction for BERT.

Scores every architecture of a search space (default: the Bort paper's 300-point BERT space,
``search/spaces/bert-space.yaml``) by the W-coefficient of de Wynter's FPTAS from three
costs: exact parameter count, inference time measured on this machine, and error, the
held-out distillation loss of the candidate after a short training from the teacher.
Candidates over ``--max-params`` are removed before anything is trained. With no other
argument it runs on a bundled default (a WikiText-2 sample and a MiniLM teacher) in minutes.

Writes to ``--output-dir``: results.csv, results.json, tradeoff.png, best/config.json (ready for
``scripts/run_pretraining_distillation.sh``), state.sqlite (resume: rerun the same command),
latency.json (measured vs modelled latency) and log.jsonl.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..errors import run_cli
from ..options import add_shared, check_range

REPO = Path(__file__).resolve().parents[2]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bortkit.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-params", help="budget: 56M, 1.2B, 300k or a plain integer")
    p.add_argument("--space", help="search-space YAML (default search/spaces/bert-space.yaml)")
    p.add_argument("--teacher", help="teacher checkpoint (default: MiniLM with a fitted MLM head)")
    p.add_argument("--corpus", nargs="+", help="training text files (default: bundled sample)")
    p.add_argument("--heldout", nargs="+", help="held-out text files (default: bundled sample)")
    p.add_argument("--epsilon", type=float, default=12.0,
                   help="interval size: candidates per trained representative (default 12)")
    p.add_argument("--steps-per-candidate", type=int, default=30,
                   help="distillation steps before a candidate's error is measured")
    add_shared(p, {"batch_size": 8, "max_length": 64}, ["batch_size", "max_length"],
               aliases={"max_length": ["--seq-length"]},
               helps={"batch_size": "sequences per candidate training step",
                      "max_length": "tokens per training sequence"})
    p.add_argument("--params", choices=("total", "encoder"), default="total",
                   help="p: all parameters, or without the embeddings")
    p.add_argument("--latency", choices=("measured", "flops"), default="measured",
                   help="i: measured on this CPU (batch 1 x 128) or analytic FLOPs")
    p.add_argument("--exhaustive", action="store_true", help="train every candidate")
    add_shared(p, {"output_dir": "runs/search", "seed": 0}, ["output_dir", "seed"],
               aliases={"output_dir": ["--out"]})
    p.add_argument("--top", type=int, default=10, help="rows of the printed ranking")
    add_shared(p, {}, ["progress"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import search
    from ..train import claim
    from . import load_space

    budget = search.parse_count(args.max_params) if args.max_params is not None else None
    check_range("steps_per_candidate", args.steps_per_candidate, 1, integer=True)
    check_range("batch_size", args.batch_size, 1, integer=True)
    check_range("max_length", args.max_length, 8, integer=True)
    check_range("epsilon", args.epsilon, 0, low_open=True)
    space = load_space(args.space)
    candidates = list(space.candidates())
    out = Path(args.output_dir)
    # rerunning the same command resumes (state.sqlite refuses other settings); the lock
    # refuses a second search in the same folder while this one runs
    with claim(out):
        return _search(args, space, candidates, out, budget)


def _search(args, space, candidates, out: Path, budget) -> int:
    import search
    from .costs import MeasuredLatency, ParamCost, analytic_flops, arch_config
    from .error import DistillationError
    params = ParamCost(include_embeddings=args.params == "total")
    if budget is not None:  # fail fast, before measuring or training anything
        search.apply_budget(candidates, [params(a) for a in candidates], budget, space.describe)
    latency = MeasuredLatency() if args.latency == "measured" else analytic_flops()
    error = DistillationError.prepare(out, teacher=args.teacher, corpus=args.corpus,
                                      heldout=args.heldout, steps=args.steps_per_candidate,
                                      batch_size=args.batch_size, seq_length=args.max_length,
                                      seed=args.seed, progress=args.progress)
    costs = search.CostModel(params=params, inference_cost=latency, error=error)
    settings = {"steps_per_candidate": args.steps_per_candidate, "seed": args.seed,
                "batch_size": args.batch_size, "seq_length": args.max_length,
                "teacher": error.teacher_id, "corpus": error.corpus_id,
                "params": args.params, "latency": args.latency}
    progress = _Progress(out, enabled=args.progress)
    with search.SearchStore(out / "state.sqlite") as store:
        if args.exhaustive:
            result = search.exhaustive(candidates, costs, max_params=budget, store=store,
                                       settings=settings, callback=progress)
        else:
            result = search.fptas(candidates, costs, args.epsilon, max_params=budget,
                                  store=store, settings=settings, callback=progress)
    progress.close()
    paths = search.write_results(result, out)
    best = arch_config(result.chosen.arch)
    from ..io import write_json
    write_json(out / "best" / "config.json", {**best.to_dict(), "_format": "bortkit",
                                              "_search": {"W": result.chosen.w,
                                                          "params": result.chosen.params}})
    if isinstance(latency, MeasuredLatency):
        write_json(out / "latency.json", {"model": "t_embed(units) + D * t_layer(A, H, I)",
                                          "batch_size": latency.batch_size,
                                          "seq_length": latency.seq_length,
                                          "validation": latency.validate([result.chosen.arch])})
    print(search.format_table(result, top=args.top))
    print(f"\n{len(result.candidates)} candidates within budget, {result.num_trained} trained "
          f"({result.num_reused} reused from {out / 'state.sqlite'}), "
          f"{result.num_over_budget} over budget, {space.skipped} invalid points skipped")
    print(f"chosen: {space.describe(result.chosen.arch)}  params {result.chosen.params:,}  "
          f"W {result.chosen.w:.4g}")
    print(f"wrote {', '.join(str(p) for p in paths.values())}, {out / 'best' / 'config.json'}")
    return 0


class _Progress:
    """tqdm over the candidates being trained and a JSONL line per trained candidate."""

    def __init__(self, out: Path, enabled: bool):
        from ..train import JsonlLog
        self.log = JsonlLog(out / "log.jsonl")
        self.enabled = enabled
        self.bar = None

    def __call__(self, candidate, done: int, total: int) -> None:
        if self.bar is None and self.enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc="candidates", unit="cand")
        if self.bar is not None:
            self.bar.update(1)
        self.log.write("candidate", done=done, total=total, **candidate.to_dict())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    run_cli(main)

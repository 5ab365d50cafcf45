"""``python -m bortkit.search --max-params 56M``: optimal subarchitecture extraction for BERT.

Scores every architecture of a search space by the W-coefficient of de Wynter's FPTAS from
three costs: exact parameter count, inference cost (analytic FLOPs, or ``--latency measured``
on this machine), and error, the held-out KL divergence from the teacher of the candidate
after a short distillation from it. The space is the Bort paper's 300-point BERT space
(``search/spaces/bert-space.yaml``) or, when the teacher is smaller than that space's
largest point (the bundled MiniLM), the teacher's own sub-networks (``--regime``; the output
says which ran and why). Candidates over ``--max-params`` are removed before anything is
trained; ``--workers`` candidates train at once. With no other argument it runs on a bundled
default (a WikiText-2 sample and a MiniLM teacher) in minutes.

Writes to ``--output-dir``: results.csv, results.json, tradeoff.png, best/config.json (the
chosen shape with the teacher's vocabulary: the student of
``scripts/run_pretraining_distillation.sh``), state.sqlite (resume: rerun the same command),
latency.json (measured vs modelled latency) and log.jsonl.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError, run_cli
from ..options import add_shared, check_range
from .regime import REGIMES
from .error import (DEFAULT_ERROR, ERROR_MODES, INITS, TEACHER_MLM_LR, TEACHER_MLM_STEPS,
                    TEACHER_MLM_TRAIN, THETA_CHECKS, Training, text_files)

DEFAULT_EPSILON = {"count": 12, "geometric": 0.25}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bortkit.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-params", help="budget: 56M, 1.2B, 300k or a plain integer")
    p.add_argument("--space", help="search-space YAML, or a bundled space by name (bert-space, "
                        "attention-space; default search/spaces/bert-space.yaml)")
    p.add_argument("--regime", choices=REGIMES, default="auto",
                   help="auto: the teacher's sub-networks when no --space is given and the "
                        "teacher is smaller than the default space's largest point, else the "
                        "space; space; subnetworks (default %(default)s)")
    p.add_argument("--teacher", help="teacher checkpoint (default: MiniLM with a fitted MLM head)")
    p.add_argument("--corpus", nargs="+", help="training text files (default: bundled sample)")
    p.add_argument("--heldout", nargs="+", help="held-out text files (default: bundled sample)")
    algorithm = p.add_argument_group("the algorithm (de Wynter 2020; search/ALGORITHM.md)")
    algorithm.add_argument("--partition", choices=("count", "geometric"), default="count",
                           help="intervals of --epsilon candidates each (count, the paper's "
                                "reading), or runs whose parameter count grows by at most a "
                                "factor 1 + epsilon (geometric: the answer's W is within "
                                "(1 - epsilon) of the optimum when the error is smooth in size)")
    algorithm.add_argument("--epsilon", type=float, default=None,
                           help="count: candidates per interval, a whole number >= 1 (default "
                                f"{DEFAULT_EPSILON['count']:g}); geometric: relative width in "
                                f"(0, 1) (default {DEFAULT_EPSILON['geometric']:g})")
    algorithm.add_argument("--theta", metavar="FILE.yaml",
                           help="hyperparameter set: a list of settings or a grid of "
                                f"{', '.join(THETA_CHECKS)}; each representative is trained "
                                "once per setting and its error is the smallest")
    algorithm.add_argument("--error", choices=ERROR_MODES, default=DEFAULT_ERROR,
                           help="kl: KL divergence from the teacher's distribution at held-out "
                                "masked positions (default); teacher-ce: cross-entropy against "
                                "it (the paper's reading, = kl + the teacher's entropy); mlm: "
                                "against the true tokens")
    for name, what in (("alpha", "size"), ("beta", "inference time"), ("gamma", "error")):
        algorithm.add_argument(f"--{name}", type=float, default=1.0,
                               help=f"W exponent on the {what} term (default 1, the paper's)")
    algorithm.add_argument("--exhaustive", action="store_true", help="train every candidate")
    train = p.add_argument_group("training each candidate (the default setting of Θ)")
    train.add_argument("--steps-per-candidate", type=int, default=Training.steps,
                       help="distillation steps before a candidate's error is measured "
                            "(default %(default)s: scored as extracted from the teacher)")
    add_shared(train, Training, ["learning_rate", "batch_size", "max_grad_norm"],
               helps={"batch_size": "sequences per candidate training step"})
    train.add_argument("--warmup-ratio", type=float, default=Training.warmup_ratio,
                       help="share of the steps with a rising learning rate (default %(default)s)")
    train.add_argument("--init", choices=INITS, default=Training.init,
                       help="a candidate's starting weights: random, or the teacher's cut to "
                            "its shape where they overlap (sub-network extraction)")
    train.add_argument("--eval-batches", type=int, default=Training.eval_batches,
                       help="held-out batches a candidate is scored on")
    add_shared(train, {"max_length": 64, "seed": Training.seed}, ["max_length", "seed"],
               aliases={"max_length": ["--seq-length"]},
               helps={"max_length": "tokens per training sequence"})
    teacher = p.add_argument_group("the teacher's MLM head (for a teacher shipped without one)")
    teacher.add_argument("--teacher-mlm-steps", type=int, default=TEACHER_MLM_STEPS,
                         help="masked-LM steps that fit the head (default %(default)s)")
    teacher.add_argument("--teacher-mlm-train", choices=("head", "all"),
                         default=TEACHER_MLM_TRAIN,
                         help="fit only the head (encoder frozen), or every weight as "
                              "scripts/run_pretraining_distillation.sh does (default "
                              "%(default)s)")
    teacher.add_argument("--teacher-mlm-lr", type=float, default=TEACHER_MLM_LR,
                         help="peak learning rate of that fit (default %(default)s)")
    teacher.add_argument("--cache-dir", default=None,
                         help="where fitted heads are kept and reused across searches "
                              "(default $BORTKIT_CACHE or ~/.cache/bortkit)")
    teacher.add_argument("--no-cache", dest="cache", action="store_false",
                         help="fit the head inside --output-dir instead of reusing a cached one")
    p.add_argument("--params", choices=("total", "encoder"), default="total",
                   help="p: all parameters, or without the embeddings")
    p.add_argument("--latency", choices=("flops", "measured"), default="flops",
                   help="i: analytic FLOPs of one 128-token sequence (default: the same under "
                        "any load), or measured on this CPU (batch 1 x 128, minimum of "
                        "several timings)")
    p.add_argument("--workers", type=int, default=default_workers(),
                   help="candidates trained at once, each in its own process with one thread "
                        "(default: the cores, %(default)s); the errors are those of "
                        "--workers 1")
    add_shared(p, {"output_dir": "runs/search"}, ["output_dir"], aliases={"output_dir": ["--out"]})
    p.add_argument("--top", type=int, default=10, help="rows of the printed ranking")
    add_shared(p, {}, ["progress"])
    return p


# the plot's axes, with units, per --error and --latency
ERROR_LABELS = {"kl": "KL divergence from the teacher (nats per masked token)",
                "teacher-ce": "cross-entropy against the teacher (nats per masked token)",
                "mlm": "masked-LM loss (nats per masked token)"}
COST_LABELS = {"flops": "inference cost (FLOPs per 128-token sequence)",
               "measured": "inference latency (ms, batch 1 x 128)"}


def default_workers() -> int:
    import os
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)


def check_arguments(args: argparse.Namespace) -> None:
    """Every option a run cannot use: one line, before anything is written."""
    import search
    for name in ("batch_size", "eval_batches", "teacher_mlm_steps", "top", "workers"):
        check_range(name, getattr(args, name), 1, integer=True)
    check_range("steps_per_candidate", args.steps_per_candidate, 0, integer=True)
    if args.steps_per_candidate == 0 and args.init != "teacher":
        raise ConfigError("--steps-per-candidate 0 scores each candidate as extracted from the "
                          f"teacher and needs --init teacher, got --init {args.init}")
    check_range("max_length", args.max_length, 8, integer=True)
    check_range("seed", args.seed, 0, integer=True)
    check_range("learning_rate", args.learning_rate, 0, low_open=True)
    check_range("teacher_mlm_lr", args.teacher_mlm_lr, 0, low_open=True)
    check_range("warmup_ratio", args.warmup_ratio, 0, 1, high_open=True)
    check_range("max_grad_norm", args.max_grad_norm, 0)
    text_files(args.corpus, args.heldout)  # before the output folder is claimed
    if args.epsilon is None:
        args.epsilon = DEFAULT_EPSILON[args.partition]
    try:
        args.epsilon = search.check_epsilon(args.epsilon, args.partition)
    except search.SearchError as err:
        raise ConfigError(f"--epsilon: {err.problem}") from None
    try:
        args.exponents = search.WCoefficient(args.alpha, args.beta, args.gamma)
    except search.SearchError as err:
        raise ConfigError(f"--alpha/--beta/--gamma: {err.problem}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import search
    from ..checkpoint import read_state
    from ..train import claim
    from . import load_space
    from .error import teacher_path
    from .regime import choose

    check_arguments(args)
    budget = search.parse_count(args.max_params) if args.max_params is not None else None
    thetas = search.load_thetas(args.theta, THETA_CHECKS) if args.theta else None
    regime = choose(args.regime, args.space, read_state(teacher_path(args.teacher)).config,
                    load_space)
    space = regime.space
    args.regime_used = regime
    print(regime.describe(), flush=True)
    candidates = list(space.candidates())
    out = Path(args.output_dir)
    # rerunning the same command resumes (state.sqlite refuses other settings); the lock
    # refuses a second search in the same folder while this one runs, and a search that
    # fails before writing anything leaves no folder behind
    with claim(out):
        return _search(args, space, candidates, out, budget, thetas)


def _search(args, space, candidates, out: Path, budget, thetas) -> int:
    import search
    from .costs import IsolatedLatency, ParamCost, analytic_flops, arch_config
    from .error import DistillationError
    from .teacher import user_cache_dir

    params = ParamCost(include_embeddings=args.params == "total")
    if budget is not None:  # fail fast, before measuring, training or writing anything
        search.apply_budget(candidates, [params(a) for a in candidates], budget, space.describe)
    latency = IsolatedLatency(candidates) if args.latency == "measured" else analytic_flops()
    training = Training(steps=args.steps_per_candidate, learning_rate=args.learning_rate,
                        warmup_ratio=args.warmup_ratio, max_grad_norm=args.max_grad_norm,
                        batch_size=args.batch_size, seed=args.seed, init=args.init,
                        eval_batches=args.eval_batches)
    cache = (Path(args.cache_dir) if args.cache_dir else user_cache_dir()) if args.cache else None
    error = DistillationError.prepare(out, teacher=args.teacher, corpus=args.corpus,
                                      heldout=args.heldout, training=training,
                                      seq_length=args.max_length, mode=args.error,
                                      teacher_mlm_steps=args.teacher_mlm_steps,
                                      teacher_mlm_train=args.teacher_mlm_train,
                                      teacher_mlm_lr=args.teacher_mlm_lr, cache=cache,
                                      progress=args.progress)
    costs = search.CostModel(params=params, inference_cost=latency, error=error)
    settings = {"training": asdict(training), "seq_length": args.max_length,
                "error": args.error, "teacher": error.teacher_id, "corpus": error.corpus_id,
                "teacher_mlm_steps": args.teacher_mlm_steps,
                "teacher_mlm_train": args.teacher_mlm_train,
                "teacher_mlm_lr": args.teacher_mlm_lr, "params": args.params,
                "latency": args.latency, "regime": args.regime_used.name}
    progress = _Progress(out, enabled=args.progress)
    common = dict(max_params=budget, store=None, coefficient=args.exponents,
                  settings=settings, thetas=thetas, callback=progress, jobs=args.workers)
    with search.SearchStore(out / "state.sqlite") as store:
        common["store"] = store
        if args.exhaustive:
            result = search.exhaustive(candidates, costs, **common)
        else:
            result = search.fptas(candidates, costs, args.epsilon, partition=args.partition,
                                  **common)
    progress.close()
    paths = search.write_results(result, out, error_label=ERROR_LABELS[args.error],
                                 cost_label=COST_LABELS[args.latency])
    best = error.student_config(result.chosen.arch)   # the teacher's vocabulary: a student
    from ..io import write_json
    write_json(out / "best" / "config.json",
               {**best.to_dict(), "_format": "bortkit",
                "_search": {"W": result.chosen.w, "error": result.chosen.error,
                            "error_kind": args.error, "theta": result.chosen.theta,
                            "params": result.chosen.params,
                            "regime": args.regime_used.name,
                            "space_config": arch_config(result.chosen.arch).to_dict()}})
    if isinstance(latency, IsolatedLatency):
        write_json(out / "latency.json", {"model": "t_embed(units) + D * t_layer(A, H, I)",
                                          "batch_size": latency.batch_size,
                                          "seq_length": latency.seq_length,
                                          "validation": latency.validate([result.chosen.arch])})
    print(search.format_table(result, top=args.top))
    print(args.regime_used.describe())
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
            self.bar = tqdm(total=total, desc="candidates", unit="cand",
                            disable=None)  # None: only on a terminal
        if self.bar is not None:
            self.bar.update(1)
        self.log.write("candidate", done=done, total=total, **candidate.to_dict())

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


if __name__ == "__main__":
    run_cli(main)

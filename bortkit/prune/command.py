"""The two commands: ``prune`` (train the gates) and ``compact`` (write the small model)."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import mxnet as mx

from ..accounting import count_params
from ..checkpoint import TaskHead, classifier_from_state, read_state, save_pretrained
from ..checkpoint.core import assign
from ..errors import CheckpointError, ConfigError
from ..io import write_json
from ..rundir import writing
from .compact import compact
from .factorize import attach_gates
from .report import plan_table, plot_pruning


def prune_command(args) -> int:
    """``args``: a :class:`~bortkit.prune.args.PruneArgs`."""
    from .run import train
    from .trainer import FlopPruning, target_miss
    pruning = FlopPruning(args)
    result = train(pruning)
    out = pruning.out
    plot_pruning(pruning.lifecycle.records(), out / "sparsity.png",
                 metric=_metric(result), target=args.target_sparsity,
                 sparsity_of=args.sparsity_of,
                 title=f"FLOP on {pruning.task.name}, {args.sparsity_of} target "
                       f"{args.target_sparsity}")
    best = result["gated"]
    print(f"{pruning.task.name}: gated model at step {best['step']}: dense sparsity "
          f"{best['dense_sparsity']:.3f}, factorised sparsity {best['sparsity']:.3f} "
          f"(target {args.target_sparsity}, {args.sparsity_of}), dev {_metric(result)} "
          f"{best[_metric(result)]:.4f}, {best['params']:,} parameters after compaction "
          f"(dense {best['dense_params']:,}) -> {out / 'gated'}")
    warning = target_miss(best, args)
    if warning:
        print(warning, file=sys.stderr)
    return 0


def _metric(result: dict) -> str:
    best = result["gated"]
    return next((k for k in ("accuracy", "matthews", "spearman", "f1") if k in best), "main")


def load_gated(path):
    """(classifier with gates, state, head) from a gated checkpoint written by ``prune``."""
    state = read_state(path)
    prune_meta, head = state.meta.get("_prune"), TaskHead.from_meta(state.meta, Path(path))
    if not prune_meta or head is None or not any(k.endswith(".mask.log_alpha")
                                             for k in state.tensors):
        raise CheckpointError("not a gated model: compact takes the gated/ folder a "
                              "pruning run writes (python -m bortkit.prune ...)", path=path)
    classifier, _ = classifier_from_state(state, head.num_labels, head.pooling)
    attach_gates(classifier.network, **prune_meta["mask_options"])
    assign(classifier, state, required_prefixes=())   # the gates' log_alpha
    return classifier, state, head


def compact_command(args) -> int:
    if args.rank_multiple < 1:
        raise ConfigError(f"--rank-multiple: must be a positive integer, got "
                          f"{args.rank_multiple!r}")
    out = Path(args.output_dir)
    if out.exists():
        raise ConfigError(f"--output-dir: {out} exists; choose a new folder (nothing is "
                          "overwritten)")
    mx.random.seed(0)
    classifier, state, head = load_gated(args.model)
    compacted, plans = compact(classifier, state, rank_multiple=args.rank_multiple)
    small, _ = classifier_from_state(compacted, head.num_labels, head.pooling)
    meta = {**head.to_meta(), "_compacted": {"from": str(args.model),
                                          "rank_multiple": args.rank_multiple}}
    with writing(out):  # one writer per folder; a killed write's staging goes
        save_pretrained(small, out, config=compacted.config, source=state.tokenizer_dir,
                        meta=meta)
        write_json(out / "compact.json",
                   {"model": str(args.model), "output": str(out),
                    "rank_multiple": args.rank_multiple, "plans": [asdict(p) for p in plans]})
    table = plan_table(plans)
    print(table)
    print(f"parameters: {count_params(compacted.config):,} without the task head -> {out}")
    return 0

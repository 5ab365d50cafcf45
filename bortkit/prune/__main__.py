"""FLOP structured pruning (Wang, Wohlwend & Lei, EMNLP 2020) of a fine-tuned classifier.

    python -m bortkit.prune --task SST-2 --model RUN/best --data-dir DIR --target-sparsity 0.8 \\
        --output-dir OUT
    python -m bortkit.prune compact --model OUT/gated --output-dir OUT/compact

The first command factorises every encoder matrix by thin SVD, puts a hard-concrete gate
between the factors and trains the task loss under the expected-sparsity Lagrangian,
writing ``OUT/log.jsonl``, ``OUT/sparsity.png``, ``OUT/result.json`` and the gated model
``OUT/gated``. ``compact`` removes the switched-off ranks, multiplies a factor pair back
into one matrix wherever that is no larger and writes an ordinary bortkit checkpoint
(``from_pretrained``, ``bortkit.finetune``) whose config lists the matrices kept as factors
in ``low_rank``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    from .args import PruneArgs
    d = PruneArgs("", "", "", "")
    p = argparse.ArgumentParser(prog="python -m bortkit.prune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="the task the model was fine-tuned on")
    p.add_argument("--model", required=True, help="fine-tuned classifier (bortkit checkpoint "
                                                   "with a task head)")
    p.add_argument("--data-dir", required=True, help="benchmark root or the task's folder")
    p.add_argument("--output-dir", default="runs/prune")
    p.add_argument("--target-sparsity", type=float, default=d.target_sparsity,
                   help="fraction of the factorised weights to remove, in (0, 1)")
    p.add_argument("--target-warmup-steps", type=int, default=d.target_warmup_steps)
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--max-length", type=int, help="default: the head's fine-tuning length")
    p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float,
                   default=d.learning_rate, help="model weights; 0 trains only the gates")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--max-grad-norm", type=float, default=d.max_grad_norm)
    p.add_argument("--mask-learning-rate", type=float, default=d.mask_learning_rate,
                   help="peak learning rate of the gates' log_alpha (Noam shape)")
    p.add_argument("--lambda-learning-rate", type=float, default=d.lambda_learning_rate,
                   help="peak learning rate of the Lagrange multipliers (gradient ascent)")
    p.add_argument("--schedule-warmup-steps", type=int, default=d.schedule_warmup_steps)
    p.add_argument("--mask-init-mean", type=float, default=d.mask_init_mean,
                   help="initial drop probability of every rank component, in (0, 1)")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--tolerance", type=float, default=d.tolerance,
                   help="a checkpoint counts as at target within this much sparsity")
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--max-eval-examples", type=int)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def build_compact_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bortkit.prune compact",
                                description="Compact a gated model into an ordinary checkpoint.")
    p.add_argument("--model", required=True, help="a gated model (OUT/gated of a pruning run)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--rank-multiple", type=int, default=16,
                   help="round kept ranks up to this multiple with zero components")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compact"]:
        from .command import compact_command
        return compact_command(build_compact_parser().parse_args(argv[1:]))
    from .args import PruneArgs, check
    args = PruneArgs(**vars(build_parser().parse_args(argv)))
    check(args)  # every user error before MXNet loads
    from .command import prune_command
    return prune_command(args)


if __name__ == "__main__":
    run_cli(main)

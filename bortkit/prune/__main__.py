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

The target is the dense sparsity by default (the share of the dense encoder weights
removed, as the FLOP library counts); ``--sparsity-of factorised`` reads it over the SVD
factors instead. result.json reports both (``dense_sparsity``, ``sparsity``). A run whose
kept model misses the target by more than ``--tolerance`` ends with a warning.

Where this differs from FLOP and Arexh/BERT-Pruning (the paper's setting in brackets):
  - schedules scaled to a short run (--max-steps 400; target warm-up half the run; Noam
    peaks summing to 25 and 166) [Arexh on SST-2: 50 epochs, --target-warmup-steps 4000,
    --schedule-warmup-steps 200, --mask-learning-rate 0.0128, --lambda-learning-rate 0.0255]
  - the model weights train at 2e-5 [Arexh: --learning-rate 0, only the gates train]
  - gates start at log_alpha = log 19 (--mask-init-mean 0.05) [Arexh: 5, i.e. 0.0067]
  - thin SVD, r = min(in, out) [Arexh: full-matrices SVD; the library: r = in*out/(in+out)]
  - the eval gate is Arexh's clamp(sigmoid(log_alpha) 1.2 - 0.1) [the library: the
    round(r - E||z||) smallest of sigmoid(0.8 log_alpha) zeroed]
  - compact keeps every component whose gate is non-zero, so the small model computes what
    the gated one does [Arexh: drops gates <= 0.5 and fine-tunes again at lr 1e-6: run
    python -m bortkit.finetune on the compacted model]
  - gated/ keeps the best evaluation within --tolerance of the target on either side [the
    library saves a model once its sparsity exceeds the target - 0.02]
  - not implemented: FLOP's AGP baselines (Zhu & Gupta's automated gradual pruning:
    magnitude pruning to a sparsity that rises as a cubic over the run, unstructured or of
    the same rank components); FLOP's results set them beside its own, so without them
    this command cannot say what the Lagrangian adds over magnitude pruning.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    from ..options import add_shared, defaults_of
    from .args import SPARSITY_READINGS, PruneArgs
    d = PruneArgs("", "", "", "")
    shared = {**defaults_of(PruneArgs), "output_dir": "runs/prune"}
    p = argparse.ArgumentParser(prog="python -m bortkit.prune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, help="the task the model was fine-tuned on")
    p.add_argument("--model", required=True, help="fine-tuned classifier (bortkit checkpoint "
                                                   "with a task head)")
    p.add_argument("--data-dir", required=True, help="benchmark root or the task's folder")
    add_shared(p, shared, ["output_dir"])
    p.add_argument("--target-sparsity", type=float, default=d.target_sparsity,
                   help="fraction of the weights to remove, in (0, 1), read as "
                        "--sparsity-of says (default %(default)s)")
    p.add_argument("--sparsity-of", choices=list(SPARSITY_READINGS), default=d.sparsity_of,
                   help="what the target counts: " + "; ".join(
                       f"{k}: {v}" for k, v in SPARSITY_READINGS.items())
                   + " (default %(default)s)")
    p.add_argument("--target-warmup-steps", type=int, default=d.target_warmup_steps,
                   help="steps over which the target rises from 0 (default: half of "
                        "--max-steps; FLOP's BERT recipe: 4000)")
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    add_shared(p, shared, ["batch_size", "max_length", "learning_rate", "max_grad_norm"],
               aliases={"learning_rate": ["--lr"]},  # --lr: a retired spelling, hidden
               helps={"max_length": "tokens per sequence (default: the head's fine-tuning "
                                    "length)",
                      "learning_rate": "peak learning rate of the model weights; 0 trains "
                                       "only the gates"})
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--mask-learning-rate", type=float, default=d.mask_learning_rate,
                   help="peak learning rate of the gates' log_alpha (Noam shape); default: "
                        "scaled to --max-steps so the rates sum to 25 (0.12 at 400 steps; "
                        "FLOP's BERT recipe alpha_lr 5, i.e. a peak of 0.0128)")
    p.add_argument("--lambda-learning-rate", type=float, default=d.lambda_learning_rate,
                   help="peak learning rate of the Lagrange multipliers (gradient ascent); "
                        "default: scaled so the rates sum to 166 (0.80 at 400 steps; FLOP's "
                        "lambda_lr 10, i.e. a peak of 0.0255)")
    p.add_argument("--schedule-warmup-steps", type=int, default=d.schedule_warmup_steps,
                   help="Noam warm-up of both (default: an eighth of --max-steps; FLOP: 200)")
    p.add_argument("--mask-init-mean", type=float, default=d.mask_init_mean,
                   help="initial drop probability of every rank component, in (0, 1)")
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--tolerance", type=float, default=d.tolerance,
                   help="a checkpoint counts as at target within this much sparsity; a run "
                        "whose kept model misses the target by more ends with a warning "
                        "(default %(default)s)")
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--max-eval-examples", type=int)
    add_shared(p, shared, ["seed"])
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --output-dir with the same settings")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished or started run in --output-dir (default: refuse)")
    add_shared(p, shared, ["progress", "report_to"])
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

"""Pretrain a masked-LM student, distilled from a teacher or not.

    python -m bortkit.distill --train SHARDS --test SHARDS --output-dir runs/x \\
        [--teacher CHECKPOINT [--teacher-head-steps N]] [--student-config bort-mini] ...

    horovodrun -np 2 -H localhost:2 --gloo python -m bortkit.distill ...   (data parallel)

SHARDS are directories made by ``python -m bortkit.data.create_pretraining_data``;
``scripts/run_pretraining_distillation.sh`` converts raw text and launches the workers.
Without --teacher the student is trained with the plain masked-LM loss.

The loss is Bort's: 0.1 MLM + 0.5 KD at T = 2. By default the KD term is the correct one
(--kd-mode correct: T^2 KL summed over the vocabulary), a loss the released Bort never
trained with: the release's term (--kd-mode bort: a double softmax and a vocabulary mean)
is about 1e-5 of it at a vocabulary of 50,265, so the release trained on 0.1 MLM in effect.
--loss-preset bort-release reproduces the release's loss. The run's log (its "start"
event and the first line on stderr) names the KD mode.

Where this differs from Bort's pretraining (its setting in brackets): the default student
is bort-mini, a scaled-down shape [--student-config bort]; --max-steps 1000 [2,000,000];
the teacher is any checkpoint [RoBERTa-large]; the learning rate (1e-4, 1% warm-up, linear
decay) and the weight decay are Bort's.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Optional, Sequence

from ..errors import run_cli
from ..options import add_shared
from ..train import OPTIMIZERS
from .plan import TEACHER_MLM_SCOPES, PretrainingArguments
from .weights import KD_MODE_MEANINGS, KD_MODES, LOSS_PRESET_MEANINGS, LOSS_PRESETS

DEFAULTS = PretrainingArguments(train="", output_dir="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bortkit.distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DEFAULTS
    data = parser.add_argument_group("data and models")
    data.add_argument("--train", required=True, metavar="DIR", help="training shard directory")
    data.add_argument("--test", metavar="DIR", help="held-out shard directory (evaluation)")
    add_shared(data, d, ["output_dir"], required=["output_dir"])
    data.add_argument("--student-config", default=d.student_config, metavar="NAME_OR_PATH",
                      help="preset (bort, bert-base, ...), configs/distill name (bort-mini, "
                           "teacher-mini) or config.json (default %(default)s)")
    data.add_argument("--teacher", metavar="CHECKPOINT",
                      help="bortkit, Hugging Face or GluonNLP checkpoint; none = plain MLM")
    data.add_argument("--teacher-mlm-steps", type=int, default=d.teacher_mlm_steps,
                      metavar="N", help="first train the teacher as a masked LM on the "
                                        "training data for N steps (needed when it has no "
                                        "MLM head, e.g. a sentence-transformers model)")
    data.add_argument("--teacher-mlm-train", choices=TEACHER_MLM_SCOPES,
                      default=d.teacher_mlm_train,
                      help="which teacher weights that trains (default %(default)s)")
    data.add_argument("--teacher-mlm-lr", type=float, default=d.teacher_mlm_lr)
    data.add_argument("--dropout", type=float, help="override the student's dropout rates")

    loss = parser.add_argument_group("loss (defaults: Bort's pretraining script)")
    loss.add_argument("--loss-preset", choices=list(LOSS_PRESETS),
                      help="; ".join(f"{k}: {v}" for k, v in LOSS_PRESET_MEANINGS.items())
                           + ". Sets the four options below (an explicit different value "
                             "is an error)")
    loss.add_argument("--mlm-weight", type=float,
                      help=f"(default {d.mlm_weight}, Bort's)")
    loss.add_argument("--kd-weight", type=float, help=f"(default {d.kd_weight}, Bort's)")
    loss.add_argument("--temperature", type=float, help=f"(default {d.temperature}, Bort's)")
    loss.add_argument("--kd-mode", choices=KD_MODES,
                      help=f"(default {d.kd_mode}) " + "; ".join(
                          f"{k}: {v}" for k, v in KD_MODE_MEANINGS.items()))
    loss.add_argument("--hidden-weight", type=float, default=d.hidden_weight,
                      help="hidden-state MSE between mapped layers (0 = off)")
    loss.add_argument("--attention-weight", type=float, default=d.attention_weight,
                      help="attention-distribution KL between mapped layers (0 = off)")
    loss.add_argument("--layer-map", metavar="S:T,...",
                      help="student:teacher layer pairs, 0-based (default uniform)")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS)
    add_shared(optim, d, ["learning_rate", "max_grad_norm", "batch_size"],
               aliases={"learning_rate": ["--lr"]},
               helps={"batch_size": "sequences per worker and micro-batch"})
    optim.add_argument("--weight-decay", type=float, default=d.weight_decay)
    optim.add_argument("--adam-epsilon", type=float, default=d.adam_epsilon)
    optim.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    optim.add_argument("--accumulate", type=int, default=d.accumulate,
                       help="micro-batches per optimizer step")
    optim.add_argument("--max-steps", type=int, default=d.max_steps)
    optim.add_argument("--max-predictions", type=int, default=d.max_predictions,
                       help="masked tokens per sequence at most")
    optim.add_argument("--mlm-probability", type=float, default=d.mlm_probability)
    optim.add_argument("--whole-word", action="store_true", help="whole-word masking")
    add_shared(optim, d, ["seed"])

    run = parser.add_argument_group("run")
    run.add_argument("--eval-every", type=int, default=d.eval_every, metavar="STEPS")
    run.add_argument("--eval-batches", type=int, default=d.eval_batches,
                     help="held-out batches per evaluation (0 = all)")
    run.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                     metavar="STEPS")
    run.add_argument("--log-every", type=int, default=d.log_every, metavar="STEPS")
    run.add_argument("--resume", action="store_true",
                     help="continue from output-dir/checkpoint (bit-for-bit on CPU)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace a finished or started run in output-dir (default: refuse)")
    add_shared(run, d, ["progress", "report_to"])
    run.add_argument("--check-only", action="store_true",
                     help="validate data, models and output directory, then exit")
    run.add_argument("--stop-at-step", type=int, help=argparse.SUPPRESS)  # debug: SIGKILL
    return parser


def parse_arguments(argv: Optional[Sequence[str]] = None) -> PretrainingArguments:
    """The command line as :class:`PretrainingArguments`, ``--loss-preset`` resolved into
    the four loss settings (a contradicting explicit one is a one-line error)."""
    namespace = build_parser().parse_args(argv)
    if namespace.teacher in ("none", ""):
        namespace.teacher = None
    from .weights import apply_loss_preset
    loss = ("mlm_weight", "kd_weight", "temperature", "kd_mode")
    values = vars(namespace)
    values.update(apply_loss_preset(values.pop("loss_preset"), {k: values[k] for k in loss}))
    return PretrainingArguments(**values)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_arguments(argv)
    # MXNet notices for inputs and parameters a graph ignores (token types, a pooler)
    warnings.filterwarnings("ignore", message="The .*-th input to HybridBlock is not used")
    warnings.filterwarnings("ignore", message="Parameter .* is not used by any computation")
    from .trainer import train
    train(args)
    if args.check_only:
        print("bortkit: configuration checked", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

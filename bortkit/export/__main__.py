"""python -m bortkit.export --model PATH --format onnx [--quantize int8] --output-dir DIR"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..errors import run_cli
from .core import FORMATS, QUANTIZATIONS


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bortkit.export",
        description="Export a bortkit, Hugging Face or GluonNLP checkpoint (with its task head) "
                    "to a graph ONNX Runtime runs with dynamic batch and length.")
    p.add_argument("--model", required=True, help="checkpoint directory or .params file")
    # Validated by export() so that a bad value is one `bortkit: error:` line like the others.
    p.add_argument("--format", default="onnx", help=f"one of: {', '.join(FORMATS)}")
    p.add_argument("--quantize", default=None,
                   help=f"one of: {', '.join(QUANTIZATIONS)} (ONNX Runtime dynamic int8)")
    p.add_argument("--output-dir", required=True, help="new (or empty) directory to write")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    from .core import export
    out = export(args.model, args.output_dir, format=args.format, quantize=args.quantize)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)

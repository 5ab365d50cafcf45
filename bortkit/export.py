"""``python -m bortkit.export --model best/ --output-dir hf/``

Writes a checkpoint (bortkit, Hugging Face, GluonNLP ``.params`` or ``minilm``) as a Hugging
Face directory that ``transformers`` loads as it is: ``BertModel``/``RobertaModel``, or with
a task head ``BertForSequenceClassification``/``RobertaForSequenceClassification`` with its
label names (:func:`bortkit.checkpoint.export_huggingface`).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from .errors import DataError, run_cli


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bortkit.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint to export")
    p.add_argument("--output-dir", required=True, type=Path)
    p.add_argument("--no-head", dest="include_head", action="store_false",
                   help="export the encoder alone, without the task head")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output-dir")
    args = p.parse_args(argv)
    if args.output_dir.exists() and not args.overwrite:
        raise DataError("already exists (pass --overwrite to replace it)", path=args.output_dir)
    from .checkpoint import export_huggingface, from_pretrained
    model = from_pretrained(args.model)
    export_huggingface(model, args.output_dir, include_head=args.include_head)
    layout = "with its " + model.head.kind + " head" \
        if model.head is not None and args.include_head else "encoder only"
    print(f"exported {args.model} ({layout}) -> {args.output_dir}")
    return 0


if __name__ == "__main__":
    run_cli(main)

"""Turn raw text into packed, tokenized pretraining shards.

    python -m bortkit.data.create_pretraining_data --input corpus/ --tokenizer vocab_dir \\
        --output-dir data/wiki-128 [--max-length 128] [--sentence-pairs] [--shard-size 10000]
        [--one-sentence-per-line] [--workers 2]

    python -m bortkit.data.create_pretraining_data --input corpus.txt \\
        --train-sentencepiece 8000 --output-dir data/wiki-spm

Inputs are UTF-8 text files or folders of them: by default blank lines separate documents;
with ``--one-sentence-per-line`` every line is a unit. The output directory holds
``shard-*/`` (one ``.npy`` per array), ``tokenizer/`` and ``meta.json`` (see
:mod:`bortkit.data.shards`); it appears only when everything succeeded.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from ..errors import run_cli
from ..options import add_shared
from .pretraining import SPM_SAMPLE_LINES, create_pretraining_data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bortkit.data.create_pretraining_data", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", nargs="+", required=True, metavar="PATH",
                        help="text files or folders of text files")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tokenizer", metavar="PATH",
                        help="tokenizer directory or vocabulary file")
    source.add_argument("--train-sentencepiece", type=int, metavar="VOCAB_SIZE",
                        help="train a SentencePiece tokenizer of this size on the input "
                             f"(a sample of at most {SPM_SAMPLE_LINES:,} lines) and use it")
    add_shared(parser, {"max_length": 128}, ["output_dir", "max_length"],
               required=["output_dir"], aliases={"output_dir": ["--output"],
                                                 "max_length": ["--max-seq-length"]},
               helps={"output_dir": "shard directory to create",
                      "max_length": "tokens per example, specials included"})
    parser.add_argument("--sentence-pairs", action="store_true",
                        help="split each example into A and its continuation B")
    parser.add_argument("--one-sentence-per-line", action="store_true",
                        help="every line is a unit (default: blank lines separate documents)")
    parser.add_argument("--shard-size", type=int, default=10_000,
                        help="examples per shard file (default 10000)")
    add_shared(parser, {"seed": 0}, ["seed"],
               helps={"seed": "seed of pair split points and the SentencePiece sample"})
    parser.add_argument("--workers", type=int, default=1, help="tokenizer processes")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output directory")
    add_shared(parser, {}, ["progress"])
    parser.add_argument("--quiet", dest="progress", action="store_false",
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # old spelling
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    meta = create_pretraining_data(
        args.input, args.tokenizer, args.output_dir, max_seq_length=args.max_length,
        sentence_pairs=args.sentence_pairs, one_sentence_per_line=args.one_sentence_per_line,
        shard_size=args.shard_size, train_sentencepiece_vocab=args.train_sentencepiece,
        seed=args.seed, workers=args.workers, overwrite=args.overwrite,
        progress=args.progress)
    fill = meta["num_tokens"] / (meta["num_examples"] * meta["max_seq_length"])
    print(f"wrote {meta['num_examples']:,} examples ({meta['num_tokens']:,} tokens, "
          f"{fill:.0%} of the slots) in {len(meta['shards'])} shards to {args.output_dir}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

"""The fused self-attention operator (``bortkit_self_attention``) of MiniLM's and Bort's heads
at batch 8 x length 128, at every ISA tier this CPU runs, against MXNet's own chain.

Contenders (one process, interleaved rounds, the same fp32 query/key/value input):

- ``fused@<tier>``: ``bortkit_self_attention`` capped at each tier from avx2 up to the host's
  (``bortkit.ops.isa.cap``): scores, mask, softmax and weighted values per block of 16 query
  rows, products on bf16-rounded operands summed in float32;
- ``mxnet``: MXNet's ``interleaved_matmul_selfatt_qk``, mask, ``softmax`` and
  ``interleaved_matmul_selfatt_valatt``, the chain the fused operator replaces in bortkit's
  int8 graph.

Shapes (heads x head size): MiniLM 12 x 32, Bort 8 x 128::

    python bench/attention.py --threads 2

Writes ``bench/results/attention-<threads>t.json``.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import common  # bench/common.py: the script's directory is first on sys.path

SHAPES = {"minilm": (12, 32), "bort": (8, 128)}  # heads, head size


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-seconds", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="results file (default: bench/results/attention-<threads>t.json)")
    args = parser.parse_args(argv)
    for name in ("threads", "batch", "length", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer, got {getattr(args, name)}")
    return args


def contenders(qkv, mask, heads: int, tiers) -> dict:
    import mxnet as mx
    from bortkit.ops import isa

    def fused(tier):
        def call():
            isa.cap(tier)
            mx.nd.bortkit_self_attention(qkv, mask, heads=heads, fill=-1e4).wait_to_read()
        return call

    T, B = qkv.shape[0], qkv.shape[1]
    bias = ((1 - mask) * -1e4).reshape((B, 1, 1, T))  # (B, 1, 1, T) added to every head's scores

    def mxnet():
        scores = mx.nd.contrib.interleaved_matmul_selfatt_qk(qkv, heads=heads)  # (B*H, T, T)
        scores = mx.nd.broadcast_add(scores.reshape((B, heads, T, T)), bias)
        probs = mx.nd.softmax(scores, axis=-1).reshape((B * heads, T, T))
        mx.nd.contrib.interleaved_matmul_selfatt_valatt(qkv, probs, heads=heads).wait_to_read()

    return {**{f"fused@{t}": fused(t) for t in tiers}, "mxnet": mxnet}


def main(argv=None) -> None:
    args = parse_args(argv)
    common.configure_threads(args.threads, passive=True)
    import mxnet as mx
    from bortkit import ops
    from bortkit.ops import isa
    if not ops.available():
        raise SystemExit(f"bortkit: error: the operator library is not loaded: {ops.status()}")
    top = isa.active()
    tiers = isa.TIERS[isa.TIERS.index("avx2"):isa.TIERS.index(top) + 1]
    names = [f"fused@{t}" for t in tiers] + ["mxnet"]
    rng = np.random.default_rng(args.seed)
    rows = []
    for model, (heads, size) in SHAPES.items():
        qkv = mx.nd.array(rng.normal(size=(args.length, args.batch, 3 * heads * size))
                          .astype(np.float32))
        mask = mx.nd.ones((args.batch, args.length))
        samples = common.interleave(contenders(qkv, mask, heads, tiers), rounds=args.rounds,
                                    min_seconds=args.min_seconds)
        isa.cap(top)
        ms = {c: 1e3 * common.median(samples[c].wall) for c in names}
        rows.append({"model": model, "heads": heads, "head_size": size, "ms": ms,
                     "mxnet_over": {t: common.paired_ratio(samples["mxnet"].wall,
                                                           samples[f"fused@{t}"].wall)
                                    for t in tiers}})
    print(f"bortkit tiers {', '.join(tiers)}; batch {args.batch} x length {args.length}, "
          f"{args.threads} threads, median of {args.rounds} interleaved rounds")
    print(common.format_table(
        ["model", "heads x size", *(f"{c} ms" for c in names),
         *(f"mxnet / {t}" for t in tiers)],
        [[r["model"], f"{r['heads']} x {r['head_size']}", *(r["ms"][c] for c in names),
          *(r["mxnet_over"][t] for t in tiers)] for r in rows]))
    path = common.write_results("attention", {
        "settings": vars(args), "isa": common.isa_record(), "tiers": list(tiers),
        "shapes": rows}, args.out or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "results",
            f"attention-{args.threads}t.json"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

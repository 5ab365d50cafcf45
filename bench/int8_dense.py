"""One int8 dense layer, three ways, on Bort's shapes at batch 8 x length 128 (1,024 tokens).

Contenders (one process, interleaved rounds, same fp32 input and weight):

- ``amx``: bortkit's ``bortkit_int8_dense`` (per-row dynamic u8 input, per-channel s8
  weight packed once, AMX ``TDPBUSD`` where the CPU has it; see ``amx_ready`` in the output);
- ``onednn_int8``: MXNet 1.9.1's oneDNN quantized ``FullyConnected`` (calibrated static
  input, per-channel weight), built by bortkit's quantization pass;
- ``fp32``: MXNet's ``FullyConnected``.

Each time includes quantizing the input and producing fp32 output. Shapes (K, N): the
query/key/value product (1024, 3072), attention output (1024, 1024), FFN input (1024, 768),
FFN output (768, 1024)::

    python bench/int8_dense.py --threads 1
    python bench/int8_dense.py --threads 2

Writes ``bench/results/int8-dense-<threads>t.json``.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import common  # bench/common.py: the script's directory is first on sys.path
from bortkit.errors import run_cli

SHAPES = ((1024, 3072), (1024, 1024), (1024, 768), (768, 1024))
CONTENDERS = ("amx", "onednn_int8", "fp32")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=1024, help="rows of the input (B x T)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-seconds", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="results file (default: bench/results/int8-dense-<threads>t.json)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.tokens < 1 or args.rounds < 1:
        parser.error("--threads, --tokens and --rounds must be positive")
    return args


def contenders(x, weight) -> dict:
    import mxnet as mx
    from bortkit.ops.int8_dense import int8_dense, pack_weight
    from bortkit.quantize.graph import collect_thresholds, quantize_symbol
    units = weight.shape[0]
    data = mx.nd.array(x)
    packed, scale, colsum = pack_weight(weight)
    amx_args = [data, mx.nd.array(packed, dtype="int8"), mx.nd.array(scale),
                mx.nd.array(colsum, dtype="int32"), mx.nd.zeros(units)]
    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=units, name="fc")
    params = {"fc_weight": mx.nd.array(weight), "fc_bias": mx.nd.zeros(units)}
    onednn = quantize_symbol(sym, params, collect_thresholds(sym, params, [{"data": x}]),
                             ["data"])
    return {"amx": lambda: int8_dense(mx.nd, *amx_args, units=units).wait_to_read(),
            "onednn_int8": lambda: onednn(data).wait_to_read(),
            "fp32": lambda: mx.nd.FullyConnected(data, params["fc_weight"], params["fc_bias"],
                                                 num_hidden=units).wait_to_read()}


def main(argv=None) -> None:
    args = parse_args(argv)
    common.configure_threads(args.threads)
    from bortkit import ops
    from bortkit.ops.int8_dense import amx_ready
    if not ops.available():
        raise SystemExit(f"bortkit: error: the operator library is not loaded: {ops.status()}")
    rng = np.random.default_rng(args.seed)
    rows = []
    for k, n in SHAPES:
        x = rng.normal(size=(args.tokens, k)).astype(np.float32)
        weight = (rng.normal(size=(n, k)) * 0.03).astype(np.float32)
        load = os.getloadavg()[0]
        samples = common.interleave(contenders(x, weight), rounds=args.rounds,
                                    min_seconds=args.min_seconds)
        macs = args.tokens * k * n
        ms = {c: 1e3 * common.median(samples[c].wall) for c in CONTENDERS}
        row = {"K": k, "N": n, "load_average": [load, os.getloadavg()[0]], "ms": ms,
               "gmac_per_s": {c: macs / ms[c] / 1e6 for c in CONTENDERS},
               "onednn_int8_over_amx": common.paired_ratio(samples["onednn_int8"].wall,
                                                           samples["amx"].wall),
               "fp32_over_amx": common.paired_ratio(samples["fp32"].wall, samples["amx"].wall)}
        rows.append(row)
        print(f"K={k} N={n} (load {load:.1f}): " + ", ".join(
            f"{c} {ms[c]:.2f} ms ({row['gmac_per_s'][c]:.0f} GMAC/s)" for c in CONTENDERS)
            + f"; oneDNN int8 / amx {row['onednn_int8_over_amx']:.2f}x", flush=True)
    print()
    print(common.format_table(
        ["K x N", *(f"{c} ms" for c in CONTENDERS), "oneDNN int8 / amx", "fp32 / amx", "load"],
        [[f"{r['K']} x {r['N']}", *(r["ms"][c] for c in CONTENDERS),
          r["onednn_int8_over_amx"], r["fp32_over_amx"], r["load_average"][0]] for r in rows]))
    path = common.write_results("int8-dense", {
        "settings": vars(args), "amx_ready": amx_ready(), "shapes": rows},
        path=args.out or common.RESULTS_DIR / f"int8-dense-{args.threads}t.json")
    print(f"amx_ready: {amx_ready()}; wrote {path}")


if __name__ == "__main__":
    run_cli(main)

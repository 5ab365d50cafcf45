"""One int8 dense layer on Bort's shapes at batch 8 x length 128 (1,024 tokens), at every ISA
tier this CPU runs, against MXNet's oneDNN int8 and fp32 products.

Contenders (one process, interleaved rounds, same fp32 input and weight):

- ``fused@<tier>``: bortkit's ``bortkit_int8_dense`` capped at each tier from avx2 up to the
  host's (``bortkit.ops.isa.cap``): per-row dynamic 8-bit input, per-channel weight packed
  once with the tier's levels (8 bits; 7 at avx2, ``isa.weight_levels``); AMX ``TDPBUSD``,
  AVX-512 ``VPDPBUSD`` or AVX2 ``VPMADDUBSW``;
- ``onednn_int8``: MXNet 1.9.1's oneDNN quantized ``FullyConnected`` (calibrated static
  input, per-channel weight), built by bortkit's quantization pass;
- ``fp32``: MXNet's ``FullyConnected``.

With ``--threads 1`` the core's int8 peak at each tier (``bench/int8_peak.cc``) is timed in
the same rounds, and every contender's share of it is reported in CPU seconds (one thread
each, so other jobs on the machine do not count): the ceiling no int8 product can pass.

oneDNN takes its ISA when it loads: it runs at the host's, or at ``--isa``'s cap for the
whole process (``DNNL_MAX_CPU_ISA``). Each time includes quantizing the input and producing
fp32 output. Shapes (K, N): the query/key/value product (1024, 3072), attention output
(1024, 1024), FFN input (1024, 768), FFN output (768, 1024)::

    python bench/int8_dense.py --threads 2
    python bench/int8_dense.py --threads 2 --isa avx2     # oneDNN capped at AVX2 too

Writes ``bench/results/int8-dense-<threads>t[-<isa>].json``.
"""
from __future__ import annotations

import argparse
import os

import numpy as np

import common  # bench/common.py: the script's directory is first on sys.path
from bortkit.errors import run_cli

SHAPES = {  # (K, N) of each dense layer: QKV, attention output, FFN in, FFN out
    "bort": ((1024, 3072), (1024, 1024), (1024, 768), (768, 1024)),
    "minilm": ((384, 1152), (384, 384), (384, 1536), (1536, 384)),
}
ANCHORS = ("onednn_int8", "fp32")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=1024, help="rows of the input (B x T)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--min-seconds", type=float, default=0.1)
    parser.add_argument("--isa", default=None, choices=tuple(common.ONEDNN_ISA),
                        help="cap bortkit and oneDNN at this tier (default: the host's)")
    parser.add_argument("--model", default="bort", choices=tuple(SHAPES),
                        help="whose layer shapes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="results file (default: "
                        "bench/results/int8-dense-<threads>t[-<isa>][-<model>].json)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.tokens < 1 or args.rounds < 1:
        parser.error("--threads, --tokens and --rounds must be positive")
    return args


def contenders(x, weight, tiers) -> dict:
    import mxnet as mx
    from bortkit.ops import isa
    from bortkit.ops.int8_dense import int8_dense, pack_weight
    from bortkit.quantize.graph import collect_thresholds, quantize_symbol
    units = weight.shape[0]
    data = mx.nd.array(x)
    top = isa.active()
    fused_args = {}  # tier -> (operator inputs, the weight's levels)
    for tier in tiers:
        isa.cap(tier)
        levels = isa.weight_levels()
        packed, scale, colsum = pack_weight(weight, levels)
        fused_args[tier] = ([data, mx.nd.array(packed, dtype="int8"), mx.nd.array(scale),
                             mx.nd.array(colsum, dtype="int32"), mx.nd.zeros(units)], levels)
    isa.cap(top)
    sym = mx.sym.FullyConnected(mx.sym.var("data"), num_hidden=units, name="fc")
    params = {"fc_weight": mx.nd.array(weight), "fc_bias": mx.nd.zeros(units)}
    onednn = quantize_symbol(sym, params, collect_thresholds(sym, params, [{"data": x}]),
                             ["data"])

    def fused(tier):
        inputs, levels = fused_args[tier]

        def call():
            isa.cap(tier)
            int8_dense(mx.nd, *inputs, units=units, weight_levels=levels).wait_to_read()
        return call

    return {**{f"fused@{t}": fused(t) for t in tiers},
            "onednn_int8": lambda: onednn(data).wait_to_read(),
            "fp32": lambda: mx.nd.FullyConnected(data, params["fc_weight"], params["fc_bias"],
                                                 num_hidden=units).wait_to_read()}


def main(argv=None) -> None:
    args = parse_args(argv)
    common.configure_isa(args.isa)
    common.configure_threads(args.threads, passive=True)
    from bortkit import ops
    from bortkit.ops import isa
    if not ops.available():
        raise SystemExit(f"bortkit: error: the operator library is not loaded: {ops.status()}")
    top = isa.active()
    tiers = isa.TIERS[isa.TIERS.index("avx2"):isa.TIERS.index(top) + 1]
    names = [f"fused@{t}" for t in tiers] + list(ANCHORS)
    rng = np.random.default_rng(args.seed)
    rows = []
    import tempfile
    from pathlib import Path
    peak_dir = tempfile.TemporaryDirectory(prefix="bench-int8-peak-")
    peaks = {t: common.int8_peak(t, Path(peak_dir.name)) for t in tiers
             if t in common.PEAK_TIERS and args.threads == 1}
    for k, n in SHAPES[args.model]:
        x = rng.normal(size=(args.tokens, k)).astype(np.float32)
        weight = (rng.normal(size=(n, k)) * 0.03).astype(np.float32)
        load = os.getloadavg()[0]
        calls = {**contenders(x, weight, tiers),
                 **{f"peak@{t}": call for t, (call, _) in peaks.items()}}
        samples = common.interleave(calls, rounds=args.rounds, min_seconds=args.min_seconds)
        isa.cap(top)
        macs = args.tokens * k * n
        ms = {c: 1e3 * common.median(samples[c].wall) for c in names}
        row = {"K": k, "N": n, "load_average": [load, os.getloadavg()[0]], "ms": ms,
               "gmac_per_s": {c: macs / ms[c] / 1e6 for c in names},
               "onednn_int8_over": {t: common.paired_ratio(samples["onednn_int8"].wall,
                                                           samples[f"fused@{t}"].wall)
                                    for t in tiers},
               "fp32_over": {t: common.paired_ratio(samples["fp32"].wall,
                                                    samples[f"fused@{t}"].wall) for t in tiers}}
        if peaks:   # CPU seconds per call -> MAC/s, paired per round with each peak
            peak = {t: [macs_ / s for s in samples[f"peak@{t}"].cpu]
                    for t, (_, macs_) in peaks.items()}
            row["peak_gmac_per_s"] = {t: common.median(v) / 1e9 for t, v in peak.items()}
            row["share_of_peak"] = {
                c: {t: common.paired_ratio([macs / s for s in samples[c].cpu], peak[t])
                    for t in peaks} for c in names}
        rows.append(row)
        print(f"K={k} N={n}: " + ", ".join(f"{c} {ms[c]:.2f} ms ({row['gmac_per_s'][c]:.0f} "
                                             "GMAC/s)" for c in names), flush=True)
    record = common.isa_record()
    print(f"\nbortkit tiers {', '.join(tiers)}; oneDNN at "
          f"{os.environ.get('DNNL_MAX_CPU_ISA', 'the host ISA (' + record['host'] + ')')}")
    print(common.format_table(
        ["K x N", *(f"{c} ms" for c in names),
         *(f"oneDNN int8 / {t}" for t in tiers), *(f"fp32 / {t}" for t in tiers)],
        [[f"{r['K']} x {r['N']}", *(r["ms"][c] for c in names),
          *(r["onednn_int8_over"][t] for t in tiers), *(r["fp32_over"][t] for t in tiers)]
         for r in rows]))
    if peaks:
        print(f"\nshare of one core's int8 peak (CPU seconds; peak GMAC/s "
              + ", ".join(f"{t} {rows[0]['peak_gmac_per_s'][t]:.0f}" for t in peaks) + ")")
        print(common.format_table(
            ["K x N", *(f"{c} / peak@{t}" for c in names for t in peaks
                        if not c.startswith("fused@") or c == f"fused@{t}")],
            [[f"{r['K']} x {r['N']}", *(r["share_of_peak"][c][t] for c in names for t in peaks
                                        if not c.startswith("fused@") or c == f"fused@{t}")]
             for r in rows]))
    suffix = (f"-{args.isa}" if args.isa else "") + \
        (f"-{args.model}" if args.model != "bort" else "")
    path = common.write_results("int8-dense", {
        "settings": vars(args), "isa": record, "tiers": list(tiers), "shapes": rows},
        path=args.out or common.RESULTS_DIR / f"int8-dense-{args.threads}t{suffix}.json")
    print(f"wrote {path}")


if __name__ == "__main__":
    run_cli(main)

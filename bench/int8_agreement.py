"""Which parts of the oneDNN int8 graph cost agreement with fp32, and at what speed.

For a fine-tuned classifier (a ``best/`` directory of ``python -m bortkit.finetune``), every
setting quantizes the same folded graph (:class:`bortkit.quantize.Int8Graph`) with the same
calibration thresholds, keeping some products in fp32 or narrowing the FFN activation's
range, and reports:

- the share of fp32's SST-2 dev predictions it keeps (all 872 sentences) and its accuracy;
- the same share on held-out SST-2 *training* sentences that calibration did not see (the
  set the default was chosen on);
- its speed at batch 8 x length 128 relative to "all int8" (interleaved rounds, median of
  per-round ratios; settings that differ only in thresholds share one graph and one timing).

::

    python bench/int8_agreement.py --model runs/sst2-minilm/SST-2/seed-0/best

Writes ``bench/results/int8-agreement.json``.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import common  # bench/common.py: the script's directory is first on sys.path
from bortkit.errors import run_cli


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True,
                        help="fine-tuned SST-2 checkpoint with its head (bortkit best/ dir)")
    parser.add_argument("--data-dir", default=str(common.RESULTS_DIR.parents[1].parent
                                                  / "shared" / "data" / "glue"))
    parser.add_argument("--calibration-size", type=int, default=256,
                        help="SST-2 training sentences (from the first) used to calibrate")
    parser.add_argument("--selection-start", type=int, default=2000,
                        help="first held-out SST-2 training sentence of the selection set")
    parser.add_argument("--selection-size", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-seconds", type=float, default=0.5,
                        help="shortest timed sample of one graph")
    parser.add_argument("--out", default=None,
                        help="results file (default: bench/results/int8-agreement.json)")
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        parser.error(f"--model {args.model}: no such checkpoint directory")
    if args.selection_start < args.calibration_size:
        parser.error("--selection-start must be >= --calibration-size (held-out sentences)")
    return args


def settings(graph, default_products, default_range) -> dict:
    """name -> (products kept in fp32, FFN activation range factor)."""
    n = graph.num_layers

    def layer(i):
        return [f"encoder.{i}.attention.{p}" for p in ("qkv", "products", "output")] + \
            [f"encoder.{i}.ffn.ffn_1", f"encoder.{i}.ffn.ffn_2"]

    def every(part):
        return [f"encoder.{i}.{part}" for i in range(n)]

    top = [name for name in ("pooler.dense", "head.dense", "head.out")
           if f"{name}.weight" in graph.parameter_names]
    out = {"all int8": ([], 1.0), "fp32 pooler + head": (top, 1.0),
           "fp32 attention products": (every("attention.products"), 1.0),
           "fp32 last FFN output": ([f"encoder.{n - 1}.ffn.ffn_2"], 1.0)}
    out.update({f"fp32 layer {i}": (layer(i), 1.0) for i in range(n)})
    out.update({"fp32 all query/key/value": (every("attention.qkv"), 1.0),
                "fp32 all attention outputs": (every("attention.output"), 1.0),
                "fp32 all FFN inputs": (every("ffn.ffn_1"), 1.0),
                "fp32 all FFN outputs": (every("ffn.ffn_2"), 1.0),
                "fp32 layer 0 FFN output": (["encoder.0.ffn.ffn_2"], 1.0)})
    for factor in (0.5, 0.35, 0.25):
        out[f"FFN activation x{factor}"] = ([], factor)
        out[f"FFN activation x{factor} + fp32 layer 0 FFN output"] = \
            (["encoder.0.ffn.ffn_2"], factor)
    out["default"] = (list(default_products), default_range)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    common.configure_threads(args.threads)
    import mxnet as mx
    import bortkit
    from bortkit.checkpoint import read_state
    from bortkit.quantize import Int8Graph
    from bortkit.quantize.core import (CALIBRATION_MAX_LENGTH, FFN_ACTIVATION_RANGE,
                                       FP32_PRODUCTS, calibration_batches)
    from bortkit.tasks import get_task
    task = get_task("SST-2")
    train = [e.text_a for e in task.read(args.data_dir, "train")]
    dev = task.read(args.data_dir, "dev")
    labels = np.array([int(e.label) for e in dev])
    state = read_state(args.model)
    model = bortkit.from_pretrained(args.model)
    tokenizer = model.tokenizer
    max_length = int(model.head.max_length or 128)
    graph = Int8Graph(state)

    def batches(texts):
        return [tokenizer.batch(texts[s:s + 32], max_length=max_length)
                for s in range(0, len(texts), 32)]

    def predictions(call, sets):
        return np.concatenate([call(b["input_ids"], b["token_type_ids"], b["attention_mask"])
                               for b in sets]).argmax(axis=1)

    def int8_call(block):
        return lambda i, t, m: block(*(mx.nd.array(a) for a in graph.inputs.select(i, t, m))
                                     ).asnumpy()

    dev_sets = batches([e.text_a for e in dev])
    selection = batches(train[args.selection_start:args.selection_start + args.selection_size])
    reference = {"dev": predictions(model.logits, dev_sets),
                 "selection": predictions(model.logits, selection)}
    length = min(CALIBRATION_MAX_LENGTH, state.config.max_length - state.config.position_offset)
    calibrations = {}
    for size in sorted({64, args.calibration_size, 1024}):
        started = time.perf_counter()
        calibrations[size] = graph.calibrate(calibration_batches(tokenizer, train[:size],
                                                                  length))
        print(f"calibration on {size} sentences: {time.perf_counter() - started:.1f} s",
              flush=True)
    thresholds = calibrations[args.calibration_size]

    rows, blocks = {}, {}

    def score(name, block, **extra):
        call = int8_call(block)
        dev_pred = predictions(call, dev_sets)
        rows[name] = {"dev_agreement": float((dev_pred == reference["dev"]).mean()),
                      "dev_accuracy": float((dev_pred == labels).mean()),
                      "selection_agreement": float((predictions(call, selection)
                                                    == reference["selection"]).mean()),
                      **extra}
        print(name, {k: round(v, 4) if isinstance(v, float) else v
                     for k, v in rows[name].items()}, flush=True)

    for name, (products, factor) in settings(graph, FP32_PRODUCTS,
                                             FFN_ACTIVATION_RANGE).items():
        blocks[name] = graph.quantize(thresholds, products, factor)
        score(name, blocks[name], fp32_products=products, ffn_activation_range=factor)
    for size, found in calibrations.items():
        if size != args.calibration_size:
            score(f"all int8, {size} calibration sentences", graph.quantize(found, [], 1.0))

    # Timing: one contender per distinct graph (the range factor changes thresholds only).
    graphs = {}
    for name, (products, _) in settings(graph, FP32_PRODUCTS, FFN_ACTIVATION_RANGE).items():
        graphs.setdefault(tuple(products), name)
    rng = np.random.default_rng(0)
    inputs = [mx.nd.array(a) for a in graph.inputs.select(
        rng.integers(5, min(state.config.vocab_size, 30522), (8, 128)),
        np.zeros((8, 128)), np.ones((8, 128)))]
    load_before = os.getloadavg()[0]
    samples = common.interleave({n: (lambda b=blocks[n]: b(*inputs).wait_to_read())
                                 for n in graphs.values()}, rounds=args.rounds,
                                min_seconds=args.min_seconds)
    base = samples["all int8"].wall
    for name, (products, _) in settings(graph, FP32_PRODUCTS, FFN_ACTIVATION_RANGE).items():
        timed = samples[graphs[tuple(products)]].wall
        rows[name]["speed_vs_all_int8"] = common.paired_ratio(base, timed)
        rows[name]["ms_per_batch"] = 1000 * common.median(timed)
        rows[name]["timed_as"] = graphs[tuple(products)]
    load = [load_before, os.getloadavg()[0]]
    print()
    print(common.format_table(
        ["setting", "dev agreement", "dev accuracy", "held-out agreement", "speed"],
        [[n, f"{100 * r['dev_agreement']:.2f}", f"{r['dev_accuracy']:.4f}",
          f"{100 * r['selection_agreement']:.2f}",
          f"{r['speed_vs_all_int8']:.2f}" if "speed_vs_all_int8" in r else "same graph"]
         for n, r in rows.items()]))
    print(f"load average {load[0]:.1f} -> {load[1]:.1f}")
    path = common.write_results("int8-agreement", {
        "settings": {k: getattr(args, k) for k in ("model", "calibration_size",
                                                    "selection_start", "selection_size",
                                                    "threads", "rounds", "min_seconds")},
        "speed_shape": [8, 128], "load_average": load, "rows": rows}, path=args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_cli(main)

"""Which ONNX Runtime int8 settings keep a fine-tuned classifier's fp32 predictions, and at what
speed.

``python -m bortkit.export --format onnx --quantize int8`` quantizes the exported graph with
ONNX Runtime's ``quantize_dynamic`` (:func:`bortkit.export.core.quantize_dynamic_int8`). For a
fine-tuned SST-2 classifier (``--model``), every setting here quantizes the same fp32 export
(some products kept in fp32, or other ORT options) and reports:

- the share of the fp32 export's predictions it keeps on all of SST-2 dev (872 sentences) and
  on held-out SST-2 *training* sentences (``--heldout-start``: the first training row the model
  was not fine-tuned on), the flips behind each share, dev accuracy, and the RMS change of the
  logits (less noisy than the shares: a flip needs a sentence near the decision boundary);
- its time relative to "before" (every product int8, the export's setting before
  ``INT8_FP32_PRODUCTS``) and to fp32, at batch 8 x length 128 and on a real dev batch of 32:
  one process, ORT sessions with ``--threads`` intra-op threads that do not spin, contenders
  taking turns in rotating order, median over rounds of the per-round ratio.

``--per-node`` adds one row per product kept alone in fp32 (not timed): which products cost
agreement. A classifier to run it on (about 2 minutes on 2 cores)::

    mkdir -p /tmp/sst2-4k/SST-2
    head -4001 ../shared/data/glue/SST-2/train.tsv > /tmp/sst2-4k/SST-2/train.tsv
    cp ../shared/data/glue/SST-2/dev.tsv /tmp/sst2-4k/SST-2/
    python -m bortkit.finetune --task SST-2 --model minilm --data-dir /tmp/sst2-4k \\
        --learning-rate 1e-4 --batch-size 32 --epochs 1 --max-length 64 --pooling mean \\
        --output-dir /tmp/sst2-4k/run
    python bench/onnx_int8_agreement.py --model /tmp/sst2-4k/run/SST-2/seed-0/best \\
        --heldout-start 4000 --per-node

Writes ``bench/results/onnx-int8-agreement.json``.
"""
from __future__ import annotations

import argparse
import os
import tempfile
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
    parser.add_argument("--heldout-start", type=int, required=True,
                        help="first SST-2 training row the model was not fine-tuned on")
    parser.add_argument("--heldout-size", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=32,
                        help="sentences per call when scoring (padded to the longest)")
    parser.add_argument("--per-node", action="store_true",
                        help="also score each product kept alone in fp32")
    parser.add_argument("--score-threads", type=int, default=1,
                        help="ORT threads while scoring (results do not depend on it)")
    parser.add_argument("--threads", type=int, default=2, help="ORT threads while timing")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--min-seconds", type=float, default=0.3,
                        help="shortest timed sample of one graph")
    parser.add_argument("--work", default=None,
                        help="folder for the ONNX files (default: a temporary one)")
    parser.add_argument("--out", default=None,
                        help="results file (default: bench/results/onnx-int8-agreement.json)")
    args = parser.parse_args(argv)
    if not Path(args.model).is_dir():
        parser.error(f"--model {args.model}: no such checkpoint directory")
    if args.heldout_start < 0 or args.heldout_size < 1:
        parser.error("--heldout-start must be >= 0 and --heldout-size >= 1")
    return args


def settings(products: list[str], per_node: bool) -> dict[str, dict]:
    """name -> keyword arguments of ``quantize_dynamic_int8`` ({} is the export's default).
    ``products``: the fp32 graph's MatMul and Attention node names, in graph order."""
    from onnxruntime.quantization import QuantType
    layers = sorted({int(p.split(".")[1]) for p in products if p.startswith("encoder.")})
    first = [p for p in products if p.startswith("encoder.0.")]
    out = {"before: all int8": {"fp32_products": ()},
           "default": {},
           "fp32 layer 0 FFN": {"fp32_products": ["encoder.0.ffn.ffn_1", "encoder.0.ffn.ffn_2"]},
           "fp32 layer 0": {"fp32_products": first},
           "fp32 all FFN outputs": {"fp32_products": [f"encoder.{i}.ffn.ffn_2" for i in layers]},
           "default + reduce_range": {"reduce_range": True},
           "default + QUInt8 weights": {"weight_type": QuantType.QUInt8},
           "all int8, reduce_range": {"fp32_products": (), "reduce_range": True},
           "all int8, per-tensor weights": {"fp32_products": (), "per_channel": False},
           "int8 Attention only": {"fp32_products": (), "op_types_to_quantize": ["Attention"]},
           "default, Attention in fp32": {"op_types_to_quantize": ["MatMul"]}}
    if per_node:
        out.update({per_node_name(p): {"fp32_products": [p]} for p in products})
    return out


def per_node_name(product: str) -> str:
    return f"fp32 {product} alone"


def logits_of(session, batches) -> np.ndarray:
    """(N, C) logits of one ORT session over tokenized batches."""
    names = [i.name for i in session.get_inputs()]
    return np.concatenate([session.run(["logits"], {n: b[n].astype(np.int64) for n in names})[0]
                           for b in batches])


def scores(logits: dict, reference: dict, labels: np.ndarray) -> dict:
    """Agreement with fp32 per set (share and flips), dev accuracy, RMS change of the logits."""
    row = {}
    for name, ref in reference.items():
        agree = logits[name].argmax(1) == ref.argmax(1)
        row[f"{name}_agreement"] = float(agree.mean())
        row[f"{name}_flips"] = int((~agree).sum())
        row[f"{name}_logit_rms"] = float(np.sqrt(((logits[name] - ref) ** 2).mean()))
    row["dev_accuracy"] = float((logits["dev"].argmax(1) == labels).mean())
    return row


def time_graphs(paths: dict, feeds: dict, args) -> dict:
    """shape -> name -> Samples: every graph timed in turns on each feed."""
    from bortkit.export.core import session
    sessions = {name: session(path, args.threads) for name, path in paths.items()}
    out = {}
    for shape, feed in feeds.items():
        calls = {name: (lambda s=s, f=feed: s.run(None, {i.name: f[i.name]
                                                        for i in s.get_inputs()}))
                 for name, s in sessions.items()}
        out[shape] = common.interleave(calls, rounds=args.rounds, min_seconds=args.min_seconds)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    common.configure_threads(args.score_threads)
    import logging

    import onnx
    import bortkit
    from bortkit.export import export
    from bortkit.export.core import INT8_FP32_PRODUCTS, ONNX_FILE, quantize_dynamic_int8, session
    from bortkit.tasks import get_task
    logging.getLogger().setLevel(logging.ERROR)  # ORT's quantizer warns once per call
    task = get_task("SST-2")
    dev = task.read(args.data_dir, "dev")
    train = task.read(args.data_dir, "train")
    heldout = [e.text_a for e in train[args.heldout_start:args.heldout_start + args.heldout_size]]
    labels = np.array([int(e.label) for e in dev])
    model = bortkit.from_pretrained(args.model)
    tokenizer, max_length = model.tokenizer, int(model.head.max_length or 128)

    def batches(texts):
        return [tokenizer.batch(texts[s:s + args.batch_size], max_length=max_length)
                for s in range(0, len(texts), args.batch_size)]

    sets = {"dev": batches([e.text_a for e in dev]), "heldout": batches(heldout)}
    work = Path(args.work or tempfile.mkdtemp(prefix="onnx-int8-"))
    export(args.model, work / "fp32", overwrite=True)
    fp32_path = work / "fp32" / ONNX_FILE
    reference = {k: logits_of(session(fp32_path, args.score_threads), v) for k, v in sets.items()}
    ours = np.concatenate([model.logits(b["input_ids"], b["token_type_ids"], b["attention_mask"])
                           for b in sets["dev"]])
    fp32_check = float((ours.argmax(1) == reference["dev"].argmax(1)).mean())
    print(f"fp32 export vs bortkit fp32 on dev: {100 * fp32_check:.2f} % of predictions; "
          f"fp32 dev accuracy {(reference['dev'].argmax(1) == labels).mean():.4f}", flush=True)

    products = [n.name for n in onnx.load(str(fp32_path)).graph.node
                if n.op_type in ("MatMul", "Attention")]
    rows, paths = {}, {"fp32": fp32_path}
    untimed = {per_node_name(p) for p in products}  # one product each, timed as "default"
    for i, (name, options) in enumerate(settings(products, args.per_node).items()):
        path = work / f"setting-{i}.onnx"
        quantize_dynamic_int8(fp32_path, path, **options)
        options = {k: (v.name if hasattr(v, "name") else v) for k, v in options.items()}
        rows[name] = {"options": options, **scores(
            {k: logits_of(session(path, args.score_threads), v) for k, v in sets.items()},
            reference, labels)}
        if name not in untimed:
            paths[name] = path
        r = rows[name]
        print(f"{name}: dev {100 * r['dev_agreement']:.2f} % ({r['dev_flips']} flips), "
              f"held-out {100 * r['heldout_agreement']:.2f} % ({r['heldout_flips']}), "
              f"logit rms {r['dev_logit_rms']:.4f}", flush=True)

    rng = np.random.default_rng(0)
    shape = (8, 128)
    first_dev = sets["dev"][0]
    feeds = {"8x128": {"input_ids": rng.integers(1000, model.config.vocab_size, shape),
                       "token_type_ids": np.zeros(shape, np.int64),
                       "attention_mask": np.ones(shape, np.int64)},
             "dev batch": {k: v.astype(np.int64) for k, v in first_dev.items()}}
    load_before = os.getloadavg()[0]
    timed = time_graphs(paths, feeds, args)
    load = [load_before, os.getloadavg()[0]]
    for shape_name, samples in timed.items():
        before, fp32 = samples["before: all int8"].wall, samples["fp32"].wall
        for name in rows:
            if name in samples:
                rows[name][f"ms_{shape_name}"] = 1000 * common.median(samples[name].wall)
                rows[name][f"vs_before_{shape_name}"] = common.paired_ratio(
                    samples[name].wall, before)
                rows[name][f"vs_fp32_{shape_name}"] = common.paired_ratio(
                    samples[name].wall, fp32)
    fp32_ms = {s: 1000 * common.median(timed[s]["fp32"].wall) for s in timed}

    def speed(row, shape_name):
        key = f"vs_before_{shape_name}"
        return f"{row[key]:.3f}" if key in row else "-"

    print()
    print(common.format_table(
        ["setting", "dev agreement", "dev flips", "held-out agreement", "held-out flips",
         "dev accuracy", "logit rms dev", "time/before 8x128", "time/before dev batch"],
        [[n, f"{100 * r['dev_agreement']:.2f}", r["dev_flips"],
          f"{100 * r['heldout_agreement']:.2f}", r["heldout_flips"], f"{r['dev_accuracy']:.4f}",
          f"{r['dev_logit_rms']:.4f}", speed(r, "8x128"), speed(r, "dev batch")]
         for n, r in rows.items()]))
    dev_shape = tuple(first_dev["input_ids"].shape)
    print(f"fp32: dev accuracy {(reference['dev'].argmax(1) == labels).mean():.4f}, "
          f"{fp32_ms['8x128']:.1f} ms at 8x128, {fp32_ms['dev batch']:.1f} ms on a dev batch "
          f"{dev_shape}; load average {load[0]:.1f} -> {load[1]:.1f}")
    path = common.write_results("onnx-int8-agreement", {
        "settings": {k: getattr(args, k) for k in ("model", "heldout_start", "heldout_size",
                                                    "batch_size", "threads", "rounds",
                                                    "min_seconds")},
        "default_fp32_products": list(INT8_FP32_PRODUCTS),
        "sets": {"dev": len(dev), "heldout": len(heldout)},
        "fp32": {"dev_accuracy": float((reference["dev"].argmax(1) == labels).mean()),
                 "agreement_with_bortkit_fp32_dev": fp32_check,
                 "ms_8x128": fp32_ms["8x128"], "ms_dev batch": fp32_ms["dev batch"]},
        "speed_shapes": {"8x128": list(shape), "dev batch": list(dev_shape)},
        "load_average": load, "rows": rows}, path=args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_cli(main)

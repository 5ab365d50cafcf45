"""Encoder throughput: bortkit (MXNet) against Hugging Face transformers (PyTorch), same weights.

For each preset (``bert-base``, ``bort``) a randomly initialised bortkit model is exported with
:func:`bortkit.checkpoint.export_huggingface`; bortkit loads that directory with
:func:`bortkit.from_pretrained` and transformers with ``BertModel.from_pretrained``. After
checking that both give the same outputs, sequences per second of ``Model.encode`` (numpy in,
numpy out) are measured in turns with the PyTorch model in fp32 and under bf16 autocast, all in
one process with the same number of threads::

    python bench/encode.py            # full run, writes bench/results/encode.json
    python bench/encode.py --quick    # fewer rounds, for a smoke test
"""
from __future__ import annotations

import argparse
import gc
import tempfile
from pathlib import Path

import numpy as np

import common  # bench/common.py: the script's directory is first on sys.path
from bortkit.errors import BortkitError, run_cli

PRESETS = ("bert-base", "bort")
CONTENDERS = ("bortkit", "torch_fp32", "torch_bf16")
FP32_TOLERANCE = 1e-3  # largest |bortkit - torch fp32| accepted before timing


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), metavar="NAME",
                        help="model presets from bortkit/resources/configs/ (default: %(default)s)")
    parser.add_argument("--batches", nargs="+", type=int, default=[8, 1], metavar="B",
                        help="batch sizes (default: %(default)s)")
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--threads", type=int, default=None,
                        help="compute threads for both frameworks (default: OMP_NUM_THREADS "
                             "or all usable cores)")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per contender")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per contender")
    parser.add_argument("--min-seconds", type=float, default=0.3,
                        help="each timed sample repeats the call until it lasts this long")
    parser.add_argument("--quick", action="store_true",
                        help="short run: 3 rounds, 1 warm-up call, 0.1 s samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="results file (default: bench/results/encode.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.min_seconds = 3, 1, 0.1
    if min(args.batches) < 1 or args.length < 1 or (args.threads is not None and args.threads < 1):
        parser.error("batch sizes, --length and --threads must be positive")
    return args


def export_random_model(preset: str, directory: Path, seed: int):
    """A randomly initialised model of ``preset`` written as a Hugging Face directory."""
    import mxnet as mx
    from bortkit.checkpoint import export_huggingface
    from bortkit.config import load_config
    from bortkit.model import Model
    mx.random.seed(seed)
    config = load_config(preset)
    export_huggingface(Model(config), directory)
    return config


def load_both(directory: Path, use_pooler: bool):
    """The same checkpoint as a bortkit :class:`Model` and a transformers ``BertModel``."""
    import bortkit
    from transformers import BertConfig, BertModel
    from transformers.utils import logging
    logging.disable_progress_bar()
    ours = bortkit.from_pretrained(directory)
    # The model reads `add_pooling_layer` only as an argument, never from config.json, and
    # from_pretrained passes keyword arguments to the model only once the config is built.
    config = BertConfig.from_pretrained(directory)
    theirs = BertModel.from_pretrained(directory, config=config,
                                       add_pooling_layer=use_pooler).eval()
    if (theirs.pooler is not None) != use_pooler:
        raise BortkitError(f"transformers built a pooler = {theirs.pooler is not None}, "
                           f"bortkit's config says use_pooler = {use_pooler}", path=directory)
    return ours, theirs


def make_inputs(config, batch: int, length: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, config.vocab_size, size=(batch, length)),
            "token_type_ids": np.zeros((batch, length), np.int64),
            "attention_mask": np.ones((batch, length), np.int64)}


def contenders(ours, theirs, inputs: dict[str, np.ndarray]) -> dict:
    """Zero-argument calls, each returning numpy arrays (sequence output [, pooled output])."""
    import torch
    tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}

    def bortkit_encode():
        out = ours.encode(**inputs)
        return [out.last_hidden_state] + ([out.pooler_output] if ours.config.use_pooler else [])

    def torch_forward(bf16: bool):
        def run():
            with torch.inference_mode(), \
                    torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = theirs(**tensors)
            outputs = [out.last_hidden_state] + ([out.pooler_output] if ours.config.use_pooler
                                                 else [])
            return [o.float().numpy() for o in outputs]
        return run

    return {"bortkit": bortkit_encode, "torch_fp32": torch_forward(False),
            "torch_bf16": torch_forward(True)}


def max_abs_diff(calls: dict) -> dict[str, float]:
    """Largest |bortkit - torch| over all outputs, for fp32 and bf16."""
    reference = calls["bortkit"]()
    return {name: float(max(np.abs(a - b).max() for a, b in zip(reference, calls[name]())))
            for name in ("torch_fp32", "torch_bf16")}


def bench_preset(preset: str, args) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix=f"bench-encode-{preset}-") as tmp:
        config = export_random_model(preset, Path(tmp), args.seed)
        ours, theirs = load_both(Path(tmp), config.use_pooler)
    cases = []
    for batch in args.batches:
        inputs = make_inputs(config, batch, args.length, args.seed)
        calls = contenders(ours, theirs, inputs)
        diffs = max_abs_diff(calls)  # also the first warm-up call of each contender
        print(f"{preset} batch {batch}: max |bortkit - torch| fp32 {diffs['torch_fp32']:.2e}, "
              f"bf16 {diffs['torch_bf16']:.2e}", flush=True)
        if diffs["torch_fp32"] > FP32_TOLERANCE:
            raise BortkitError(f"{preset}: outputs disagree by {diffs['torch_fp32']:.3g} > "
                               f"{FP32_TOLERANCE}; not timing different computations")
        samples = common.interleave(calls, rounds=args.rounds, warmup=args.warmup,
                                    min_seconds=args.min_seconds)
        rates = {name: [batch / s for s in times.wall] for name, times in samples.items()}
        cases.append({
            "preset": preset, "batch": batch, "length": args.length,
            "max_abs_diff": diffs,
            "seq_per_s": {name: common.median(r) for name, r in rates.items()},
            "seq_per_s_samples": rates,
            "cpu_seconds_per_seq": {name: common.median(times.cpu) / batch
                                    for name, times in samples.items()},
            "ratio_bortkit_over": {name: common.paired_ratio(rates["bortkit"], rates[name])
                                   for name in ("torch_fp32", "torch_bf16")},
        })
        print("  seq/s:", ", ".join(f"{n} {cases[-1]['seq_per_s'][n]:.2f}" for n in CONTENDERS),
              flush=True)
    del ours, theirs
    gc.collect()
    return cases


def table(cases: list[dict]) -> str:
    headers = ["model", "batch", "length", "bortkit seq/s", "torch fp32 seq/s",
               "torch bf16 seq/s", "bortkit/fp32", "bortkit/bf16"]
    rows = [[c["preset"], c["batch"], c["length"],
             *(c["seq_per_s"][n] for n in CONTENDERS),
             c["ratio_bortkit_over"]["torch_fp32"], c["ratio_bortkit_over"]["torch_bf16"]]
            for c in cases]
    return common.format_table(headers, rows)


def main(argv=None) -> None:
    args = parse_args(argv)
    threads = common.configure_threads(args.threads)
    import torch  # only now: the thread variables must be set before the import
    torch.set_num_threads(int(threads["OMP_NUM_THREADS"]))
    print("threads:", " ".join(f"{k}={v}" for k, v in threads.items()),
          f"torch.get_num_threads()={torch.get_num_threads()}", flush=True)
    cases = [case for preset in args.presets for case in bench_preset(preset, args)]
    print()
    print(table(cases))
    print("ratios: median over rounds of the paired seq/s ratio; > 1 means bortkit is faster")
    path = common.write_results("encode", {
        "settings": {k: getattr(args, k) for k in ("rounds", "warmup", "min_seconds", "quick",
                                                   "seed", "length", "batches", "presets")},
        "torch_threads": torch.get_num_threads(), "cases": cases}, path=args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_cli(main)

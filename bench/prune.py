"""FLOP structured pruning of a fine-tuned all-MiniLM-L6-v2 on real SST-2: before and after.

    python bench/prune.py [--glue-dir ../shared/data/glue] [--work-dir runs/bench-prune]
                          [--targets 0.6,0.8] [--rounds 7] [--threads 2]

Steps, each cached in ``--work-dir`` (a step whose output exists is not redone):

1. fine-tune the pretrained all-MiniLM-L6-v2 on SST-2 with ``bortkit.finetune`` (mean
   pooling, max length 64, batch 32, lr 1e-4 on an 800-step linear schedule, stopped at
   its first evaluation, step 400, to keep the bench short);
2. ``python -m bortkit.prune`` at each target sparsity (160 steps, batch 16; see PRUNE);
3. ``python -m bortkit.prune compact`` of each gated model.

Then every model (dense and compacted) is measured in this one process: parameters
(encoder model + head), ``model.safetensors`` size, dev accuracy (max length 64) and the
latency of the classifier on batch 1 and 8 at length 128, hybridized, in interleaved rounds
(median of per-round times; ratios against the dense model in the same rounds). The load
average is recorded before and after timing. Writes ``bench/results/prune.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (configure_threads, format_table, interleave, median,  # noqa: E402
                    paired_ratio, write_results)

REPO = Path(__file__).resolve().parents[1]
FINETUNE = dict(max_steps=800, eval_every=400, batch_size=32, learning_rate=1e-4,
                max_length=64, pooling="mean", seed=0)
# The targets of the recorded results count factorised weights (--sparsity-of factorised;
# the command's default is now the dense count).
PRUNE = ["--sparsity-of", "factorised",
         "--max-steps", "160", "--target-warmup-steps", "80", "--eval-every", "40",
         "--batch-size", "16", "--learning-rate", "3e-5", "--mask-learning-rate", "0.1",
         "--lambda-learning-rate", "2.0", "--schedule-warmup-steps", "20", "--seed", "0"]


def finetuned(work: Path, glue: str) -> Path:
    best = work / "finetune" / "SST-2" / "seed-0" / "best"
    if best.exists():
        return best
    from bortkit.finetune import FinetuneArgs, Finetuner
    from bortkit.info import bundled_minilm
    run = FinetuneArgs(task="SST-2", model=str(bundled_minilm()), data_dir=glue,
                       output_dir=str(best.parent), progress=False, **FINETUNE)
    Finetuner(run, on_evaluation=lambda step, scores: True).run()  # stop after step 400
    return best


def pruned(work: Path, glue: str, model: Path, target: float) -> Path:
    from bortkit.prune.__main__ import main
    run = work / f"prune-{target}"
    if not (run / "result.json").exists():
        main(["--task", "SST-2", "--model", str(model), "--data-dir", glue,
              "--target-sparsity", str(target), "--output-dir", str(run), "--no-progress",
              *PRUNE, *(["--resume"] if (run / "log.jsonl").exists() else [])])
    small = work / f"compact-{target}"
    if not small.exists():
        main(["compact", "--model", str(run / "gated"), "--output-dir", str(small)])
    return small


def load(path: Path):
    """(hybridized classifier, head, config) of a checkpoint with a task head."""
    from bortkit.checkpoint import TaskHead, classifier_from_state, read_state
    state = read_state(path)
    head = TaskHead.from_meta(state.meta, path)
    net, _ = classifier_from_state(state, head.num_labels, head.pooling)
    net.hybridize(static_alloc=True, static_shape=True)
    return net, head, state.config


def dev_accuracy(net, path: Path, glue: str, max_length: int) -> float:
    """SST-2 dev accuracy, through the one place classifiers predict
    (:func:`bortkit.finetune.predict.predict_task`)."""
    from bortkit.finetune.data import featurize
    from bortkit.finetune.predict import predict_task
    from bortkit.metrics import task_scores
    from bortkit.tasks import get_task
    from bortkit.tokenizers import load_tokenizer
    task = get_task("SST-2")
    examples = task.read(glue, "dev")
    features = featurize(task, examples, load_tokenizer(path), max_length)
    return float(task_scores(task, predict_task(net, task, features), examples)["accuracy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "bench-prune"))
    parser.add_argument("--targets", default="0.6,0.8")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    threads = configure_threads(args.threads)
    import mxnet as mx
    import numpy as np
    from bortkit import count_params
    from bortkit.accounting import classifier_params

    work = Path(args.work_dir)
    dense = finetuned(work, args.glue_dir)
    models = {"dense": dense}
    for target in (float(t) for t in args.targets.split(",")):
        models[f"FLOP {target}"] = pruned(work, args.glue_dir, dense, target)

    rows, nets = {}, {}
    for name, path in models.items():
        net, head, config = load(path)
        nets[name] = net
        rows[name] = {
            "path": str(path),
            "params": count_params(config) + classifier_params(config, head.num_labels,
                                                               head.pooling),
            "encoder_low_rank_matrices": len(config.low_rank or {}),
            "checkpoint_bytes": (path / "model.safetensors").stat().st_size,
            "dev_accuracy": dev_accuracy(net, path, args.glue_dir, head.max_length)}
    latency = {}
    load_before = os.getloadavg()
    for batch in (1, 8):
        ids = mx.nd.array(np.random.RandomState(0).randint(1000, 30000, (batch, 128)))
        types, mask = mx.nd.zeros((batch, 128)), mx.nd.ones((batch, 128))
        samples = interleave({name: (lambda n=net: n(ids, types, mask).wait_to_read())
                              for name, net in nets.items()}, rounds=args.rounds)
        for name in nets:
            latency.setdefault(name, {})[f"batch{batch}"] = {
                "ms": 1000 * median(samples[name].wall),
                "vs_dense": paired_ratio(samples[name].wall, samples["dense"].wall)}
    load_after = os.getloadavg()
    for name in rows:
        rows[name]["latency"] = latency[name]
        if name != "dense":
            result = (work / f"prune-{name.split()[1]}" / "result.json")
            gated = json.loads(result.read_text())["gated"]
            rows[name]["pruning"] = {k: gated.get(k) for k in ("step", "sparsity",
                                                                "dense_sparsity", "accuracy")}

    headers = ["model", "params", "checkpoint MB", "dev acc", "b1 ms", "b1 vs dense",
               "b8 ms", "b8 vs dense"]
    table = [[name, f"{r['params']:,}", f"{r['checkpoint_bytes'] / 1e6:.1f}",
              f"{r['dev_accuracy']:.4f}", r["latency"]["batch1"]["ms"],
              r["latency"]["batch1"]["vs_dense"], r["latency"]["batch8"]["ms"],
              r["latency"]["batch8"]["vs_dense"]] for name, r in rows.items()]
    print(format_table(headers, table))
    print(f"load average before/after timing: {load_before[0]:.1f} / {load_after[0]:.1f}")
    path = write_results("prune", {
        "finetune": FINETUNE, "prune": PRUNE, "rounds": args.rounds, "threads": threads,
        "load_average_before": load_before, "load_average_after": load_after,
        "models": rows})
    print(f"-> {path}")


if __name__ == "__main__":
    main()

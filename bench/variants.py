"""Composite attention without absolute positions against learned absolute positions: the
same small student, distilled for the same steps on the same batches; held-out masked-LM
loss on WikiText-2 (Chang et al. 2021's claim, at toy scale).

- data: ``wiki.valid.raw`` is the training text, ``wiki.test.raw`` the held-out text, both
  tokenized with all-MiniLM-L6-v2's WordPiece vocabulary (128 tokens per example);
- teacher: the pretrained all-MiniLM-L6-v2, whose MLM head (dropped by sentence-transformers)
  is first fitted on the training text for ``--teacher-mlm-steps``; the second arm reuses
  the first arm's fitted teacher, so both learn from the same teacher;
- students: ``bortkit/resources/configs/distill/bort-mini.json`` (learned absolute positions, dot-product
  attention), ``bortkit/resources/configs/distill/bort-mini-composite.json`` (no position table;
  ``qk_convfixed_convq_convk`` over offsets -8..8) and ``bort-mini-composite-convolution.json``
  (the same plus the ``convolution`` term, a fixed depthwise convolution of the values;
  ``--arms`` picks which run), same seed, data order, steps and
  objective: Bort's 0.1 MLM + 0.5 T^2 KL (T = 2) plus TinyBERT's intermediate-layer transfer
  (``--hidden-weight``: hidden-state MSE through a learned projection; ``--attention-weight``:
  attention-distribution KL, teacher heads averaged; student layers mapped uniformly onto
  the teacher's). With Bort's objective alone both students stay on the unigram plateau
  for at least 600 steps (``bench/results/variants-kd-only.json``: 7.1979 against 7.1976,
  both predicting the most frequent token); the transfer takes them off it within 200.

Both arms go through ``python -m bortkit.distill`` (the real CLI) and are evaluated on the
held-out set. Prints a table and writes ``bench/results/variants.json``::

    python bench/variants.py            # the README figures (one arm after the other)
    python bench/variants.py --teacher DIR --jobs 2   # both arms at once, one thread each
    python bench/variants.py --steps 20 --teacher-mlm-steps 10 --eval-every 10 --out /tmp/v.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common  # bench/common.py: the script's directory is first on sys.path
from distill import make_shards, minilm_dir  # bench/distill.py: the same WikiText-2 shards

REPO = Path(__file__).resolve().parents[1]
ARMS = {"absolute positions": "bort-mini", "composite, no positions": "bort-mini-composite",
        "composite + convolution, no positions": "bort-mini-composite-convolution"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="student steps (both arms)")
    parser.add_argument("--teacher-mlm-steps", type=int, default=200,
                        help="fitting of the MiniLM teacher as a masked LM on the training text "
                             "(every weight, as the distillation script does)")
    parser.add_argument("--teacher-mlm-lr", type=float, default=2e-4)
    parser.add_argument("--teacher", type=Path, default=None,
                        help="an already fitted masked-LM teacher (skips the fitting)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--hidden-weight", type=float, default=1.0,
                        help="hidden-state transfer (0 = Bort's objective alone)")
    parser.add_argument("--attention-weight", type=float, default=1.0,
                        help="attention-distribution transfer (0 = off)")
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=1,
                        help="2: both arms at once, one thread each (needs --teacher)")
    parser.add_argument("--eval-every", type=int, default=150,
                        help="held-out evaluation every N steps (the learning curves)")
    parser.add_argument("--eval-batches", type=int, default=20,
                        help="held-out batches in each evaluation")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep shards and runs here (default: a temporary directory)")
    parser.add_argument("--arms", default=",".join(ARMS.values()),
                        help="comma-separated student configs to run (default: every arm)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    unknown = set(args.arms.split(",")) - set(ARMS.values())
    if unknown:
        parser.error(f"--arms: each must be one of {', '.join(ARMS.values())}, got "
                     f"{sorted(unknown)[0]!r}")
    if args.jobs == 2 and args.teacher is None:
        parser.error("--jobs 2 needs --teacher (the arms share one fitted teacher)")
    return args


def command(student: str, work: Path, train: Path, test: Path, teacher: list[str],
            args) -> list[str]:
    """The distillation command of one arm."""
    return [sys.executable, "-m", "bortkit.distill", "--train", str(train),
            "--test", str(test), "--output-dir", str(work / student),
            "--student-config", student, "--batch-size", str(args.batch_size),
            "--max-steps", str(args.steps), "--learning-rate", str(args.learning_rate),
            "--warmup-ratio", "0.1", "--eval-every", str(args.eval_every),
            "--eval-batches", str(args.eval_batches), "--checkpoint-every", "0",
            "--log-every", "25", "--seed", str(args.seed), "--no-progress",
            "--hidden-weight", str(args.hidden_weight),
            "--attention-weight", str(args.attention_weight), *teacher]


def run_arms(arms: dict, work: Path, train: Path, test: Path, teacher: list[str],
             args) -> None:
    """Run the arms that have no results yet: one after the other (the first fits the
    teacher unless ``--teacher`` is given, the second reuses it), or all at once."""
    pending = {name: student for name, student in arms.items()
               if not (work / student / "results.json").exists()}
    running = []
    for name, student in pending.items():
        argv = command(student, work, train, test, teacher, args)
        print(f"[{name}] {' '.join(argv[3:])}", flush=True)
        running.append((name, time.perf_counter(), subprocess.Popen(argv, cwd=REPO)))
        if args.jobs == 1:
            wait(*running.pop())
            if args.teacher is None:
                teacher = ["--teacher", str(work / student / "teacher")]   # the fitted one
    for job in running:
        wait(*job)


def wait(name: str, start: float, process) -> None:
    if process.wait() != 0:
        raise SystemExit(f"[{name}] failed with exit code {process.returncode}")
    print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)


def read_arm(output: Path) -> dict:
    results = json.loads((output / "results.json").read_text())
    records = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    results["curve"] = [(r["step"], r["mlm_loss"]) for r in records if r["event"] == "eval"]
    return results


def plot(results: dict, path: Path) -> None:
    """Held-out MLM loss against steps, one line per arm."""
    from bortkit.io import save_png
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(figsize=(6, 4))
    for name, result in results.items():
        steps, losses = zip(*result["curve"]) if result["curve"] else ((), ())
        axes.plot(steps, losses, marker="o", label=name)
    axes.set_xlabel("student optimizer step")
    axes.set_ylabel("held-out masked-LM loss (nats per masked token)")
    axes.set_title("bort-mini distilled on WikiText-2")
    axes.legend()
    save_png(figure, path)


def main(argv=None) -> None:
    args = parse_args(argv)
    threads = common.configure_threads(args.threads)
    os.environ.update(threads)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-variants-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train, test = make_shards(work)
        teacher = ["--teacher", str(minilm_dir()), "--teacher-mlm-steps",
                   str(args.teacher_mlm_steps), "--teacher-mlm-lr", str(args.teacher_mlm_lr)]
        if args.teacher is not None:
            teacher = ["--teacher", str(args.teacher)]
        arms = {n: s for n, s in ARMS.items() if s in args.arms.split(",")}
        run_arms(arms, work, train, test, teacher, args)
        results = {name: read_arm(work / student) for name, student in arms.items()}
    rows = [[name, ARMS[name], r["eval"]["mlm_loss"], r["eval"]["mlm_accuracy"]]
            for name, r in results.items()]
    print(common.format_table(["student", "config", "held-out MLM loss", "accuracy"],
                              [[n, c, round(l, 4), round(a, 4)] for n, c, l, a in rows]))
    losses = {ARMS[name]: r["eval"]["mlm_loss"] for name, r in results.items()}
    gains = {f"{student}_gain_nats": losses["bort-mini"] - loss
             for student, loss in losses.items() if student != "bort-mini"} \
        if "bort-mini" in losses else {}
    for key, gain in gains.items():
        print(f"{key[:-len('_gain_nats')]}: {gain:+.4f} nats lower held-out loss than "
              f"absolute positions ({args.steps} steps, seed {args.seed}; load average "
              f"{load[0]:.1f})")
    path = common.write_results("variants", {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "load_average": load, "arms": {n: ARMS[n] for n in results}, "results": results,
        **({"composite_gain_nats": gains["bort-mini-composite_gain_nats"]}
           if "bort-mini-composite_gain_nats" in gains else {}), **gains}, args.out)
    plot(results, Path(path).with_suffix(".png"))
    print(f"wrote {path} and its .png")


if __name__ == "__main__":
    main()

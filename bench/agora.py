"""Agora vs plain fine-tuning of a small student on scarce data, at the same step budget.

    python bench/agora.py [--protocol dev-half|train-holdout] [--work runs/bench-agora]
                          [--seeds 0,1,2] [--budget 600] [--quick]

Task: SST-2 cut to 500 training examples (a fixed random subset). Student: the pretrained
all-MiniLM-L6-v2 cut to its first 2 layers. Teacher: the full 6-layer MiniLM fine-tuned on
the same 500 examples (a fixed number of steps, last weights: no dev data picks it). Both
methods get the same budget of optimizer steps. For each seed:

``--protocol dev-half`` (default). The dev split (872) is cut once into two fixed halves.
E, the first half, is the evaluation set of both methods; scores are reported on the other
half, which neither method ever sees.

- **plain**: one fine-tuning run on the 500 examples with the standard setting θ0 for the
  whole budget, evaluated on E six times: ``final`` (last weights) and ``best`` (the best
  checkpoint on E);
- **Agora**: Θ = θ0 and two other learning rates; D = the 500 examples, E = the dev half;
  4 rounds (3, 2, 1, 1 candidates), 8 draws of g around each error on E, up to 2 replays.
  Each θ's rounds form one fine-tuning run (one warmup and decay), so the surviving θ
  trains 4/7 of the budget and the pruned ones the rest.

``--protocol train-holdout``. E is 20 % of the 500 training examples (Agora trains on the
other 400, plain on all 500); scores are on the whole dev split. Plain's ``best`` picks its
checkpoint on the dev split itself, which flatters it.

Prints per-seed and median scores and writes ``bench/results/agora.json`` (dev-half) or
``bench/results/agora-train-holdout.json``. Runs resume where they stopped (results in
``--work`` are reused).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import configure_threads, format_table, median, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
THETA0 = {"learning_rate": 1e-4, "batch_size": 16, "weight_decay": 0.01, "warmup_ratio": 0.1}
OTHER_RATES = (5e-5, 2e-4)
AGORA = {"rounds": 4, "per_error": 8, "replays": 2, "evals_per_round": 1}
MAX_LENGTH = 64


def scarce_sst2(glue_dir: Path, work: Path, size: int) -> Path:
    """A GLUE-style folder whose SST-2 train split is a fixed random subset of ``size``."""
    import numpy as np
    target = work / "data" / "SST-2"
    if (target / "train.tsv").exists():
        return target.parent
    target.mkdir(parents=True, exist_ok=True)
    header, *rows = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    keep = np.sort(np.random.RandomState(0).choice(len(rows), size, replace=False))
    (target / "train.tsv").write_text("\n".join([header] + [rows[i] for i in keep]) + "\n",
                                      encoding="utf-8")
    (target / "dev.tsv").write_text((glue_dir / "SST-2" / "dev.tsv").read_text(encoding="utf-8"),
                                    encoding="utf-8")
    return target.parent


def fine_tune_teacher(data: Path, work: Path, steps: int) -> tuple[Path, float]:
    from bortkit.finetune import FinetuneArgs, Finetuner
    from bortkit.info import bundled_minilm
    args = FinetuneArgs(task="SST-2", model=str(bundled_minilm()), data_dir=str(data),
                        output_dir=str(work / "teacher"), max_steps=steps, eval_every=steps,
                        max_length=MAX_LENGTH, resume=True, progress=False, **THETA0)
    result = Finetuner(args).run()  # one evaluation, after the last step: best/ = last weights
    return work / "teacher" / "best", result["best"]["accuracy"]


def dev_halves(data: Path) -> tuple[list, list]:
    """E and the reported half of the dev split, exactly as Agora cuts them."""
    from bortkit.agora.loop import split_examples
    from bortkit.tasks import get_task
    return split_examples(get_task("SST-2").read(data, "dev"), 0.5, seed=0)


def accuracy(logits, examples) -> float:
    from bortkit.metrics import task_scores
    from bortkit.tasks import get_task
    return float(task_scores(get_task("SST-2"), logits, examples)["accuracy"])


def plain(student: Path, data: Path, out: Path, seed: int, budget: int,
          protocol: str) -> dict:
    from bortkit.agora import CheckpointClassifier
    from bortkit.finetune import FinetuneArgs, Finetuner
    from bortkit.finetune.data import featurize
    from bortkit.tasks import get_task
    args = FinetuneArgs(task="SST-2", model=str(student), data_dir=str(data),
                        output_dir=str(out), max_steps=budget, eval_every=max(1, budget // 6),
                        max_length=MAX_LENGTH, seed=seed, resume=True, progress=False, **THETA0)
    if protocol == "train-holdout":
        result = Finetuner(args).run()
        return {"final": result["evaluations"][-1]["accuracy"],
                "best": result["best"]["accuracy"], "steps": result["steps"]}
    e, report = dev_halves(data)
    finetuner = Finetuner(args, dev_examples=e)
    result = finetuner.run()  # finetuner.net now holds the last weights
    final = finetuner.predict(featurize(get_task("SST-2"), report, finetuner.tokenizer,
                                        MAX_LENGTH))
    best = CheckpointClassifier(out / "best", get_task("SST-2")).logits(report)
    return {"final": accuracy(final, report), "best": accuracy(best, report),
            "steps": result["steps"]}


def agora(student: Path, teacher: Path, data: Path, out: Path, seed: int, budget: int,
          protocol: str) -> dict:
    from bortkit.agora import Agora, AgoraArgs
    thetas = [THETA0] + [{**THETA0, "learning_rate": lr} for lr in OTHER_RATES]
    thetas = [{**t, "max_length": MAX_LENGTH} for t in thetas]
    source = {"dev-half": {"eval_source": "dev", "eval_fraction": 0.5},
              "train-holdout": {"eval_source": "train", "eval_fraction": 0.2}}[protocol]
    result = Agora(AgoraArgs(task="SST-2", student=str(student), teacher=str(teacher),
                             data_dir=str(data), output_dir=str(out), thetas=thetas,
                             budget=budget, seed=seed, resume=True, **AGORA,
                             **source)).run()
    return {"final": result["best"]["accuracy"], "steps": result["steps"],
            "winner": result["theta"], "generated": result["generated_examples"],
            "rounds": [{k: h.get(k) for k in ("round", "attempt", "scores", "replayed", "pruned")}
                       for h in result["rounds"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--glue-dir", default=str(REPO.parent / "shared" / "data" / "glue"))
    parser.add_argument("--work", default=str(REPO / "runs" / "bench-agora"))
    parser.add_argument("--protocol", default="dev-half", choices=("dev-half", "train-holdout"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=int, default=600, help="optimizer steps per method")
    parser.add_argument("--train-examples", type=int, default=500)
    parser.add_argument("--student-layers", type=int, default=2)
    parser.add_argument("--teacher-steps", type=int, default=150)
    parser.add_argument("--quick", action="store_true",
                        help="one seed, budget 120: checks the plumbing only (120 steps leave "
                             "both methods at the majority class)")
    args = parser.parse_args()
    configure_threads()
    from bortkit.agora import truncate_layers
    from bortkit.info import bundled_minilm

    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    budget = 120 if args.quick else args.budget
    work = Path(args.work) / (args.protocol + ("-quick" if args.quick else ""))
    start = time.time()
    data = scarce_sst2(Path(args.glue_dir), work, args.train_examples)
    student = work / f"student-l{args.student_layers}"
    if not (student / "config.json").exists():
        truncate_layers(bundled_minilm(), student, args.student_layers)
    teacher, teacher_acc = fine_tune_teacher(data, work, 30 if args.quick else args.teacher_steps)
    print(f"teacher (MiniLM-L6 fine-tuned on {args.train_examples} examples): dev accuracy "
          f"{teacher_acc:.4f}", flush=True)

    runs = []
    for seed in seeds:
        base = plain(student, data, work / f"seed-{seed}" / "plain", seed, budget,
                     args.protocol)
        print(f"seed {seed} plain: final {base['final']:.4f} best {base['best']:.4f}",
              flush=True)
        ours = agora(student, teacher, data, work / f"seed-{seed}" / "agora", seed, budget,
                     args.protocol)
        print(f"seed {seed} Agora: {ours['final']:.4f} (winner lr "
              f"{ours['winner']['learning_rate']}, {ours['generated']} generated)", flush=True)
        runs.append({"seed": seed, "plain": base, "agora": ours})

    dev_half = args.protocol == "dev-half"
    if dev_half:  # the teacher on the reported half, for comparison
        from bortkit.agora import CheckpointClassifier
        from bortkit.tasks import get_task
        report = dev_halves(data)[1]
        teacher_acc = accuracy(CheckpointClassifier(teacher, get_task("SST-2")).logits(report),
                               report)
    summary = {"plain_final": median(r["plain"]["final"] for r in runs),
               "plain_best": median(r["plain"]["best"] for r in runs),
               "agora": median(r["agora"]["final"] for r in runs)}
    summary["agora_beats_plain"] = summary["agora"] > max(summary["plain_final"],
                                                          summary["plain_best"])
    best_label = "plain (best on E)" if dev_half else "plain (best on dev)"
    scored_on = "the dev half outside E (436)" if dev_half else "the dev split (872)"
    rows = [[str(r["seed"]), r["plain"]["final"] * 100, r["plain"]["best"] * 100,
             r["agora"]["final"] * 100] for r in runs]
    rows.append(["median", summary["plain_final"] * 100, summary["plain_best"] * 100,
                 summary["agora"] * 100])
    print(f"\nSST-2 accuracy (%) on {scored_on}; {args.train_examples} training examples; "
          f"{args.student_layers}-layer MiniLM student; {budget} optimizer steps per method; "
          f"teacher {teacher_acc * 100:.2f}")
    print(format_table(["seed", "plain (final)", best_label, "Agora"], rows))
    print(f"Agora beats plain fine-tuning (median): {summary['agora_beats_plain']}")
    name = "agora" if dev_half else "agora-train-holdout"
    path = write_results(name, {
        "task": "SST-2", "protocol": args.protocol, "scored_on": scored_on,
        "train_examples": args.train_examples,
        "student": f"all-MiniLM-L6-v2, first {args.student_layers} layers",
        "teacher": "all-MiniLM-L6-v2 fine-tuned on the same examples",
        "teacher_accuracy": teacher_acc, "budget_steps": budget, "theta0": THETA0,
        "agora_thetas_learning_rates": [THETA0["learning_rate"], *OTHER_RATES],
        "agora_settings": AGORA,
        "seeds": seeds, "runs": runs, "summary": summary, "quick": args.quick,
        "seconds": round(time.time() - start, 1)},
        path=None if not args.quick else Path(work) / f"{name}.json")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

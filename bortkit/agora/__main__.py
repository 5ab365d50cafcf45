"""``python -m bortkit.agora --task RTE --student PATH --teacher PATH --data-dir DIR``
(or ``--train FILE --dev FILE --text-column C --label-column L`` instead of ``--task``)

Fine-tunes the small model STUDENT on a task with scarce data by Agora: rounds of training
every surviving hyperparameter setting θ on the current data D, scoring on a held-out part E
of the training data, repeating rounds that did not improve (replay), pruning the worst θ,
and adding inputs generated near E's errors and labelled by TEACHER (a checkpoint
fine-tuned on the task). Θ is ``--num-thetas`` settings drawn from ``--space`` (default: the
Bort README grid), or the ``--theta`` settings given. The budget is in optimizer steps over
all candidates and rounds. ``--student-layers K`` first cuts STUDENT to its first K layers.

Writes OUTPUT/best/ (the fine-tuned student), OUTPUT/result.json (winner, dev scores,
rounds), generated data and per-round runs; ``--resume`` continues an interrupted run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ConfigError, run_cli
from ..finetune.task_options import add_task_options, drop_task_options, task_choice
from ..finetune.space import (apply_overrides, load_space, parse_assignments, parse_space,
                             yaml_value)
from ..options import add_shared, defaults_of
from .loop import EVAL_SOURCES, Agora, AgoraArgs


def build_parser() -> argparse.ArgumentParser:
    d = defaults_of(AgoraArgs)
    p = argparse.ArgumentParser(prog="python -m bortkit.agora", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", required=True, help="pretrained checkpoint of the small model")
    p.add_argument("--teacher", required=True, help="checkpoint fine-tuned on the task")
    add_task_options(p)
    add_shared(p, {"output_dir": "runs/agora"}, ["output_dir"])
    p.add_argument("--student-layers", type=int, help="keep only the first K layers of STUDENT")
    p.add_argument("--space", help="YAML space to draw Θ from (default: Bort README grid)")
    p.add_argument("--num-thetas", type=int, default=4, help="|Θ| drawn from the space")
    p.add_argument("--theta", action="append", default=[], metavar="NAME=V,NAME=V",
                   help="one explicit setting θ (repeatable; replaces drawing from --space)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="fix a fine-tuning parameter in every θ, e.g. --set max_length=64")
    p.add_argument("--budget", type=int, default=d["budget"], help="optimizer steps in total")
    p.add_argument("--rounds", type=int, help="default max(|Θ|, 2)")
    p.add_argument("--per-error", type=int, default=d["per_error"])
    p.add_argument("--max-generated", type=int, default=d["max_generated"],
                   help="new examples per round")
    p.add_argument("--replays", type=int, default=d["replays"])
    p.add_argument("--eval-fraction", type=float, default=d["eval_fraction"],
                   help="share held out as E")
    p.add_argument("--eval-source", default=d["eval_source"], choices=EVAL_SOURCES,
                   help="hold E out of the training split (default) or take it from the dev "
                        "split, reporting on the rest of dev")
    p.add_argument("--evals-per-round", type=int, default=d["evals_per_round"],
                   help="evaluations on E per candidate and round (the last at its end)")
    add_shared(p, d, ["seed"])
    p.add_argument("--max-train-examples", type=int)
    p.add_argument("--max-eval-examples", type=int)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished or started run in --output-dir (default: refuse)")
    add_shared(p, d, ["progress", "report_to"])
    p.add_argument("--progress", action="store_true", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the old spelling: bars are on by default now
    return p


def parse_theta(text: str) -> dict:
    pairs = parse_assignments(part for part in text.split(",") if part.strip())
    space = parse_space({k: yaml_value(v, f"--theta {k}") for k, v in pairs.items()},
                        "--theta")
    if space.params:
        raise ConfigError(f"--theta takes fixed values, got choices for "
                          f"{', '.join(space.params)}")
    return dict(space.fixed)


def thetas_from_args(args) -> list[dict]:
    """Θ: the explicit ``--theta`` settings, or ``--num-thetas`` draws from ``--space``;
    ``--set`` values are fixed in every θ."""
    overrides = parse_assignments(args.set)
    if args.theta:
        return [{**parse_theta(t), **parse_theta(",".join(args.set))} if args.set
                else parse_theta(t) for t in args.theta]
    if args.num_thetas < 1:
        raise ConfigError(f"--num-thetas must be >= 1, got {args.num_thetas}")
    space = apply_overrides(load_space(args.space), overrides)  # fine-tuning settings only
    return space.sample(args.num_thetas, args.seed)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    task, data_dir, files = task_choice(args)
    thetas = thetas_from_args(args)
    options = {k: v for k, v in drop_task_options(vars(args)).items()
               if k not in ("space", "num_thetas", "theta", "set", "student_layers", "student")}
    options.update(task=task, data_dir=data_dir, files=files)
    AgoraArgs(student=args.student, thetas=thetas, **options).validate()  # before any work
    if files is not None:
        from ..tasks.files import load_task
        load_task(task, files)  # reads --train: bad rows stop here, before anything is written
    student = args.student
    if args.student_layers:
        from .student import truncate_layers
        student = str(truncate_layers(args.student, Path(args.output_dir) / "student",
                                      args.student_layers))
    result = Agora(AgoraArgs(student=student, thetas=thetas, **options)).run()
    print(json.dumps({k: result[k] for k in ("winner", "theta", "e_score", "best", "steps",
                                             "generated_examples")}, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)

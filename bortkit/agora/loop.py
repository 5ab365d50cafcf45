"""Agora: fine-tune a small model on scarce data with a teacher, a data-generating function,
and an iterative search-and-prune over hyperparameter settings (reconstruction; see
``bortkit/agora/ALGORITHM.md`` for what is known about the paper and what was chosen).

The training examples are split once into D (training) and E (evaluation); with
``eval_source="dev"``, D is the whole training split and E a fixed half (``eval_fraction``)
of the dev split, the other part being where the result is reported. Then, round by round:

1. every surviving setting θ in Θ goes on with its own fine-tuning run of the student on
   the current D for the round's share of the budget. A θ's rounds are pieces of *one*
   run: weights, optimizer state and step carry over, and the learning rate follows one
   warmup and linear decay planned over the steps the θ gets if it is never pruned
   (re-planned each round to the budget left). Restarting the schedule every round left
   a 2-layer student at the majority class on SST-2-500: a round is a few dozen steps;
2. the candidates are scored on E with the weights they end the round with;
3. *replay*: if the round did not beat the best E score so far, the data generated for it is
   drawn again and the round is run once more, the candidates going on from where they are
   (at most ``replays`` times in a run, never in the last round; later rounds get fewer
   steps to pay for it);
4. the worst θ on E is pruned (while more than one is left; ties go against the higher
   cross-entropy on E);
5. g generates ``per_error`` new inputs around each E example a surviving candidate gets
   wrong; the teacher S labels them and they join D, thinned to D's class shares.

The run stops when the rounds or the budget are used up; the surviving candidate with the
best E score in the last round is the result. The budget counts optimizer steps over all
candidates, rounds and replays, so Agora and plain fine-tuning can be compared at equal
cost. The reported examples (the dev split, or the part of it outside E) are touched only
once, at the end.

Run directory::

    agora_state.json                   progress (resume point), written after every round
    split.json                         which training examples form E
    data/round-R-attempt-A.jsonl       generated examples with the teacher's labels
    round-R/attempt-A/theta-I/         one round of a θ's fine-tuning run (bortkit.finetune
                                       layout); its checkpoint/ (weights, optimizer, step)
                                       starts the θ's next round, and is deleted once no
                                       surviving θ goes on from it (logs and results stay)
    best/                              the winner (a fine-tuned checkpoint with its head)
    result.json, log.jsonl
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import ConfigError
from ..finetune.args import FINETUNE_PARAMS
from ..finetune.data import subsample
from ..io import atomic_directory, atomic_write, write_json
from ..metrics import task_scores
from ..options import (Interval, OneOf, Text, arg, check_fields, check_report_to, resume_keys,
                       sweep_params)
from ..tasks import Example
from ..tasks.files import load_task
from ..train import JsonlLog, Run, checkpoint_step
from ..train.run import AGORA_PROGRESS as STATE, RESUME_ONLY_FILES
from ..train.retention import link_or_copy
from .generate import make_generator
from .teacher import CheckpointClassifier

EVAL_SOURCES = ("train", "dev")
POSITIVE_INT, COUNT = Interval(1, integer=True), Interval(0, integer=True)
LIMIT = Interval(1, integer=True, optional=True)  # None: no limit


@dataclass
class AgoraArgs:
    """Settings of one Agora run. Each field declares its check
    (:func:`bortkit.options.check_fields`), whether a resumed run must keep it
    (:data:`RESUME_KEYS`) and whether a sweep may vary it (:data:`AGORA_PARAMS`)."""

    task: str = arg()
    student: str = arg()                        # pretrained (small) checkpoint
    teacher: str = arg()                        # checkpoint fine-tuned on the task (with its head)
    data_dir: Optional[str] = arg()             # None for the user's files
    output_dir: str = arg(resume=False)
    thetas: list = arg(factory=list)            # Θ: FinetuneArgs overrides per setting
    # optimizer steps over all candidates, rounds, replays
    budget: int = arg(1000, POSITIVE_INT, sweep=True)
    # default max(|Θ|, 2): prune one θ a round until one is left
    rounds: Optional[int] = arg(None, Interval(1, integer=True, optional=True), sweep=True)
    # draws of g around each E example a candidate gets wrong
    per_error: int = arg(4, POSITIVE_INT, sweep=True)
    max_generated: int = arg(2000, COUNT, sweep=True)       # cap on new examples per round
    replays: int = arg(2, COUNT, sweep=True)                # repeated rounds over the whole run
    # share of the E source held out as E
    eval_fraction: float = arg(0.2, Interval(0, 1, low_open=True, high_open=True), sweep=True)
    # E from the training split, or from the dev split
    eval_source: str = arg("train", OneOf(EVAL_SOURCES))
    # evaluations on E per candidate and round (the last one at the end of the round)
    evals_per_round: int = arg(1, POSITIVE_INT, sweep=True)
    seed: int = arg(0, COUNT)                   # split, g, and the default seed of every θ
    max_train_examples: Optional[int] = arg(None, LIMIT)
    max_eval_examples: Optional[int] = arg(None, LIMIT)  # dev examples (before any split)
    generator: str = arg("perturb", Text("a generator name"))
    resume: bool = arg(False, resume=False)
    overwrite: bool = arg(False, resume=False)  # replace a finished run in output_dir
    progress: bool = arg(True, resume=False)    # progress bars of the fine-tuning runs
    # "tensorboard": the log's numbers in OUT/tensorboard/
    report_to: str = arg("none", resume=False)
    # the user's files (bortkit.tasks.files.file_task kwargs)
    files: Optional[dict] = arg(None)

    def validate(self) -> None:
        """One line per bad setting: Θ, every field's declared constraint (NaN and infinity
        included), then the budget against the rounds."""
        check_report_to(self.report_to)
        if not self.thetas:
            raise ConfigError("Agora needs at least one hyperparameter setting θ")
        for theta in self.thetas:
            unknown = sorted(set(theta) - set(FINETUNE_PARAMS))
            if unknown:
                raise ConfigError(f"unknown fine-tuning parameter(s) in θ: {', '.join(unknown)}")
        check_fields(self)
        if self.budget < sum(self.alive_counts()):
            raise ConfigError(f"--budget {self.budget} is smaller than one step per candidate "
                              f"and round ({sum(self.alive_counts())})")

    @property
    def num_rounds(self) -> int:
        return self.rounds or max(len(self.thetas), 2)

    def alive_counts(self) -> list[int]:
        """Candidates trained in each round: |Θ|, |Θ|-1, ..., 1, 1, ..."""
        return [max(1, len(self.thetas) - r) for r in range(self.num_rounds)]


# The settings of a run a sweep may vary, with their types; those a resumed run must keep.
AGORA_PARAMS: dict[str, type] = sweep_params(AgoraArgs)
RESUME_KEYS = resume_keys(AgoraArgs)


def _read_examples(path: Path) -> list[Example]:
    with open(path, encoding="utf-8") as fh:
        return [Example(**json.loads(line)) for line in fh if line.strip()]


def _write_examples(path: Path, examples: list[Example]) -> None:
    with atomic_write(path, "w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps(asdict(ex)) + "\n")


def split_examples(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """A seeded random ``fraction`` of ``examples`` (at least one) and the rest, in order."""
    held = max(1, int(round(fraction * len(examples))))
    if held >= len(examples):
        raise ConfigError(f"too few examples ({len(examples)}) to hold out {fraction:.0%}")
    chosen = set(np.random.RandomState(seed).permutation(len(examples))[:held].tolist())
    return ([ex for i, ex in enumerate(examples) if i in chosen],
            [ex for i, ex in enumerate(examples) if i not in chosen])


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of ``labels`` under the softmax of ``logits`` (N, C)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def keep_class_shares(new: list, reference: list, rng: np.random.RandomState) -> list:
    """The largest random subset of ``new`` whose labels have the class shares of
    ``reference``: errors of a model stuck on one class are all of the other class, and
    adding their neighbours as they come would flip the class prior of D."""
    classes, counts = np.unique([ex.label for ex in reference], return_counts=True)
    labels = np.array([ex.label for ex in new])
    total = min(np.sum(labels == c) / (n / counts.sum()) for c, n in zip(classes, counts))
    keep = []
    for c, n in zip(classes, counts):
        members = np.flatnonzero(labels == c)
        # the rounding guard: for the class that binds, total * share is its count exactly,
        # which floating point may give as 0.99999...
        size = min(len(members), int(np.floor(total * n / counts.sum() + 1e-9)))
        keep += rng.choice(members, size, replace=False).tolist()
    return [new[i] for i in sorted(keep)]


class Agora:
    """``Agora(args).run()`` returns the result dict (also written to ``result.json``).

    ``teacher`` (``label(examples)``) and ``generator`` (see :mod:`bortkit.agora.generate`)
    replace the defaults. ``on_round(round, best_e_score) -> bool`` is called after every
    accepted round; returning True stops the run (Optuna pruning).
    """

    def __init__(self, args: AgoraArgs, teacher=None, generator=None,
                 on_round: Optional[Callable[[int, float], bool]] = None):
        args.validate()
        self.args = args
        self.task = load_task(args.task, args.files)
        if self.task.kind != "classification" or self.task.pick_best:
            raise ConfigError(f"Agora is defined for classification of independent examples; "
                              f"{self.task.name} is not")
        self.out = Path(args.output_dir)
        self._teacher = teacher
        self.generator = generator or make_generator(args.generator)
        self.on_round = on_round
        self.thetas = [{"seed": args.seed, **theta} for theta in args.thetas]
        inputs = {f"--{split}" if args.files else f"--data-dir {split}":
                  self.task.path(args.data_dir, split) for split in ("train", "dev")}
        self.lifecycle = Run(self.out, {**self._settings(), "report_to": args.report_to},
                             list(self._settings()),
                             resume=args.resume, overwrite=args.overwrite, inputs=inputs,
                             progress=STATE)

    # ------------------------------------------------------------------ data
    def _split(self) -> tuple[list[Example], list[Example], list[Example]]:
        """D, E and the examples the final score is reported on."""
        a = self.args
        train = subsample(self.task.read(a.data_dir, "train"), a.max_train_examples, a.seed)
        dev = subsample(self.task.read(a.data_dir, "dev"), a.max_eval_examples, 0)
        if a.eval_source == "dev":
            e, report = split_examples(dev, a.eval_fraction, seed=0)
            return train, e, report
        e, d = split_examples(train, a.eval_fraction, a.seed)
        return d, e, dev

    @property
    def teacher(self):
        if self._teacher is None:
            self._teacher = CheckpointClassifier(self.args.teacher, self.task)
        return self._teacher

    def _generate(self, errors: list[int], round_: int, attempt: int) -> Path:
        """g around the E examples in ``errors``, labelled by the teacher; returns the file."""
        a = self.args
        rng = np.random.RandomState((a.seed * 1_000_003 + round_ * 101 + attempt) % 2 ** 31)
        sources = [self.e[i] for i in errors]
        if a.per_error * len(sources) > a.max_generated:
            keep = rng.choice(len(sources), max(0, a.max_generated // a.per_error), replace=False)
            sources = [sources[i] for i in sorted(keep)]
        new = self.generator.generate(sources, a.per_error, rng) if sources else []
        if new:
            labels = np.asarray(self.teacher.label(new))
            new = [dataclasses.replace(ex, label=int(y), guid=f"agora-r{round_}-{ex.guid}")
                   for ex, y in zip(new, labels)]
            new = keep_class_shares(new, self.d, rng)
        path = self.out / "data" / f"round-{round_}-attempt-{attempt}.jsonl"
        _write_examples(path, new)
        return path

    # ------------------------------------------------------------------ rounds
    def _train(self, index: int, start: Optional[str], steps: int, planned: int,
               train: list, run_dir: Path) -> dict:
        """Go on with θ ``index``'s fine-tuning run for ``steps`` steps from the training
        state ``start`` (weights, optimizer, step; None: the pretrained student), its learning
        rate following one warmup and linear decay planned to end ``planned`` steps from
        ``start``. Returns the bortkit.finetune result (its ``steps`` count from the θ's
        first round)."""
        from ..finetune import FinetuneArgs, Finetuner  # MXNet: loaded once training starts
        from ..train import LinearSchedule
        if (run_dir / "result.json").exists():  # finished before a crash
            return json.loads((run_dir / "result.json").read_text())
        begin = checkpoint_step(start)
        if start is not None and not (run_dir / "checkpoint").exists():
            with atomic_directory(run_dir / "checkpoint") as tmp:
                shutil.copytree(start, tmp, dirs_exist_ok=True, copy_function=link_or_copy)
        per_round = self.args.evals_per_round  # steps count from the θ's first round, and
        # bortkit.finetune evaluates at multiples of eval_every and at its last step
        every = begin + steps if per_round == 1 else max(1, math.ceil(steps / per_round))
        args = FinetuneArgs(task=self.task.name, model=self.args.student,
                            data_dir=self.args.data_dir, files=self.args.files,
                            output_dir=str(run_dir),
                            progress=self.args.progress,
                            resume=(run_dir / "checkpoint").exists(),
                            **{**self.thetas[index], "max_steps": begin + steps,
                               "eval_every": every})
        schedule = LinearSchedule(args.learning_rate, begin + planned, args.warmup_ratio)
        return Finetuner(args, train_examples=train, dev_examples=self.e,
                         schedule=schedule).run()

    def _logits(self, models: dict) -> dict:
        """Each candidate's (N, C) scores on E, by θ index."""
        return {i: CheckpointClassifier(path, self.task).logits(self.e)
                for i, path in models.items()}

    def _prune(self, scores: dict, logits: dict) -> int:
        """The θ to drop: the lowest E score; ties (e.g. candidates that all still predict
        the majority class) go against the highest cross-entropy on E, then the later θ."""
        gold = np.array([ex.label for ex in self.e])
        return min(scores, key=lambda i: (scores[i], -cross_entropy(logits[i], gold), -i))

    def _errors(self, logits: dict) -> list[int]:
        """E examples that at least one candidate gets wrong (indices into E)."""
        gold = np.array([ex.label for ex in self.e])
        wrong = np.zeros(len(self.e), bool)
        for rows in logits.values():
            wrong |= rows.argmax(axis=1) != gold
        return np.flatnonzero(wrong).tolist()

    def _steps(self, state: dict) -> int:
        """Steps per candidate this round: the remaining budget spread over the rounds left."""
        round_ = state["round"]
        alive = self.args.alive_counts()[round_ - 1:]
        alive[0] = len(state["alive"])
        return (self.args.budget - state["spent"]) // sum(alive)

    def _initial_state(self) -> dict:
        thetas = [str(i) for i in range(len(self.thetas))]
        return {"round": 1, "attempt": 0, "alive": list(range(len(self.thetas))),
                "models": {i: None for i in thetas}, "trained": {i: 0 for i in thetas},
                "best_score": None, "spent": 0, "replays_used": 0, "generated": [],
                "errors": [], "history": [], "stopped": False}

    def _load_state(self) -> dict:
        """The progress of the run being resumed (checked by the Run), or a fresh one."""
        state = self.lifecycle.saved
        if state is None:
            return self._initial_state()
        if "trained" not in state:
            raise ConfigError("this Agora run was written by an older bortkit (each round "
                              "restarted training); start it again in a new --output-dir",
                              path=self.out)
        return {k: v for k, v in state.items() if k not in ("args", "inputs")}

    def _settings(self) -> dict:
        """What a resumed run must share with the run it continues."""
        settings = asdict(self.args)
        return {k: settings[k] for k in RESUME_KEYS}

    def _train_candidates(self, state: dict, steps: int, train: list) -> dict:
        """Every surviving θ goes on ``steps`` steps on ``train``; returns the E scores of
        the weights they end with (the ones they go on from)."""
        r, attempt = state["round"], state["attempt"]
        rounds_left = self.args.num_rounds - r + 1  # as planned for a θ that is never pruned
        scores = {}
        for i in state["alive"]:
            key, done = str(i), state["trained"][str(i)]
            run_dir = self.out / f"round-{r}" / f"attempt-{attempt}" / f"theta-{i}"
            result = self._train(i, state["models"][key], steps, steps * rounds_left, train,
                                 run_dir)
            state["spent"] += result["steps"] - done
            state["trained"][key] = result["steps"]
            state["models"][key] = str(run_dir / "checkpoint")
            scores[i] = result["evaluations"][-1]["main"]
        return scores

    def _round(self, state: dict, log: JsonlLog) -> bool:
        """Run one round attempt; returns False when the budget is used up."""
        steps = self._steps(state)
        if steps < 1:
            return False
        train = self.d + [ex for p in state["generated"] for ex in _read_examples(Path(p))]
        scores = self._train_candidates(state, steps, train)
        entry = {"round": state["round"], "attempt": state["attempt"],
                 "steps_per_candidate": steps, "train_examples": len(train),
                 "scores": {str(i): s for i, s in scores.items()}}
        round_best = max(scores.values())
        improved = state["best_score"] is None or round_best > state["best_score"]
        replayable = state["generated"] and state["round"] < self.args.num_rounds
        if not improved and replayable and state["replays_used"] < self.args.replays:
            self._replay(state, entry, log)
            return True
        state["best_score"] = round_best if improved else state["best_score"]
        self._prune_and_generate(state, scores, entry)
        state["history"].append({**entry, "replayed": False})
        log.write("round", **entry, spent=state["spent"])
        state["round"], state["attempt"] = state["round"] + 1, 0
        if self.on_round is not None and self.on_round(entry["round"], round_best):
            state["stopped"] = True
        return True

    def _replay(self, state: dict, entry: dict, log: JsonlLog) -> None:
        """Draw the data generated for this round again and run the round once more, the
        candidates going on from where they are (no step is thrown away)."""
        state["replays_used"] += 1
        state["attempt"] += 1
        r = state["round"]
        state["generated"][-1] = str(self._generate(state["errors"], r - 1, state["attempt"]))
        state["history"].append({**entry, "replayed": True})
        log.write("replay", **entry, spent=state["spent"])

    def _prune_and_generate(self, state: dict, scores: dict, entry: dict) -> None:
        """Drop the worst θ; unless this is the last round, add data generated around the
        survivors' errors on E to D."""
        last = state["round"] == self.args.num_rounds
        if len(state["alive"]) > 1 or not last:
            logits = self._logits({i: state["models"][str(i)] for i in state["alive"]})
        if len(state["alive"]) > 1:
            entry["pruned"] = self._prune(scores, logits)
            state["alive"].remove(entry["pruned"])
        entry["generated"] = 0
        if not last:
            state["errors"] = self._errors({i: logits[i] for i in state["alive"]})
            path = self._generate(state["errors"], state["round"], 0)
            state["generated"].append(str(path))
            entry["errors"] = len(state["errors"])
            entry["generated"] = sum(1 for _ in open(path, encoding="utf-8"))

    # ------------------------------------------------------------------ main
    def run(self) -> dict:
        self._check_models()
        with self.lifecycle:
            return self._run()

    def _check_models(self) -> None:
        """The student fits every θ's max_length and the teacher has this task's head,
        before the output folder is touched."""
        from ..checkpoint import read_state
        from ..finetune import FinetuneArgs
        config = read_state(self.args.student).config
        default = FinetuneArgs.__dataclass_fields__["max_length"].default
        for theta in self.thetas:
            config.check_sequence_length(theta.get("max_length", default), path=self.args.student)
        if self._teacher is None and self.args.num_rounds > 1:
            self._teacher = CheckpointClassifier(self.args.teacher, self.task)

    def _run(self) -> dict:
        state = self._load_state()
        self.d, self.e, self.report = self._split()
        write_json(self.out / "split.json", {"train": [ex.guid for ex in self.d],
                                             "evaluation": [ex.guid for ex in self.e]})
        log = self.lifecycle.log
        if not self.lifecycle.resuming:
            self.lifecycle.start(train_examples=len(self.d), eval_examples=len(self.e))
        else:
            log.write("resume", round=state["round"], attempt=state["attempt"])
        self.generator.fit(self.d)
        while state["round"] <= self.args.num_rounds and not state["stopped"]:
            if not self._round(state, log):
                break
            self.lifecycle.save_progress(state)
            self._drop_replaced_weights(state)
        return self._finish(state, log)

    def _drop_replaced_weights(self, state: dict) -> None:
        """Delete the weights of run directories no surviving θ goes on from (replaced by a
        later round, or pruned): each holds weights and optimizer state, ~3x the model, and
        a run would otherwise keep |Θ| x rounds of them. Logs and results stay. Called only
        after the state that no longer points at them is on disk."""
        keep = {Path(state["models"][str(i)]).resolve() for i in state["alive"]
                if state["models"][str(i)]}
        for run_dir in self.out.glob("round-*/attempt-*/theta-*"):
            if (run_dir / "checkpoint").resolve() not in keep:
                for name in ("checkpoint", "best"):
                    shutil.rmtree(run_dir / name, ignore_errors=True)

    def _finish(self, state: dict, log: JsonlLog) -> dict:
        last = state["history"][-1]  # the scores of the weights the candidates hold
        winner = max(state["alive"], key=lambda i: (last["scores"].get(str(i), -math.inf), -i))
        with atomic_directory(self.out / "best") as tmp:  # the weights, not the optimizer
            shutil.copytree(state["models"][str(winner)], tmp, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(*RESUME_ONLY_FILES))
        logits = CheckpointClassifier(self.out / "best", self.task).logits(self.report)
        scores = {k: float(v) for k, v in task_scores(self.task, logits, self.report).items()}
        generated = sum(1 for p in state["generated"] for _ in open(p, encoding="utf-8"))
        result = {"task": self.task.name, "student": self.args.student,
                  "teacher": self.args.teacher, "winner": winner, "theta": self.thetas[winner],
                  "e_score": last["scores"][str(winner)], "best": scores,
                  "steps": state["spent"], "budget": self.args.budget,
                  "rounds": state["history"], "train_examples": len(self.d),
                  "eval_examples": len(self.e), "report_examples": len(self.report),
                  "generated_examples": generated,
                  "stopped_early": state["stopped"]}
        return self.lifecycle.finish(result, winner=winner, dev=scores, steps=state["spent"])

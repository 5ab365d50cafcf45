"""A :class:`~bortkit.prune.trainer.FlopPruning` run on the training runtime: its batches,
loss and hooks go to :class:`~bortkit.train.Loop`; this file adds the run's log, the
gated checkpoint it keeps and its resumable state (three optimizers)."""
from __future__ import annotations

import json

from ..checkpoint import save_pretrained
from ..checkpoint.core import assign, read_state
from ..errors import CheckpointError
from ..io import atomic_directory, write_json
from ..train import JsonlLog, Loop, Progress, TrainStep, Workers, seed_everything
from .trainer import FlopPruning, is_at_target, lambdas_of

CHECKPOINT = "checkpoint"


def save_checkpoint(pruning: FlopPruning, run: dict) -> None:
    """Weights, gates, the three optimizers' states, the multipliers and ``run``."""
    with atomic_directory(pruning.out / CHECKPOINT) as tmp:
        save_pretrained(pruning.net, tmp / "model", config=pruning.factorized.config)
        for group in pruning.groups:
            group.trainer.save_states(str(tmp / f"{group.name}.states"))
        pruning.lagrangian.params.save(str(tmp / "lagrangian.params"))
        write_json(tmp / "state.json", run)


def load_checkpoint(pruning: FlopPruning) -> dict:
    directory = pruning.out / CHECKPOINT
    if not (directory / "state.json").exists():
        raise CheckpointError("no pruning state to resume from", path=directory)
    assign(pruning.net, read_state(directory / "model"), required_prefixes=())
    for group in pruning.groups:
        group.trainer.load_states(str(directory / f"{group.name}.states"))
    pruning.lagrangian.params.load(str(directory / "lagrangian.params"))
    return json.loads((directory / "state.json").read_text())


def train(pruning: FlopPruning) -> dict:
    a = pruning.args
    pruning.out.mkdir(parents=True, exist_ok=True)
    log = JsonlLog(pruning.out / "log.jsonl")
    run = {"step": 0, "evaluated_step": None, "evaluations": [], "gated": None}
    if a.resume and (pruning.out / CHECKPOINT / "state.json").exists():
        run = load_checkpoint(pruning)
        log.write("resume", step=run["step"])
    else:
        seed_everything(a.seed)
        log.write("start", **pruning.result_fields())

    def on_step(result):
        run["step"] = result.step
        if result.step % 10 and result.step != 1:
            return None
        loss, task_loss, sparsity, penalty = (float(x) for x in result.terms.asnumpy())
        log.write("train", step=result.step, loss=loss, task_loss=task_loss,
                  expected_sparsity=sparsity, penalty=penalty,
                  target=pruning.lagrangian.target_at(result.step), **lambdas_of(pruning),
                  learning_rates=dict(zip((g.name for g in pruning.groups),
                                          result.learning_rates)))
        return {"sparsity": f"{sparsity:.3f}", "loss": f"{task_loss:.3f}"}

    def evaluate(step):
        scores = {"step": step, **pruning.evaluate()}
        scores["at_target"] = is_at_target(scores, a)
        run["evaluations"].append(scores)
        kept = run["gated"]
        better = kept is None or (scores["at_target"] and (
            not kept["at_target"] or scores["main"] > kept["main"])) \
            or (not scores["at_target"] and not kept["at_target"])
        if better:
            run["gated"] = scores
            pruning.save_gated(pruning.out / "gated")
        log.write("eval", kept=better, **scores)
        progress.say(f"step {step}: sparsity {scores['sparsity']:.3f}, dev {scores['main']:.4f}"
                     f", {scores['params']:,} parameters after compaction", always=True)
        return scores

    def checkpoint(step):
        run["evaluated_step"] = step
        save_checkpoint(pruning, run)

    with Progress(a.max_steps, run["step"], desc=f"prune {pruning.task.name}",
                  enabled=a.progress) as progress:
        Loop(TrainStep(pruning.groups, Workers(distributed=False), seed=a.seed), pruning.loss,
             pruning.batches(run["step"]), a.max_steps, run["step"], on_step=on_step,
             evaluate=evaluate, eval_every=a.eval_every, checkpoint=checkpoint,
             checkpoint_every=a.eval_every, progress=progress,
             evaluated_step=run["evaluated_step"]).run()
    result = {**pruning.result_fields(), "steps": run["step"], "gated": run["gated"],
              "evaluations": run["evaluations"],
              "reached_target": bool(run["gated"] and run["gated"]["at_target"])}
    write_json(pruning.out / "result.json", result)
    log.write("done", gated=run["gated"])
    return result

"""Drive a :class:`~bortkit.prune.trainer.FlopPruning` run: steps, logging, evaluations,
the gated checkpoint and resumable state."""
from __future__ import annotations

import json
import math

from mxnet import autograd
from tqdm import tqdm

from ..checkpoint import save_pretrained
from ..checkpoint.core import assign, read_state
from ..errors import CheckpointError
from ..finetune.data import epoch_batches, make_batch
from ..io import atomic_directory, write_json
from ..train import JsonlLog, seed_everything, seed_step
from .trainer import FlopPruning, is_at_target, lambdas_of


def _batches(pruning: FlopPruning, start: int):
    a = pruning.args
    per_epoch = math.ceil(len(pruning.train) / a.batch_size)
    for step in range(start, a.max_steps):
        epoch, offset = divmod(step, per_epoch)
        if offset == 0 or step == start:
            order = epoch_batches(pruning.train, a.batch_size, a.seed, epoch)
        yield step, make_batch(pruning.train, order[offset])


def save_checkpoint(pruning: FlopPruning, state: dict) -> None:
    directory = pruning.out / "checkpoint"
    with atomic_directory(directory) as tmp:
        save_pretrained(pruning.net, tmp / "model", config=pruning.factorized.config)
        for name, optimizer in pruning.optimizers.items():
            optimizer.save_states(str(tmp / f"{name}.states"))
        pruning.lagrangian.params.save(str(tmp / "lagrangian.params"))
        write_json(tmp / "state.json", state)


def load_checkpoint(pruning: FlopPruning) -> dict:
    directory = pruning.out / "checkpoint"
    if not (directory / "state.json").exists():
        raise CheckpointError("no pruning state to resume from", path=directory)
    assign(pruning.net, read_state(directory / "model"), required_prefixes=())
    for name, optimizer in pruning.optimizers.items():
        optimizer.load_states(str(directory / f"{name}.states"))
    pruning.lagrangian.params.load(str(directory / "lagrangian.params"))
    return json.loads((directory / "state.json").read_text())


def train(pruning: FlopPruning) -> dict:
    a = pruning.args
    pruning.out.mkdir(parents=True, exist_ok=True)
    log = JsonlLog(pruning.out / "log.jsonl")
    run = {"step": 0, "evaluations": [], "gated": None}
    if a.resume and (pruning.out / "checkpoint" / "state.json").exists():
        run = load_checkpoint(pruning)
        log.write("resume", step=run["step"])
    else:
        seed_everything(a.seed)
        log.write("start", **pruning.result_fields())
    bar = tqdm(total=a.max_steps, initial=run["step"], disable=not a.progress,
               desc=f"prune {pruning.task.name}", unit="step", leave=False)
    for step, batch in _batches(pruning, run["step"]):
        seed_step(a.seed, step)
        with autograd.record():
            loss, figures = pruning.loss(batch, step)
        loss.backward()
        pruning.after_backward(step)
        pruning.update()
        run["step"] = step + 1
        bar.update(1)
        if run["step"] % 10 == 0 or run["step"] == 1:
            figures = {k: float(v.asscalar()) if hasattr(v, "asscalar") else v
                       for k, v in figures.items()}
            log.write("train", step=run["step"], loss=float(loss.asscalar()), **figures,
                      **lambdas_of(pruning))
            bar.set_postfix(sparsity=f"{figures['expected_sparsity']:.3f}",
                            loss=f"{figures['task_loss']:.3f}")
        if run["step"] % a.eval_every == 0 or run["step"] == a.max_steps:
            _evaluate(pruning, run, log)
            save_checkpoint(pruning, run)
    bar.close()
    result = {**pruning.result_fields(), "steps": run["step"], "gated": run["gated"],
              "evaluations": run["evaluations"],
              "reached_target": bool(run["gated"] and run["gated"]["at_target"])}
    write_json(pruning.out / "result.json", result)
    log.write("done", gated=run["gated"])
    return result


def _evaluate(pruning: FlopPruning, run: dict, log: JsonlLog) -> None:
    scores = {"step": run["step"], **pruning.evaluate()}
    scores["at_target"] = is_at_target(scores, pruning.args)
    run["evaluations"].append(scores)
    kept = run["gated"]
    better = kept is None or (scores["at_target"] and (
        not kept["at_target"] or scores["main"] > kept["main"])) \
        or (not scores["at_target"] and not kept["at_target"])
    if better:
        run["gated"] = scores
        pruning.save_gated(pruning.out / "gated")
    log.write("eval", kept=better, **scores)

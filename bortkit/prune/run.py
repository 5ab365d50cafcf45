"""A :class:`~bortkit.prune.trainer.FlopPruning` run on the training runtime: its batches,
loss and hooks go to :class:`~bortkit.train.Loop`, its life (claim, lock, resume, the
state of its three optimizer groups, ``gated/``, ``result.json``, the log) to
:class:`~bortkit.train.Run`; this file adds which evaluation's gated model is kept."""
from __future__ import annotations

from ..train import Loop, Progress, RunState, TrainStep, Workers, seed_everything
from .trainer import FlopPruning, is_at_target, keeps, lambdas_of


def train(pruning: FlopPruning) -> dict:
    """The run in ``pruning.lifecycle`` (a :class:`~bortkit.train.Run`: claimed and resume
    checked when ``pruning`` was built); its state is the three groups' optimizers, the
    weights and gates, the multipliers and a :class:`~bortkit.train.RunState` whose ``kept``
    is the evaluation in ``gated/``."""
    with pruning.lifecycle as life:
        return _train(pruning, life)


def _train(pruning: FlopPruning, life) -> dict:
    a = pruning.args
    log = life.log
    fields = {k: v for k, v in pruning.result_fields().items() if k != "args"}
    run = life.begin(pruning.net, pruning.groups, RunState, **fields)
    if not life.resuming:
        seed_everything(a.seed)

    def on_step(result):
        run.step = result.step
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
        run.evaluations.append(scores)
        better = keeps(scores, run.kept, a)
        if better:
            run.kept = scores
            pruning.save_gated()
        log.write("eval", kept=better, **scores)
        progress.say(f"step {step}: dense sparsity {scores['dense_sparsity']:.3f} "
                     f"(factorised {scores['sparsity']:.3f}), dev {scores['main']:.4f}"
                     f", {scores['params']:,} parameters after compaction", always=True)
        return scores

    def checkpoint(step):
        run.evaluated_step = step
        life.save(pruning.net, pruning.factorized.config, pruning.groups, run)

    with Progress(a.max_steps, run.step, desc=f"prune {pruning.task.name}",
                  enabled=a.progress) as progress:
        Loop(TrainStep(pruning.groups, Workers(distributed=False), seed=a.seed), pruning.loss,
             pruning.batches(run.step), a.max_steps, run.step, on_step=on_step,
             evaluate=evaluate, eval_every=a.eval_every, checkpoint=checkpoint,
             checkpoint_every=a.eval_every, progress=progress,
             evaluated_step=run.evaluated_step).run()
    result = {**pruning.result_fields(), "steps": run.step, "gated": run.kept,
              "evaluations": run.evaluations,
              "reached_target": bool(run.kept and run.kept["at_target"])}
    return life.finish(result, gated=run.kept)

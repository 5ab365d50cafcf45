"""FLOP pruning of a fine-tuned classifier: the batches, the loss and the hooks that the
training runtime runs.

Run directory (``output_dir``)::

    log.jsonl        every event: train loss, expected sparsity, target, lambdas; evaluations
                     with dev metrics, realised sparsity (``sparsity``: of the factorised
                     weights; ``dense_sparsity``: of the dense encoder weights) and the
                     compacted parameter count
    gated/           the gated model to compact (a family checkpoint with factorised matrices
                     plus each gate's ``mask.log_alpha``; config "_prune" holds the gate options)
    checkpoint/      latest training state, for --resume
    result.json      final figures
    sparsity.png     expected and realised sparsity, target and dev metric against steps

``gated/`` is written at every evaluation whose realised sparsity (in the target's reading,
``--sparsity-of``: dense by default) is within ``tolerance`` (0.02, the FLOP library's) of
the target, on either side, and whose dev metric is the best of those so far; until an
evaluation is at the target, the one closest to it is kept (see :func:`keeps`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, replace
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from .. import accounting
from ..checkpoint import classifier_from_state, named_parameters
from ..finetune.data import epoch_batches, featurize, make_batch, subsample
from ..finetune.predict import predict_task
from ..metrics import task_scores
from ..tasks import get_task
from ..tokenizers import load_tokenizer
from ..train import LinearSchedule, ParamGroup, make_trainer
from .args import PruneArgs, check, open_run
from .compact import low_rank_of, plan
from .factorize import attach_gates, factorize_state
from .lagrangian import (Ascent, LagrangianSparsity, NoamSchedule, dense_sparsity,
                         expected_sparsity, factorised_target, gate_sparsity)


class FlopPruning:
    """Batches, loss and hooks of one pruning run; :func:`.run.train` hands them to the
    training runtime."""

    def __init__(self, args: PruneArgs):
        self.source, self.head = check(args)
        self.lifecycle = open_run(args)  # the run's folder, log, state and result
        self.args = args
        self.task = get_task(args.task)
        self.out = Path(args.output_dir)
        self.max_length = args.max_length or self.head.max_length
        self.tokenizer = load_tokenizer(self.source.tokenizer_dir)
        self._load_data()
        self._build()

    # ------------------------------------------------------------------ setup
    def _load_data(self) -> None:
        a = self.args
        train = subsample(self.task.read(a.data_dir, "train"), a.max_train_examples, a.seed)
        self.dev_examples = subsample(self.task.read(a.data_dir, "dev"),
                                      a.max_eval_examples, 0)
        self.train = featurize(self.task, train, self.tokenizer, self.max_length)
        self.dev = featurize(self.task, self.dev_examples, self.tokenizer, self.max_length)

    def _build(self) -> None:
        a = self.args
        mx.random.seed(a.seed)
        self.factorized = factorize_state(self.source)
        self.net, _ = classifier_from_state(self.factorized, self.task.num_labels,
                                            self.head.pooling)
        self.mask_options = {"init_mean": a.mask_init_mean}
        self.gated = attach_gates(self.net.network, **self.mask_options)
        # Not hybridized: the gates sample in training and are deterministic in eval,
        # decided at call time (see hard_concrete.py).
        params = named_parameters(self.net)
        self.mask_params = {k: p for k, p in params.items() if k.endswith(".mask.log_alpha")}
        self.weight_params = {k: p for k, p in params.items()
                              if k not in self.mask_params and p.grad_req != "null"}
        # The Lagrangian constrains the expected factorised sparsity; a dense target is
        # the factorised one that keeps the same share of the dense weights.
        self.targets = {"sparsity_of": a.sparsity_of, "target_sparsity": a.target_sparsity,
                        "factorised": a.target_sparsity if a.sparsity_of == "factorised"
                        else factorised_target(a.target_sparsity, self.gated)}
        self.schedules = a.schedules()
        s = self.schedules
        self.lagrangian = LagrangianSparsity(self.targets["factorised"],
                                             s["target_warmup_steps"])
        # Three optimizers, as FLOP: the weights (BERTAdam, linear decay, clipped), the
        # gates' log_alpha and the multipliers (Adam, Noam shape; the multipliers climb).
        self.groups = [
            ParamGroup(self.mask_params,
                       make_trainer(self.mask_params, "adamw", s["mask_learning_rate"], 0.0),
                       NoamSchedule(s["mask_learning_rate"], s["schedule_warmup_steps"]),
                       name="masks"),
            ParamGroup(self.lagrangian.named_params(),
                       make_trainer(self.lagrangian.named_params(), "adamw",
                                    s["lambda_learning_rate"], 0.0),
                       Ascent(NoamSchedule(s["lambda_learning_rate"],
                                           s["schedule_warmup_steps"])),
                       name="lambdas")]
        if a.learning_rate > 0:
            self.groups.insert(0, ParamGroup(
                self.weight_params, make_trainer(self.weight_params, "bertadam",
                                                 a.learning_rate, a.weight_decay),
                LinearSchedule(a.learning_rate, a.max_steps, 0.0),
                max_grad_norm=a.max_grad_norm, name="weights"))
        else:  # Arexh's recipe: only log_alpha and lambda train
            for p in self.weight_params.values():
                p.grad_req = "null"
        self.loss_fn = gluon.loss.L2Loss() if self.task.kind == "regression" \
            else gluon.loss.SoftmaxCrossEntropyLoss()

    # ------------------------------------------------------------------ runtime pieces
    def batches(self, start_step: int):
        """Micro-batch lists of the optimizer steps after ``start_step``; each micro-batch is
        (step, batch): the Lagrangian's target depends on the step."""
        a = self.args
        per_epoch = math.ceil(len(self.train) / a.batch_size)
        order = None
        for step in range(start_step, a.max_steps):
            epoch, offset = divmod(step, per_epoch)
            if order is None or offset == 0:
                order = epoch_batches(self.train, a.batch_size, a.seed, epoch)
            yield [(step + 1, make_batch(self.train, order[offset]))]

    def _forward(self, batch):
        arrays = [mx.nd.array(x) for x in (batch.input_ids, batch.token_type_ids,
                                           batch.attention_mask)]
        out = self.net(*arrays)
        return out.reshape((-1,)) if self.task.kind == "regression" else out

    def loss(self, item) -> list:
        """[task loss + Lagrangian, task loss, expected sparsity, penalty] of one
        (step, batch), under the runtime's ``autograd.record()``."""
        step, batch = item
        labels = mx.nd.array(batch.labels, dtype="float32")
        task_loss = self.loss_fn(self._forward(batch), labels).mean()
        sparsity = expected_sparsity(self.gated)
        penalty = self.lagrangian(sparsity, step)
        return [task_loss + penalty, task_loss, sparsity, penalty]

    # ------------------------------------------------------------------ evaluation
    def predict(self, features) -> np.ndarray:
        """Logits (N, C) or scores (N,); the gates are deterministic (inference mode)."""
        return predict_task(self.net, self.task, features, self.args.eval_batch_size)

    def compacted_params(self) -> dict:
        """Parameters of the model ``compact`` would write now (encoder with merged and
        factored matrices + pooler + embeddings, and the task head)."""
        gates = {name: block.mask.eval_gate() for name, block in self.gated.items()}
        shapes = {name: (b.in_units, b.units) for name, b in self.gated.items()}
        config = self.source.config.replace(low_rank=low_rank_of(plan(gates, shapes)) or None)
        head = accounting.classifier_params(config, self.task.num_labels, self.head.pooling)
        return {"params": accounting.count_params(config) + head,
                "dense_params": accounting.count_params(self.source.config) + head}

    def evaluate(self) -> dict:
        scores = task_scores(self.task, self.predict(self.dev), self.dev_examples)
        return {**{k: float(v) for k, v in scores.items()},
                "sparsity": gate_sparsity(self.gated),
                "dense_sparsity": dense_sparsity(self.gated), **self.compacted_params()}

    def save_gated(self) -> None:
        """The gated model worth keeping, ``OUT/gated`` (the run's kept checkpoint)."""
        self.lifecycle.save_best(
            self.net, self.factorized.config, tokenizer=self.tokenizer, name="gated",
            meta={**replace(self.head, max_length=self.max_length).to_meta(),
                  "_prune": {"mask_options": self.mask_options,
                             "target_sparsity": self.args.target_sparsity,
                             "sparsity_of": self.args.sparsity_of,
                             "source": str(self.args.model)}})

    def result_fields(self) -> dict:
        return {"args": asdict(self.args), "schedules": self.schedules,
                "targets": self.targets, "train_examples": len(self.train),
                "dev_examples": len(self.dev), "max_length": self.max_length}


def lambdas_of(pruning: FlopPruning) -> dict:
    l1, l2 = pruning.lagrangian.values()
    return {"lambda_1": l1, "lambda_2": l2}


def reading(args: PruneArgs) -> str:
    """The evaluation field the target is read against: "dense_sparsity" or "sparsity"
    (factorised)."""
    return "dense_sparsity" if args.sparsity_of == "dense" else "sparsity"


def is_at_target(scores: dict, args: PruneArgs) -> bool:
    """Within ``tolerance`` of the target on either side (in the target's reading), with a
    number for the dev metric: a model pruned well past the target is not at it."""
    return abs(scores[reading(args)] - args.target_sparsity) <= args.tolerance + 1e-12 \
        and not math.isnan(scores["main"])


def keeps(scores: dict, kept, args: PruneArgs) -> bool:
    """Whether evaluation ``scores`` replaces ``kept`` (the gated model kept so far, or
    None): among evaluations at the target, the best dev metric; before any is, the one
    closest to the target (the latest on a tie), so a run that overshoots keeps the
    evaluation nearest to what was asked."""
    if kept is None:
        return True
    if scores["at_target"]:
        return not kept["at_target"] or scores["main"] > kept["main"]
    if kept["at_target"]:
        return False
    field = reading(args)
    return abs(scores[field] - args.target_sparsity) <= abs(kept[field] - args.target_sparsity)


def target_miss(scores: dict, args: PruneArgs):
    """A one-line warning when ``scores`` (the kept evaluation) is further than the
    tolerance from the target, in the target's reading; None when it is within."""
    got = scores[reading(args)]
    if abs(got - args.target_sparsity) <= args.tolerance + 1e-12:
        return None
    side = "short of" if got < args.target_sparsity else "beyond"
    return (f"warning: the kept model's {args.sparsity_of} sparsity is {got:.3f}, "
            f"{abs(got - args.target_sparsity):.3f} {side} the target "
            f"{args.target_sparsity} (tolerance {args.tolerance}); "
            + ("run longer (--max-steps) or raise --mask-learning-rate and "
               "--lambda-learning-rate" if got < args.target_sparsity else
               "evaluate more often (--eval-every) or lengthen the settling after the "
               "target's warm-up (--target-warmup-steps)"))

"""Distillation pretraining: a masked-LM student trained against a frozen teacher.

One process, or many data-parallel workers started by ``horovodrun`` (Gloo on CPU, NCCL on
GPUs). Everything a run writes lives in ``output_dir`` and only rank 0 writes::

    log.jsonl          one JSON record per event (train steps, evaluations, checkpoints)
    checkpoint/        latest training state: student weights (+ MLM head), optimizer state,
                       step, data position and seed (swapped in atomically)
    teacher/           the teacher with the MLM head fitted by --teacher-head-steps, if any
    final/             the trained student as a bortkit checkpoint (+ MLM head, tokenizer)
    loss_curve.png     train loss and held-out MLM loss against the step
    results.json       final held-out MLM loss/accuracy (student and teacher), throughput

Determinism: batches are a pure function of (seed, step) (see
:class:`~bortkit.data.PretrainingDataset`) and dropout is reseeded from (seed, step, rank)
before every micro-batch, so a run resumed from a checkpoint reaches bit-for-bit the weights
of an uninterrupted one on CPU. Losses are sums divided by the *global* number of masked
tokens, so 2 workers x b sequences and 1 worker x 2b give the same losses and gradients.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
import signal
import time
from typing import Optional

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import HybridBlock

from ..checkpoint import named_parameters, read_state, save_pretrained
from ..checkpoint.core import assign
from ..train import (LinearSchedule, Loop, Messages, ParamGroup, Progress, StepResult,
                     TrainStep, Workers, make_trainer, plot_curves, seed_everything)
from .losses import DistillationObjective, describe, masked_lm_loss
from .models import MaskedLMWithInternals, as_outputs, batch_arrays, build_masked_lm, token_types
from .plan import FINAL, OBJECTIVE, TEACHER, Plan, PretrainingArguments, plan_run
from .teacher import inverse_counts, train_masked_lm


class StudentObjective(HybridBlock):
    """The student and its loss terms as one graph: hybridized together, the gradient of the
    logits (masked tokens x vocabulary, 32 MB a Bort step) lives in memory planned once,
    where two graphs handed it over in a fresh allocation every step. Parameters keep the
    names they have in ``student`` and ``objective``.

    Inputs: the student's four (input ids, token types, attention mask, masked positions),
    masked labels and weights, ``inv_masked``, then ``inv_tokens`` when a hidden-state or
    attention term uses it, then the teacher's outputs (none without a teacher). Returns the
    objective's 5 terms."""

    def __init__(self, student, objective, use_hidden: bool, use_attention: bool):
        super().__init__(prefix="")
        self.student, self.objective = student, objective  # registered as children
        self._use_hidden, self._use_attention = use_hidden, use_attention

    def hybrid_forward(self, F, input_ids, types, attention_mask, positions, labels, weights,
                       inv_masked, *rest):
        uses_tokens = self._use_hidden or self._use_attention
        inv_tokens, teacher_out = (rest[0], rest[1:]) if uses_tokens else (None, rest)
        student_out = as_outputs(self.student(input_ids, types, attention_mask, positions))
        inputs = [student_out[0], labels, weights, inv_masked]
        if teacher_out:
            inputs.append(teacher_out[0])
            k = 1
            if self._use_hidden:
                inputs += [student_out[k], teacher_out[k]]
                k += 1
            if self._use_attention:
                inputs += [student_out[k], teacher_out[k]]
            if uses_tokens:
                inputs += [attention_mask, inv_tokens]
        return self.objective(*inputs)


@dataclass
class DistillState:
    """Where a pretraining run is (``checkpoint/state.json``'s ``run``)."""

    step: int = 0
    data_position: int = 0           # micro-batches read
    world_size: int = 1              # workers that read them


class PretrainingRun:
    """One run: build the models from a :class:`Plan`, train, evaluate, save."""

    def __init__(self, plan: Plan, workers: Workers, ctx=None):
        self.plan, self.args, self.workers = plan, plan.args, workers
        self.ctx = ctx or mx.cpu()
        self.out = plan.output_dir
        self.log = plan.run.log  # opened when the run was entered
        # evaluations always, per-step lines when there is no bar (--no-progress)
        self.messages = Messages(workers.is_root, bar_shown=self.args.progress)
        self.weights = self.args.loss_weights()
        teacher = plan.teacher_state is not None
        self.use_hidden = teacher and self.weights.hidden > 0
        self.use_attention = teacher and self.weights.attention > 0
        seed_everything(self.args.seed)
        self.student = build_masked_lm(plan.student_config, self.use_hidden,
                                       self.use_attention, self.ctx)
        self.teacher = self._build_teacher() if teacher else None
        tconfig = plan.teacher_state.config if teacher else plan.student_config
        self.objective = DistillationObjective(
            self.weights, teacher, plan.layer_map, plan.student_config.units, tconfig.units,
            plan.student_config.num_heads, tconfig.num_heads, prefix="objective_")
        self.objective.initialize(mx.init.Normal(0.02), ctx=self.ctx)
        self.student_objective = StudentObjective(self.student, self.objective,
                                                  self.use_hidden, self.use_attention)
        for block in (self.student, self.student_objective):
            block.hybridize(static_alloc=True, static_shape=True)
        self.params = self._trainable_params()
        workers.broadcast(self.params)
        self.trainer = make_trainer(self.params, self.args.optimizer, self.args.learning_rate,
                                    self.args.weight_decay, self.args.adam_epsilon,
                                    accumulate=self.args.accumulate)
        self.schedule = LinearSchedule(self.args.learning_rate, self.args.max_steps,
                                       self.args.warmup_ratio)
        self.group = ParamGroup(self.params, self.trainer, self.schedule,
                                max_grad_norm=self.args.max_grad_norm, name="student")
        self.train_step = TrainStep([self.group], workers, seed=self.args.seed)

    # ------------------------------------------------------------------ construction
    def _build_teacher(self) -> MaskedLMWithInternals:
        state = self.plan.teacher_state
        saved = self.out / TEACHER
        if self.plan.adapt_teacher and (saved / "config.json").exists():
            state = read_state(saved)  # adapted by the run being resumed
            self.plan.adapt_teacher = False
        teacher = build_masked_lm(state.config, self.use_hidden, self.use_attention, self.ctx)
        assign(teacher, state)
        for param in teacher.collect_params().values():
            param.grad_req = "null"
        teacher.hybridize(static_alloc=True, static_shape=True)
        self.teacher_source = state.tokenizer_dir
        return teacher

    def _trainable_params(self) -> dict:
        """Student (the pooler is not part of masked-LM training) and loss projections."""
        params = {}
        for name, param in named_parameters(self.student).items():
            if name.startswith("pooler."):
                param.grad_req = "null"
                continue
            params[f"student.{name}"] = param
        for name, param in named_parameters(self.objective).items():
            params[f"objective.{name}"] = param
        return params

    # ------------------------------------------------------------------ forward passes
    def _teacher_outputs(self, nd: dict) -> list:
        config = self.teacher.network.config
        return as_outputs(self.teacher(nd["input_ids"], token_types(config, nd["token_type_ids"]),
                                     nd["attention_mask"], nd["masked_positions"]))

    def loss(self, micro_batch) -> list:
        """The 5 loss terms of one micro-batch ``(batch, inv_masked, inv_tokens)`` (see
        :meth:`micro_batches`); the first, the total, is differentiated. For :class:`TrainStep`."""
        batch, inv_masked, inv_tokens = micro_batch
        nd = batch_arrays(batch, self.ctx)
        teacher_out = []
        if self.teacher is not None:
            with autograd.pause():  # a frozen teacher: no graph, no dropout
                teacher_out = self._teacher_outputs(nd)
        config = self.plan.student_config
        counts = [inv_tokens] if self.use_hidden or self.use_attention else []
        return self.student_objective(
            nd["input_ids"], token_types(config, nd["token_type_ids"]), nd["attention_mask"],
            nd["masked_positions"], nd["masked_labels"], nd["masked_weights"], inv_masked,
            *counts, *teacher_out)

    def micro_batches(self, start: int):
        """The micro-batches of each step after ``start``: ``(batch, inv_masked,
        inv_tokens)`` with the step's global counts. Batches are a function of the position,
        so a resumed run reads on where it stopped."""
        args, data = self.args, self.plan.train_data
        for step in range(start + 1, args.max_steps + 1):
            if args.stop_at_step == step:  # debug: die mid-run, as a killed job would
                mx.nd.waitall()
                os.kill(os.getpid(), signal.SIGKILL)
            batches = [data.batch(p) for p in range((step - 1) * args.accumulate,
                                                    step * args.accumulate)]
            inv_masked, inv_tokens, tokens = inverse_counts(batches, self.workers, self.ctx)
            self._tokens += tokens
            yield [(batch, inv_masked, inv_tokens) for batch in batches]

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: MaskedLMWithInternals) -> dict:
        """Masked-LM loss and accuracy on the held-out data (all workers, summed)."""
        data = self.plan.eval_data
        steps = len(data) if not self.args.eval_batches else min(len(data), self.args.eval_batches)
        config = model.network.config
        sums = np.zeros(3)
        ones = mx.nd.ones((1,), ctx=self.ctx)
        for step in range(steps):
            batch = data.batch(step)
            # drop_last=False wraps the last batch round: rows past the end weigh nothing
            first = step * data.global_batch_size + data.rank * data.batch_size
            real = (first + np.arange(data.batch_size)) < data.num_examples
            batch.masked_weights = batch.masked_weights * np.repeat(real, data.max_predictions)
            nd = batch_arrays(batch, self.ctx)
            logits = as_outputs(model(nd["input_ids"], token_types(config, nd["token_type_ids"]),
                                    nd["attention_mask"], nd["masked_positions"]))[0]
            loss = masked_lm_loss(mx.nd, logits, nd["masked_labels"], nd["masked_weights"], ones)
            correct = ((logits.argmax(axis=-1) == nd["masked_labels"]) * nd["masked_weights"]).sum()
            sums += [float(loss.asscalar()), float(correct.asscalar()),
                     float(batch.masked_weights.sum())]
        loss, correct, count = self.workers.sum(sums, "eval")
        return {"mlm_loss": loss / max(count, 1.0), "mlm_accuracy": correct / max(count, 1.0),
                "masked_tokens": int(count), "batches": steps}

    # ------------------------------------------------------------------ teacher
    def adapt_teacher(self) -> None:
        """Train the teacher as a masked LM on the training data (all its weights, or only
        its MLM head), e.g. to give a sentence-embedding model the MLM head it lacks.
        Saved to ``output_dir/teacher`` so a resumed run does not repeat it."""
        args = self.args
        train_masked_lm(self.teacher, self.plan.train_data, args.teacher_mlm_steps,
                        args.teacher_mlm_lr, args.teacher_mlm_train, args.weight_decay,
                        args.adam_epsilon, args.max_grad_norm, seed=args.seed + 1,
                        workers=self.workers, log=self.log, log_every=args.log_every,
                        progress=args.progress, ctx=self.ctx)
        if self.workers.is_root:
            save_pretrained(self.teacher, self.out / TEACHER, config=self.teacher.network.config,
                            source=self.teacher_source,
                            meta={"_mlm_adapted": {"steps": args.teacher_mlm_steps,
                                                   "train": args.teacher_mlm_train,
                                                   "data": args.train, "base": args.teacher}})
        self.plan.adapt_teacher = False

    # ------------------------------------------------------------------ main loop
    def _resume(self, **start_fields) -> int:
        """The step to go on from: the checkpoint's (restored by the run), or 0 (a ``start``
        record with ``start_fields``)."""
        state = self.plan.run.begin(self.student, [self.group], DistillState,
                                    self._extra_blocks(), **start_fields)
        return int(state.step)

    def _extra_blocks(self) -> Optional[dict]:
        """The loss block goes into checkpoints when it has learned projections."""
        return {OBJECTIVE: self.objective} if list(self.objective.collect_params().keys()) else None

    def _save_checkpoint(self, step: int) -> None:
        if not self.workers.is_root:
            return
        self.plan.run.save(self.student, self.plan.student_config, [self.group],
                           DistillState(step, step * self.args.accumulate, self.workers.size),
                           source=self.plan.train_data.tokenizer_dir,
                           extra_blocks=self._extra_blocks())
        self.log.write("checkpoint", step=step)

    def eval_results(self, step: int) -> dict:
        if self.plan.eval_data is None:
            return {}
        result = self.evaluate(self.student)
        self.log.write("eval", step=step, **result)
        self.messages.say(f"held-out at step {step}: MLM loss {result['mlm_loss']:.4f}, "
                          f"accuracy {result['mlm_accuracy']:.4f}", always=True)
        return result

    def run(self) -> dict:
        args, workers = self.args, self.workers
        objective = describe(self.weights, self.teacher is not None, self.plan.layer_map)
        start = self._resume(workers=workers.size, objective=objective)
        self.messages.say(f"objective: {objective}", always=True)
        teacher_eval = None
        if self.teacher is not None and self.plan.adapt_teacher:
            self.adapt_teacher()
        if self.teacher is not None and self.plan.eval_data is not None and args.baseline_eval:
            teacher_eval = self.evaluate(self.teacher)
            self.log.write("teacher_eval", step=start, **teacher_eval)
            self.messages.say(f"teacher held-out: MLM loss {teacher_eval['mlm_loss']:.4f}, "
                              f"accuracy {teacher_eval['mlm_accuracy']:.4f}", always=True)
        if start == 0 and args.baseline_eval:
            self.eval_results(0)
        self._tokens, self._window = 0.0, (None, time.perf_counter())
        with Progress(args.max_steps, start, "pretraining", enabled=args.progress,
                      writer=workers.is_root) as progress:
            done = Loop(self.train_step, self.loss, self.micro_batches(start), args.max_steps,
                        start, on_step=self._on_step, evaluate=self.eval_results,
                        eval_every=args.eval_every,
                        checkpoint=self._save_checkpoint if args.save_weights else None,
                        checkpoint_every=args.checkpoint_every, progress=progress).run()
        return self._finish(done.step, done.scores or {}, teacher_eval)

    def _on_step(self, result: StepResult) -> Optional[dict]:
        """Sum the loss terms on the device; every ``log_every`` steps log their mean."""
        args, workers = self.args, self.workers
        sums, clock = self._window
        sums = result.terms if sums is None else sums + result.terms
        self._window = (sums, clock)
        if result.step % args.log_every and result.step != args.max_steps:
            return None
        elapsed = time.perf_counter() - clock
        window = (result.step - 1) % args.log_every + 1
        mean = workers.sum(sums.asnumpy(), "terms") / (workers.size * window)
        record = dict(zip(("loss", "mlm", "kd", "hidden", "attention"), map(float, mean)))
        rate, lr = self._tokens / max(elapsed, 1e-9), result.learning_rates[0]
        self.log.write("train", step=result.step, lr=lr, grad_norm=result.grad_norm(),
                       tokens_per_second=rate, **record)
        self.messages.say(f"step {result.step}/{args.max_steps}: loss {record['loss']:.4f} "
                          f"(mlm {record['mlm']:.4f}, kd {record['kd']:.4f}), lr {lr:.2e}, "
                          f"{rate:,.0f} tokens/s")
        self._tokens, self._window = 0.0, (None, time.perf_counter())
        return {"loss": f"{record['loss']:.3f}"}

    def _finish(self, step: int, final_eval: dict, teacher_eval: Optional[dict]) -> dict:
        results = {"steps": step, "workers": self.workers.size, "eval": final_eval,
                   "teacher_eval": teacher_eval}
        if self.workers.is_root and self.args.save_weights:
            save_pretrained(self.student, self.out / FINAL, config=self.plan.student_config,
                            source=self.plan.train_data.tokenizer_dir, seed=self.args.seed,
                            meta={"_pretraining": {"steps": step, "teacher": self.args.teacher,
                                                   "objective": describe(
                                                       self.weights, self.teacher is not None,
                                                       self.plan.layer_map)}})
        if self.workers.is_root:
            records = _latest_per_step(self.plan.run.records())
            plot_curves(records, self.out / "loss_curve.png",
                        series=(("train", "loss"), ("train", "mlm"), ("eval", "mlm_loss")),
                        title="pretraining: train loss and held-out MLM loss")
            from ..io import write_json
            write_json(self.out / "results.json", results)
            self.log.write("done", **results)
            where = f"; the student is in {self.out / FINAL}" if self.args.save_weights else ""
            self.messages.say(f"done: {step} steps{where}", always=True)
        return results


def _latest_per_step(records: list) -> list:
    """Keep the last record of each (event, step): a resumed run repeats some steps."""
    latest = {}
    for record in records:
        latest[(record.get("event"), record.get("step"))] = record
    return list(latest.values())


def train(args: PretrainingArguments, workers: Optional[Workers] = None) -> dict:
    """Run pretraining as described by ``args``; return the final metrics.

    Everything is validated first (:func:`plan_run`); with ``check_only`` nothing else
    happens. Under ``horovodrun`` every process calls this; only rank 0 writes.
    """
    workers = workers or Workers()
    plan = plan_run(args, workers)
    if args.check_only:
        return {"checked": True}
    with plan.run:
        return PretrainingRun(plan, workers).run()

"""Train one model on several tasks: a shared encoder with per-task adapters and heads
(:class:`~bortkit.model.MultiTaskClassifier`), one task per optimizer step drawn by a
:class:`~.sampler.TaskSampler`, on the one training runtime (:mod:`bortkit.train`).

Run directory layout (``output_dir``)::

    log.jsonl                 every event (train loss with its task, evaluations)
    checkpoint/               latest training state, for --resume
    best/                     the checkpoint with the best mean dev score over the tasks
    result.json               each task's dev scores, parameter accounting
    curve-<TASK>.png          train loss and dev metric of each task against steps
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..accounting import adapter_params, classifier_params, count_params
from ..checkpoint import named_parameters, read_state
from ..checkpoint.core import assign
from ..errors import BortkitError, CheckpointError, ConfigError
from ..finetune.data import epoch_batches, featurize, make_batch, subsample
from ..finetune.predict import predict_task
from ..metrics import task_scores
from ..tasks import get_task
from ..tokenizers import load_tokenizer
from ..train import (LinearSchedule, Loop, ParamGroup, Progress, Run, RunState, StepResult,
                     TrainStep, Workers, make_trainer, plot_curves, seed_everything)
from .args import RESUME_KEYS, MultitaskArgs  # noqa: F401  (MultitaskArgs: the API)
from .sampler import TaskSampler

class MultitaskTrainer:
    """``MultitaskTrainer(args).run()`` returns the result dict (also ``result.json``)."""

    def __init__(self, args: MultitaskArgs):
        args.validate()
        self.args = args
        self.out = Path(args.output_dir)
        self.tasks = [get_task(name) for name in args.tasks]
        self.lifecycle = Run(self.out, asdict(args), RESUME_KEYS, resume=args.resume,
                             overwrite=args.overwrite,
                             inputs={f"{t.name} {split}": t.path(args.data_dir, split)
                                     for t in self.tasks for split in ("train", "dev")})
        self.state = read_state(args.model)
        self.state.config.check_sequence_length(args.max_length, path=args.model)
        self.config = self._multitask_config(self.state.config)
        tok_path = args.tokenizer or self.state.tokenizer_dir
        if tok_path is None:
            raise BortkitError("checkpoint has no tokenizer files; pass --tokenizer",
                               path=args.model)
        self.tokenizer = load_tokenizer(tok_path)
        self._load_data()
        self.steps_per_epoch = math.ceil(args.max_steps / args.epochs)
        self.eval_every = args.eval_every or self.steps_per_epoch
        self.sampler = TaskSampler([len(f) for f in self.train], args.sample, args.epochs,
                                   self.steps_per_epoch, args.seed)
        self._build_model()

    # ------------------------------------------------------------------ setup
    def _multitask_config(self, base):
        a, n = self.args, len(self.args.tasks)
        if base.adapter == "none":
            return base.replace(adapter=a.adapter, num_tasks=n) if a.adapter != "none" else base
        if (base.adapter, base.num_tasks) != (a.adapter, n):  # a multi-task checkpoint
            raise ConfigError(f"--adapter {a.adapter} for {n} tasks: the checkpoint already has "
                              f"{base.adapter} adapters for {base.num_tasks} tasks; start from "
                              f"its encoder with the same --adapter and task count, or from a "
                              f"model without adapters")
        return base

    def _load_data(self) -> None:
        a = self.args
        self.train, self.dev, self.dev_examples = [], [], []
        for task in self.tasks:
            train = subsample(task.read(a.data_dir, "train"), a.max_train_examples, a.seed)
            dev = subsample(task.read(a.data_dir, "dev"), a.max_eval_examples, 0)
            self.train.append(featurize(task, train, self.tokenizer, a.max_length))
            self.dev.append(featurize(task, dev, self.tokenizer, a.max_length))
            self.dev_examples.append(dev)

    def _build_model(self) -> None:
        from ..model import BertNetwork, MultiTaskClassifier, freeze_base
        from ..model.multitask import is_adapter_parameter
        a = self.args
        seed_everything(a.seed)
        self.num_labels = [t.num_labels for t in self.tasks]
        network = BertNetwork(self.config, prefix="bert_")
        self.net = MultiTaskClassifier(network, self.num_labels, pooling=a.pooling,
                                       prefix="mt_")
        self.net.initialize(mx.init.Normal(0.02))
        missing = assign(self.net, self.state, required_prefixes=())
        base_missing = [n for n in missing
                        if not (is_adapter_parameter(n) or n.startswith("heads."))]
        if base_missing:  # adapters and heads are new; everything else must be there
            raise CheckpointError(f"missing tensor {base_missing[0]}",
                                  path=self.state.weights_path)
        for t, task in enumerate(self.tasks):
            if task.kind == "regression" and f"heads.{t}.out.bias" in missing:
                # As fine-tuning: start a new regression head at the mean target.
                mean = float(np.nanmean(self.train[t].labels))
                self.net.heads[t].out.bias.set_data(mx.nd.full((1,), mean))
        if a.pooling == "mean" and self.config.use_pooler:
            network.pooler.collect_params().setattr("grad_req", "null")
        trainable = set(freeze_base(self.net)) if a.freeze_base else None
        self.net.hybridize()  # static_alloc breaks the task-id take's backward (MXNet 1.9)
        every = named_parameters(self.net)
        self.params = {k: p for k, p in every.items()
                       if p.grad_req != "null" and (trainable is None or k in trainable)}
        self.built_params = int(sum(p.data().size for p in every.values()))
        self.trainer = make_trainer(self.params, a.optimizer, a.learning_rate, a.weight_decay)
        self.group = ParamGroup(self.params, self.trainer,
                                LinearSchedule(a.learning_rate, a.max_steps, a.warmup_ratio),
                                max_grad_norm=a.max_grad_norm, name="multitask",
                                partial=True)  # one task's head per step
        self.losses = [gluon.loss.L2Loss() if t.kind == "regression"
                       else gluon.loss.SoftmaxCrossEntropyLoss() for t in self.tasks]

    def parameter_report(self) -> dict:
        """Exact counts (``count_params``): the shared model, each task's adapters and head,
        the total, and the total of separate fine-tuned models for the same tasks."""
        a, base = self.args, without_adapters(self.config)
        shared = count_params(base)
        per_task_adapters = adapter_params(self.config) // len(self.tasks)
        heads = {t.name: classifier_params(self.config, t.num_labels, a.pooling)
                 for t in self.tasks}
        total = count_params(self.config) + sum(heads.values())
        separate = sum(shared + classifier_params(base, t.num_labels, a.pooling)
                       for t in self.tasks)
        return {"shared": shared, "adapters_per_task": per_task_adapters, "heads": heads,
                "overhead_per_task": {name: per_task_adapters + h for name, h in heads.items()},
                "total": total, "built_total": self.built_params,
                "total_over_shared": total / shared, "separate_models_total": separate,
                "trainable": int(sum(p.data().size for p in self.params.values()))}

    # ------------------------------------------------------------------ pieces
    def _forward(self, t: int, batch):
        arrays = [mx.nd.array(x) for x in (batch.input_ids, batch.token_type_ids,
                                           batch.attention_mask)]
        out = self.net(*arrays, t)                                      # (B, C_t)
        return out.reshape((-1,)) if self.tasks[t].kind == "regression" else out

    def predict(self, t: int, features) -> np.ndarray:
        return predict_task(self.net, self.tasks[t], features, self.args.eval_batch_size, t)

    def evaluate(self) -> dict:
        """{task: {metric: value}} on each dev set and ``main``: the mean of the tasks' mains."""
        scores = {}
        for t, task in enumerate(self.tasks):
            got = task_scores(task, self.predict(t, self.dev[t]), self.dev_examples[t])
            scores[task.name] = {k: float(v) for k, v in got.items()}
        return {"tasks": scores, "main": float(np.mean([s["main"] for s in scores.values()]))}

    def _batches(self, start_step: int):
        """[(task, rows)] for each step after ``start_step``: the sampled task's next batch,
        its position being how often the task was drawn before (so resuming replays it)."""
        a = self.args
        drawn = np.bincount(self.sampler.tasks(start_step), minlength=len(self.tasks))
        cache = {}
        for step in range(start_step + 1, a.max_steps + 1):
            t = self.sampler.task(step)
            per_epoch = math.ceil(len(self.train[t]) / a.batch_size)
            epoch, offset = divmod(int(drawn[t]), per_epoch)
            if cache.get(t, (None,))[0] != epoch:
                cache[t] = (epoch, epoch_batches(self.train[t], a.batch_size,
                                                 a.seed * 1_000 + t, epoch))
            drawn[t] += 1
            yield [(t, cache[t][1][offset])]

    def _loss(self, micro_batch):
        t, rows = micro_batch
        batch = make_batch(self.train[t], rows)
        labels = mx.nd.array(batch.labels, dtype="float32")
        return self.losses[t](self._forward(t, batch), labels).mean()

    def _meta(self) -> dict:
        return {"_multitask": {"tasks": [t.name for t in self.tasks],
                               "kinds": [t.kind for t in self.tasks],
                               "num_labels": self.num_labels,
                               "labels": [list(t.labels) for t in self.tasks],
                               "max_length": self.args.max_length,
                               "pooling": self.args.pooling}}

    def _evaluation(self, step: int, run: RunState) -> dict:
        scores = self.evaluate()
        run.evaluations.append({"step": step, **scores})
        improved = scores["main"] > run.best_score
        if improved:
            run.best_score, run.best_step = scores["main"], step
            self.lifecycle.save_best(self.net, self.config, tokenizer=self.tokenizer,
                                     meta=self._meta())
        self.lifecycle.log.write("eval", step=step, improved=improved, main=scores["main"],
                  **{name: s["main"] for name, s in scores["tasks"].items()})
        return scores

    def _checkpoint(self, run: RunState) -> None:
        self.lifecycle.save(self.net, self.config, [self.group], run, tokenizer=self.tokenizer,
                            meta=self._meta())

    def _on_step(self, result: StepResult, run: RunState) -> dict:
        run.step = result.step
        task = self.tasks[self.sampler.task(result.step)].name
        loss = result.loss
        self.lifecycle.log.write("train", step=run.step, task=task, loss=loss,
                                 lr=result.learning_rates[0],
                                 epoch=self.sampler.epoch_of(run.step))
        return {"task": task, "loss": f"{loss:.4f}"}

    # ------------------------------------------------------------------ main
    def run(self) -> dict:
        a = self.args
        with self.lifecycle:  # claimed in the constructor; locked while the run writes
            return self._run(a)

    def _run(self, a: MultitaskArgs) -> dict:
        run = self.lifecycle.begin(
            self.net, [self.group], RunState, total_steps=a.max_steps,
            train_examples={t.name: len(f) for t, f in zip(self.tasks, self.train)},
            dev_examples={t.name: len(f) for t, f in zip(self.tasks, self.dev)},
            params=self.parameter_report())
        with Progress(a.max_steps, run.step, f"multitask {a.adapter} {a.sample}",
                      enabled=a.progress, unit="step", leave=False) as progress:
            Loop(TrainStep([self.group], Workers(distributed=False), seed=a.seed), self._loss,
                 self._batches(run.step), a.max_steps, run.step,
                 on_step=lambda result: self._on_step(result, run),
                 evaluate=lambda step: self._evaluation(step, run),
                 eval_every=self.eval_every,
                 checkpoint=lambda step: self._checkpoint(run), checkpoint_every=self.eval_every,
                 progress=progress,
                 evaluated_step=run.evaluations[-1]["step"] if run.evaluations else None).run()
        return self._finish(run)

    def _finish(self, run: RunState) -> dict:
        best = max(run.evaluations, key=lambda e: e["main"])
        frequencies = np.bincount(self.sampler.tasks(run.step), minlength=len(self.tasks))
        result = {"tasks": [t.name for t in self.tasks], "seed": self.args.seed,
                  "model": self.args.model, "adapter": self.args.adapter,
                  "sample": self.args.sample, "freeze_base": self.args.freeze_base,
                  "steps": run.step, "best_step": run.best_step, "best_main": best["main"],
                  "best": best["tasks"], "evaluations": run.evaluations,
                  "steps_per_task": {t.name: int(c) for t, c in zip(self.tasks, frequencies)},
                  "train_examples": {t.name: len(f) for t, f in zip(self.tasks, self.train)},
                  "dev_examples": {t.name: len(f) for t, f in zip(self.tasks, self.dev)},
                  "params": self.parameter_report()}
        return self.lifecycle.finish(result, self._plot, best_step=run.best_step,
                                     best=result["best"])

    def _plot(self, records: list) -> None:
        for task in self.tasks:
            name = task.name
            own = [{"event": "train", "step": r["step"], "loss": r["loss"]} for r in records
                   if r.get("event") == "train" and r.get("task") == name] + \
                  [{"event": "eval", "step": r["step"], "dev": r[name]} for r in records
                   if r.get("event") == "eval" and name in r]
            plot_curves(own, self.out / f"curve-{name}.png",
                        series=(("train", "loss"), ("eval", "dev")),
                        title=f"{name}: train loss and dev {task.metrics[0]} (main) "
                              f"against optimizer steps")


def without_adapters(config):
    """The same encoder without per-task adapters (the shared part of a multi-task model)."""
    return config.replace(adapter="none", num_tasks=1, adapter_units=None, adapter_heads=None)


def train_multitask(**kwargs) -> dict:
    """Train with keyword arguments of :class:`MultitaskArgs`; returns the result dict."""
    return MultitaskTrainer(MultitaskArgs(**kwargs)).run()

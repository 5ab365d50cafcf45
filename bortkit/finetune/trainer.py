"""Fine-tune one model on one task with one seed: train, evaluate every N steps, keep the
best checkpoint, stop early, resume after a crash, predict the test split.

Run directory layout (``output_dir``)::

    log.jsonl            every event (train loss, evaluations), appended as it happens
    checkpoint/          latest training state (weights + optimizer + step), for --resume
    checkpoint-STEP/     the last save_total_limit states, when it is > 1 (hard links)
    best/                best dev checkpoint (a bortkit checkpoint with the task head)
    result.json          final figures of this run
    learning_curve.png   train loss and dev metric against steps
    submission/          server files for the test split (with --predict)

Under Horovod (``distributed=True``, launched by ``horovodrun``) every rank holds the whole
model, takes its share of each batch (rank r keeps rows r, r + size, ...), gradients are
averaged across ranks before clipping, so ``batch_size`` stays the global batch and a run
matches the single-process one up to float summation order. Every rank evaluates (the
decisions stay identical); only rank 0 writes files. Run directories must be on a filesystem
all ranks see, so that every rank can resume from the same checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import gluon

from ..checkpoint import TaskHead, classifier_from_state, read_state
from ..checkpoint.core import assign
from ..errors import BortkitError, ConfigError
from ..metrics import task_scores
from ..tasks import Example, Task, write_predictions
from ..tasks.files import load_task
from ..tokenizers import load_tokenizer
from ..train import (LinearSchedule, Loop, ParamGroup, Progress, Run, RunState, StepResult,
                     TrainStep, Workers, make_trainer, plot_curves, seed_everything)
from ..train.run import CHECKPOINT, RESULT  # noqa: F401  (the run folder's names)
from .args import RESUME_KEYS, FinetuneArgs
from .data import Features, epoch_batches, featurize, make_batch, subsample
from .predict import batch_inputs, predict_task


def run_settings(args: FinetuneArgs) -> dict:
    """What a run records: its arguments, and the columns read from the user's files."""
    columns = {k: v for k, v in (args.files or {}).items() if k not in ("train", "dev")}
    return {**asdict(args), "columns": columns or None}


def open_run(args: FinetuneArgs, task: Task, enabled: bool = True,
             read_files: bool = True) -> Run:
    """The :class:`Run` of fine-tuning ``args`` (checked now: folder, resume settings and,
    when the run reads its train/dev files itself, their content)."""
    inputs = {f"--{split}": task.path(args.data_dir, split) for split in ("train", "dev")} \
        if read_files else {}
    return Run(args.output_dir, run_settings(args), RESUME_KEYS, resume=args.resume,
               overwrite=args.overwrite, inputs=inputs, enabled=enabled)


class Finetuner:
    """One (model, task, seed) run. ``Finetuner(args).run()`` returns the result dict.

    ``on_evaluation(step, scores) -> bool`` (Optuna pruning) is called after every
    evaluation; returning True stops the run after it. ``train_examples`` / ``dev_examples``
    replace the task's train / dev files (Agora trains on generated examples and scores on a
    held-out part of the training data). ``schedule(n)`` replaces the learning rate of
    optimizer step ``n`` (Agora plans one schedule over several rounds). ``workers`` default:
    Horovod ranks with ``args.distributed``, else this process.
    """

    def __init__(self, args: FinetuneArgs,
                 on_evaluation: Optional[Callable[[int, dict], bool]] = None,
                 train_examples: Optional[Sequence[Example]] = None,
                 dev_examples: Optional[Sequence[Example]] = None,
                 schedule: Optional[Callable[[int], float]] = None,
                 workers: Optional[Workers] = None):
        args.validate()
        self.args = args
        self.task: Task = load_task(args.task, args.files)
        self.out = Path(args.output_dir)
        self.on_evaluation = on_evaluation
        self.workers = workers or Workers(distributed=args.distributed)
        self.rank, self.size = self.workers.rank, self.workers.size
        self.is_writer = self.workers.is_root
        if args.batch_size < self.size:
            raise ConfigError(f"--batch-size {args.batch_size} is smaller than the "
                              f"{self.size} Horovod ranks that share each batch")
        self.state = read_state(args.model)
        if self.state.config.adapter != "none":
            raise ConfigError(f"--model {args.model}: the checkpoint has "
                              f"{self.state.config.adapter} adapters for "
                              f"{self.state.config.num_tasks} tasks, which need a task id; "
                              f"train it with python -m bortkit.multitask (one or more tasks)")
        self.state.config.check_sequence_length(args.max_length, path=args.model)
        if args.predict:  # the test file must be there before training, not after it
            self.task.path(args.data_dir, "test")
        self.lifecycle = open_run(args, self.task, self.is_writer,
                            read_files=train_examples is None and dev_examples is None)
        tok_path = args.tokenizer or self.state.tokenizer_dir
        if tok_path is None:
            raise BortkitError("checkpoint has no tokenizer files; pass --tokenizer",
                               path=args.model)
        self.tokenizer = load_tokenizer(tok_path)
        if self.tokenizer.vocab_size > self.state.config.vocab_size:
            raise BortkitError(f"tokenizer has {self.tokenizer.vocab_size} tokens but the model "
                               f"only {self.state.config.vocab_size}", path=tok_path)
        self._load_data(train_examples, dev_examples)
        self._build_model(schedule)

    # ------------------------------------------------------------------ setup
    def _load_data(self, train=None, dev=None) -> None:
        a = self.args
        if train is None:
            train = subsample(self.task.read(a.data_dir, "train"), a.max_train_examples, a.seed)
        if dev is None:
            dev = subsample(self.task.read(a.data_dir, "dev"), a.max_eval_examples, 0)
        self.train_examples, self.dev_examples = list(train), list(dev)
        self.train = featurize(self.task, self.train_examples, self.tokenizer, a.max_length)
        self.dev = featurize(self.task, self.dev_examples, self.tokenizer, a.max_length)
        self.steps_per_epoch = math.ceil(len(self.train) / a.batch_size / a.accumulate)
        self.total_steps = a.max_steps or max(1, math.ceil(self.steps_per_epoch * a.epochs))
        self.eval_every = a.eval_every or self.steps_per_epoch  # steps between evaluations

    def _build_model(self, schedule: Optional[Callable[[int], float]]) -> None:
        a = self.args
        seed_everything(a.seed)
        config = self.state.config
        self.config = config
        self.net, missing = classifier_from_state(self.state, self.task.num_labels, a.pooling)
        if self.task.kind == "regression" and "head.out.bias" in missing:
            # Start a new regression head at the mean target: Adam moves a bias by about
            # the learning rate per step, far too slowly to travel to e.g. STS-B's 2.7.
            mean = float(np.nanmean(self.train.labels))
            self.net.head.out.bias.set_data(mx.nd.full((1,), mean))
        self.net.hybridize(static_alloc=True)
        from ..checkpoint import named_parameters
        self.params = named_parameters(self.net)
        self.trainer = make_trainer(self.params, a.optimizer, a.learning_rate, a.weight_decay,
                                    accumulate=a.accumulate)
        self.schedule = schedule or LinearSchedule(a.learning_rate, self.total_steps,
                                                   a.warmup_ratio)
        self.group = ParamGroup(self.params, self.trainer, self.schedule,
                                max_grad_norm=a.max_grad_norm, name="finetune")
        if self.task.kind == "regression":
            self.loss_fn = gluon.loss.L2Loss()
        else:
            self.loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    # ------------------------------------------------------------------ pieces
    def _forward(self, batch):
        out = self.net(*batch_inputs(batch))
        return out.reshape((-1,)) if self.task.kind == "regression" else out

    def predict(self, features: Features) -> np.ndarray:
        """Logits (N, C) or scores (N,) in the order of ``features``."""
        return predict_task(self.net, self.task, features, self.args.eval_batch_size)

    def evaluate(self) -> dict:
        scores = task_scores(self.task, self.predict(self.dev), self.dev_examples)
        return {k: float(v) for k, v in scores.items()}

    def _micro_batches(self, start_step: int):
        """The micro-batches of each step after ``start_step``, epoch by epoch: this worker's
        rows of each (rank r keeps rows r, r + size, ...) and the step's micro-batch count."""
        a = self.args
        step = start_step
        while step < self.total_steps:
            epoch, offset = divmod(step, self.steps_per_epoch)
            batches = epoch_batches(self.train, a.batch_size, a.seed, epoch)
            for i in range(offset, self.steps_per_epoch):
                if step >= self.total_steps:
                    return
                group = batches[i * a.accumulate:(i + 1) * a.accumulate]
                yield [(index[self.rank::self.size], len(group)) for index in group]
                step += 1

    def _loss(self, micro_batch):
        """The loss of this worker's rows of one micro-batch (None: it has none)."""
        rows, count = micro_batch
        if not len(rows):  # a last batch with fewer rows than ranks
            return None
        batch = make_batch(self.train, rows)
        labels = mx.nd.array(batch.labels, dtype="float32")
        return self.loss_fn(self._forward(batch), labels).mean() / count

    def _head_meta(self) -> dict:
        return TaskHead(kind=self.task.kind, labels=tuple(self.task.labels),
                        pooling=self.args.pooling, max_length=self.args.max_length,
                        task=self.task.name).to_meta()

    def _evaluation(self, step: int, run: RunState) -> dict:
        """Evaluate on dev, keep the best weights; the scores."""
        scores = self.evaluate()
        main = scores["main"]
        run.evaluations.append({"step": step, **scores})
        improved = main > run.best_score
        if improved:
            run.best_score, run.best_step, run.bad_evaluations = main, step, 0
            self.lifecycle.save_best(self.net, self.config, tokenizer=self.tokenizer,
                               meta=self._head_meta(),
                               card={"base_model": self.args.model, "metrics": scores,
                                     "step": step, "trainer": "bortkit.finetune"})
        else:
            run.bad_evaluations += 1
        self.lifecycle.log.write("eval", step=step, improved=improved, **scores)
        return scores

    def _checkpoint(self, run: RunState) -> None:
        self.lifecycle.save(self.net, self.config, [self.group], run, tokenizer=self.tokenizer,
                      meta=self._head_meta(), keep=self.args.save_total_limit)

    def _on_step(self, result: StepResult, run: RunState) -> dict:
        run.step = result.step
        loss = result.loss
        epoch = (result.step - 1) // self.steps_per_epoch
        if run.step % 10 == 0 or run.step == 1:
            self.lifecycle.log.write("train", step=run.step, epoch=epoch, loss=loss,
                      lr=result.learning_rates[0])
        return {"loss": f"{loss:.4f}", "epoch": epoch}

    # ------------------------------------------------------------------ main
    def run(self) -> dict:
        with self.lifecycle:
            return self._run()

    def _run(self) -> dict:
        a = self.args
        run = self.lifecycle.begin(self.net, [self.group], RunState,
                             train_examples=len(self.train), dev_examples=len(self.dev),
                             total_steps=self.total_steps)
        early = lambda step, scores: bool(a.early_stopping) and \
            run.bad_evaluations >= a.early_stopping  # noqa: E731
        stop = [early] + ([self.on_evaluation] if self.on_evaluation is not None else [])
        with Progress(self.total_steps, run.step, f"{self.task.name} seed {a.seed}",
                      enabled=a.progress, writer=self.is_writer, unit="step",
                      leave=False) as progress:
            done = Loop(TrainStep([self.group], self.workers, seed=a.seed), self._loss,
                        self._micro_batches(run.step), self.total_steps, run.step,
                        on_step=lambda result: self._on_step(result, run),
                        evaluate=lambda step: self._evaluation(step, run),
                        eval_every=self.eval_every,
                        checkpoint=lambda step: self._checkpoint(run),
                        checkpoint_every=self.eval_every, stop=stop, progress=progress,
                        evaluated_step=run.evaluations[-1]["step"] if run.evaluations
                        else None).run()
        return self._finish(run, done.stopped)

    def _finish(self, run: RunState, stopped: bool) -> dict:
        best = max(run.evaluations, key=lambda e: e["main"])
        result = {"task": self.task.name, "seed": self.args.seed, "model": self.args.model,
                  "steps": run.step, "total_steps": self.total_steps,
                  "stopped_early": stopped, "best_step": run.best_step,
                  "best": {k: v for k, v in best.items() if k != "step"},
                  "evaluations": run.evaluations, "train_examples": len(self.train),
                  "dev_examples": len(self.dev)}
        if not self.is_writer:
            return result
        if self.args.predict:
            result["submission"] = str(self.predict_test())
        return self.lifecycle.finish(
            result, lambda records: plot_curves(
                records, self.out / "learning_curve.png",
                series=(("train", "loss"), ("eval", "main")),
                title=f"{self.task.name} seed {self.args.seed}"),
            best_step=run.best_step, best=result["best"])

    def predict_test(self) -> Path:
        """Write the server's submission file for the test split from the best checkpoint."""
        best = read_state(self.out / "best")
        assign(self.net, best)
        examples = self.task.read(self.args.data_dir, "test")
        features = featurize(self.task, examples, self.tokenizer, self.args.max_length)
        return write_predictions(self.task, examples, self.predict(features),
                                 self.out / "submission")


def finetune(**kwargs) -> dict:
    """Fine-tune with keyword arguments of :class:`FinetuneArgs`; returns the result dict."""
    return Finetuner(FinetuneArgs(**kwargs)).run()

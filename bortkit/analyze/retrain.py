"""Fine-tuning after an edit (Zhao et al.'s ``run_replace.py`` / ``run_remove.py`` with
``do_train=true``: 3 epochs at lr 2e-5, batch 64), on the training runtime.

The edited classifier runs through :func:`~bortkit.analyze.taps.run_network` with its
:class:`~bortkit.analyze.taps.Edits`; one :class:`~bortkit.train.ParamGroup` (BERTAdam,
linear warm-up and decay, clipping at 1.0, as ``bortkit.finetune``) holds every parameter
the edited model still uses: the weights of a removed or replaced part are left out (they
get no gradient and no weight decay, so they keep their values), and the approximators that
replace parts train with the rest, as in the reference. :class:`Retrainer` puts the weights
back before each edit, so every layer set starts from the same checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import mxnet as mx
from mxnet import gluon

from ..checkpoint.core import named_parameters
from ..finetune.data import epoch_batches, make_batch
from ..train import LinearSchedule, Loop, ParamGroup, Progress, TrainStep, Workers, make_trainer
from .taps import Edits, run_network

# part -> parameter-name prefixes inside encoder.{layer}. (a removed block takes its
# LayerNorm with it; a removed layer everything)
PART_PARAMS = {
    "attention": ("attention.",),
    "attention_block": ("attention.", "attention_norm."),
    "ffn": ("ffn.",),
    "ffn_block": ("ffn.", "ffn_norm."),
    "layer": ("",),
}


def unused_names(names, edited: set) -> list:
    """Parameter names of the (layer, part) pairs in ``edited``: what the edited model no
    longer uses."""
    prefixes = tuple(f"encoder.{layer}.{p}" for layer, part in edited
                     for p in PART_PARAMS[part])
    return [n for n in names if prefixes and n.startswith(prefixes)]


@dataclass
class RetrainSettings:
    """How long and how fast to fine-tune after each edit. ``steps`` wins over ``epochs``."""

    steps: Optional[int] = None
    epochs: float = 3.0              # the reference's
    learning_rate: float = 2e-5      # the reference's
    batch_size: int = 64             # the reference's
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 0

    def total_steps(self, examples: int) -> int:
        if self.steps:
            return self.steps
        return max(1, math.ceil(self.epochs * math.ceil(examples / self.batch_size)))


class Retrainer:
    """Fine-tunes a :class:`~bortkit.analyze.experiments.Subject` with edits and scores it;
    the weights are restored before every run."""

    def __init__(self, subject, train, settings: RetrainSettings, progress: bool = False):
        self.subject, self.train, self.settings = subject, train, settings
        self.progress = progress
        self.params = named_parameters(subject.classifier)
        self.saved = {k: p.data().copy() for k, p in self.params.items()}
        self.loss = gluon.loss.L2Loss() if subject.task.kind == "regression" \
            else gluon.loss.SoftmaxCrossEntropyLoss()

    def restore(self) -> None:
        for name, value in self.saved.items():
            self.params[name].set_data(value)

    def run(self, edits: Edits, edited: set, blocks: dict) -> int:
        """Fine-tune the model with ``edits`` (``edited``: its (layer, part) pairs whose
        weights go unused; ``blocks``: name -> Gluon block of each trainable approximator).
        Returns the number of steps; the caller evaluates."""
        s, subject = self.settings, self.subject
        self.restore()
        unused = set(unused_names(self.params, edited))
        params = {k: p for k, p in self.params.items()
                  if k not in unused and p.grad_req != "null"}
        for name, block in blocks.items():
            params.update({f"{name}.{k}": p for k, p in block.collect_params().items()})
        total = s.total_steps(len(self.train.features))
        group = ParamGroup(params, make_trainer(params, "bertadam", s.learning_rate,
                                                s.weight_decay),
                           LinearSchedule(s.learning_rate, total, s.warmup_ratio),
                           max_grad_norm=s.max_grad_norm, name="weights")

        def loss_fn(batch):
            arrays = [mx.nd.array(a) for a in (batch.input_ids, batch.token_type_ids,
                                              batch.attention_mask)]
            sequence, pooled, _ = run_network(subject.network, *arrays, edits)
            if pooled is None:
                pooled = mx.nd.zeros((1, 1))
            out = subject.classifier.head(sequence, pooled, arrays[2])
            out = out.reshape((-1,)) if subject.task.kind == "regression" else out
            return [self.loss(out, mx.nd.array(batch.labels)).mean()]

        def batches():
            per_epoch = math.ceil(len(self.train.features) / s.batch_size)
            order = None
            for step in range(total):
                epoch, offset = divmod(step, per_epoch)
                if order is None or offset == 0:
                    order = epoch_batches(self.train.features, s.batch_size, s.seed, epoch)
                yield [make_batch(self.train.features, order[offset])]

        with Progress(total, 0, desc="fine-tune", enabled=self.progress) as progress:
            result = Loop(TrainStep([group], Workers(distributed=False), seed=s.seed),
                          loss_fn, batches(), total, progress=progress).run()
        return result.step

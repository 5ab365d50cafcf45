"""Inference with a classifier (a network with a task head): one function for the
fine-tuning run's evaluations and for fine-tuned checkpoints (Agora's teacher and
candidates).

Any object with ``label(examples) -> np.ndarray`` of class ids can be Agora's teacher;
:class:`CheckpointClassifier` wraps a bortkit checkpoint written by
``python -m bortkit.finetune`` (its ``config.json`` names the task of its head).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..checkpoint import TaskHead, classifier_from_state, read_state
from ..errors import CheckpointError
from ..tasks import Example, Task
from ..tasks.files import FileTask
from .data import Features, TaskBatch, eval_batches, featurize, make_batch


def batch_inputs(batch: TaskBatch) -> list:
    """The network's inputs (ids, token types, mask) of a batch, as NDArrays."""
    import mxnet as mx  # here: importing this module (Agora, the sweep) needs no MXNet
    return [mx.nd.array(x) for x in (batch.input_ids, batch.token_type_ids,
                                     batch.attention_mask)]


def predict_logits(net, num_labels: int, features: Features, batch_size: int = 64,
                   task_id: Optional[int] = None) -> np.ndarray:
    """(N, num_labels) outputs of ``net`` for ``features``, in their order (length-bucketed
    batches of at most ``batch_size``); ``task_id``: the head of a multi-task model."""
    from ..model import classifier_logits  # the one place a task head runs for predictions
    run = net if task_id is None else (lambda *inputs: net(*inputs, task_id))
    rows = np.zeros((len(features), num_labels), np.float32)
    for index in eval_batches(features, batch_size):
        batch = make_batch(features, index)
        rows[index] = classifier_logits(run, batch.input_ids, batch.token_type_ids,
                                        batch.attention_mask)
    return rows


def predict_task(net, task: Task, features: Features, batch_size: int = 64,
                 task_id: Optional[int] = None) -> np.ndarray:
    """What :func:`bortkit.metrics.task_scores` takes for ``task``: logits (N, C), or
    scores (N,) for a regression task. Every trainer's evaluation goes through here."""
    rows = predict_logits(net, task.num_labels, features, batch_size, task_id)
    return rows[:, 0] if task.kind == "regression" else rows


class CheckpointClassifier:
    """A fine-tuned checkpoint with its task head, for inference on :class:`Example` s."""

    def __init__(self, path: os.PathLike | str, task: Task, max_length: Optional[int] = None,
                 batch_size: int = 64):
        from ..tokenizers import load_tokenizer
        state = read_state(path)
        head = TaskHead.from_meta(state.meta, Path(path))
        if head is None:
            raise CheckpointError("no task head in this checkpoint (config.json has no _head); "
                                  "fine-tune it first with python -m bortkit.finetune", path=path)
        if isinstance(task, FileTask):  # the user's files: the label set is what must match
            if (head.kind, head.labels) != (task.kind, tuple(task.labels)):
                raise CheckpointError(f"checkpoint's head predicts {head.kind} labels "
                                      f"({', '.join(head.labels)}), the task's are "
                                      f"{task.kind} ({', '.join(task.labels)})", path=path)
        elif head.task != task.name:
            raise CheckpointError(f"checkpoint was fine-tuned on {head.task}, not {task.name}",
                                  path=path)
        if state.tokenizer_dir is None:
            raise CheckpointError("checkpoint has no tokenizer files", path=path)
        self.task, self.batch_size = task, batch_size
        self.max_length = max_length or head.max_length
        self.tokenizer = load_tokenizer(state.tokenizer_dir)
        self.net, _ = classifier_from_state(state, task.num_labels, head.pooling)
        self.net.hybridize(static_alloc=True)

    def logits(self, examples: Sequence[Example]) -> np.ndarray:
        """(N, C) scores in the order of ``examples``."""
        features = featurize(self.task, examples, self.tokenizer, self.max_length)
        return predict_logits(self.net, self.task.num_labels, features, self.batch_size)

    def label(self, examples: Sequence[Example]) -> np.ndarray:
        """Predicted class ids."""
        return self.logits(examples).argmax(axis=1)

"""Inference with a classifier (a network with a task head): one function for the
fine-tuning run's evaluations and for fine-tuned checkpoints (Agora's teacher and
candidates).

Any object with ``label(examples) -> np.ndarray`` of class ids can be Agora's teacher;
:class:`CheckpointClassifier` wraps a bortkit checkpoint written by
``python -m bortkit.finetune`` (its ``config.json`` names the task of its head).
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from ..checkpoint import classifier_from_state, read_state
from ..errors import CheckpointError
from ..tasks import Example, Task
from .data import Features, TaskBatch, eval_batches, featurize, make_batch


def batch_inputs(batch: TaskBatch) -> list:
    """The network's inputs (ids, token types, mask) of a batch, as NDArrays."""
    import mxnet as mx  # here: importing this module (Agora, the sweep) needs no MXNet
    return [mx.nd.array(x) for x in (batch.input_ids, batch.token_type_ids,
                                     batch.attention_mask)]


def predict_logits(net, num_labels: int, features: Features, batch_size: int = 64) -> np.ndarray:
    """(N, num_labels) outputs of ``net`` for ``features``, in their order (length-bucketed
    batches of at most ``batch_size``)."""
    rows = np.zeros((len(features), num_labels), np.float32)
    for index in eval_batches(features, batch_size):
        out = net(*batch_inputs(make_batch(features, index)))
        rows[index] = out.reshape((len(index), -1)).asnumpy()
    return rows


class CheckpointClassifier:
    """A fine-tuned checkpoint with its task head, for inference on :class:`Example` s."""

    def __init__(self, path: os.PathLike | str, task: Task, max_length: Optional[int] = None,
                 batch_size: int = 64):
        from ..tokenizers import load_tokenizer
        state = read_state(path)
        head = state.meta.get("_head")
        if not head:
            raise CheckpointError("no task head in this checkpoint (config.json has no _head); "
                                  "fine-tune it first with python -m bortkit.finetune", path=path)
        if head["task"] != task.name:
            raise CheckpointError(f"checkpoint was fine-tuned on {head['task']}, not {task.name}",
                                  path=path)
        if state.tokenizer_dir is None:
            raise CheckpointError("checkpoint has no tokenizer files", path=path)
        self.task, self.batch_size = task, batch_size
        self.max_length = max_length or head.get("max_length", 128)
        self.tokenizer = load_tokenizer(state.tokenizer_dir)
        self.net, _ = classifier_from_state(state, task.num_labels, head.get("pooling", "cls"))
        self.net.hybridize(static_alloc=True)

    def logits(self, examples: Sequence[Example]) -> np.ndarray:
        """(N, C) scores in the order of ``examples``."""
        features = featurize(self.task, examples, self.tokenizer, self.max_length)
        return predict_logits(self.net, self.task.num_labels, features, self.batch_size)

    def label(self, examples: Sequence[Example]) -> np.ndarray:
        """Predicted class ids."""
        return self.logits(examples).argmax(axis=1)

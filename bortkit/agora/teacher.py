"""Fine-tuned checkpoints as classifiers: the teacher S that labels generated data, and the
candidates whose mistakes on E tell Agora where to generate.

Any object with ``label(examples) -> np.ndarray`` of class ids can be a teacher
(``Agora(..., teacher=...)``); :class:`CheckpointClassifier` wraps a bortkit checkpoint
written by ``python -m bortkit.finetune`` (its ``config.json`` names the task of its head).
"""
from __future__ import annotations

import os
from typing import Optional, Protocol, Sequence

import numpy as np

from ..checkpoint import classifier_from_state, read_state
from ..errors import CheckpointError
from ..finetune.data import eval_batches, featurize, make_batch
from ..tasks import Example, Task


class Teacher(Protocol):
    def label(self, examples: Sequence[Example]) -> np.ndarray: ...


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
        import mxnet as mx
        features = featurize(self.task, examples, self.tokenizer, self.max_length)
        rows = np.zeros((len(features), self.task.num_labels), np.float32)
        for index in eval_batches(features, self.batch_size):
            batch = make_batch(features, index)
            inputs = [mx.nd.array(x) for x in (batch.input_ids, batch.token_type_ids,
                                              batch.attention_mask)]
            rows[index] = self.net(*inputs).reshape((len(index), -1)).asnumpy()
        return rows

    def label(self, examples: Sequence[Example]) -> np.ndarray:
        """Predicted class ids."""
        return self.logits(examples).argmax(axis=1)

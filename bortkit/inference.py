"""Raw text in, predictions out, from a fine-tuned checkpoint::

    classify = bortkit.pipeline("runs/sst2/SST-2/seed-0/best")
    classify(["A gripping, funny film.", "Dull."])
    # [{'label': '1', 'score': 0.97}, {'label': '0', 'score': 0.91}]
    classify([("A man plays a guitar.", "Someone plays music.")])   # pairs for pair tasks
    # regression heads: [{'value': 4.1}]

Inputs are tokenised with the checkpoint's tokenizer, truncated to the length the head was
trained with, sorted by length into batches and run through the head
(:meth:`bortkit.model.Model.logits`) with the pooling it was trained with.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .errors import CheckpointError, ConfigError, DataError

Input = Union[str, Tuple[str, str]]


def _split_inputs(inputs: Sequence[Input]) -> tuple[list, Optional[list]]:
    """(texts, pairs or None); every input is a string or a pair of strings."""
    if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__len__"):
        raise DataError(f"inputs must be a list of strings or of string pairs, got "
                        f"{type(inputs).__name__}")
    texts, pairs = [], []
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            texts.append(item)
            pairs.append(None)
        elif isinstance(item, (tuple, list)) and len(item) == 2 \
                and all(isinstance(x, str) for x in item):
            texts.append(item[0])
            pairs.append(item[1])
        else:
            raise DataError(f"inputs[{i}] must be a string or a pair of strings, got "
                            f"{item!r:.80}")
    return texts, (pairs if any(p is not None for p in pairs) else None)


class Pipeline:
    """A loaded model with a task head, callable on raw text. See :func:`pipeline`."""

    def __init__(self, model, batch_size: int = 32, max_length: Optional[int] = None):
        if model.head is None:
            raise CheckpointError("this checkpoint has no task head (fine-tune it first with "
                                  "python -m bortkit.finetune); for sentence vectors use "
                                  "bortkit.from_pretrained(path).embed(texts)",
                                  path=model.source)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.model, self.head, self.batch_size = model, model.head, batch_size
        self.max_length = max_length or self.head.max_length
        positions = model.config.max_length - model.config.position_offset
        if not 3 <= self.max_length <= positions:
            raise ConfigError(f"max_length must be between 3 and {positions} (the model's "
                              f"positions), got {self.max_length}")
        self.tokenizer = model.tokenizer

    def logits(self, inputs: Sequence[Input], progress=None) -> np.ndarray:
        """Head outputs (N, C) in input order: class logits, or (N, 1) predicted values.
        ``progress`` is called with the number of inputs of each batch done."""
        texts, pairs = _split_inputs(inputs)
        out = np.zeros((len(texts), self.head.num_labels), np.float32)
        for index, batch in self.tokenizer.sorted_batches(texts, pairs, self.max_length,
                                                          self.batch_size):
            out[index] = self.model.logits(batch["input_ids"], batch["token_type_ids"],
                                           batch["attention_mask"])
            if progress is not None:
                progress(len(index))
        return out

    def __call__(self, inputs: Sequence[Input], progress=None) -> list[dict]:
        """One dict per input: ``{"label": name, "score": p}`` (p the softmax probability of
        the predicted label) or ``{"value": y}`` for a regression head."""
        logits = self.logits(inputs, progress)
        if self.head.kind == "regression":
            return [{"value": float(v)} for v in logits[:, 0]]
        from scipy.special import softmax
        probs = softmax(logits.astype(np.float64), axis=1)
        best = probs.argmax(axis=1)
        return [{"label": self.head.labels[k], "score": float(p[k])} for k, p in zip(best, probs)]


def pipeline(model: Union[str, os.PathLike, "object"], batch_size: int = 32,
             max_length: Optional[int] = None) -> Pipeline:
    """A callable over raw strings (or string pairs) from a fine-tuned checkpoint path (a
    ``best/`` directory, a Hugging Face ``...ForSequenceClassification`` directory) or a
    loaded :class:`~bortkit.model.Model` with a head. ``max_length`` (default: as trained)
    truncates longer inputs."""
    from .model import Model
    if not isinstance(model, Model):
        from .checkpoint import from_pretrained
        model = from_pretrained(model)
    return Pipeline(model, batch_size=batch_size, max_length=max_length)

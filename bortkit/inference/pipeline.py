"""``bortkit.pipeline``: transformers' text-classification pipeline over any bortkit model::

    classify = bortkit.pipeline("runs/sst2/SST-2/seed-0/best")   # or a Model, an int8
    classify("A gripping, funny film.")                          # model, an ONNX export
    # [{'label': '1', 'score': 0.97}]
    classify(["A gripping, funny film.", "Dull."])
    # [{'label': '1', 'score': 0.97}, {'label': '0', 'score': 0.91}]
    classify("Dull.", top_k=None)                                # every label, best first
    # [{'label': '0', 'score': 0.91}, {'label': '1', 'score': 0.09}]
    classify([("A man plays a guitar.", "Someone plays music.")])  # pairs for pair tasks
    # regression heads, as transformers: [{'label': 'LABEL_0', 'score': 4.1}]

The call and return format are transformers' (``TextClassificationPipeline``): without
``top_k`` one dict per input (a single string gives a list of one dict); with ``top_k=k``
the k best labels per input, best first (``top_k=None``: all), a single string giving that
list and a list of inputs a list of such lists. Scores are softmax probabilities, or the
predicted value of a regression head. Inputs are tokenised with the model's tokenizer,
truncated to the length the head was trained with (``max_length``), sorted by length into
batches and run through the head with the pooling it was trained with. An empty text is an
error naming its position.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import numpy as np

from ..errors import CheckpointError, ConfigError, DataError

Input = Union[str, Tuple[str, str], dict]
_ALL = object()  # top_k not given: transformers' one-dict-per-input ("legacy") format

NO_HEAD = ("this checkpoint has no task head (fine-tune it first with python -m bortkit.finetune); "
           "for sentence vectors use bortkit.from_pretrained(path).embed(texts)")


def _split_inputs(inputs, allow_empty: bool = False) -> tuple[list, Optional[list]]:
    """(texts, pairs or None) of a list whose items are a string, a (text, pair) tuple or
    transformers' ``{"text": ..., "text_pair": ...}``; an empty text is refused unless
    ``allow_empty``."""
    if isinstance(inputs, (str, bytes, dict)) or not hasattr(inputs, "__len__"):
        raise DataError(f"inputs must be a string or a list of strings or of string pairs, "
                        f"got {type(inputs).__name__}")
    texts, pairs = [], []
    for i, item in enumerate(inputs):
        if isinstance(item, dict) and set(item) <= {"text", "text_pair"} and "text" in item:
            item = (item["text"], item["text_pair"]) if "text_pair" in item else item["text"]
        if isinstance(item, str):
            text, pair = item, None
        elif isinstance(item, (tuple, list)) and len(item) == 2 \
                and all(isinstance(x, str) for x in item):
            text, pair = item
        else:
            raise DataError(f"inputs[{i}] must be a string or a pair of strings, got "
                            f"{item!r:.80}")
        for name, value in (("", text), (" (its pair)", pair)):
            if value is not None and not value.strip() and not allow_empty:
                raise DataError(f"inputs[{i}]{name} is empty: nothing to classify")
        texts.append(text)
        pairs.append(pair)
    return texts, (pairs if any(p is not None for p in pairs) else None)


def _check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


class Pipeline:
    """A model with a task head, callable on raw text. See :func:`pipeline`.

    ``run`` maps (B, T) ``input_ids``, ``token_type_ids``, ``attention_mask`` to the head's
    outputs (B, C); ``head`` is the model's :class:`~bortkit.checkpoint.heads.TaskHead`;
    ``positions`` the longest input the model takes.
    """

    def __init__(self, run: Callable, tokenizer, head, positions: int, model=None,
                 batch_size: int = 32, max_length: Optional[int] = None):
        self.run, self.tokenizer, self.head, self.model = run, tokenizer, head, model
        self.positions = positions
        self.batch_size = _check_batch_size(batch_size)
        self.max_length = max_length or head.max_length
        if not 3 <= self.max_length <= positions:
            raise ConfigError(f"max_length must be between 3 and {positions} (the model's "
                              f"positions), got {self.max_length}")
        self.labels = list(head.labels) if head.kind == "classification" else ["LABEL_0"]

    def logits(self, inputs: Sequence[Input], progress=None,
               batch_size: Optional[int] = None, allow_empty: bool = True) -> np.ndarray:
        """Head outputs (N, C) in input order: class logits, or (N, 1) predicted values
        (raw outputs: an empty text is its specials' encoding). ``progress`` is called with
        the number of inputs of each batch done."""
        texts, pairs = _split_inputs(inputs, allow_empty)
        size = self.batch_size if batch_size is None else _check_batch_size(batch_size)
        out = np.zeros((len(texts), self.head.num_labels), np.float32)
        for index, batch in self.tokenizer.sorted_batches(texts, pairs, self.max_length, size):
            out[index] = self.run(batch["input_ids"], batch["token_type_ids"],
                                  batch["attention_mask"])
            if progress is not None:
                progress(len(index))
        return out

    def __call__(self, inputs: Union[Input, Sequence[Input]], top_k=_ALL,
                 batch_size: Optional[int] = None, truncation: bool = True, progress=None):
        """transformers' format: see the module's documentation. ``truncation=False``
        refuses an input longer than ``max_length`` instead of cutting it."""
        single = isinstance(inputs, (str, dict))
        batch = [inputs] if single else inputs
        if top_k is not _ALL and top_k is not None and (
                isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise ConfigError(f"top_k must be a positive integer or None (every label), "
                              f"got {top_k!r}")
        if not truncation:
            self._check_lengths(batch)
        logits = self.logits(batch, progress, batch_size, allow_empty=False)
        if self.head.kind == "regression":
            scores = logits.astype(np.float64)
        else:
            from scipy.special import softmax
            scores = softmax(logits.astype(np.float64), axis=1)
        if top_k is _ALL:
            best = scores.argmax(axis=1)
            results = [{"label": self.labels[k], "score": float(row[k])}
                       for k, row in zip(best, scores)]
        else:
            results = []
            for row in scores:
                order = np.argsort(-row, kind="stable")[:top_k]
                results.append([{"label": self.labels[k], "score": float(row[k])}
                                for k in order])
        return results[0] if single and top_k is not _ALL else results

    def _check_lengths(self, inputs) -> None:
        texts, pairs = _split_inputs(inputs)
        for i, (text, pair) in enumerate(zip(texts, pairs or [None] * len(texts))):
            length = len(self.tokenizer(text, pair)["input_ids"])
            if length > self.max_length:
                raise DataError(f"inputs[{i}] has {length} tokens, more than max_length "
                                f"{self.max_length} (truncation=False)")


def _from_model(model):
    """(run, tokenizer, head, positions) of a loaded Model, int8 model or OnnxModel."""
    from ..checkpoint.heads import TaskHead
    from ..model import Model
    from .onnx_model import OnnxModel
    if isinstance(model, Model):
        if model.head is None:
            raise CheckpointError(NO_HEAD, path=model.source)
        config = model.config
        return model.logits, model.tokenizer, model.head, config.max_length - \
            config.position_offset
    if isinstance(model, OnnxModel):
        from ..config import from_dict
        from ..tokenizers import load_tokenizer
        head = TaskHead.from_meta(model.meta, model.source)
        if head is None or "logits" not in model.output_names:
            raise CheckpointError(NO_HEAD, path=model.source)
        config = from_dict({k: v for k, v in model.meta.items() if not k.startswith("_")},
                           model.source)

        def run(ids, types, mask):
            return model.run(ids, types, mask)["logits"]
        return run, load_tokenizer(model.source), head, config.max_length - \
            config.position_offset
    if callable(getattr(model, "predict", None)) and hasattr(model, "record"):  # int8 model
        where = Path(model.source) if getattr(model, "source", None) else Path(".")
        head = TaskHead.from_meta(model.meta, where)
        if head is None:
            raise CheckpointError(NO_HEAD, path=getattr(model, "source", None))
        config = model.config
        return model.predict, model.tokenizer, head, config.max_length - config.position_offset
    raise ConfigError(f"model must be a checkpoint path, a bortkit Model, an int8 model or an "
                      f"ONNX export folder, got {type(model).__name__}")


def pipeline(model: Union[str, os.PathLike, object], batch_size: int = 32,
             max_length: Optional[int] = None) -> Pipeline:
    """A callable over raw strings (or string pairs) in transformers' text-classification
    format. ``model`` is a fine-tuned checkpoint path (a ``best/`` directory, a Hugging Face
    ``...ForSequenceClassification`` directory, a saved int8 model, an ONNX export folder
    run by ONNX Runtime) or a loaded model (:class:`~bortkit.model.Model`,
    :class:`~bortkit.quantize.QuantizedModel`, :class:`~bortkit.inference.OnnxModel`) with
    a task head. ``max_length`` (default: as trained) truncates longer inputs."""
    _check_batch_size(batch_size)
    if isinstance(model, (str, os.PathLike)):
        from .onnx_model import OnnxModel, is_onnx_export
        if is_onnx_export(model):
            model = OnnxModel(model)
        else:
            from .. import from_pretrained
            model = from_pretrained(model)
    run, tokenizer, head, positions = _from_model(model)
    return Pipeline(run, tokenizer, head, positions, model=model, batch_size=batch_size,
                    max_length=max_length)

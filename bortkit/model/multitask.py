"""One encoder for several tasks: per-task adapters (:mod:`.adapters`) and one head per task.

Training code passes the task id of each batch::

    config = state.config.replace(adapter="pals", num_tasks=len(tasks))
    model = MultiTaskClassifier(BertNetwork(config, prefix="bert_"), num_labels=[2, 2, 1])
    model.initialize(mx.init.Normal(0.02))
    assign(model, state)                  # the pretrained encoder; adapters and heads are new
    trainable = freeze_base(model)        # optional: adapters, LayerNorms and heads only
    with autograd.record():
        outputs = model(input_ids, token_type_ids, attention_mask, task_id)   # (B, C_task)

The adapters of every task live in one stacked parameter per weight, so one cached graph
serves all tasks; the heads differ in width and are picked in Python.
"""
from __future__ import annotations

from typing import Sequence

import mxnet as mx
from mxnet.gluon import Block, HybridBlock, nn

from ..errors import BortkitError, ConfigError
from .blocks import ClassificationHead

#: Structural-name fragments of adapter parameters (see :mod:`.adapters` and BertNetwork).
ADAPTER_PARTS = (".task_projections.", ".pal.", ".low_rank.", ".attention_adapter.",
                 ".ffn_adapter.", ".lhuc.", ".top.", ".top_layer.")


class TaskEncoder(HybridBlock):
    """A cached graph over ``network`` (with adapters) that takes the task id as a fourth
    input: (B, T) ids, types, mask and (1,) task -> sequence (B, T, U) [, pooled (B, U)]."""

    def __init__(self, network, **kwargs):
        super().__init__(prefix=network.prefix, params=network.collect_params(), **kwargs)
        self.network = network

    def hybrid_forward(self, F, input_ids, token_type_ids, attention_mask, task_id):
        sequence, pooled, _, _ = self.network.run(F, input_ids, token_type_ids, attention_mask,
                                                  task_id=task_id)
        return sequence if pooled is None else (sequence, pooled)


class MultiTaskClassifier(Block):
    """A :class:`~bortkit.model.BertNetwork` (with or without adapters) and one
    :class:`ClassificationHead` per task; ``num_labels[t]`` outputs for task t (1 regresses).

    ``model(input_ids, token_type_ids, attention_mask, task_id)``: (B, T) NDArrays and an
    int task id -> (B, num_labels[task_id]). Parameters are named ``embeddings.*``,
    ``encoder.*``, ``task_projections.*``, ``top.*``, ``pooler.*`` and ``heads.<t>.*``.
    """

    def __init__(self, network, num_labels: Sequence[int], pooling: str = "cls", **kwargs):
        super().__init__(**kwargs)
        config = network.config
        labels = list(num_labels) if isinstance(num_labels, (list, tuple)) else None
        if not labels or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0
                             for n in labels):
            raise ConfigError(f"num_labels must be a non-empty list of positive integers, one "
                              f"per task; got {num_labels!r}")
        if config.adapter != "none" and len(labels) != config.num_tasks:
            raise ConfigError(f"num_labels lists {len(labels)} tasks but the model's "
                              f"{config.adapter} adapters serve num_tasks={config.num_tasks}")
        self.config = config
        self.num_labels = labels
        self._pooler = config.use_pooler
        with self.name_scope():
            self.network = network
            self.heads = nn.HybridSequential(prefix="heads_")
            with self.heads.name_scope():
                for t, n in enumerate(labels):
                    self.heads.add(ClassificationHead(config, n, pooling=pooling,
                                                      prefix=f"task{t}_"))
            if config.adapter != "none":
                self.task_encoder = TaskEncoder(network)

    @property
    def num_tasks(self) -> int:
        return len(self.num_labels)

    def check_task(self, task_id) -> int:
        """``task_id`` as an int, or a one-line error when it names no task."""
        n = self.num_tasks
        if isinstance(task_id, bool) or not isinstance(task_id, int) or not 0 <= task_id < n:
            raise BortkitError(f"task_id must be an integer in [0, {n - 1}] (this model has "
                               f"{n} tasks), got {task_id!r}")
        return task_id

    def forward(self, input_ids, token_type_ids, attention_mask, task_id):
        t = self.check_task(task_id)
        if self.config.adapter == "none":
            outputs = self.network(input_ids, token_type_ids, attention_mask)
        else:
            task = mx.nd.array([t], ctx=input_ids.context)                    # (1,)
            outputs = self.task_encoder(input_ids, token_type_ids, attention_mask, task)
        sequence, pooled = outputs if self._pooler else \
            (outputs, mx.nd.zeros((1, 1), ctx=input_ids.context))          # head ignores it
        return self.heads[t](sequence, pooled, attention_mask)              # (B, C_t)


def is_adapter_parameter(name: str) -> bool:
    """Whether a structural parameter name (``named_parameters``) belongs to an adapter."""
    return any(part in f".{name}" for part in ADAPTER_PARTS)


def freeze_base(block) -> list:
    """Train only the adapters, the LayerNorms and the task heads, as Stickland and Murray's
    ``--freeze``: every other parameter (embeddings, attention, FFN, pooler) gets
    ``grad_req = "null"``. Returns the names left trainable."""
    from .names import named_parameters
    config = getattr(block, "config", None)
    if config is None or config.adapter == "none":
        raise ConfigError("freeze_base: the model has no adapters (adapter is 'none'), so only "
                          "LayerNorms and heads would train; build it with adapter='pals', "
                          "'low_rank', 'houlsby', 'lhuc', 'top' or 'top_layer'")
    trainable = []
    for name, param in named_parameters(block).items():
        norm = name.endswith((".gamma", ".beta"))          # every LayerNorm
        if is_adapter_parameter(name) or norm or name.startswith(("heads.", "head.")):
            trainable.append(name)
        else:
            param.grad_req = "null"
    return trainable

"""The masked-LM models of distillation and how batches go into them."""
from __future__ import annotations

import mxnet as mx

from ..config import ModelConfig
from ..model import BertNetwork, MaskedLMModel

class MaskedLMWithInternals(MaskedLMModel):
    """:class:`~bortkit.model.MaskedLMModel` that can also return every layer's hidden
    states (L+1, B, T, U) and attention probabilities (L, B, H, T, T), for layer transfer.

    Returns ``logits`` alone, or a tuple ``(logits[, hidden][, attentions])``.
    """

    def __init__(self, network: BertNetwork, collect_hidden: bool = False,
                 collect_attentions: bool = False, **kwargs):
        super().__init__(network, **kwargs)
        self._collect = (collect_hidden, collect_attentions)

    def hybrid_forward(self, F, input_ids, token_type_ids, attention_mask, masked_positions):
        sequence, _, hidden, attentions = self.network.run(
            F, input_ids, token_type_ids, attention_mask, *self._collect)
        logits = self.mlm_head(F.take(sequence.reshape((-3, 0)), masked_positions))
        outputs = [logits]
        if hidden:
            outputs.append(F.stack(*hidden, axis=0))
        if attentions:
            outputs.append(F.stack(*attentions, axis=0))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def build_masked_lm(config: ModelConfig, collect_hidden: bool = False,
                    collect_attentions: bool = False, ctx=None) -> MaskedLMWithInternals:
    """A freshly initialised (Normal(0.02)) masked-LM model of ``config``."""
    model = MaskedLMWithInternals(BertNetwork(config, prefix="bert_"), collect_hidden,
                                  collect_attentions)
    model.initialize(mx.init.Normal(0.02), ctx=ctx or mx.cpu())
    return model


def token_types(config: ModelConfig, types: mx.nd.NDArray) -> mx.nd.NDArray:
    """Token types as the model can take them: a model with one type sees zeros."""
    return types if config.type_vocab_size >= 2 else mx.nd.zeros_like(types)


def batch_arrays(batch, ctx) -> dict:
    """A :class:`~bortkit.data.PretrainingBatch` as float32 NDArrays on ``ctx``."""
    as_nd = lambda a: mx.nd.array(a, ctx=ctx, dtype="float32")  # noqa: E731
    return {"input_ids": as_nd(batch.input_ids), "token_type_ids": as_nd(batch.token_type_ids),
            "attention_mask": as_nd(batch.attention_mask),
            "masked_positions": as_nd(batch.masked_positions),
            "masked_labels": as_nd(batch.masked_labels),
            "masked_weights": as_nd(batch.masked_weights)}


def as_outputs(result) -> list:
    """A model's output(s) as a list."""
    return [result] if isinstance(result, mx.nd.NDArray) else list(result)

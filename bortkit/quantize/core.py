"""Calibrated static int8 quantization of a family model through MXNet's oneDNN backend.

``quantize_int8(state, batches)`` turns the encoder (or the encoder with its task head) into
a oneDNN int8 graph: every fully connected layer (query/key/value as one product, the
output projection, both FFN products) and the two attention products run in int8 with
activation ranges calibrated on real text; embeddings, LayerNorm, the mask and softmax stay
in fp32 (MXNet's "smart" mode quantizes an operator only where its neighbours let the int8
data flow without extra conversions). Weights are quantized per output channel.

The calibration run collects the min/max of every quantized tensor over the calibration
batches ("naive" mode); a few hundred sentences are enough.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError

QUANTIZATIONS = ("int8",)
CALIBRATION_BATCH = 16       # sentences per calibration batch
CALIBRATION_MAX_LENGTH = 128  # calibration sentences are cut to this many tokens


def check_calibration(quantize: Optional[str], calibration) -> list:
    """Validate ``quantize=`` / ``calibration=`` before any work; returns the texts."""
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, "
                          f"got {quantize!r}")
    if calibration is None or isinstance(calibration, str):
        raise ConfigError("calibration must be a list of sentences of real text (a few "
                          f"hundred), got {type(calibration).__name__}")
    texts = list(calibration)
    if not all(isinstance(t, str) for t in texts):
        raise ConfigError("calibration must hold strings only")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ConfigError("calibration text is empty: give a few hundred sentences of real "
                          "text")
    return texts


def calibration_batches(tokenizer, texts: Sequence[str], max_length: int) -> list:
    """Tokenized (input_ids, token_type_ids, attention_mask) batches, all padded to one
    length (the calibration graph has one shape)."""
    rows = [tokenizer(t, max_length=max_length) for t in texts]
    padded = tokenizer.pad(rows)
    batches = []
    for start in range(0, len(texts), CALIBRATION_BATCH):
        part = slice(start, start + CALIBRATION_BATCH)
        batches.append(tuple(padded[k][part] for k in
                             ("input_ids", "token_type_ids", "attention_mask")))
    if len(batches) > 1 and len(batches[-1][0]) < CALIBRATION_BATCH:
        batches.pop()  # one shape for every batch; the dropped tail is < 16 sentences
    return batches


class _Inputs:
    """Which (B, T) inputs the graph reads: the token types only when the model has them."""

    def __init__(self, config):
        self.use_types = bool(config.type_vocab_size)

    def select(self, ids, types, mask) -> list:
        return [ids, types, mask] if self.use_types else [ids, mask]


def _graph_block(network, inputs: _Inputs):
    """A HybridBlock over ``network`` (+ head) whose inputs are exactly the graph's inputs
    (MXNet's quantizer binds every declared input)."""
    from mxnet.gluon import HybridBlock

    class InferenceGraph(HybridBlock):
        def __init__(self):
            super().__init__(prefix=network.prefix, params=network.collect_params())
            self.network = network

        def hybrid_forward(self, F, ids, *rest):
            types, mask = rest if inputs.use_types else (F.zeros_like(ids), rest[0])
            return self.network(ids, types, mask)

    return InferenceGraph()


class QuantizedModel:
    """An int8 oneDNN graph of a family model: numpy (B, T) in, numpy out.

    Without a task head ``encode`` returns an :class:`~bortkit.model.EncoderOutput`
    (last hidden state and pooler); with one, ``predict`` returns the logits (B, C).
    """

    def __init__(self, config, block, head: Optional[dict]):
        self.config = config
        self.head = head
        self._block = block
        self._inputs = _Inputs(config)

    def _run(self, input_ids, token_type_ids=None, attention_mask=None) -> list:
        import mxnet as mx
        ids = np.atleast_2d(np.asarray(input_ids))
        types = np.zeros_like(ids) if token_type_ids is None else np.atleast_2d(token_type_ids)
        mask = np.ones_like(ids) if attention_mask is None else np.atleast_2d(attention_mask)
        args = [mx.nd.array(a, dtype="float32") for a in self._inputs.select(ids, types, mask)]
        out = self._block(*args)
        return [o.asnumpy() for o in (out if isinstance(out, (list, tuple)) else [out])]

    def predict(self, input_ids, token_type_ids=None, attention_mask=None) -> np.ndarray:
        if self.head is None:
            raise ConfigError("predict needs a checkpoint with a task head; use encode")
        return self._run(input_ids, token_type_ids, attention_mask)[0]

    def encode(self, input_ids, token_type_ids=None, attention_mask=None):
        from ..model import EncoderOutput
        if self.head is not None:
            raise ConfigError("this checkpoint has a task head; use predict")
        outputs = self._run(input_ids, token_type_ids, attention_mask)
        return EncoderOutput(last_hidden_state=outputs[0],
                             pooler_output=outputs[1] if len(outputs) > 1 else None)


def quantize_int8(state, calibration: Sequence[str], tokenizer=None) -> QuantizedModel:
    """Calibrate and quantize the model in ``state`` (from
    :func:`bortkit.checkpoint.read_state`), with its task head when ``state.meta`` has one.
    ``tokenizer`` defaults to the checkpoint's own."""
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_net_v2
    from mxnet.io import DataDesc, NDArrayIter
    from ..checkpoint import assign, classifier_from_state
    from ..model import BertNetwork
    from ..tokenizers import load_tokenizer
    texts = check_calibration("int8", calibration)
    if tokenizer is None:
        if state.tokenizer_dir is None:
            raise ConfigError("calibration text needs a tokenizer: the checkpoint has no "
                              "tokenizer files", path=state.weights_path)
        tokenizer = load_tokenizer(state.tokenizer_dir)
    config, head = state.config, state.meta.get("_head")
    if head is None:
        network = BertNetwork(config, prefix="bert_")
        network.initialize(mx.init.Normal(0.02))
        assign(network, state)
    else:
        network, _ = classifier_from_state(state, int(head["num_labels"]),
                                           head.get("pooling", "cls"))
    inputs = _Inputs(config)
    block = _graph_block(network, inputs)
    length = min(CALIBRATION_MAX_LENGTH, config.max_length - config.position_offset)
    batches = calibration_batches(tokenizer, texts, length)
    names = [f"data{i}" for i in range(len(inputs.select(*batches[0])))]
    columns = zip(*(inputs.select(*b) for b in batches))
    data = {n: mx.nd.array(np.concatenate(c), dtype="float32") for n, c in zip(names, columns)}
    shape = batches[0][0].shape
    calib = NDArrayIter(data=data, batch_size=shape[0])
    quantized = quantize_net_v2(
        block, quantized_dtype="auto", quantize_mode="smart",
        quantize_granularity="channel-wise", calib_mode="naive", calib_data=calib,
        data_shapes=[DataDesc(n, shape) for n in names],
        num_calib_examples=len(batches) * shape[0], ctx=mx.cpu())
    quantized.hybridize(static_alloc=True, static_shape=True)
    return QuantizedModel(config, quantized, head)

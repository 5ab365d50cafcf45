"""A [CLS] classifier computes its last layer for position 0 alone
(``SequenceClassifier(first_position=True)``, ``EncoderLayer.first_position``): the same
logits and gradients as every position through every layer, on every layout the encoder
has, and every position where a variant cannot."""
import mxnet as mx
import numpy as np
import pytest

from bortkit.config import ModelConfig
from bortkit.model import BertNetwork, SequenceClassifier

CONFIGS = {
    "post-LN with pooler": {},
    "pre-LN": {"layer_norm_position": "pre"},
    "no pooler (Bort)": {"use_pooler": False, "type_vocab_size": 0},
    "low-rank last layer": {"low_rank": {"encoder.1.attention.query": 4,
                                         "encoder.1.attention.value": 4,
                                         "encoder.1.ffn.ffn_1": 8}},
}


def _pair(config):
    """Two classifiers over one network: the last layer at position 0 alone, and whole."""
    network = BertNetwork(config, prefix="bert_")
    first = SequenceClassifier(network, 3, prefix="clf_")
    first.initialize(mx.init.Normal(0.3))
    whole = SequenceClassifier(network, 3, first_position=False, prefix="clf_",
                               params=first.collect_params())
    return first, whole


def _inputs(batch=3, length=11):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 100, (batch, length))
    mask = np.ones((batch, length))
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    return [mx.nd.array(a) for a in (ids, np.zeros_like(ids), mask)]


def _gradients(classifier, inputs) -> dict:
    with mx.autograd.record():
        (classifier(*inputs) ** 2).sum().backward()
    return {name: p.grad().asnumpy().copy() for name, p in classifier.collect_params().items()
            if p.grad_req != "null"}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_first_position_gives_the_logits_and_gradients_of_every_position(name):
    config = ModelConfig(num_layers=2, num_heads=4, units=32, ffn_units=64, vocab_size=100,
                         dropout=0.0, attention_dropout=0.0, **CONFIGS[name])
    first, whole = _pair(config)
    assert first.first_position and first.network.first_position_suffices()
    inputs = _inputs()
    for hybrid in (False, True):
        if hybrid:
            first.hybridize()
            whole.hybridize()
        expected = whole(*inputs).asnumpy()
        np.testing.assert_allclose(first(*inputs).asnumpy(), expected, rtol=1e-5, atol=1e-5)
        got, want = _gradients(first, inputs), _gradients(whole, inputs)
        assert got.keys() == want.keys()
        for key in want:  # the last layer's query, output and FFN included
            np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=1e-5,
                                       err_msg=key)


def test_the_last_layer_runs_for_one_position():
    config = ModelConfig(num_layers=2, num_heads=4, units=32, ffn_units=64, vocab_size=100)
    first, whole = _pair(config)
    ids, types, mask = _inputs(length=11)
    shapes = {}
    for classifier in (first, whole):
        sym = classifier(*[mx.sym.var(n) for n in ("ids", "types", "mask")])
        internals = sym.get_internals()
        ffn = [n for n in internals.list_outputs() if n.endswith("layer1_ffn_ffn_1_fwd_output")]
        _, out, _ = internals[ffn[0]].infer_shape(ids=ids.shape, types=types.shape,
                                                  mask=mask.shape)
        shapes[classifier.first_position] = out[0]
    assert shapes == {True: (1, 3, 64), False: (11, 3, 64)}  # (T, B, F) inside the encoder


@pytest.mark.parametrize("changes", [{"pooling": "mean"}, {"adapter": "houlsby"},
                                     {"attention": "qk_convfixed"}])
def test_heads_and_variants_that_need_every_position_keep_them(changes):
    pooling = changes.pop("pooling", "cls")
    config = ModelConfig(num_layers=2, num_heads=4, units=32, ffn_units=64, vocab_size=100,
                         **({"num_tasks": 1} if changes.get("adapter") else {}), **changes)
    classifier = SequenceClassifier(BertNetwork(config, prefix="bert_"), 3, pooling=pooling)
    runs_first = classifier.first_position and classifier.network.first_position_suffices()
    assert not runs_first

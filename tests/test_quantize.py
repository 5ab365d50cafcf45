"""oneDNN int8 (bortkit.quantize): the folded inference graph and saved int8 checkpoints.
(Agreement with fp32 on SST-2 and the bad-input cases of ``quantize=``/``calibration=`` are
in tests/test_export.py.)"""
from __future__ import annotations

import json

import mxnet as mx
import numpy as np
import pytest

import bortkit
from bortkit.checkpoint import classifier_from_state, read_state, save_pretrained
from bortkit.config import ModelConfig
from bortkit.errors import CheckpointError, ConfigError
from bortkit.io import write_json
from bortkit.model import BertNetwork
from bortkit.quantize import RECORD, QuantizedModel
from bortkit.quantize.graph import fold_parameters
from bortkit.tasks import get_task

# Bort-like: no token types, no pooler, tanh GELU (not fused by oneDNN), position offset.
BORT_LIKE = ModelConfig(num_layers=2, num_heads=4, units=32, ffn_units=48, vocab_size=30522,
                        max_length=66, type_vocab_size=0, use_pooler=False,
                        position_offset=2, activation="gelu_tanh")


def _batch(length=12, batch=3):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 30000, (batch, length))
    mask = np.ones_like(ids)
    mask[1:, length // 2:] = 0
    return ids, np.zeros_like(ids), mask


def test_folding_stores_the_interleaved_projection_and_keeps_outputs():
    network = BertNetwork(BORT_LIKE, prefix="bert_")
    network.initialize(mx.init.Normal(0.5))
    network.hybridize()
    names = ["ids", "types", "mask"]
    sym = network(*[mx.sym.var(n) for n in names])
    params = {k: p.data() for k, p in network.collect_params().items()}
    folded, folded_params = fold_parameters(sym, params)
    ops = [n["op"] for n in json.loads(folded.tojson())["nodes"]]
    assert "Concat" not in ops and "_copy" not in ops  # nothing rebuilt from parameters per call
    u = BORT_LIKE.units
    qkv = [k for k, v in folded_params.items() if v.shape == (3 * u, u)]
    assert len(qkv) == BORT_LIKE.num_layers and all(k.endswith("_weight") for k in qkv)
    assert not any(k.endswith(("query_weight", "key_weight", "value_weight"))
                   for k in folded_params)
    data = {n: mx.nd.array(a) for n, a in zip(names, _batch())}
    before = sym.eval(ctx=mx.cpu(), **data, **params)[0].asnumpy()
    after = folded.eval(ctx=mx.cpu(), **data, **folded_params)[0].asnumpy()
    np.testing.assert_array_equal(before, after)


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, tiny_model):
    """The tiny random model with a random two-class pooler head, as a checkpoint."""
    state = read_state(tiny_model)
    classifier, _ = classifier_from_state(state, 2, "cls")
    path = tmp_path_factory.mktemp("int8") / "clf"
    head = {"task": "SST-2", "kind": "classification", "num_labels": 2,
            "labels": ["0", "1"], "max_length": 64, "pooling": "cls"}
    save_pretrained(classifier, path, config=state.config, source=tiny_model,
                    meta={"_head": head})
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory, classifier_dir, glue_dir):
    texts = [e.text_a for e in get_task("SST-2").read(glue_dir, "train")[:48]]
    quantized = bortkit.from_pretrained(classifier_dir, quantize="int8", calibration=texts)
    path = tmp_path_factory.mktemp("int8") / "saved"
    quantized.save(path)
    return quantized, path


def test_saved_int8_model_loads_with_its_thresholds(saved, tmp_path):
    quantized, path = saved
    record = json.loads((path / RECORD).read_text())
    assert record["calibration_sentences"] == 48 and record["thresholds"]
    loaded = bortkit.from_pretrained(path)  # no calibration text
    assert isinstance(loaded, QuantizedModel) and loaded.head["num_labels"] == 2
    ids, types, mask = _batch()
    expected = quantized.predict(ids, types, mask)
    np.testing.assert_array_equal(loaded.predict(ids, types, mask), expected)
    # The loader applies the stored thresholds (it does not calibrate again): other
    # thresholds in the record give other outputs.
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in path.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    record["thresholds"] = {k: [4 * v for v in pair] for k, pair in record["thresholds"].items()}
    write_json(copy / RECORD, record)
    assert not np.array_equal(bortkit.from_pretrained(copy).predict(ids, types, mask), expected)


def test_save_refuses_a_non_empty_directory(saved):
    quantized, path = saved
    with pytest.raises(ConfigError) as err:
        quantized.save(path)
    assert str(err.value) == (f"{path}: output directory already exists and is not empty; "
                              "choose another")


def test_a_record_of_another_model_is_one_line(saved, tmp_path, tiny_model):
    _, path = saved
    state = read_state(tiny_model)
    other = tmp_path / "other"
    config = state.config.replace(num_layers=3)
    network = BertNetwork(config, prefix="bert_")
    network.initialize(mx.init.Normal(0.02))
    save_pretrained(network, other, config=config, source=tiny_model)
    (other / RECORD).write_bytes((path / RECORD).read_bytes())
    record = json.loads((path / RECORD).read_text())
    with pytest.raises(CheckpointError) as err:
        bortkit.from_pretrained(other)
    message = str(err.value)
    assert message.startswith(f"{other / RECORD}: {RECORD} has no threshold for ")
    assert message.endswith("it was calibrated for another model or MXNet version; quantize "
                            "again with calibration text") and "\n" not in message
    (other / RECORD).write_text("{")
    with pytest.raises(CheckpointError, match=r"^.*int8.json: cannot read JSON"):
        bortkit.from_pretrained(other)
    record["ffn_activation_range"] = 1.0
    write_json(other / RECORD, record)
    with pytest.raises(CheckpointError) as err:
        bortkit.from_pretrained(other)
    assert str(err.value) == (f"{other / RECORD}: ffn_activation_range is 1.0; this bortkit "
                              "builds 0.5; quantize again with calibration text")


def test_saved_int8_encoder_round_trip(tmp_path, tiny_model, glue_dir):
    texts = [e.text_a for e in get_task("SST-2").read(glue_dir, "train")[:32]]
    quantized = bortkit.from_pretrained(tiny_model, quantize="int8", calibration=texts)
    quantized.save(tmp_path / "int8")
    loaded = bortkit.from_pretrained(tmp_path / "int8")
    ids, types, mask = _batch()
    expected, got = quantized.encode(ids, types, mask), loaded.encode(ids, types, mask)
    np.testing.assert_array_equal(got.last_hidden_state, expected.last_hidden_state)
    np.testing.assert_array_equal(got.pooler_output, expected.pooler_output)

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
from bortkit.quantize import RECORD, Int8Graph, QuantizedModel, dense_kernel, quantize_int8
from bortkit.quantize.fused import fused_symbol
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


def _copy(path, directory, **changes):
    """A copy of the saved int8 directory with ``changes`` to its record."""
    directory.mkdir()
    for f in path.iterdir():
        (directory / f.name).write_bytes(f.read_bytes())
    record = json.loads((path / RECORD).read_text())
    write_json(directory / RECORD, {**record, **changes})
    return directory


def test_saved_int8_model_loads_with_its_thresholds(saved, tmp_path):
    quantized, path = saved
    record = json.loads((path / RECORD).read_text())
    assert record["calibration_sentences"] == 48 and record["thresholds"]
    assert record["dense"] == quantized.dense == dense_kernel()  # fused where it runs
    loaded = bortkit.from_pretrained(path)  # no calibration text
    assert isinstance(loaded, QuantizedModel) and loaded.head.num_labels == 2
    assert loaded.dense == record["dense"]
    ids, types, mask = _batch()
    expected = quantized.predict(ids, types, mask)
    np.testing.assert_array_equal(loaded.predict(ids, types, mask), expected)
    # On oneDNN the loader applies the stored thresholds (it does not calibrate again):
    # other thresholds in the record give other outputs.
    onednn = bortkit.from_pretrained(_copy(path, tmp_path / "onednn", dense="onednn"))
    assert onednn.dense == "onednn"
    scaled = {k: [4 * v for v in pair] for k, pair in record["thresholds"].items()}
    edited = bortkit.from_pretrained(_copy(path, tmp_path / "edited", dense="onednn",
                                           thresholds=scaled))
    assert not np.array_equal(edited.predict(ids, types, mask),
                              onednn.predict(ids, types, mask))
    # a record from when the fused kernel ran on AMX only says "amx": the fused graph
    if record["dense"] == "fused":
        renamed = bortkit.from_pretrained(_copy(path, tmp_path / "amx", dense="amx"))
        assert renamed.dense == "fused"
        np.testing.assert_array_equal(renamed.predict(ids, types, mask), expected)
    # a record from before the fused kernel (no "dense") is a oneDNN model
    del record["dense"]
    older = tmp_path / "older"
    _copy(path, older)
    write_json(older / RECORD, record)
    np.testing.assert_array_equal(bortkit.from_pretrained(older).predict(ids, types, mask),
                                  onednn.predict(ids, types, mask))


def test_fused_graph_puts_every_encoder_dense_layer_on_the_int8_operator(saved, tmp_path,
                                                                          tier):
    quantized, path = saved
    onednn = bortkit.from_pretrained(_copy(path, tmp_path / "onednn", dense="onednn"))
    ids, types, mask = _batch()
    state = read_state(path)
    graph = Int8Graph(state)
    sym, _ = fused_symbol(graph.sym, graph.params, graph.dense_products())
    nodes = json.loads(sym.tojson())["nodes"]
    ops = [n["op"] for n in nodes]
    layers = state.config.num_layers
    assert ops.count("bortkit_int8_dense") == 4 * layers
    # each weight packed at the tier's levels (7 bits at avx2), which the node is told
    from bortkit.ops import isa
    assert {n["attrs"]["weight_levels"] for n in nodes if n["op"] == "bortkit_int8_dense"} == \
        {str(isa.weight_levels())}
    assert tier != "avx2" or isa.weight_levels() == 63
    assert ops.count("FullyConnected") == 2  # the pooler and the classifier stay fp32
    # attention output and FFN output carry their residual add and LayerNorm
    assert sum(n.get("attrs", {}).get("norm") == "1" for n in nodes) == 2 * layers
    # the exact GELU goes into the FFN's first product
    assert state.config.activation == "gelu" and "LeakyReLU" not in ops
    assert sum(n.get("attrs", {}).get("activation") == "gelu" for n in nodes) == layers
    assert ops.count("bortkit_layer_norm") == 1 and ops.count("elemwise_add") == 2
    assert not {"Dropout", "bortkit_dropout"} & set(ops)  # identities at inference: skipped
    # each attention is one fused bf16 operator: no scores, mask or softmax node is left
    assert ops.count("bortkit_self_attention") == layers
    assert not {"_contrib_interleaved_matmul_selfatt_qk", "bortkit_mask_scores",
                "softmax"} & set(ops)
    classifier, _ = classifier_from_state(state, 2, "cls")
    fp32 = classifier(*(mx.nd.array(a) for a in (ids, types, mask))).asnumpy()
    fused = quantized.predict(ids, types, mask)
    # per-row dynamic int8 is at least as close to fp32 as calibrated static oneDNN int8
    assert np.abs(fused - fp32).max() <= np.abs(onednn.predict(ids, types, mask) - fp32).max()
    assert np.abs(fused - fp32).max() < 0.05 * np.abs(fp32).max()


def test_the_fused_graph_of_a_cls_head_runs_its_last_layer_for_the_first_position(saved):
    quantized, path = saved
    state = read_state(path)
    graph = Int8Graph(state)
    sym, params, products = graph.fused_graph()
    last = state.config.num_layers - 1
    assert sum(f"layer{last}_" in p for p in products) == 6  # query, key, value apart
    sym, params = fused_symbol(sym, params, products)
    nodes = json.loads(sym.tojson())["nodes"]
    assert [n["op"] for n in nodes].count("bortkit_int8_dense") == 4 * last + 6
    ids, types, mask = _batch(length=12, batch=3)
    ffn_1 = [n["name"] for n in nodes if f"layer{last}_" in n["name"] and
             n.get("attrs", {}).get("activation") == "gelu"]  # the product with its GELU
    assert len(ffn_1) == 1
    output = sym.get_internals()[ffn_1[0] + "_output"]
    known = {name: params[name].shape for name in output.list_arguments() if name in params}
    _, shapes, _ = output.infer_shape(
        data0=ids.shape, data1=ids.shape, data2=ids.shape, **known)
    assert shapes[0] == (1, 3, state.config.ffn_units)  # one position of three sequences
    # the same predictions as every position through the fused graph (which runs the
    # attention products in bf16, this one in fp32)
    from bortkit.quantize.fused import fused_block
    whole = fused_block(graph.sym, graph.params, graph.dense_products(), graph.names)
    expected = whole(*(mx.nd.array(a) for a in (ids, types, mask))).asnumpy()
    np.testing.assert_allclose(quantized.predict(ids, types, mask), expected, atol=0.02)


def test_a_record_with_an_unknown_dense_kernel_is_one_line(saved, tmp_path):
    _, path = saved
    copy = _copy(path, tmp_path / "copy", dense="avx2")
    with pytest.raises(CheckpointError) as err:
        bortkit.from_pretrained(copy)
    assert str(err.value) == (f"{copy / RECORD}: dense is 'avx2'; expected one of fused, "
                              "onednn")


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


def test_an_unknown_dense_kernel_is_one_line(tiny_model):
    with pytest.raises(ConfigError) as err:
        quantize_int8(read_state(tiny_model), ["a sentence"], dense="avx2")
    assert str(err.value) == "dense must be one of fused, onednn, got 'avx2'"


def _record(**changes):
    from bortkit.quantize.core import FFN_ACTIVATION_RANGE, FP32_PRODUCTS, RECORD_FORMAT
    return {"format": RECORD_FORMAT, "mxnet": mx.__version__, "calibration": "naive",
            "calibration_sentences": 16, "calibration_length": 12,
            "granularity": "channel-wise", "fp32_products": list(FP32_PRODUCTS),
            "ffn_activation_range": FFN_ACTIVATION_RANGE, "dense": "onednn",
            "thresholds": {"a": [-1.5, 2.0], "b": [0, 7]}, **changes}


@pytest.mark.parametrize("changes, message", [
    ({"mxnet": "1.8.0"}, f"calibrated with MXNet '1.8.0', this is MXNet {mx.__version__}"),
    ({"thresholds": {"a": [float("nan"), 1.0]}}, "threshold of a must be [min, max]"),
    ({"thresholds": {"a": [1.0]}}, "threshold of a must be [min, max]"),
    ({"thresholds": {"a": "abc"}}, "threshold of a must be [min, max]"),
    ({"thresholds": {"a": [2.0, 1.0]}}, "threshold of a must be [min, max]"),
    ({"thresholds": {"a": [0, 0]}}, "threshold of a must be [min, max]"),
    ({"thresholds": {"a": [-1e38, 1e38]}}, "within +/-100000, got [-1e+38, 1e+38]"),
    ({"extra": True}, "unknown key(s) extra"),
    ({"calibration_length": 0}, "calibration_length must be a positive integer, got 0"),
])
def test_int8_records_have_one_schema(tmp_path, changes, message):
    """Issue 26: NaN, [1.0] and "abc" were tracebacks; min > max, [0, 0], +/-1e38 and another
    MXNet version were accepted and changed the outputs."""
    from bortkit.quantize.core import check_record
    where = tmp_path / RECORD
    assert check_record(_record(), where) == ("onednn", {"a": (-1.5, 2.0), "b": (0.0, 7.0)})
    with pytest.raises(CheckpointError) as err:
        check_record(_record(**changes), where)
    text = str(err.value)
    assert text.startswith(f"{where}: ") and message in text and "\n" not in text
    assert text.endswith("; quantize again with calibration text")

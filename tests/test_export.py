"""ONNX export (python -m bortkit.export) and int8 paths, against bortkit's own fp32 outputs."""
from __future__ import annotations

import subprocess
import sys
from collections import Counter

import mxnet as mx
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
import onnx  # noqa: E402

import bortkit  # noqa: E402
from bortkit.checkpoint import classifier_from_state, read_state, save_pretrained  # noqa: E402
from bortkit.config import ModelConfig  # noqa: E402
from bortkit.errors import ConfigError  # noqa: E402
from bortkit.export import OnnxModel, export  # noqa: E402
from bortkit.model import Model  # noqa: E402
from bortkit.tasks import get_task  # noqa: E402

CONFIGS = {
    "bert": ModelConfig(num_layers=2, num_heads=2, units=32, ffn_units=64, vocab_size=100,
                        max_length=64),
    "bort-like": ModelConfig(num_layers=2, num_heads=4, units=32, ffn_units=24, vocab_size=100,
                             max_length=64, type_vocab_size=0, use_pooler=False,
                             layer_norm_eps=1e-5, position_offset=2, pad_token_id=1,
                             activation="gelu_tanh"),
    "pre-ln-factorised": ModelConfig(num_layers=2, num_heads=4, units=32, ffn_units=48,
                                     embed_size=16, vocab_size=100, max_length=64,
                                     layer_norm_position="pre", activation="relu"),
    # factored matrices in the last layer's query and value (and FFN), in layer 0's key
    "low-rank": ModelConfig(num_layers=2, num_heads=2, units=32, ffn_units=64, vocab_size=100,
                            max_length=64, low_rank={"encoder.0.attention.key": 5,
                                                     "encoder.1.attention.query": 4,
                                                     "encoder.1.attention.value": 3,
                                                     "encoder.1.ffn.ffn_1": 8}),
}


def _inputs(config, batch=3, length=17, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, config.vocab_size, (batch, length))
    mask = np.ones_like(ids)
    mask[1:, length // 2:] = 0  # padded rows
    mask[2:, 3:] = 0
    types = rng.integers(0, 2, ids.shape) if config.type_vocab_size else np.zeros_like(ids)
    return ids, types, mask


@pytest.mark.parametrize("name", list(CONFIGS))
def test_encoder_round_trip(tmp_path, name):
    config = CONFIGS[name]
    save_pretrained(Model(config), tmp_path / "ckpt", config=config)
    model = bortkit.from_pretrained(tmp_path / "ckpt")
    export(tmp_path / "ckpt", tmp_path / "onnx")
    exported = OnnxModel(tmp_path / "onnx", threads=1)
    for batch, length in ((3, 17), (1, 5)):  # dynamic batch and length
        ids, types, mask = _inputs(config, batch, length)
        ours, theirs = model.encode(ids, types, mask), exported.run(ids, types, mask)
        assert np.abs(ours.last_hidden_state - theirs["last_hidden_state"]).max() < 1e-5
        if config.use_pooler:
            assert np.abs(ours.pooler_output - theirs["pooler_output"]).max() < 1e-5
        else:
            assert "pooler_output" not in theirs


def _classifier(path, config, pooling):
    """A random model with a new 3-label head saved at ``path``; the head's output weights
    N(0, 1) so that the logits are O(1) (the initialiser's are ~0.01: a 1e-5 bound on those
    would hide a wrong token)."""
    save_pretrained(Model(config), path.with_name(path.name + "-base"), config=config)
    classifier, missing = classifier_from_state(read_state(path.with_name(path.name + "-base")),
                                                3, pooling)
    assert missing  # a new head with random weights
    out = classifier.head.out.weight
    out.set_data(mx.nd.array(np.random.default_rng(1).normal(size=out.shape)))
    head = {"task": "test", "kind": "classification", "num_labels": 3,
            "labels": ["a", "b", "c"], "pooling": pooling}
    save_pretrained(classifier, path, config=config, meta={"_head": head})
    return classifier


@pytest.mark.parametrize("name,pooling", [("bert", "cls"), ("bort-like", "cls"),
                                          ("pre-ln-factorised", "cls"), ("low-rank", "cls"),
                                          ("bert", "mean"), ("low-rank", "mean")])
def test_head_round_trip(tmp_path, name, pooling):
    config = CONFIGS[name]
    classifier = _classifier(tmp_path / "clf", config, pooling)
    export(tmp_path / "clf", tmp_path / "onnx")
    ids, types, mask = _inputs(config)
    expected = classifier(*(mx.nd.array(a) for a in (ids, types, mask))).asnumpy()
    assert np.abs(expected).max() > 0.1  # logits large enough for the bound to mean something
    logits = OnnxModel(tmp_path / "onnx", threads=1).run(ids, types, mask)["logits"]
    assert logits.shape == (3, 3)
    assert np.abs(logits - expected).max() < 1e-5
    # a cls head reads h[:, 0] alone: the last layer's attention is one query row's; mean
    # pooling reads every token, every layer is whole
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "onnx" / "model.onnx")).graph.node)
    layers = config.num_layers
    assert (ops["Attention"], ops["MultiHeadAttention"]) == \
        ((layers - 1, 1) if pooling == "cls" else (layers, 0))


def _with_outputs(graph, names: dict):
    """ORT session of ``graph`` that also returns the outputs of the nodes ``names`` maps
    to (node name -> key); ``run`` returns {key: array}."""
    import onnxruntime
    from onnx import TensorProto, helper
    model = onnx.ModelProto()
    model.CopyFrom(graph)
    produced = {n.name: n.output[0] for n in model.graph.node}
    for node in names:
        model.graph.output.append(helper.make_tensor_value_info(produced[node],
                                                                TensorProto.FLOAT, None))
    sess = onnxruntime.InferenceSession(model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])

    def run(feeds):
        wanted = [produced[node] for node in names]
        return dict(zip(names.values(), sess.run(wanted, feeds)))
    return run


@pytest.mark.parametrize("name", ["bert", "bort-like", "pre-ln-factorised", "low-rank"])
def test_cls_head_computes_the_last_layer_for_the_first_position_only(tmp_path, name):
    """With a cls head (pooler, or Bort's tanh dense over h[:, 0]) the last layer's keys and
    values are every token's but its query, output projection and FFN run on one row, as ORT
    computes them (padded rows in the batch); the layers before it stay whole."""
    config = CONFIGS[name]
    _classifier(tmp_path / "clf", config, "cls")
    export(tmp_path / "clf", tmp_path / "onnx")
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx"))
    last, before = f"encoder.{config.num_layers - 1}", f"encoder.{config.num_layers - 2}"
    nodes = {n.name: n for n in graph.graph.node}
    assert f"{last}.attention.qkv" not in nodes and f"{before}.attention.qkv" in nodes
    factored = {n[:-len(".down")] for n in nodes if n.endswith(".down")}
    # the last layer's factored matrices stay two products (the fused Attention node of the
    # others takes them multiplied back)
    assert factored == {m for m in config.low_rank or () if m.startswith(f"{last}.")}
    probes = {f"{last}.attention.{m}": m for m in ("query", "key", "value", "output")}
    probes.update({f"{last}.ffn.ffn_1": "ffn_1", f"{last}.ffn.ffn_2": "ffn_2",
                   f"{before}.ffn.ffn_2": "previous_ffn_2"})
    run = _with_outputs(graph, probes)
    ids, types, mask = _inputs(config, batch=3, length=17)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if config.type_vocab_size:
        feeds["token_type_ids"] = types
    shapes = {key: value.shape for key, value in run(feeds).items()}
    one, every = (3, 1), (3, 17)
    assert shapes == {"query": (*one, config.units), "key": (*every, config.units),
                      "value": (*every, config.units), "output": (*one, config.units),
                      "ffn_1": (*one, config.ffn_units), "ffn_2": (*one, config.units),
                      "previous_ffn_2": (*every, config.units)}


def test_minilm_matches_and_uses_fused_operators(tmp_path, minilm_dir):
    export(minilm_dir, tmp_path / "onnx")
    graph = onnx.load(str(tmp_path / "onnx" / "model.onnx"))
    ops = Counter(n.op_type for n in graph.graph.node)
    assert (ops["Attention"], ops["SkipLayerNormalization"], ops["BiasGelu"]) == (6, 12, 6)
    assert ops["MatMul"] == 6 * 3 + 1  # output projection, FFN in and out; pooler
    assert (tmp_path / "onnx" / "vocab.txt").is_file()
    tok = bortkit.load_tokenizer(tmp_path / "onnx")
    batch = tok.batch(["A man plays a guitar.", "Someone is playing music on a stage tonight."])
    model = bortkit.from_pretrained(minilm_dir)
    ours = model.encode(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    theirs = OnnxModel(tmp_path / "onnx", threads=1).run(
        batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    real = batch["attention_mask"] == 1
    assert np.abs(ours.last_hidden_state - theirs["last_hidden_state"])[real].max() < 1e-5
    assert np.abs(ours.pooler_output - theirs["pooler_output"]).max() < 1e-5


@pytest.fixture(scope="module")
def sst2_classifier(tmp_path_factory, minilm_dir, glue_dir):
    """MiniLM with a real SST-2 head: logistic regression (scikit-learn) on the mean-pooled
    features of 400 training sentences, saved as a bortkit checkpoint with ``_head``."""
    from sklearn.linear_model import LogisticRegression
    task = get_task("SST-2")
    train = task.read(glue_dir, "train")[:400]
    state = read_state(minilm_dir)
    classifier, _ = classifier_from_state(state, 2, "mean")
    tok = bortkit.load_tokenizer(minilm_dir)
    model = bortkit.from_pretrained(minilm_dir)
    features = []
    for start in range(0, len(train), 50):
        b = tok.batch([e.text_a for e in train[start:start + 50]], max_length=64)
        h = model.encode(b["input_ids"], b["token_type_ids"], b["attention_mask"])
        weights = b["attention_mask"][:, :, None]
        features.append((h.last_hidden_state * weights).sum(1) / weights.sum(1))
    fit = LogisticRegression(C=10.0, max_iter=2000).fit(
        np.concatenate(features), [int(e.label) for e in train])
    weight = np.concatenate([-fit.coef_, fit.coef_]) / 2  # two-class softmax = the sigmoid
    classifier.head.out.weight.set_data(mx.nd.array(weight))
    classifier.head.out.bias.set_data(mx.nd.array([-fit.intercept_[0] / 2,
                                                   fit.intercept_[0] / 2]))
    path = tmp_path_factory.mktemp("sst2") / "clf"
    head = {"task": "SST-2", "kind": "classification", "num_labels": 2,
            "labels": ["0", "1"], "max_length": 64, "pooling": "mean"}
    save_pretrained(classifier, path, config=state.config, tokenizer=tok,
                    meta={"_head": head})
    return path, classifier, tok


@pytest.fixture(scope="module")
def sst2_onnx(tmp_path_factory, sst2_classifier):
    """The SST-2 classifier exported as fp32 and as int8 ONNX directories."""
    path, _, _ = sst2_classifier
    root = tmp_path_factory.mktemp("sst2_onnx")
    export(path, root / "fp32")
    export(path, root / "int8", quantize="int8")
    return root / "fp32", root / "int8"


def _logits(call, examples, tok):
    rows = []
    for start in range(0, len(examples), 50):
        b = tok.batch([e.text_a for e in examples[start:start + 50]], max_length=64)
        rows.append(call(b["input_ids"], b["token_type_ids"], b["attention_mask"]))
    return np.concatenate(rows)


def _predict(call, examples, tok):
    return _logits(call, examples, tok).argmax(axis=1)


# The issue asks int8 to keep >= 99 % of fp32's predictions. On this deliberately plain head
# (73 % accurate on the slice, so many sentences sit near the decision boundary) we measured
# 95.5 % for ORT dynamic int8 and 97.5 % for oneDNN static int8 (95.5 % on all of dev); the
# fine-tuned MiniLM keeps 99.1 % on all of SST-2 dev (bench/inference.py, README). The bounds
# below catch a broken quantizer (random agreement is ~50 %) without pretending to the 99 %:
# a slice test at 99 % would need a fine-tuned head, minutes of training in the suite.
INT8_AGREEMENT = 0.92
ONEDNN_AGREEMENT = 0.96


@pytest.mark.slow
def test_exported_and_int8_paths_keep_fp32_predictions(sst2_classifier, sst2_onnx, glue_dir):
    path, classifier, tok = sst2_classifier
    fp32_dir, int8_dir = sst2_onnx
    task = get_task("SST-2")
    dev = task.read(glue_dir, "dev")[:200]
    labels = np.array([int(e.label) for e in dev])
    fp32 = _predict(lambda *a: classifier(*(mx.nd.array(x) for x in a)).asnumpy(), dev, tok)
    assert (fp32 == labels).mean() > 0.7  # the head is a real classifier

    onnx_fp32 = OnnxModel(fp32_dir, threads=2)
    assert (_predict(lambda *a: onnx_fp32.run(*a)["logits"], dev, tok) == fp32).mean() >= 0.99

    graph = onnx.load(str(int8_dir / "model.onnx"))
    assert {"QAttention", "MatMulInteger"} <= {n.op_type for n in graph.graph.node}
    onnx_int8 = OnnxModel(int8_dir, threads=2)
    agreement = (_predict(lambda *a: onnx_int8.run(*a)["logits"], dev, tok) == fp32).mean()
    assert agreement >= INT8_AGREEMENT

    calibration = [e.text_a for e in task.read(glue_dir, "train")[400:528]]
    quantized = bortkit.from_pretrained(path, quantize="int8", calibration=calibration)
    assert (_predict(quantized.predict, dev, tok) == fp32).mean() >= ONEDNN_AGREEMENT


# The int8 export keeps the first layer's FFN output product in fp32 (INT8_FP32_PRODUCTS):
# its input has one outlier GELU neuron in MiniLM; on three fine-tuned MiniLM SST-2 classifiers
# fp32 there lifted agreement with fp32 to >= 99.2 % on dev and held-out sentences (98.9-99.4 %
# before) and cut the logits' RMS error by 22-44 % (bench/onnx_int8_agreement.py). A fine-tuned
# MiniLM takes minutes, so this test uses the plain head: over the first 400 dev sentences the
# margin's RMS error relative to fp32's margin measured 0.094 with it and 0.115 with every
# product int8 (14 vs 18 flips, too few to tell apart); the bound sits between the two.
INT8_MARGIN_ERROR = 0.105


@pytest.mark.slow
def test_int8_export_keeps_the_sensitive_product_in_fp32(sst2_classifier, sst2_onnx, glue_dir):
    from bortkit.export.core import INT8_FP32_PRODUCTS
    _, _, tok = sst2_classifier
    fp32_dir, int8_dir = sst2_onnx
    graph = onnx.load(str(int8_dir / "model.onnx")).graph
    assert {n.name for n in graph.node if n.op_type == "MatMul"} == set(INT8_FP32_PRODUCTS)
    assert OnnxModel(int8_dir).meta["_onnx"]["fp32_products"] == list(INT8_FP32_PRODUCTS)

    dev = get_task("SST-2").read(glue_dir, "dev")[:400]
    fp32, int8 = (_logits(lambda *a, m=OnnxModel(d, threads=2): m.run(*a)["logits"], dev, tok)
                  for d in (fp32_dir, int8_dir))
    margin = lambda logits: logits[:, 1] - logits[:, 0]  # noqa: E731
    error = np.sqrt(np.mean((margin(int8) - margin(fp32)) ** 2) / np.mean(margin(fp32) ** 2))
    assert error <= INT8_MARGIN_ERROR
    assert (int8.argmax(1) == fp32.argmax(1)).mean() >= 0.95  # 96.5 % measured


@pytest.mark.parametrize("name", ["bert", "low-rank"])
def test_int8_cls_export_quantizes_the_first_position_layer(tmp_path, name):
    """The int8 export of a cls classifier: the last layer's query, key and value products
    (each factor of a factored one) are integer ones, its attention (activation by
    activation) stays fp32, the logits stay close to fp32's; a kept-fp32 list naming that
    layer's ``attention.qkv`` keeps its three projections, as it keeps the fused node of the
    layers before it."""
    from bortkit.export.core import INT8_FP32_PRODUCTS, ONNX_FILE, quantize_dynamic_int8
    config = CONFIGS[name]
    _classifier(tmp_path / "clf", config, "cls")
    export(tmp_path / "clf", tmp_path / "fp32")
    export(tmp_path / "clf", tmp_path / "int8", quantize="int8")
    last = f"encoder.{config.num_layers - 1}.attention"
    projections = {f"{last}.{m}{f}" for m in ("query", "key", "value") for f in ("", ".down")
                   if f == "" or f"{last}.{m}" in (config.low_rank or {})}
    nodes = onnx.load(str(tmp_path / "int8" / ONNX_FILE)).graph.node
    assert {n.name for n in nodes if n.op_type == "MatMul"} == set(INT8_FP32_PRODUCTS)
    assert {f"{p}_quant" for p in projections} <= \
        {n.name for n in nodes if n.op_type == "MatMulInteger"}
    ops = Counter(n.op_type for n in nodes)
    assert (ops["QAttention"], ops["MultiHeadAttention"]) == (config.num_layers - 1, 1)
    ids, types, mask = _inputs(config)
    fp32, int8 = (OnnxModel(tmp_path / d, threads=1).run(ids, types, mask)["logits"]
                  for d in ("fp32", "int8"))
    assert np.abs(int8 - fp32).max() < 0.03 * np.abs(fp32).max()  # 0.009-0.013 measured

    first = f"encoder.{config.num_layers - 2}.attention.qkv"
    quantize_dynamic_int8(tmp_path / "fp32" / ONNX_FILE, tmp_path / "kept.onnx",
                          fp32_products=[f"{last}.qkv", first])
    kept = onnx.load(str(tmp_path / "kept.onnx")).graph.node
    assert {n.name for n in kept if n.op_type == "MatMul"} == projections
    assert [n.name for n in kept if n.op_type == "Attention"] == [first]


def test_unknown_fp32_product_is_refused(tmp_path):
    from bortkit.export.core import ONNX_FILE, quantize_dynamic_int8
    config = CONFIGS["bert"]
    save_pretrained(Model(config), tmp_path / "ckpt", config=config)
    export(tmp_path / "ckpt", tmp_path / "onnx")
    source = tmp_path / "onnx" / ONNX_FILE
    with pytest.raises(ConfigError) as err:
        quantize_dynamic_int8(source, tmp_path / "int8.onnx", fp32_products=["encoder.9.ffn"])
    assert str(err.value) == f"{source}: no product named 'encoder.9.ffn' in the graph to " \
                             "keep in fp32"
    assert not (tmp_path / "int8.onnx").exists()


def _cli(*args):
    proc = subprocess.run([sys.executable, "-m", "bortkit.export", *map(str, args)],
                          capture_output=True, text=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return proc.returncode, lines


def test_cli_writes_a_runnable_directory(tmp_path):
    config = CONFIGS["bert"]
    save_pretrained(Model(config), tmp_path / "ckpt", config=config)
    code, lines = _cli("--model", tmp_path / "ckpt", "--format", "onnx",
                       "--output-dir", tmp_path / "out")
    assert code == 0, lines
    ids, types, mask = _inputs(config)
    expected = bortkit.from_pretrained(tmp_path / "ckpt").encode(ids, types, mask)
    got = OnnxModel(tmp_path / "out").run(ids, types, mask)["last_hidden_state"]
    assert np.abs(expected.last_hidden_state - got).max() < 1e-5
    # the directory now holds a model: a second export to it is refused, nothing overwritten
    code, lines = _cli("--model", tmp_path / "ckpt", "--format", "onnx",
                       "--output-dir", tmp_path / "out")
    assert code == 2 and lines == [f"bortkit: error: {tmp_path / 'out'}: output directory "
                                   "already exists (pass --overwrite to replace it)"]


@pytest.mark.parametrize("args,message", [
    (["--model", "{tmp}/missing"], "bortkit: error: {tmp}/missing: checkpoint not found"),
    (["--model", "{tmp}", "--format", "tflite"],
     "bortkit: error: --format must be one of huggingface, onnx, got 'tflite'"),
    (["--model", "{tmp}", "--format", "onnx", "--quantize", "int4"],
     "bortkit: error: --quantize must be one of int8, got 'int4'"),
    (["--model", "{tmp}", "--quantize", "int8"],
     "bortkit: error: --quantize applies to --format onnx, not huggingface"),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    code, lines = _cli(*args, "--output-dir", tmp_path / "out")
    assert code == 2 and lines == [message.format(tmp=tmp_path)]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("calibration,message", [
    ([], "calibration text is empty: give a few hundred sentences of real text"),
    (["", "  \n"], "calibration text is empty: give a few hundred sentences of real text"),
    ("one string", "calibration must be a list of sentences of real text (a few hundred), "
                   "got str"),
])
def test_empty_calibration_is_refused_before_work(tiny_model, calibration, message):
    with pytest.raises(ConfigError) as err:
        bortkit.from_pretrained(tiny_model, quantize="int8", calibration=calibration)
    assert str(err.value) == message


def test_unknown_quantization_is_refused(tiny_model):
    with pytest.raises(ConfigError) as err:
        bortkit.from_pretrained(tiny_model, quantize="int4", calibration=["a sentence"])
    assert str(err.value) == "quantize must be one of int8, got 'int4'"


def test_exports_carry_the_tokenizer_length_and_a_model_card(finetuned_sst2, tiny_model,
                                                             tmp_path):
    """best/, the Hugging Face and the ONNX export: README.md whose metadata block
    huggingface_hub reads (base model, task, labels, metrics, command, version) and a
    tokenizer_config.json with model_max_length, so that transformers' pipeline with
    truncation=True classifies a 3,000-word text as bortkit does."""
    import json
    transformers = pytest.importorskip("transformers")
    from huggingface_hub import ModelCard
    best = finetuned_sst2 / "best"
    result = json.loads((finetuned_sst2 / "result.json").read_text())
    labels = json.loads((best / "config.json").read_text())["_head"]["labels"]
    hf = export(best, tmp_path / "hf", format="huggingface")
    onnx_dir = export(best, tmp_path / "onnx", format="onnx")
    for where, library in ((best, "bortkit"), (hf, "transformers"), (onnx_dir, "onnx")):
        card = ModelCard.load(where / "README.md")
        assert card.data.base_model == str(tiny_model) and card.data.library_name == library
        assert card.data.pipeline_tag == "text-classification"
        got = {r.metric_type: r.metric_value for r in card.data.eval_results}
        assert got == {k: v for k, v in result["best"].items() if k != "main"}
        assert {r.dataset_name for r in card.data.eval_results} == {"SST-2"}
        ours = card.data.to_dict()["bortkit"]
        assert ours["labels"] == labels and ours["task"] == "SST-2"
        assert ours["version"] == bortkit.__version__ and ours["max_length"] == 40
        assert ours["made_by"] and ours["created"]  # the command line and the time
        if where == best:
            assert ours["trainer"] == "bortkit.finetune" and ours["step"] == result["best_step"]
    for where in (hf, onnx_dir):
        assert json.loads((where / "tokenizer_config.json").read_text())[
            "model_max_length"] == 40  # the length the head was trained with
    long_text = " ".join(["a gripping , funny and moving film"] * 430)
    assert len(long_text.split()) > 3000
    theirs = transformers.pipeline("text-classification", model=str(hf), device="cpu")
    expected = bortkit.pipeline(best)(long_text)
    got = theirs(long_text, truncation=True)
    assert [g["label"] for g in got] == [e["label"] for e in expected]
    np.testing.assert_allclose(got[0]["score"], expected[0]["score"], atol=1e-5)
    assert bortkit.pipeline(onnx_dir)(long_text)[0]["label"] == expected[0]["label"]


@pytest.mark.parametrize("fmt", ["onnx", "huggingface"])
def test_an_invalid_head_is_refused_before_anything_is_written(finetuned_sst2, tmp_path, fmt):
    """A head whose num_labels disagrees with its label names is one line naming config.json,
    exit 2, and no output folder: never an export with a head the loaders would misread."""
    import json
    import shutil
    model = tmp_path / "model"
    shutil.copytree(finetuned_sst2 / "best", model)
    config = json.loads((model / "config.json").read_text())
    config["_head"]["num_labels"] = len(config["_head"]["labels"]) + 1
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    code, lines = _cli("--model", str(model), "--format", fmt, "--output-dir", str(out))
    assert code == 2, lines
    errors = [line for line in lines if line.startswith("bortkit: error:")]
    assert len(errors) == 1 and "config.json" in errors[0] and "num_labels" in errors[0], lines
    assert not any("Traceback" in line for line in lines) and not out.exists()

"""bortkit.analyze: taps, edits (order, removal, skips), approximators, the non-linearity
measure, freezing and the command line, on tiny random models and a slice of real SST-2."""
from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from bortkit.analyze import (Edits, LinearApproximator, nonlinearity, one_minus_cosine,
                             real_tokens, run_network)
from bortkit.analyze.experiments import (frozen_names, kendall_distance, random_orders,
                                         swapped)
from bortkit.checkpoint import assign, named_parameters, read_state, save_pretrained
from bortkit.checkpoint.core import State
from bortkit.config import ModelConfig
from bortkit.model import BertNetwork, SequenceClassifier


def network(num_layers=3, activation="gelu", seed=0, layer_norm_position="post"):
    mx.random.seed(seed)
    config = ModelConfig(num_layers=num_layers, num_heads=2, units=16, ffn_units=32,
                         vocab_size=60, max_length=32, activation=activation,
                         layer_norm_position=layer_norm_position)
    net = BertNetwork(config, prefix="bert_")
    net.initialize(mx.init.Normal(0.3))
    return net


def inputs(batch=3, length=9, seed=1):
    rng = np.random.RandomState(seed)
    ids = rng.randint(0, 60, (batch, length))
    mask = np.ones((batch, length))
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return [mx.nd.array(a) for a in (ids, np.zeros_like(ids), mask)]


def gelu(x):
    from scipy.special import erf
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def numpy_layer(layer, x, mask, heads=2):
    """Independent post-LN encoder layer in NumPy on (B, T, U): every tap."""
    w = {k: p.data().asnumpy().astype(np.float64)
         for k, p in named_parameters(layer).items()}

    def dense(v, name):
        return v @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def norm(v, name):
        mu, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
        return (v - mu) / np.sqrt(var + 1e-12) * w[f"{name}.gamma"] + w[f"{name}.beta"]

    b, t, u = x.shape
    d = u // heads
    split = lambda v: v.reshape(b, t, heads, d).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = (split(dense(x, f"attention.{n}")) for n in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + (1 - mask[:, None, None, :]) * -1e4
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, u)
    attention = dense(context, "attention.output")
    block = norm(x + attention, "attention_norm")
    ffn = dense(gelu(dense(block, "ffn.ffn_1")), "ffn.ffn_2")
    return {"input": x, "attention": attention, "attention_block": block, "ffn": ffn,
            "output": norm(block + ffn, "ffn_norm")}


def as_btu(tap):
    return np.transpose(tap.asnumpy(), (1, 0, 2))


def test_every_tap_matches_an_independent_numpy_layer():
    net = network()
    ids, types, mask = inputs()
    sequence, _, taps = run_network(net, ids, types, mask, collect_taps=True)
    assert np.abs(sequence.asnumpy() - net(ids, types, mask)[0].asnumpy()).max() == 0
    for i, layer_taps in enumerate(taps):
        expected = numpy_layer(net.encoder[i], as_btu(layer_taps["input"]), mask.asnumpy())
        real = mask.asnumpy() > 0
        for name, value in expected.items():
            np.testing.assert_allclose(as_btu(layer_taps[name])[real], value[real],
                                       atol=2e-4, err_msg=f"layer {i} tap {name}")


def test_nonlinearity_equals_direct_numpy_over_real_tokens():
    rng = np.random.RandomState(0)
    y = rng.randn(7, 3, 5).astype(np.float32)                    # (T, B, U)
    y_hat = y + 0.5 * rng.randn(7, 3, 5).astype(np.float32)
    mask = (rng.rand(3, 7) > 0.3).astype(np.float32)             # (B, T)
    got = nonlinearity(real_tokens(mx.nd.array(y), mask), real_tokens(mx.nd.array(y_hat), mask))
    values = [1 - y[t, b] @ y_hat[t, b] / np.linalg.norm(y[t, b]) / np.linalg.norm(y_hat[t, b])
              for b in range(3) for t in range(7) if mask[b, t]]
    assert got == pytest.approx(np.mean(values), rel=1e-6)
    assert one_minus_cosine(y[0], y[0]) == pytest.approx(np.zeros(3), abs=1e-6)


def _fit_and_measure(net, part):
    from bortkit.analyze.taps import PARTS
    fit = LinearApproximator(16, 16)
    source, target = PARTS[part]
    for seed in range(4):  # training batches
        ids, types, mask = inputs(batch=8, length=12, seed=seed)
        _, _, taps = run_network(net, ids, types, mask, collect_taps=True)
        fit.update(real_tokens(taps[1][source], mask.asnumpy()),
                   real_tokens(taps[1][target], mask.asnumpy()))
    fit.solve()
    ids, types, mask = inputs(batch=8, length=12, seed=99)  # held out
    _, _, taps = run_network(net, ids, types, mask, collect_taps=True)
    x = real_tokens(taps[1][source], mask.asnumpy())
    return nonlinearity(real_tokens(taps[1][target], mask.asnumpy()), fit.predict(x))


def test_linear_approximator_of_a_linear_sublayer_has_zero_nonlinearity():
    # With the identity activation the FFN is Dense o Dense: exactly linear.
    assert _fit_and_measure(network(activation="identity"), "ffn") < 1e-5
    assert _fit_and_measure(network(activation="gelu"), "ffn") > 1e-3
    assert _fit_and_measure(network(activation="identity"), "layer") > 1e-3


def test_identity_order_and_self_swap_leave_outputs_unchanged():
    net = network()
    ids, types, mask = inputs()
    reference = run_network(net, ids, types, mask)[0].asnumpy()
    for order in ([0, 1, 2], swapped(3, 1, 1), swapped(3, 0, 0)):
        out = run_network(net, ids, types, mask, Edits(order=order))[0].asnumpy()
        assert np.array_equal(out, reference)
    out = run_network(net, ids, types, mask, Edits(order=swapped(3, 0, 2)))[0].asnumpy()
    assert np.abs(out - reference).max() > 1e-3
    pre = network(layer_norm_position="pre")  # the composition follows pre-LN too
    assert np.array_equal(run_network(pre, ids, types, mask)[0].asnumpy(),
                          pre(ids, types, mask)[0].asnumpy())


def test_removing_a_layer_equals_a_model_built_without_it():
    net = network(num_layers=3)
    ids, types, mask = inputs()
    tensors = {k: p.data().asnumpy() for k, p in named_parameters(net).items()}
    kept = {k: v for k, v in tensors.items() if not k.startswith("encoder.")}
    for new, old in ((0, 0), (1, 2)):
        kept.update({k.replace(f"encoder.{old}.", f"encoder.{new}.", 1): v
                     for k, v in tensors.items() if k.startswith(f"encoder.{old}.")})
    config = ModelConfig(**{**net.config.to_dict(), "num_layers": 2})
    smaller = BertNetwork(config, prefix="bert_")
    smaller.initialize()
    assign(smaller, State(config, kept, "bortkit", Path("memory")))
    removed = run_network(net, ids, types, mask, Edits(remove=frozenset({(1, "layer")})))[0]
    assert np.array_equal(removed.asnumpy(), smaller(ids, types, mask)[0].asnumpy())


def test_removed_sublayers_and_cancelled_skips():
    net = network()
    ids, types, mask = inputs()
    edits = Edits(remove=frozenset({(0, "attention"), (1, "ffn_block")}),
                  cancel_skip=frozenset({2}))
    _, _, taps = run_network(net, ids, types, mask, edits, collect_taps=True)
    layer0, layer1, layer2 = (net.encoder[i] for i in range(3))
    np.testing.assert_array_equal(taps[0]["attention"].asnumpy(), 0)
    np.testing.assert_allclose(taps[0]["attention_block"].asnumpy(),
                               layer0.attention_norm(taps[0]["input"]).asnumpy(), atol=1e-6)
    assert "ffn" not in taps[1]
    np.testing.assert_array_equal(taps[1]["output"].asnumpy(),
                                  taps[1]["attention_block"].asnumpy())
    np.testing.assert_allclose(taps[2]["output"].asnumpy(),
                               layer2.ffn_norm(taps[2]["ffn"]).asnumpy(), atol=1e-6)


def test_orders_and_frozen_names():
    orders = random_orders(4, 30, seed=0)
    assert len(orders) == 24 and len({tuple(o) for o in orders}) == 24
    assert kendall_distance([0, 1, 2]) == 0 and kendall_distance([2, 1, 0]) == 3
    names = list(named_parameters(network(num_layers=2)))
    assert frozen_names(names, "ffn_block", [1]) == [
        "encoder.1.ffn.ffn_1.weight", "encoder.1.ffn.ffn_1.bias", "encoder.1.ffn.ffn_2.weight",
        "encoder.1.ffn.ffn_2.bias", "encoder.1.ffn_norm.gamma", "encoder.1.ffn_norm.beta"]
    assert len(frozen_names(names, "layer", [0, 1])) == 32


# --------------------------------------------------------------------------- command line
@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tiny_model):
    """The tiny model with a (random) SST-2 head, saved as a fine-tuned checkpoint."""
    from bortkit.checkpoint import classifier_from_state
    from bortkit.tokenizers import load_tokenizer
    state = read_state(tiny_model)
    classifier, _ = classifier_from_state(state, 2, "mean")
    path = tmp_path_factory.mktemp("clf") / "model"
    head = {"task": "SST-2", "kind": "classification", "num_labels": 2, "labels": ["0", "1"],
            "max_length": 32, "pooling": "mean"}
    save_pretrained(classifier, path, config=state.config, meta={"_head": head},
                    tokenizer=load_tokenizer(tiny_model))
    return path


@pytest.fixture
def analyze(capsys):
    """Run the command in this process (as ``python -m bortkit.analyze`` does):
    -> (exit status, stderr)."""
    from bortkit.analyze.__main__ import main
    from bortkit.errors import run_cli

    def run(*args):
        with pytest.raises(SystemExit) as exit_:
            run_cli(main, [str(a) for a in args])
        return exit_.value.code, capsys.readouterr().err
    return run


def test_cli_swap_nonlinearity_shuffle(tiny_classifier, glue_dir, tmp_path, analyze):
    common = ["--model", tiny_classifier, "--data-dir", glue_dir, "--output-dir", tmp_path,
              "--max-eval-examples", 40, "--no-progress"]
    assert analyze("swap", *common) == (0, "")
    rows = json.loads((tmp_path / "swap.json").read_text())["rows"]
    assert [(r["i"], r["j"]) for r in rows] == [(0, 0), (0, 1), (1, 1)]
    assert rows[0]["score"] == rows[2]["score"]          # unswapped, twice
    assert (tmp_path / "swap.csv").read_text().splitlines()[0] == "i,j,order,skip,score"
    assert (tmp_path / "swap.png").stat().st_size > 1000
    assert analyze("nonlinearity", *common, "--max-train-examples", 60, "--mlp-tokens", 200,
                   "--mlp-epochs", 1) == (0, "")
    rows = json.loads((tmp_path / "nonlinearity.json").read_text())["rows"]
    assert len(rows) == 2 * 5 and all(0 <= r["linear"] < 1 and r["mlp"] < 2 for r in rows)
    assert analyze("shuffle", *common, "--orders", "1,0;0,1", "--cancel-skip", "all") == (0, "")
    assert [r["kendall"] for r in json.loads(
        (tmp_path / "shuffle-noskip.json").read_text())["rows"]] == [1, 0]
    rows = json.loads((tmp_path / "nonlinearity.json").read_text())["rows"]
    assert all(r["linear_cosine"] < 2 and r["mlp_cosine"] < 2 for r in rows)
    evaluation_only = ("evaluation only: the reference fine-tunes after each edit (3 epochs "
                       "at 2e-5: --epochs 3; or --finetune-steps N)\n")
    assert analyze("remove", *common, "--part", "layer", "--cumulative", "backward") == (
        0, evaluation_only)
    rows = json.loads((tmp_path / "remove.json").read_text())["rows"]
    assert [r["layers"] for r in rows] == ["", "1", "1,0"]
    assert analyze("replace", *common, "--part", "ffn_block", "--layers", "1",
                   "--max-train-examples", 60) == (0, evaluation_only)
    rows = json.loads((tmp_path / "replace.json").read_text())["rows"]
    assert [(r["layers"], r["approximator"]) for r in rows] == [("", "linear"), ("1", "linear")]
    status, err = analyze("swap", *common)  # never overwrites
    assert status == 2 and err.strip() == (f"bortkit: error: --output-dir: {tmp_path}/swap.csv "
                                           "already exists (results are never overwritten); "
                                           "choose another folder")


@pytest.mark.parametrize("args, message", [
    (["remove", "--part", "ffn", "--layers", "0,7"],
     "bortkit: error: --layers: layer index must be in [0, 1] for this 2-layer model, got 7"),
    (["swap", "--pairs", "0,2"],
     "bortkit: error: --pairs: layer index must be in [0, 1] for this 2-layer model, got 2"),
    (["shuffle", "--orders", "0,0"],
     "bortkit: error: --orders: a shuffle order must be a permutation of 0..1 (each layer "
     "once), got 0,0"),
    (["nonlinearity", "--parts", "attention,mlp"],
     "bortkit: error: --parts: each part must be one of attention, attention_block, ffn, "
     "ffn_block, layer, got 'mlp'"),
])
def test_cli_bad_input_one_line_nothing_written(tiny_classifier, glue_dir, tmp_path, args,
                                                message, analyze):
    out = tmp_path / "out"
    status, err = analyze(*args, "--model", tiny_classifier, "--data-dir", glue_dir,
                          "--output-dir", out)
    assert status == 2 and err.strip() == message
    assert not out.exists()


def test_freeze_keeps_frozen_parameters(tiny_model, glue_dir, tmp_path):
    from bortkit.analyze.experiments import freeze_parts
    rows = freeze_parts([("ffn-1", "ffn_block", [1])], tmp_path, task="SST-2", model=tiny_model,
                        data_dir=str(glue_dir), max_steps=4, batch_size=8, learning_rate=1e-2,
                        max_train_examples=32, max_eval_examples=16, max_length=32,
                        pooling="mean", progress=False)
    assert rows[0]["frozen_params"] == 2 * 32 * 64 + 64 + 32 + 2 * 32  # tiny: units 32, ffn 64
    before = read_state(tiny_model).tensors
    after = read_state(tmp_path / "runs" / "ffn-1" / "best").tensors
    for name in before:
        same = np.array_equal(before[name], after[name])
        frozen = name.startswith(("encoder.1.ffn.", "encoder.1.ffn_norm."))
        if frozen or name.startswith("pooler."):
            assert same, name
        elif name.startswith("encoder."):
            assert not same, name


def test_mlp_starts_from_the_linear_fit_and_improves_on_a_nonlinear_map():
    from bortkit.analyze import fit_mlp
    rng = np.random.RandomState(0)
    x = rng.randn(2000, 8).astype(np.float32)
    y = np.maximum(x @ rng.randn(8, 8), 0).astype(np.float32) + 0.1 * x
    linear = LinearApproximator(8, 8)
    linear.update(x, y)
    linear.solve()
    untrained = fit_mlp(x, y, 16, linear, epochs=0)
    np.testing.assert_allclose(untrained.predict(x), linear.predict(x), atol=1e-4)
    trained = fit_mlp(x, y, 16, linear, epochs=20)
    assert nonlinearity(y, trained.predict(x)) < 0.85 * nonlinearity(y, linear.predict(x))


def test_remove_with_finetuning_trains_what_is_left_and_reports_both_scores(
        tiny_classifier, glue_dir, tmp_path, analyze):
    """The removed FFN's weights keep their values (no gradient, no decay), the rest moves;
    the table has the evaluation-only and the fine-tuned score, the baseline fine-tuned
    for the same steps."""
    from bortkit.analyze.experiments import load_split, load_subject
    from bortkit.analyze.retrain import RetrainSettings, Retrainer
    subject = load_subject(tiny_classifier, "SST-2")
    train = load_split(subject, glue_dir, "train", 32, 0)
    retrainer = Retrainer(subject, train, RetrainSettings(steps=3, learning_rate=1e-2,
                                                          batch_size=8))
    assert retrainer.run(Edits(remove=frozenset({(1, "ffn")})), {(1, "ffn")}, {}) == 3
    for name, param in named_parameters(subject.classifier).items():
        same = np.array_equal(param.data().asnumpy(), retrainer.saved[name].asnumpy())
        if name.startswith("encoder.1.ffn."):
            assert same, name
        elif name.startswith(("encoder.0.", "head.")):
            assert not same, name
    retrainer.restore()
    assert all(np.array_equal(p.data().asnumpy(), retrainer.saved[n].asnumpy())
               for n, p in named_parameters(subject.classifier).items())
    assert RetrainSettings(epochs=3, batch_size=8).total_steps(33) == 15   # 3 x ceil(33/8)

    common = ["--model", tiny_classifier, "--data-dir", glue_dir, "--output-dir", tmp_path,
              "--max-eval-examples", 40, "--max-train-examples", 32, "--batch-size", 8,
              "--no-progress"]
    assert analyze("remove", *common, "--part", "ffn", "--layers", "1",
                   "--finetune-steps", 2, "--learning-rate", 1e-3) == (0, "")
    result = json.loads((tmp_path / "remove.json").read_text())
    assert result["finetune"]["steps"] == 2 and result["finetune"]["learning_rate"] == 1e-3
    assert [r["finetune_steps"] for r in result["rows"]] == [2, 2]
    assert result["baseline_finetuned"] == result["rows"][0]["finetuned"]
    assert result["rows"][0]["score"] == result["baseline"]
    assert (tmp_path / "remove.csv").read_text().splitlines()[0] == \
        "layers,part,score,finetune_steps,finetuned"


def test_replace_with_finetuning_trains_the_approximator(tiny_classifier, glue_dir,
                                                         tmp_path, analyze):
    common = ["--model", tiny_classifier, "--data-dir", glue_dir, "--output-dir", tmp_path,
              "--max-eval-examples", 40, "--max-train-examples", 32, "--batch-size", 8,
              "--no-progress"]
    assert analyze("replace", *common, "--part", "ffn", "--layers", "0,1",
                   "--approximator", "linear_cosine", "--approximator-epochs", 1,
                   "--epochs", 1) == (0, "")
    result = json.loads((tmp_path / "replace.json").read_text())
    assert result["finetune"]["steps"] == 4                     # 1 epoch of 32 / 8
    assert [(r["layers"], r["approximator"]) for r in result["rows"]] == [
        ("", "linear_cosine"), ("0", "linear_cosine"), ("1", "linear_cosine")]
    assert all("finetuned" in r for r in result["rows"])


@pytest.mark.parametrize("args, message", [
    (["remove", "--part", "ffn", "--finetune-steps", "0"],
     "bortkit: error: --finetune-steps: must be a positive integer, got 0"),
    (["remove", "--part", "ffn", "--epochs", "-1"],
     "bortkit: error: --epochs: must be > 0, got -1.0"),
    (["replace", "--part", "ffn", "--approximator", "mlp_cosine", "--approximator-epochs", "0"],
     "bortkit: error: --approximator-epochs: must be >= 1 to train --approximator "
     "mlp_cosine, got 0"),
])
def test_cli_bad_finetune_options_one_line(tiny_classifier, glue_dir, tmp_path, args, message,
                                           analyze):
    out = tmp_path / "out"
    status, err = analyze(*args, "--model", tiny_classifier, "--data-dir", glue_dir,
                          "--output-dir", out)
    assert status == 2 and err.strip() == message
    assert not out.exists()


def test_reference_approximators_fit_on_cosine_loss():
    """The reference's Dense (truncated-normal init, std 0.02, |w| <= 0.04) trained by Adam
    on 1 - cos recovers a linear map's directions; its Dense + ReLU gives no negative
    output."""
    from bortkit.analyze.approximators import CosineFit
    rng = np.random.RandomState(0)
    x = rng.randn(4096, 8).astype(np.float32)
    y = (x @ rng.randn(8, 8) + 0.5).astype(np.float32)
    linear = CosineFit(8, 8, learning_rate=1e-2, seed=0)
    w = linear.model.dense.weight.data().asnumpy()
    assert np.abs(w).max() <= 0.04 and 0.012 < w.std() < 0.02
    before = nonlinearity(y, linear.model.predict(x))
    losses = [linear.step(x[i:i + 256], y[i:i + 256]) for _ in range(20)
              for i in range(0, 4096, 256)]
    after = nonlinearity(y, linear.model.predict(x))
    assert losses[-1] < losses[0] and after < 0.01 < before
    relu = CosineFit(8, 8, relu=True, seed=0)
    for i in range(0, 4096, 256):
        relu.step(x[i:i + 256], y[i:i + 256])
    assert relu.model.predict(x).min() >= 0.0

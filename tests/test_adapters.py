"""Per-task adapters (Stickland & Murray 2019): every adapter layer against a NumPy
implementation of its formula, the paper's parameter overheads for BERT-base, the
multi-task model, freeze_base and one-line errors."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from scipy.special import erf

from bortkit import count_params
from bortkit.accounting import adapter_params, multitask_head_params
from bortkit.checkpoint import named_parameters
from bortkit.config import ModelConfig, load_config
from bortkit.errors import BortkitError, ConfigError

T, B, U, H = 7, 2, 16, 4
ADAPTER_SETTINGS = {"pals": {"adapter_units": 12, "adapter_heads": 3},
                    "low_rank": {"adapter_units": 6}, "houlsby": {"adapter_units": 5},
                    "lhuc": {}, "top": {"adapter_units": 12, "adapter_heads": 2,
                                        "top_attention_layers": 2}, "top_layer": {}}


def config(adapter, **changes):
    base = dict(num_layers=2, num_heads=H, units=U, ffn_units=24, vocab_size=40, max_length=16,
                dropout=0.0, attention_dropout=0.0, adapter=adapter, num_tasks=3,
                **ADAPTER_SETTINGS.get(adapter, {}))
    return ModelConfig(**{**base, **changes})


def network(cfg):
    from bortkit.model import BertNetwork
    net = BertNetwork(cfg, prefix="bert_")
    net.initialize(mx.init.Normal(0.3))
    rng = np.random.RandomState(1)
    for param in net.collect_params().values():  # non-trivial biases, norms, LHUC scales
        if param.name.endswith(("bias", "beta", "scale")):
            param.set_data(mx.nd.array(rng.normal(0, 0.3, param.shape)))
        elif param.name.endswith("gamma"):
            param.set_data(mx.nd.array(1 + rng.normal(0, 0.3, param.shape)))
    return net


# ----------------------------------------------------------------------------- NumPy
def v(param, task=None):
    value = param.data().asnumpy().astype(np.float64)
    return value if task is None else value[task]


def gelu(x):
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def dense(x, block, task=None):
    return x @ v(block.weight, task).T + v(block.bias, task)


def layer_norm(x, gamma, beta, eps):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def attention(x, mask, q, k, val, heads):
    """x (B, T, A) -> context (B, T, A): softmax(q k^T / sqrt(d) + mask) v per head."""
    b, t, a = q.shape
    d = a // heads
    q, k, val = (z.reshape(b, t, heads, d) for z in (q, k, val))
    scores = np.einsum("bihd,bjhd->bhij", q, k) / np.sqrt(d) + (1 - mask[:, None, None]) * -1e4
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    return np.einsum("bhij,bjhd->bihd", probs, val).reshape(b, t, a)


def task_attention(x, mask, block, task, heads):
    return attention(x, mask, dense(x, block.query, task), dense(x, block.key, task),
                     dense(x, block.value, task), heads)


def low_rank(x, block, task):
    return dense(gelu(dense(x, block.down, task)), block.up, task)


def reference_layer(layer, cfg, x, mask, task):
    """Post-LN BERT layer with the adapter of variants.md section C. x (B, T, U)."""
    eps, kind = cfg.layer_norm_eps, cfg.adapter
    att = layer.attention
    attended = dense(attention(x, mask, dense(x, att.query), dense(x, att.key),
                               dense(x, att.value), H), att.output)
    if kind == "houlsby":
        attended = attended + low_rank(attended, layer.attention_adapter, task)
    a = layer_norm(x + attended, v(layer.attention_norm.gamma), v(layer.attention_norm.beta), eps)
    out = dense(gelu(dense(a, layer.ffn.ffn_1)), layer.ffn.ffn_2)
    if kind == "houlsby":
        out = out + low_rank(a, layer.ffn_adapter, task)
    elif kind == "pals":
        pal = layer.pal
        down = dense(x, pal.projections.down, task)
        context = task_attention(down, mask, pal.attention, task, cfg.adapter_heads)
        out = out + gelu(dense(context, pal.projections.up, task))
    elif kind == "low_rank":
        out = out + low_rank(x, layer.low_rank, task)
    y = layer_norm(a + out, v(layer.ffn_norm.gamma), v(layer.ffn_norm.beta), eps)
    if kind == "lhuc":
        y = y * 2 / (1 + np.exp(-v(layer.lhuc.scale, task)))
    return y


def inputs():
    rng = np.random.RandomState(0)
    x = rng.normal(size=(B, T, U))
    mask = np.ones((B, T))
    mask[1, 5:] = 0
    return x, mask


@pytest.mark.parametrize("adapter", ["pals", "low_rank", "houlsby", "lhuc"])
def test_adapter_layer_matches_numpy(adapter):
    cfg = config(adapter)
    layer = network(cfg).encoder[1]
    x, mask = inputs()
    outputs = []
    for task in (0, 2):
        y, _ = layer(mx.nd.array(x.transpose(1, 0, 2)), mx.nd.array(mask), mx.nd.array([task]))
        y = y.asnumpy().transpose(1, 0, 2)
        np.testing.assert_allclose(y, reference_layer(layer, cfg, x, mask, task), atol=2e-4)
        outputs.append(y)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3   # each task has its own adapter


def test_top_projected_attention_matches_numpy():
    cfg = config("top")
    top = network(cfg).top
    x, mask = inputs()
    task = 1
    y = top(mx.nd.array(x.transpose(1, 0, 2)), mx.nd.array(mask), mx.nd.array([task]))
    h = dense(x, top.down, task)
    for block in top.blocks:
        context = task_attention(h, mask, block.attention, task, cfg.adapter_heads)
        h = layer_norm(h + dense(context, block.output, task), v(block.norm.gamma, task),
                       v(block.norm.beta, task), cfg.layer_norm_eps)
    np.testing.assert_allclose(y.asnumpy().transpose(1, 0, 2), dense(h, top.up, task),
                               atol=2e-4)


def test_top_layer_is_a_per_task_bert_layer_on_the_last_output():
    """bert_lay_top: the encoder's last output h goes through the task's own post-LN BERT
    layer (attention with output Dense, FFN, two LayerNorms, all U wide), whose result
    replaces it; the shared layers are plain."""
    from bortkit.model import MultiTaskClassifier
    from bortkit.model.blocks import EncoderLayer
    cfg = config("top_layer")
    net = network(cfg)
    assert all(type(layer) is EncoderLayer for layer in net.encoder)
    top = net.top_layer
    x, mask = inputs()
    outputs = []
    for task in (0, 2):
        y = top(mx.nd.array(x.transpose(1, 0, 2)), mx.nd.array(mask), mx.nd.array([task]))
        att, ffn = top.attention, top.ffn
        a = layer_norm(x + dense(task_attention(x, mask, att.attention, task, H), att.output,
                                 task), v(att.norm.gamma, task), v(att.norm.beta, task),
                       cfg.layer_norm_eps)
        expected = layer_norm(a + dense(gelu(dense(a, ffn.ffn_1, task)), ffn.ffn_2, task),
                              v(ffn.norm.gamma, task), v(ffn.norm.beta, task),
                              cfg.layer_norm_eps)
        outputs.append(y.asnumpy().transpose(1, 0, 2))
        np.testing.assert_allclose(outputs[-1], expected, atol=2e-4)
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3      # one layer per task
    # The network's sequence output is the top layer applied to the last shared layer.
    ids, types, ones = batch()
    sequence = net.run(mx.nd, ids, types, ones, task_id=mx.nd.array([1]))[0]
    plain = MultiTaskClassifier(network(config("none")), [2]).network
    for name, param in named_parameters(plain).items():
        param.set_data(named_parameters(net)[name].data())
    hidden = plain.run(mx.nd, ids, types, ones)[0]
    on_top = top(mx.nd.transpose(hidden, axes=(1, 0, 2)), ones, mx.nd.array([1]))
    np.testing.assert_allclose(sequence.asnumpy(),
                               mx.nd.transpose(on_top, axes=(1, 0, 2)).asnumpy(), atol=1e-4)
    per_task = 4 * (U * U + U) + (U * 24 + 24) + (24 * U + U) + 2 * 2 * U
    assert adapter_params(cfg) == 3 * per_task
    assert sorted({n.split(".")[0] for n in named_parameters(net)} - {"embeddings", "encoder",
                                                                      "pooler"}) == ["top_layer"]


def test_pal_projections_are_shared_by_every_layer():
    net = network(config("pals"))
    shared = net.task_projections.down.weight
    assert all(layer.pal.projections.down.weight is shared for layer in net.encoder)
    assert [n for n in named_parameters(net) if "down.weight" in n] == \
        ["task_projections.down.weight"]


# ----------------------------------------------------------------------------- counts
BERT_BASE = 109_482_240


@pytest.mark.parametrize("adapter,units,extra,ratio", [
    ("pals", 204, 8 * ((768 * 204 + 204) + (204 * 768 + 768) + 12 * 3 * (204 * 204 + 204)),
     1.13),
    ("low_rank", 100, 8 * 12 * ((768 * 100 + 100) + (100 * 768 + 768)), 1.14),
    ("top", 204, 8 * ((768 * 204 + 204) + 6 * (4 * (204 * 204 + 204) + 2 * 204)
                      + (204 * 768 + 768)), 1.10),
])
def test_paper_overheads_for_bert_base_eight_tasks(adapter, units, extra, ratio):
    from bortkit.model import BertNetwork
    cfg = load_config("bert-base").replace(adapter=adapter, num_tasks=8, adapter_units=units)
    assert adapter_params(cfg) == extra
    assert count_params(cfg) == BERT_BASE + extra
    assert round(count_params(cfg) / BERT_BASE, 2) == ratio   # the paper's 1.13x / 1.10x
    built = BertNetwork(cfg)        # shapes only: no need to initialise 124M parameters
    assert sum(int(np.prod(p.shape)) for p in named_parameters(built).values()) \
        == count_params(cfg)


def test_low_rank_100_is_about_pals_204():
    base = load_config("bert-base")
    pals = count_params(load_config("bert-base-pals")) / BERT_BASE
    low_rank = count_params(base.replace(adapter="low_rank", num_tasks=8)) / BERT_BASE
    assert abs(pals - low_rank) < 0.005 and round(pals, 2) == 1.13


@pytest.mark.parametrize("adapter", ["none", "pals", "low_rank", "houlsby", "lhuc", "top",
                                     "top_layer"])
def test_count_equals_built_multitask_model(adapter):
    from bortkit.model import MultiTaskClassifier
    cfg = config(adapter, use_pooler=adapter != "lhuc")
    model = MultiTaskClassifier(network(cfg), [2, 3, 1])
    model.initialize(mx.init.Normal(0.02))
    size = sum(p.data().size for p in named_parameters(model).values())
    assert size == count_params(cfg) + multitask_head_params(cfg, [2, 3, 1])


# ----------------------------------------------------------------------------- model
def batch(length=9):
    rng = np.random.RandomState(2)
    ids = mx.nd.array(rng.randint(0, 40, (B, length)))
    return ids, mx.nd.zeros_like(ids), mx.nd.ones_like(ids)


def test_multitask_heads_and_task_isolation():
    from bortkit.model import MultiTaskClassifier
    model = MultiTaskClassifier(network(config("pals")), [2, 3, 1])
    model.initialize(mx.init.Normal(0.02))
    model.hybridize()
    ids, types, mask = batch()
    assert [model(ids, types, mask, t).shape for t in range(3)] == [(B, 2), (B, 3), (B, 1)]
    with autograd.record():
        loss = model(ids, types, mask, 1).sum()
    loss.backward()
    grads = {n: p.grad().asnumpy() for n, p in named_parameters(model).items()
             if p.grad_req != "null"}
    pal = grads["encoder.0.pal.attention.query.weight"]                  # (tasks, A, A)
    assert np.abs(pal[1]).max() > 0 and np.abs(pal[[0, 2]]).max() == 0
    assert np.abs(grads["heads.0.out.weight"]).max() == 0


def test_freeze_base_leaves_adapters_norms_and_heads():
    from bortkit.model import MultiTaskClassifier, freeze_base
    cfg = config("low_rank")
    model = MultiTaskClassifier(network(cfg), [2, 2, 1])
    model.initialize(mx.init.Normal(0.02))
    trainable = freeze_base(model)
    params = named_parameters(model)
    assert params["encoder.0.ffn.ffn_1.weight"].grad_req == "null"
    assert params["pooler.dense.weight"].grad_req == "null"
    assert params["embeddings.word_embed.weight"].grad_req == "null"
    norms = 2 * U + cfg.num_layers * 4 * U        # embedding LN + two LNs per layer
    assert sum(params[n].data().size for n in trainable) == \
        adapter_params(cfg) + norms + multitask_head_params(cfg, [2, 2, 1])


def test_multitask_checkpoint_round_trip(tmp_path):
    from bortkit.checkpoint import assign, from_pretrained, read_state, save_pretrained
    from bortkit.model import MultiTaskClassifier
    cfg = config("houlsby")
    model = MultiTaskClassifier(network(cfg), [2, 1, 3])
    model.initialize(mx.init.Normal(0.02))
    save_pretrained(model, tmp_path / "ckpt", config=cfg)
    state = read_state(tmp_path / "ckpt")
    again = MultiTaskClassifier(network(state.config), [2, 1, 3])
    again.initialize(mx.init.Normal(0.02))
    assert assign(again, state) == []
    ids, types, mask = batch()
    for t in range(3):
        np.testing.assert_array_equal(again(ids, types, mask, t).asnumpy(),
                                      model(ids, types, mask, t).asnumpy())
    assert from_pretrained(tmp_path / "ckpt").config.adapter == "houlsby"


# ----------------------------------------------------------------------------- errors
def test_task_id_out_of_range_is_one_line():
    from bortkit.model import MultiTaskClassifier
    model = MultiTaskClassifier(network(config("lhuc")), [2, 2, 2])
    model.initialize(mx.init.Normal(0.02))
    with pytest.raises(BortkitError) as err:
        model(*batch(), 3)
    assert str(err.value) == ("task_id must be an integer in [0, 2] (this model has 3 tasks), "
                              "got 3")


def test_adapter_asked_of_a_model_without_it():
    from bortkit.model import MultiTaskClassifier, freeze_base
    model = MultiTaskClassifier(network(config("none")), [2, 2])
    model.initialize(mx.init.Normal(0.02))
    with pytest.raises(ConfigError, match=r"^freeze_base: the model has no adapters "
                                          r"\(adapter is 'none'\)"):
        freeze_base(model)
    ids, types, mask = batch()
    with pytest.raises(BortkitError, match="^a task id was given but this model has no "
                                           "adapters"):
        model.network.run(mx.nd, ids, types, mask, task_id=mx.nd.array([0]))


def test_model_with_adapters_needs_a_task_id():
    from bortkit.model import Model
    model = Model(config("pals"))
    with pytest.raises(BortkitError, match="^this model has pals adapters for 3 tasks: pass "
                                           "the task id$"):
        model.encode(np.ones((1, 4), int))


@pytest.mark.parametrize("changes,message", [
    ({"adapter": "pal"}, "adapter must be one of none, pals, low_rank, houlsby, lhuc, top, "
                         "top_layer; got 'pal'"),
    ({"adapter": "none", "adapter_units": 64},
     "adapter_units (64) applies to the pals, low_rank, houlsby and top adapters; adapter is "
     "'none'"),
    ({"adapter": "pals", "adapter_units": 100, "adapter_heads": 6},
     "adapter_units (100) must be divisible by adapter_heads (6)"),
    ({"adapter": "pals", "layer_norm_position": "pre"}, "adapters are defined for post-LN"),
    ({"adapter": "lhuc", "num_tasks": 0}, "num_tasks must be a positive integer, got 0"),
])
def test_bad_adapter_config_is_one_line(changes, message):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**changes)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_num_labels_must_match_tasks():
    from bortkit.model import MultiTaskClassifier
    with pytest.raises(ConfigError, match="num_labels lists 2 tasks but the model's pals "
                                          "adapters serve num_tasks=3"):
        MultiTaskClassifier(network(config("pals")), [2, 2])

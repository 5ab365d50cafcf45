"""Composite and convolutional attention against direct NumPy implementations of the formulas
(Chang et al., 2021), translation invariance without absolute positions, any length."""
import json

import mxnet as mx
import numpy as np
import pytest

from bortkit.config import ModelConfig, load_config
from bortkit.errors import ConfigError

T, B, U, H, K = 12, 2, 16, 4, 3   # T > max_length below: nothing is tied to max_length
D, R = U // H, 2 * K + 1


def config(**changes):
    base = dict(num_layers=2, num_heads=H, units=U, ffn_units=24, vocab_size=50, max_length=8,
                position_embedding="none", relative_positions_each_dir=K, dropout=0.0,
                attention_dropout=0.0, projection_kernel_each_dir=2)
    return ModelConfig(**{**base, **changes})


def built(block):
    block.initialize(mx.init.Normal(0.5))
    rng = np.random.RandomState(1)
    for name, param in block.collect_params().items():   # non-zero tables and biases
        if name.endswith(("convfixed", "bias")):
            param.set_data(mx.nd.array(rng.normal(0, 0.5, param.shape)))
    return block


def value(param):
    return param.data().asnumpy().astype(np.float64)


def dense(x, block):
    return x @ value(block.weight).T + value(block.bias)


def conv1d(x, weight, bias, groups):
    """x (B, T, C_in), weight (C_out, C_in / groups, W) -> (B, T, C_out), 'same' padding."""
    c_out, c_in_g, width = weight.shape
    pad = width // 2
    xp = np.pad(x, ((0, 0), (pad, pad), (0, 0)))
    out = np.zeros(x.shape[:2] + (c_out,))
    per_group = c_out // groups
    for o in range(c_out):
        g = o // per_group
        window = xp[:, :, g * c_in_g:(g + 1) * c_in_g]                  # (B, T+2p, c_in_g)
        for t in range(x.shape[1]):
            out[:, t, o] = np.einsum("bwc,cw->b", window[:, t:t + width], weight[o])
    return out + bias


def gelu(x):
    from scipy.special import erf
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def projection(x, block, kind, groups):
    if kind == "linear":
        return dense(x, block)
    if "depth" in kind:
        y = conv1d(x, value(block.depthwise.weight), value(block.depthwise.bias), x.shape[2])
        y = dense(y if "no_act" in kind else gelu(y), block.pointwise)
    else:
        y = conv1d(x, value(block.conv.weight), value(block.conv.bias), groups)
    if "mixed" in kind:
        y = np.concatenate([y, dense(x, block.linear)], axis=2)
    return y


def reference(block, cfg, x, mask):
    """The score formula of variants.md section A, term by term, in float64.
    x (B, T, U), mask (B, T) -> output (B, T, U), probabilities (B, H, T, T)."""
    terms = cfg.attention_terms
    if (cfg.qk_projection, cfg.value_projection) != ("linear", "linear"):
        x = x * mask[:, :, None]                      # padding zeroed before convolutions
    q, k, v = (projection(x, p, kind, cfg.projection_groups).reshape(B, T, H, D)
               for p, kind in ((block.query, cfg.qk_projection), (block.key, cfg.qk_projection),
                               (block.value, cfg.value_projection)))
    rel = np.clip(np.arange(T)[None, :] - np.arange(T)[:, None], -K, K) + K   # [i, j]
    scores = np.zeros((B, H, T, T))
    for b in range(B):
        for h in range(H):
            for i in range(T):
                for j in range(T):
                    s = 0.0
                    if "qk" in terms:
                        s += q[b, i, h] @ k[b, j, h] / np.sqrt(D)
                    if "convfixed" in terms:
                        s += value(block.params.get("convfixed"))[h, rel[i, j]]
                    if "convq" in terms:
                        wq = value(block.params.get("convq"))
                        s += q[b, i, h] @ wq[:, rel[i, j]] / np.sqrt(D)
                    if "convk" in terms:
                        wk = value(block.params.get("convk"))
                        s += k[b, j, h] @ wk[:, rel[j, i]] / np.sqrt(D)
                    scores[b, h, i, j] = s
    scores = scores + (1 - mask[:, None, None, :]) * -1e4
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = np.einsum("bhij,bjhd->bihd", probs, v).reshape(B, T, U)
    if "convolution" in terms:   # depthwise over the values, padded values zeroed
        weight = value(block.convolution.weight)                       # (U, 1, R)
        masked = v.reshape(B, T, U) * mask[:, :, None]
        for c in range(U):
            for i in range(T):
                for r in range(R):
                    j = i + r - K
                    if 0 <= j < T:
                        context[:, i, c] += weight[c, 0, r] * masked[:, j, c]
        context = context + value(block.convolution.bias)
    return dense(context, block.output), probs


def run_block(cfg):
    from bortkit.model.blocks import ATTENTION_BLOCKS
    block = built(ATTENTION_BLOCKS[cfg.attention](cfg, prefix="attention_"))
    rng = np.random.RandomState(0)
    x = rng.normal(size=(B, T, U))
    mask = np.ones((B, T))
    mask[1, 9:] = 0
    out, probs = block(mx.nd.array(x.transpose(1, 0, 2)), mx.nd.array(mask))
    expected_out, expected_probs = reference(block, cfg, x, mask)
    np.testing.assert_allclose(probs.asnumpy(), expected_probs, atol=2e-5)
    np.testing.assert_allclose(out.asnumpy().transpose(1, 0, 2), expected_out, atol=1e-4,
                               rtol=1e-4)


@pytest.mark.parametrize("attention", ["qk", "convfixed", "convq", "convk",
                                       "qk_convfixed_convq_convk", "convolution",
                                       "qk_convolution", "qk_convfixed_convq_convk_convolution"])
def test_each_score_term_matches_numpy(attention):
    run_block(config(attention=attention))


@pytest.mark.parametrize("kind,groups", [("convolution", 2), ("convolution_mixed", 1),
                                         ("convolution_depth", 1),
                                         ("convolution_depth_mixed_no_act", 1)])
def test_convolutional_projections_match_numpy(kind, groups):
    run_block(config(attention="qk_convq", qk_projection=kind, value_projection=kind,
                     projection_groups=groups))


def test_qk_alone_is_dot_product():
    from bortkit.model import Model
    from bortkit.model.blocks import ATTENTION_BLOCKS, MultiHeadSelfAttention
    assert ATTENTION_BLOCKS["dot_product"] is MultiHeadSelfAttention
    fused = Model(config(attention="dot_product", max_length=16))
    composite = Model(config(attention="qk", max_length=16), network=None)
    from bortkit.checkpoint import named_parameters
    mine = named_parameters(composite.network)
    for name, param in named_parameters(fused.network).items():
        mine[name].set_data(param.data())
    ids = np.random.RandomState(0).randint(0, 50, (2, 10))
    np.testing.assert_allclose(composite.encode(ids).last_hidden_state,
                               fused.encode(ids).last_hidden_state, atol=1e-5)


def shifted_outputs(cfg, pad=5):
    """Last hidden states at the real tokens, unshifted and shifted right by masked padding."""
    from bortkit.model import Model
    mx.random.seed(0)
    model = Model(cfg)
    ids = np.random.RandomState(0).randint(1, cfg.vocab_size, (1, 9))
    shifted = np.concatenate([np.zeros((1, pad), ids.dtype), ids], axis=1)
    mask = np.concatenate([np.zeros((1, pad)), np.ones((1, 9))], axis=1)
    plain = model.encode(ids).last_hidden_state[0]
    moved = model.encode(shifted, attention_mask=mask).last_hidden_state[0, pad:]
    return plain, moved


def test_relative_positions_only_are_translation_invariant():
    cfg = config(attention="qk_convfixed_convq_convk", qk_projection="convolution_depth_mixed",
                 value_projection="convolution", max_length=32)
    plain, moved = shifted_outputs(cfg)
    np.testing.assert_allclose(moved, plain, atol=1e-4)


def test_absolute_positions_are_not_translation_invariant():
    plain, moved = shifted_outputs(config(attention="qk_convfixed_convq_convk",
                                          position_embedding="learned", max_length=32))
    assert np.abs(moved - plain).max() > 1e-2


def test_model_trained_at_64_runs_at_200():
    import mxnet.autograd as ag
    from mxnet import gluon
    from bortkit.model import BertNetwork, MaskedLMModel
    cfg = config(attention="qk_convfixed_convq_convk", relative_positions_each_dir=8,
                 use_pooler=False, max_length=64, qk_projection="convolution_depth")
    mlm = MaskedLMModel(BertNetwork(cfg, prefix="bert_"))
    mlm.initialize(mx.init.Normal(0.02))
    trainer = gluon.Trainer(mlm.collect_params(), "adam", {"learning_rate": 1e-3})
    rng = np.random.RandomState(0)
    losses = []
    ids = mx.nd.array(rng.randint(0, 50, (4, 64)))          # one batch, learnt in 3 steps
    positions = mx.nd.array(np.arange(0, 256, 16))
    for _ in range(3):
        with ag.record():
            logits, _ = mlm(ids, mx.nd.zeros_like(ids), mx.nd.ones_like(ids), positions)
            loss = gluon.loss.SoftmaxCrossEntropyLoss()(logits, ids.reshape(-1)[positions]).mean()
        loss.backward()
        trainer.step(1)
        losses.append(loss.asscalar())
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    from bortkit.model import Model
    model = Model(cfg, mlm.network)
    out = model.encode(rng.randint(0, 50, (2, 200)), output_attentions=True)
    assert out.last_hidden_state.shape == (2, 200, U)
    assert np.isfinite(out.last_hidden_state).all()
    assert out.attentions[0].shape == (2, H, 200, 200)


def test_checkpoint_round_trip(tmp_path):
    from bortkit.checkpoint import from_pretrained, save_pretrained
    from bortkit.model import Model
    cfg = config(attention="convfixed_convk", qk_projection="convolution_mixed",
                 value_projection="convolution_depth_no_act", max_length=32)
    model = Model(cfg)
    built(model.network)
    save_pretrained(model, tmp_path / "ckpt", config=cfg)
    again = from_pretrained(tmp_path / "ckpt")
    assert again.config == cfg
    ids = np.random.RandomState(0).randint(0, 50, (2, 20))
    np.testing.assert_array_equal(again.encode(ids).last_hidden_state,
                                  model.encode(ids).last_hidden_state)


@pytest.mark.parametrize("changes,message", [
    ({"attention": "qk_convx"},
     "attention must be 'dot_product' or the terms qk, convfixed, convq, convk, convolution "
     "joined by '_' in that order (e.g. 'qk_convfixed_convq_convk'); got 'qk_convx'"),
    ({"attention": "qk_convfixed_convq_convk 8"},
     "got 'qk_convfixed_convq_convk 8' (give the kernel width as relative_positions_each_dir)"),
    ({"attention": "convk_qk"}, "in that order"),
    ({"attention": "qk_convq", "relative_positions_each_dir": 128, "max_length": 128},
     "relative_positions_each_dir must be in [1, max_length - 1 = 127], got 128"),
    ({"attention": "qk", "qk_projection": "convolution", "projection_kernel_each_dir": 64,
      "max_length": 128},
     "projection_kernel_each_dir must be in [1, 63] (kernel width 2K+1 <= max_length 128), "
     "got 64 (width 129)"),
    ({"qk_projection": "convolution"}, "need a composite attention such as 'qk'"),
    ({"attention": "qk", "value_projection": "convolution_no_act"}, "value_projection must be"),
    ({"attention": "qk", "qk_projection": "convolution_mixed", "num_heads": 3, "units": 12},
     "num_heads (3) must be even"),
    ({"attention": "qk", "value_projection": "convolution_depth", "projection_groups": 2},
     "projection_groups (2) applies to plain 'convolution' projections only"),
])
def test_bad_attention_config_is_one_line(tmp_path, changes, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"num_heads": 4, "units": 16, **changes}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith(f"{path}: invalid model config: ") and message in text
    assert "\n" not in text


def test_composite_preset_loads():
    cfg = load_config("bert-base-composite")
    assert cfg.attention == "qk_convfixed_convq_convk" and cfg.position_embedding == "none"


def test_hugging_face_export_refuses_composite_attention(tmp_path):
    from bortkit.checkpoint import export_huggingface
    from bortkit.model import Model
    model = Model(config(attention="qk_convfixed", position_embedding="learned", max_length=16))
    with pytest.raises(ConfigError, match="has attention 'qk_convfixed'"):
        export_huggingface(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_convolution_term_is_a_fixed_depthwise_convolution_of_the_values():
    """With the scores' weights uniform (no score term), a one-hot kernel at offset +1 and no
    bias, the term adds v_{i+1} to each output: a fixed (input-independent) convolution
    over the values, zero past the last real token."""
    from bortkit.model.blocks import ATTENTION_BLOCKS
    cfg = config(attention="convolution")
    block = built(ATTENTION_BLOCKS[cfg.attention](cfg, prefix="attention_"))
    kernel = np.zeros((U, 1, R))
    kernel[:, 0, K + 1] = 1.0
    block.convolution.weight.set_data(mx.nd.array(kernel))
    block.convolution.bias.set_data(mx.nd.zeros(U))
    x = np.random.RandomState(4).normal(size=(T, B, U))
    mask = np.ones((B, T))
    mask[0, 7:] = 0
    with_term = block(mx.nd.array(x), mx.nd.array(mask))[0].asnumpy()
    block.convolution.weight.set_data(mx.nd.zeros((U, 1, R)))
    without = block(mx.nd.array(x), mx.nd.array(mask))[0].asnumpy()
    v = x @ value(block.value.weight).T + value(block.value.bias)      # (T, B, U)
    shifted = np.zeros_like(v)
    shifted[:-1] = v[1:]
    shifted[6:, 0] = 0.0                                               # padding of row 0
    expected = without + shifted @ value(block.output.weight).T
    np.testing.assert_allclose(with_term, expected, atol=1e-4)
    assert cfg.attention in __import__("bortkit.config").config.ATTENTIONS


def test_convolution_term_parameters_and_flops_are_counted():
    from bortkit import count_params
    from bortkit.accounting import flops_per_sequence
    from bortkit.model import BertNetwork

    def built_size(cfg):
        net = BertNetwork(cfg, prefix="bert_")
        net.initialize()
        return sum(int(np.prod(p.shape)) for p in net.collect_params().values())

    with_term, without = config(attention="qk_convolution"), config(attention="qk")
    extra = 2 * (U * R + U)                              # 2 layers: (U, 1, R) kernel + bias
    assert built_size(with_term) - built_size(without) == extra
    assert count_params(with_term) - count_params(without) == extra
    assert flops_per_sequence(with_term, T) - flops_per_sequence(without, T) == 2 * 2 * T * U * R

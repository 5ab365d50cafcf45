"""bortkit_self_attention (bortkit/ops/attention.cc): the fused bf16 attention of the
fused int8 graph against NumPy, on the shapes that exercise its padding (a length that is not a
multiple of 16 or 32, an odd length, a head size that is not a multiple of 16), padded keys,
and the graph rewrite that puts it in place of MXNet's four operators (only for the plain
dot-product attention). The arithmetic is checked at every ISA tier this CPU runs (AMX
tiles, or float32 FMAs of the bf16 operands at AVX-512, AVX2 or scalar width)."""
import json

import mxnet as mx
import numpy as np
import pytest

from bortkit import ops
from bortkit.config import ModelConfig
from bortkit.model import BertNetwork
from bortkit.quantize.fused import fused_symbol
from bortkit.quantize.graph import fold_parameters

pytestmark = pytest.mark.usefixtures("kernels")


def _bf16(x):
    """Round float32 to bfloat16 (nearest even), kept as float32."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return bits.astype(np.uint32).view(np.float32)


def _attention(qkv, mask, heads, bf16, fill=-1e4):
    """softmax(q k / sqrt(d) + (1 - mask) fill) v in float64, from the (T, B, H, 3, d)
    layout; with ``bf16`` the operator's roundings: q / sqrt(d), k, v and the unnormalised
    probabilities to bf16, normalised by the sum of the rounded ones."""
    T, B, _ = qkv.shape
    d = qkv.shape[2] // (3 * heads)
    x = qkv.reshape(T, B, heads, 3, d)
    q, k, v = x[:, :, :, 0] / np.float32(np.sqrt(d)), x[:, :, :, 1], x[:, :, :, 2]
    if bf16:
        q, k, v = _bf16(q), _bf16(k), _bf16(v)
    s = np.einsum("ibhn,jbhn->bhij", q.astype(np.float64), k.astype(np.float64))
    s = s + ((1 - mask) * fill)[:, None, None, :]
    p = np.exp(s - s.max(-1, keepdims=True))
    if bf16:
        p = _bf16(p.astype(np.float32)).astype(np.float64)
    p = p / p.sum(-1, keepdims=True)
    return np.einsum("bhij,jbhn->ibhn", p, v.astype(np.float64)).reshape(T, B, heads * d)


def _call(qkv, mask, heads):
    return mx.nd.bortkit_self_attention(mx.nd.array(qkv), mx.nd.array(mask),
                                        heads=heads).asnumpy()


@pytest.mark.parametrize("length,batch,heads,d", [(7, 3, 2, 5), (33, 2, 12, 32),
                                                  (70, 1, 4, 16), (128, 2, 8, 64),
                                                  (200, 2, 2, 40)])
def test_self_attention_matches_numpy(length, batch, heads, d, tier):
    rng = np.random.default_rng(length)
    qkv = rng.normal(size=(length, batch, 3 * heads * d)).astype(np.float32)
    mask = np.ones((batch, length), np.float32)
    mask[0, length // 2:] = 0   # padded keys of the first sequence
    out = _call(qkv, mask, heads)
    assert out.shape == (length, batch, heads * d)
    # the operator's own roundings: only the exp (1 ulp) and the sums' order differ
    np.testing.assert_allclose(out, _attention(qkv, mask, heads, bf16=True), atol=3e-3)
    # and bf16 inputs keep it close to the float64 attention
    np.testing.assert_allclose(out, _attention(qkv, mask, heads, bf16=False), atol=3e-2)


def test_padded_keys_do_not_change_the_real_tokens(tier):
    rng = np.random.default_rng(0)
    qkv = rng.normal(size=(20, 1, 3 * 2 * 32)).astype(np.float32)
    mask = np.ones((1, 20), np.float32)
    short = _call(qkv[:12], mask[:, :12], 2)
    padded = qkv.copy()
    padded[12:] = rng.normal(size=padded[12:].shape) * 100   # whatever the padding holds
    mask[:, 12:] = 0
    np.testing.assert_allclose(_call(padded, mask, 2)[:12], short, atol=1e-6)


def test_a_wrong_shape_is_refused():
    with pytest.raises(mx.MXNetError, match="qkv must be"):
        _call(np.zeros((4, 2, 30), np.float32), np.ones((2, 4), np.float32), 4)


def _rewritten(attention: str):
    """A small network's folded graph before and after fused_symbol (no dense products
    named: only the attention is rewritten), with its parameters."""
    config = ModelConfig(num_layers=2, num_heads=2, units=64, ffn_units=48, vocab_size=100,
                         max_length=40, use_pooler=False, attention=attention,
                         relative_positions_each_dir=4,
                         position_embedding="learned" if attention == "dot_product" else "none")
    network = BertNetwork(config, prefix="bert_")
    network.initialize(mx.init.Normal(0.1))  # scores of a few units, as a trained BERT's
    network.hybridize()
    sym = network(*[mx.sym.var(n) for n in NAMES])
    sym, params = fold_parameters(sym, {k: p.data() for k, p in network.collect_params().items()})
    fused, fused_params = fused_symbol(sym, params, [])
    return sym, params, fused, fused_params


NAMES = ["ids", "types", "mask"]


def test_the_fused_graph_fuses_dot_product_attention_only(tier):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 100, (3, 21))
    mask = np.ones_like(ids)
    mask[1:, 13:] = 0
    data = {n: mx.nd.array(a) for n, a in zip(NAMES, (ids, np.zeros_like(ids), mask))}
    sym, params, fused, fused_params = _rewritten("dot_product")
    ops = [n["op"] for n in json.loads(fused.tojson())["nodes"]]
    assert ops.count("bortkit_self_attention") == 2
    assert not {"_contrib_interleaved_matmul_selfatt_qk",
                "_contrib_interleaved_matmul_selfatt_valatt", "softmax"} & set(ops)
    before = sym.eval(ctx=mx.cpu(), **data, **params)[0].asnumpy()
    after = fused.eval(ctx=mx.cpu(), **data, **fused_params)[0].asnumpy()
    real = mask.astype(bool)
    assert np.abs(after - before)[real].max() < 0.01 * np.abs(before[real]).max()
    # composite attention adds score terms between the products: nothing to fuse
    _, _, composite, _ = _rewritten("qk_convfixed")
    ops = [n["op"] for n in json.loads(composite.tojson())["nodes"]]
    assert "bortkit_self_attention" not in ops and "softmax" in ops

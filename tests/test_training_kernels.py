"""The fused training operators of bortkit.ops at every ISA tier this CPU runs:
bortkit_attention (forward and backward against float64 NumPy, its dropout mask recovered
and checked, no dropout outside training), bortkit_dropout, bortkit_sum_squares, and
bortkit_interleave_heads (with the rule that keeps gradient accumulation correct around it)."""
import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd

from bortkit import ops

pytestmark = pytest.mark.usefixtures("kernels")


def _attention(qkv, mask, heads, dc, dprobs, keep=None, fill=-1e4):
    """(context, probs, d_qkv) in float64 for output gradients dc and dprobs; ``keep``
    (B, H, T, T): dropout's factors (0 or 1 / (1 - p)) applied to the probabilities."""
    T, B, _ = qkv.shape
    d = qkv.shape[2] // (3 * heads)
    x = qkv.reshape(T, B, heads, 3, d).astype(np.float64)
    q, k, v = x[:, :, :, 0] / np.sqrt(d), x[:, :, :, 1], x[:, :, :, 2]
    s = np.einsum("ibhn,jbhn->bhij", q, k) + ((1 - mask) * fill)[:, None, None, :]
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    keep = np.ones_like(p) if keep is None else keep
    context = np.einsum("bhij,jbhn->ibhn", p * keep, v).reshape(T, B, heads * d)
    g = dc.reshape(T, B, heads, d).astype(np.float64)
    dv = np.einsum("bhij,ibhn->jbhn", p * keep, g)
    dp = np.einsum("ibhn,jbhn->bhij", g, v) * keep + dprobs
    ds = p * (dp - (p * dp).sum(-1, keepdims=True))
    dq = np.einsum("bhij,jbhn->ibhn", ds, k) / np.sqrt(d)
    dk = np.einsum("bhij,ibhn->jbhn", ds, q)
    return context, p, np.stack([dq, dk, dv], 3).reshape(T, B, 3 * heads * d)


def _run(qkv, mask, heads, dc, dprobs, dropout=0.0, train_mode=True):
    x = mx.nd.array(qkv)
    x.attach_grad()
    with autograd.record(train_mode=train_mode):
        context, probs = ops.self_attention(mx.nd, x, mx.nd.array(mask), heads, dropout, -1e4)
        loss = (context * mx.nd.array(dc)).sum() + (probs * mx.nd.array(dprobs)).sum()
    loss.backward()
    return context.asnumpy(), probs.asnumpy(), x.grad.asnumpy()


@pytest.mark.parametrize("length,batch,heads,d", [(7, 3, 2, 5), (33, 2, 12, 32),
                                                  (128, 2, 8, 64), (200, 1, 2, 40)])
def test_attention_forward_and_backward_match_numpy(length, batch, heads, d, tier):
    """Lengths and head sizes that are not multiples of 16, padded keys; the probabilities
    receive a gradient too (as when a loss reads them)."""
    rng = np.random.default_rng(length)
    qkv = rng.normal(size=(length, batch, 3 * heads * d)).astype(np.float32)
    mask = np.ones((batch, length), np.float32)
    mask[0, length // 2:] = 0
    dc = rng.normal(size=(length, batch, heads * d)).astype(np.float32)
    dprobs = rng.normal(size=(batch, heads, length, length)).astype(np.float32)
    context, probs, grad = _run(qkv, mask, heads, dc, dprobs, dropout=0.3, train_mode=False)
    want_context, want_probs, want_grad = _attention(qkv, mask, heads, dc, dprobs)
    np.testing.assert_allclose(context, want_context, atol=2e-6, rtol=1e-5)
    np.testing.assert_allclose(probs, want_probs, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, atol=3e-6 * np.abs(want_grad).max())
    assert (probs[0, :, :, length // 2:] == 0).all()  # masked keys: exactly 0, no subnormals


def test_attention_dropout_is_one_mask_in_both_passes(tier):
    """With d = T and each value a unit vector, the context is the dropped-out probabilities:
    the mask drops about p of them, scales the rest by 1 / (1 - p), and the gradient
    follows that same mask; the seed comes from MXNet's, so mx.random.seed repeats it."""
    T, B, heads, p = 32, 2, 4, 0.25
    rng = np.random.default_rng(0)
    qkv = rng.normal(size=(T, B, heads, 3, T)).astype(np.float32)
    qkv[:, :, :, 2] = np.eye(T, dtype=np.float32)[:, None, None, :]  # v_j = e_j
    qkv = qkv.reshape(T, B, 3 * heads * T)
    mask = np.ones((B, T), np.float32)
    dc = rng.normal(size=(T, B, heads * T)).astype(np.float32)
    dprobs = np.zeros((B, heads, T, T), np.float32)
    mx.random.seed(7)
    context, probs, grad = _run(qkv, mask, heads, dc, dprobs, dropout=p)
    dropped = context.reshape(T, B, heads, T).transpose(1, 2, 0, 3)     # (B, H, T, T)
    keep = dropped / probs
    kept = np.isclose(keep, 1 / (1 - p), rtol=1e-5)
    assert (kept | (dropped == 0)).all()
    assert abs(1 - kept.mean() - p) < 4 * np.sqrt(p * (1 - p) / kept.size)
    _, _, want_grad = _attention(qkv, mask, heads, dc, dprobs, keep=kept / (1 - p))
    np.testing.assert_allclose(grad, want_grad, atol=3e-6 * np.abs(want_grad).max())
    mx.random.seed(7)
    np.testing.assert_array_equal(_run(qkv, mask, heads, dc, dprobs, dropout=p)[0], context)
    assert not np.array_equal(_run(qkv, mask, heads, dc, dprobs, dropout=p)[0], context)


def test_dropout_masks_scales_and_passes_its_mask_to_the_gradient(tier):
    p = 0.1
    x = mx.nd.array(np.random.default_rng(1).uniform(1, 2, size=(300, 777)).astype(np.float32))
    x.attach_grad()
    with autograd.record():
        y = ops.dropout(mx.nd, x, p)
    head = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    y.backward(mx.nd.array(head))
    y, xs = y.asnumpy(), x.asnumpy()
    kept = y != 0
    np.testing.assert_allclose(y[kept], xs[kept] / (1 - p), rtol=1e-6)
    assert abs(1 - kept.mean() - p) < 4 * np.sqrt(p * (1 - p) / kept.size)
    np.testing.assert_allclose(x.grad.asnumpy(), head * kept / (1 - p), rtol=1e-6)
    with autograd.record(train_mode=False):  # outside training: the identity
        np.testing.assert_array_equal(ops.dropout(mx.nd, x, p).asnumpy(), xs)
    np.testing.assert_array_equal(ops.dropout(mx.nd, x, p).asnumpy(), xs)


def test_sum_squares_is_the_float64_sum_over_every_array(tier):
    rng = np.random.default_rng(3)
    arrays = [rng.normal(size=n).astype(np.float32) for n in (1, 1000, 3_000_001)]
    got = ops.sum_squares([mx.nd.array(a) for a in arrays]).asscalar()
    want = sum(float(np.dot(a.astype(np.float64), a.astype(np.float64))) for a in arrays)
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("trailing", [(), (24,)])
def test_interleave_heads_places_each_heads_rows_and_splits_the_gradient(trailing, tier):
    """(U, ...) x 3 -> (3U, ...) with head i's rows of query, key, value in turn; the
    backward pass hands each parameter its rows of the output gradient."""
    heads, d = 3, 5
    rng = np.random.default_rng(len(trailing))
    parts = [rng.normal(size=(heads * d,) + trailing).astype(np.float32) for _ in range(3)]
    arrays = [mx.nd.array(p) for p in parts]
    for a in arrays:
        a.attach_grad()
    dout = rng.normal(size=(3 * heads * d,) + trailing).astype(np.float32)
    with autograd.record():
        out = mx.nd.bortkit_interleave_heads(*arrays, heads=heads)
        loss = (out * mx.nd.array(dout)).sum()
    loss.backward()
    want = np.stack([p.reshape((heads, d) + trailing) for p in parts], 1)
    np.testing.assert_array_equal(out.asnumpy(), want.reshape((-1,) + trailing))
    split = dout.reshape((heads, 3, d) + trailing)
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(a.grad.asnumpy(), split[:, i].reshape((-1,) + trailing))


def _attention_block():
    from bortkit.config import ModelConfig
    from bortkit.model.blocks import MultiHeadSelfAttention
    config = ModelConfig(num_layers=1, num_heads=2, units=8, ffn_units=16, vocab_size=20,
                         max_length=16, dropout=0.0, attention_dropout=0.0)
    block = MultiHeadSelfAttention(config, prefix="attention_")
    mx.random.seed(0)
    block.initialize(mx.init.Normal(0.5))
    block.hybridize()
    return block


def _query_gradient(block, passes: int) -> np.ndarray:
    x = mx.nd.array(np.random.default_rng(0).normal(size=(4, 2, 8)))
    mask = mx.nd.ones((2, 4))
    for _ in range(passes):
        with autograd.record():
            loss = block(x, mask)[0].sum()
        loss.backward()
    return block.query.weight.grad().asnumpy().copy()


def test_interleaved_weights_accumulate_when_traced_with_grad_req_add(kernels):
    """The operator writes the q/k/v gradients, so a graph traced while they accumulate
    keeps MXNet's operators: two backward passes add up to twice one."""
    once = _query_gradient(_attention_block(), 1)
    block = _attention_block()
    for param in block.collect_params().values():
        param.grad_req = "add"
    np.testing.assert_allclose(_query_gradient(block, 2), 2 * once, rtol=1e-5, atol=1e-6)


def test_optimizer_refuses_accumulation_for_weights_traced_into_the_operator(kernels):
    from bortkit.train import make_trainer
    block = _attention_block()
    _query_gradient(block, 1)  # traced with grad_req="write": the operator writes
    params = {name: p for name, p in block.collect_params().items()}
    assert ops.writes_gradient(block.query.weight)
    with pytest.raises(RuntimeError, match="query_weight was traced into a fused operator"):
        make_trainer(params, accumulate=2)
    make_trainer(params, accumulate=1)  # writing is what the graph does: fine

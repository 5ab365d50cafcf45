"""bortkit_int8_dense (bortkit/ops/int8_dense.cc): the packed weight layout, bit-exact int8
arithmetic against an independent NumPy implementation, closeness to fp32, and the operator
inside a hybridized Gluon block; every test at every ISA tier this CPU runs (the ``tier``
fixture caps it): AMX tiles, AVX-512 VNNI, AVX2 and the scalar loop sum the same integers
on 8-bit inputs (``isa.int8_levels()``), which the NumPy reference follows."""
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import HybridBlock

from bortkit import ops
from bortkit.ops.int8_dense import int8_dense, pack_weight

pytestmark = pytest.mark.usefixtures("kernels")


def _numpy_int8_dense(x, weight, bias, levels=None):
    """The operator's arithmetic written out: per-row symmetric input to [-levels, levels]
    (the active tier's, by default), per-channel symmetric s8 weight, int64 products, the
    zero-point correction, float32 scaling."""
    from bortkit.ops import isa
    levels = isa.int8_levels() if levels is None else levels
    w_amax = np.abs(weight).max(axis=1)
    w_scale = np.where(w_amax > 0, w_amax / np.float32(127), np.float32(1)).astype(np.float32)
    w_q = np.clip(np.rint(weight / w_scale[:, None]), -127, 127).astype(np.int64)
    amax = np.abs(x).max(axis=1)
    inv = np.where(amax > 0, np.float32(levels) / np.where(amax > 0, amax, 1),
                   0).astype(np.float32)
    x_u8 = np.clip(np.rint(x * inv[:, None]), -levels, levels).astype(np.int64) + levels + 1
    acc = x_u8 @ w_q.T                                     # what the u8 x s8 products sum
    exact = acc - (levels + 1) * w_q.sum(axis=1)           # = q(x) . q(w)
    assert np.abs(acc).max() < 2 ** 31                     # int32 accumulation cannot wrap
    scale = (amax / np.float32(levels)).astype(np.float32)[:, None] * w_scale[None, :]
    return exact.astype(np.float32) * scale + bias


def _call(x, weight, bias):
    packed, scale, colsum = pack_weight(weight)
    return int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                      mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"),
                      mx.nd.array(bias), units=weight.shape[0]).asnumpy()


def test_packed_weight_is_the_tile_layout():
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(40, 100)).astype(np.float32)
    packed, scale, colsum = pack_weight(weight)
    assert packed.shape == (3, 2, 16, 64) and packed.dtype == np.int8
    q = np.clip(np.rint(weight / scale[:, None]), -127, 127).astype(np.int8)
    for n, k in zip(rng.integers(0, 40, 200), rng.integers(0, 100, 200)):
        assert packed[n // 16, k // 64, (k % 64) // 4, (n % 16) * 4 + k % 4] == q[n, k]
    assert not packed[2, :, :, 8 * 4:].any() and not packed[:, 1, 9:].any()  # zero padding
    np.testing.assert_array_equal(colsum, q.astype(np.int64).sum(axis=1))


@pytest.mark.parametrize("rows,k,n", [(37, 100, 50), (64, 128, 96), (3, 1024, 3072),
                                      (300, 192, 80)])
def test_int8_dense_is_bit_exact_against_numpy(rows, k, n, tier):
    rng = np.random.default_rng(rows)
    x = (rng.normal(size=(rows, k)) * rng.uniform(0.1, 5, size=(rows, 1))).astype(np.float32)
    x[1] = 0  # an all-zero row: scale 0, output = bias
    weight = rng.normal(size=(n, k)).astype(np.float32) * 0.05
    weight[2] = 0
    bias = np.zeros(n, np.float32)  # with a bias the last add may fuse (FMA): 1 ulp apart
    np.testing.assert_array_equal(_call(x, weight, bias), _numpy_int8_dense(x, weight, bias))
    bias = rng.normal(size=n).astype(np.float32)
    np.testing.assert_allclose(_call(x, weight, bias), _numpy_int8_dense(x, weight, bias),
                               rtol=1e-6, atol=1e-6)


def test_int8_dense_is_close_to_fp32(tier):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 384)).astype(np.float32)
    weight = (rng.normal(size=(1536, 384)) * 0.05).astype(np.float32)
    bias = rng.normal(size=1536).astype(np.float32)
    reference = x @ weight.T + bias
    error = np.abs(_call(x, weight, bias) - reference)
    # two 8-bit roundings (steps of max|x| / 127 and max|w| / 127): about 1 % of the
    # product's typical size (measured 1.0 %), on every tier
    product = np.abs(reference - bias)
    assert error.mean() < 0.015 * product.mean() and error.max() < 0.1 * product.max()


# columns split between threads (40 rows) or not (200); weights in several L2 panels (768 KB)
@pytest.mark.parametrize("rows,k,n", [(40, 128, 96), (200, 128, 96), (100, 768, 1024)])
def test_int8_dense_with_residual_and_layer_norm(rows, k, n, tier):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, k)).astype(np.float32)
    weight = (rng.normal(size=(n, k)) * 0.05).astype(np.float32)
    bias, gamma, beta = rng.normal(size=(3, n)).astype(np.float32)
    residual = rng.normal(size=(rows, n)).astype(np.float32)
    packed, scale, colsum = pack_weight(weight)
    got = int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                     mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"), mx.nd.array(bias),
                     units=n, norm=(mx.nd.array(residual), mx.nd.array(gamma),
                                     mx.nd.array(beta), 1e-12)).asnumpy()
    y = _numpy_int8_dense(x, weight, bias).astype(np.float64) + residual
    centred = y - y.mean(axis=1, keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(axis=1, keepdims=True) + 1e-12) * gamma + beta
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_int8_dense_with_gelu(tier):
    from scipy.special import erf
    rng = np.random.default_rng(4)
    x = rng.normal(size=(70, 96)).astype(np.float32)
    weight = (rng.normal(size=(200, 96)) * 0.2).astype(np.float32)
    bias = rng.normal(size=200).astype(np.float32)
    packed, scale, colsum = pack_weight(weight)
    got = int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                     mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"), mx.nd.array(bias),
                     units=200, activation="gelu").asnumpy()
    y = _numpy_int8_dense(x, weight, bias).astype(np.float64)
    assert (y < -1).any() and (y > 1).any()   # both tails of the erf
    np.testing.assert_allclose(got, y * (1 + erf(y / np.sqrt(2))) / 2, rtol=1e-5, atol=2e-6)
    with pytest.raises(mx.MXNetError, match="activation must be 'gelu'"):
        int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                   mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"), mx.nd.array(bias),
                   units=200, activation="relu").wait_to_read()


class _Int8Dense(HybridBlock):
    """A Dense layer on the operator, parameters packed once."""

    def __init__(self, weight, bias):
        super().__init__()
        packed, scale, colsum = pack_weight(weight)
        self.units = weight.shape[0]
        with self.name_scope():
            for name, value in (("packed", packed), ("scale", scale), ("colsum", colsum),
                                ("bias", bias)):
                param = self.params.get(name, shape=value.shape, dtype=value.dtype,
                                        grad_req="null", differentiable=False)
                param.initialize(mx.init.Constant(0))
                param.set_data(mx.nd.array(value, dtype=value.dtype))
                setattr(self, name, param)

    def hybrid_forward(self, F, x, packed, scale, colsum, bias):
        return int8_dense(F, x, packed, scale, colsum, bias, units=self.units)


def test_int8_dense_in_a_hybridized_block_with_static_alloc(tier):
    rng = np.random.default_rng(2)
    weight = (rng.normal(size=(96, 128)) * 0.05).astype(np.float32)
    bias = rng.normal(size=96).astype(np.float32)
    block = _Int8Dense(weight, bias)
    block.hybridize(static_alloc=True, static_shape=True)
    for shape in ((4, 7, 128), (2, 33, 128), (4, 7, 128)):  # new shapes re-plan the graph
        x = rng.normal(size=shape).astype(np.float32)
        got = block(mx.nd.array(x)).asnumpy()
        assert got.shape == shape[:-1] + (96,)
        np.testing.assert_array_equal(
            got.reshape(-1, 96), _call(x.reshape(-1, 128), weight, bias))


def test_int8_dense_refuses_a_weight_of_another_shape():
    packed, scale, colsum = pack_weight(np.ones((32, 64), np.float32))
    with pytest.raises(mx.MXNetError, match="for data \\(\\.\\.\\., K\\) and units N the weight "
                       "must be \\(ceil\\(N/16\\), ceil\\(K/64\\), 16, 64\\)"):
        mx.nd.bortkit_int8_dense(mx.nd.ones((2, 128)), mx.nd.array(packed, dtype="int8"),
                                 mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"),
                                 mx.nd.zeros(32), units=32).wait_to_read()


def test_the_host_tier_matches_the_cpu_flags(kernels):
    from bortkit.ops import isa
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        flags = set(next((row.split() for row in fh if row.startswith("flags")), []))
    avx512 = {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni"}
    if {"amx_tile", "amx_int8", "amx_bf16"} <= flags and avx512 <= flags:
        expected = "amx"  # Linux >= 5.16 grants the tile permission on request
    elif avx512 <= flags:
        expected = "avx512"
    elif {"avx2", "fma", "f16c"} <= flags:
        expected = "avx2"
    else:
        expected = "scalar"
    assert isa.host() == expected


def test_the_tiers_give_the_same_sums(kernels):
    """Every tier's integer products are equal (avx2's |q| x sign(q) w too, whose pairs
    would overflow VPMADDUBSW's int16 as (q + 128) x w), so their outputs equal the scalar
    loop's and the NumPy reference's at 127 levels."""
    from bortkit.ops import isa
    rng = np.random.default_rng(7)
    x = rng.normal(size=(70, 300)).astype(np.float32)
    weight = (rng.normal(size=(130, 300)) * 0.05).astype(np.float32)
    bias = np.zeros(130, np.float32)
    top = isa.active()
    outputs = {}
    try:
        for tier in isa.TIERS[:isa.TIERS.index(top) + 1]:
            isa.cap(tier)
            outputs[tier] = _call(x, weight, bias)
    finally:
        isa.cap(top)
    for tier, out in outputs.items():
        np.testing.assert_array_equal(out, outputs["scalar"], err_msg=tier)
    np.testing.assert_allclose(outputs["scalar"], _numpy_int8_dense(x, weight, bias, 127),
                               rtol=1e-5, atol=1e-5)


def test_a_tier_above_the_host_or_unknown_is_refused(kernels):
    from bortkit.errors import ConfigError
    from bortkit.ops import isa
    with pytest.raises(ConfigError, match="tier must be one of scalar, avx2, avx512, amx, "
                                          "got 'sse2'"):
        isa.cap("sse2")
    if isa.host() != "amx":
        with pytest.raises(ConfigError, match=f"tier=amx: this CPU runs at most {isa.host()}"):
            isa.cap("amx")

"""bortkit_int8_dense (bortkit/ops/int8_dense.cc): the packed weight layout, bit-exact int8
arithmetic against an independent NumPy implementation, closeness to fp32, and the operator
inside a hybridized Gluon block; every test at every ISA tier this CPU runs (the ``tier``
fixture caps it): AMX tiles, AVX-512 VNNI, AVX2 and the scalar loop sum the same integers
on 8-bit inputs (``isa.int8_levels()``) for a weight of either levels (127, or 63: AVX2's
fast loop, ``isa.weight_levels()``), which the NumPy reference follows."""
import mxnet as mx
import numpy as np
import pytest
from mxnet.gluon import HybridBlock

from bortkit import ops
from bortkit.errors import ConfigError
from bortkit.ops.int8_dense import int8_dense, pack_weight, quantize_weight

pytestmark = pytest.mark.usefixtures("kernels")

WEIGHT_LEVELS = (63, 127)  # AVX2's fast loop's, and 8 bits


def _numpy_int8_dense(x, weight, bias, levels=None, weight_levels=127):
    """The operator's arithmetic written out: per-row symmetric input to [-levels, levels]
    (the active tier's, by default), per-channel symmetric weight to [-weight_levels,
    weight_levels], int64 products, the zero-point correction, float32 scaling."""
    from bortkit.ops import isa
    levels = isa.int8_levels() if levels is None else levels
    w_amax = np.abs(weight).max(axis=1)
    w_scale = np.where(w_amax > 0, w_amax / np.float32(weight_levels),
                       np.float32(1)).astype(np.float32)
    w_q = np.clip(np.rint(weight / w_scale[:, None]), -weight_levels,
                  weight_levels).astype(np.int64)
    amax = np.abs(x).max(axis=1)
    inv = np.where(amax > 0, np.float32(levels) / np.where(amax > 0, amax, 1),
                   0).astype(np.float32)
    x_u8 = np.clip(np.rint(x * inv[:, None]), -levels, levels).astype(np.int64) + levels + 1
    acc = x_u8 @ w_q.T                                     # what the u8 x s8 products sum
    exact = acc - (levels + 1) * w_q.sum(axis=1)           # = q(x) . q(w)
    assert np.abs(acc).max() < 2 ** 31                     # int32 accumulation cannot wrap
    scale = (amax / np.float32(levels)).astype(np.float32)[:, None] * w_scale[None, :]
    return exact.astype(np.float32) * scale + bias


def _call(x, weight, bias, weight_levels=127, told=None):
    """The operator on ``weight`` packed with ``weight_levels``, told ``told`` (the same by
    default)."""
    packed, scale, colsum = pack_weight(weight, weight_levels)
    return int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                      mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"),
                      mx.nd.array(bias), units=weight.shape[0],
                      weight_levels=told or weight_levels).asnumpy()


@pytest.mark.parametrize("levels", WEIGHT_LEVELS)
def test_packed_weight_is_the_tile_layout(levels):
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(40, 100)).astype(np.float32)
    packed, scale, colsum = pack_weight(weight, levels)
    assert packed.shape == (3, 2, 16, 64) and packed.dtype == np.int8
    q = np.clip(np.rint(weight / scale[:, None]), -levels, levels).astype(np.int8)
    assert np.abs(q).max() == levels  # each row's largest weight is +/-levels
    np.testing.assert_allclose(scale, np.abs(weight).max(axis=1) / levels, rtol=1e-6)
    for n, k in zip(rng.integers(0, 40, 200), rng.integers(0, 100, 200)):
        assert packed[n // 16, k // 64, (k % 64) // 4, (n % 16) * 4 + k % 4] == q[n, k]
    assert not packed[2, :, :, 8 * 4:].any() and not packed[:, 1, 9:].any()  # zero padding
    np.testing.assert_array_equal(colsum, q.astype(np.int64).sum(axis=1))


def test_the_default_weight_levels_are_the_active_tiers(tier):
    from bortkit.ops import isa
    # the scalar tier is the build's -march: AVX2's loops, and levels, on x86-64-v3
    expected = {"avx2": {63}, "avx512": {127}, "amx": {127}, "scalar": {63, 127}}[tier]
    assert isa.weight_levels() in expected
    weight = np.random.default_rng(5).normal(size=(20, 70)).astype(np.float32)
    for got, expected in zip(pack_weight(weight), pack_weight(weight, isa.weight_levels())):
        np.testing.assert_array_equal(got, expected)


def _operator_args():
    packed, scale, colsum = pack_weight(np.ones((16, 64), np.float32), 127)
    return [mx.nd.ones((2, 64)), mx.nd.array(packed, dtype="int8"), mx.nd.array(scale),
            mx.nd.array(colsum, dtype="int32"), mx.nd.zeros(16)]


@pytest.mark.parametrize("levels", [0, 128, -1, 63.0, True, "63"])
def test_weight_levels_out_of_range_are_refused(levels):
    weight = np.ones((16, 64), np.float32)
    message = f"weight levels must be an integer in 1 .. 127, got {levels!r}"
    for call in (lambda: quantize_weight(weight, levels), lambda: pack_weight(weight, levels),
                 lambda: int8_dense(mx.nd, *_operator_args(), units=16, weight_levels=levels)):
        with pytest.raises(ConfigError) as err:
            call()
        assert str(err.value) == message


@pytest.mark.parametrize("levels", ["0", "128", "-1", "63.0", "abc", ""])
def test_the_operator_refuses_weight_levels_out_of_range(levels):
    with pytest.raises(mx.MXNetError, match="weight_levels must be an integer in 1 .. 127; "
                                            f"got '{levels}'"):
        mx.nd.bortkit_int8_dense(*_operator_args(), units=16,
                                 weight_levels=levels).wait_to_read()


@pytest.mark.parametrize("weight_levels", WEIGHT_LEVELS)
@pytest.mark.parametrize("rows,k,n", [(37, 100, 50), (64, 128, 96), (3, 1024, 3072),
                                      (300, 192, 80)])
def test_int8_dense_is_bit_exact_against_numpy(rows, k, n, weight_levels, tier):
    rng = np.random.default_rng(rows)
    x = (rng.normal(size=(rows, k)) * rng.uniform(0.1, 5, size=(rows, 1))).astype(np.float32)
    x[1] = 0  # an all-zero row: scale 0, output = bias
    x[2, :3] = np.abs(x[2]).max() * np.array([1, -1, 1])  # q = +/-127 against +/-levels
    weight = rng.normal(size=(n, k)).astype(np.float32) * 0.05
    weight[2] = 0
    weight[3, :3] = np.abs(weight[3]).max() * np.array([1, -1, 1])
    bias = np.zeros(n, np.float32)  # with a bias the last add may fuse (FMA): 1 ulp apart
    expected = _numpy_int8_dense(x, weight, bias, weight_levels=weight_levels)
    np.testing.assert_array_equal(_call(x, weight, bias, weight_levels), expected)
    bias = rng.normal(size=n).astype(np.float32)
    np.testing.assert_allclose(_call(x, weight, bias, weight_levels),
                               _numpy_int8_dense(x, weight, bias, weight_levels=weight_levels),
                               rtol=1e-6, atol=1e-6)


# two roundings (steps of max|x| / 127 and max|w| / levels): measured 1.0 % of the product's
# typical size with 8-bit weights, 1.6 % with 7-bit ones, on every tier
@pytest.mark.parametrize("weight_levels,bound", [(63, 0.02), (127, 0.015)])
def test_int8_dense_is_close_to_fp32(weight_levels, bound, tier):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 384)).astype(np.float32)
    weight = (rng.normal(size=(1536, 384)) * 0.05).astype(np.float32)
    bias = rng.normal(size=1536).astype(np.float32)
    reference = x @ weight.T + bias
    error = np.abs(_call(x, weight, bias, weight_levels) - reference)
    product = np.abs(reference - bias)
    assert error.mean() < bound * product.mean() and error.max() < 0.1 * product.max()


# columns split between threads (40 rows) or not (200); weights in several L2 panels (768 KB);
# the weight at the tier's levels (pack_weight's default)
@pytest.mark.parametrize("rows,k,n", [(40, 128, 96), (200, 128, 96), (100, 768, 1024)])
def test_int8_dense_with_residual_and_layer_norm(rows, k, n, tier):
    from bortkit.ops import isa
    rng = np.random.default_rng(3)
    x = rng.normal(size=(rows, k)).astype(np.float32)
    weight = (rng.normal(size=(n, k)) * 0.05).astype(np.float32)
    bias, gamma, beta = rng.normal(size=(3, n)).astype(np.float32)
    residual = rng.normal(size=(rows, n)).astype(np.float32)
    packed, scale, colsum = pack_weight(weight)
    got = int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                     mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"), mx.nd.array(bias),
                     units=n, norm=(mx.nd.array(residual), mx.nd.array(gamma),
                                     mx.nd.array(beta), 1e-12),
                     weight_levels=isa.weight_levels()).asnumpy()
    y = _numpy_int8_dense(x, weight, bias, weight_levels=isa.weight_levels()).astype(
        np.float64) + residual
    centred = y - y.mean(axis=1, keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(axis=1, keepdims=True) + 1e-12) * gamma + beta
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_int8_dense_with_gelu(tier):
    from scipy.special import erf
    from bortkit.ops import isa
    rng = np.random.default_rng(4)
    x = rng.normal(size=(70, 96)).astype(np.float32)
    weight = (rng.normal(size=(200, 96)) * 0.2).astype(np.float32)
    bias = rng.normal(size=200).astype(np.float32)
    packed, scale, colsum = pack_weight(weight)
    got = int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                     mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"), mx.nd.array(bias),
                     units=200, activation="gelu", weight_levels=isa.weight_levels()).asnumpy()
    y = _numpy_int8_dense(x, weight, bias, weight_levels=isa.weight_levels()).astype(np.float64)
    assert (y < -1).any() and (y > 1).any()   # both tails of the erf
    np.testing.assert_allclose(got, y * (1 + erf(y / np.sqrt(2))) / 2, rtol=1e-5, atol=2e-6)
    with pytest.raises(mx.MXNetError, match="activation must be 'gelu'"):
        int8_dense(mx.nd, mx.nd.array(x), mx.nd.array(packed, dtype="int8"),
                   mx.nd.array(scale), mx.nd.array(colsum, dtype="int32"), mx.nd.array(bias),
                   units=200, activation="relu").wait_to_read()


class _Int8Dense(HybridBlock):
    """A Dense layer on the operator, parameters packed once (8-bit weight)."""

    def __init__(self, weight, bias):
        super().__init__()
        packed, scale, colsum = pack_weight(weight, 127)
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
        return int8_dense(F, x, packed, scale, colsum, bias, units=self.units,
                          weight_levels=127)


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


@pytest.mark.parametrize("weight_levels", WEIGHT_LEVELS)
def test_the_tiers_give_the_same_sums(weight_levels, kernels):
    """Every tier's integer products are equal for the same packed weight (avx2's on
    (q + 128) x w when |w| <= 63, on |q| x sign(q) w for wider weights, whose pairs would
    overflow VPMADDUBSW's int16 as (q + 128) x w; and a 7-bit weight told 127 levels takes
    the second loop), so their outputs equal the scalar loop's and the NumPy reference's."""
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
            outputs[tier] = _call(x, weight, bias, weight_levels)
            outputs[f"{tier}, told 127"] = _call(x, weight, bias, weight_levels, told=127)
    finally:
        isa.cap(top)
    for tier, out in outputs.items():
        np.testing.assert_array_equal(out, outputs["scalar"], err_msg=tier)
    np.testing.assert_allclose(outputs["scalar"],
                               _numpy_int8_dense(x, weight, bias, 127, weight_levels),
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

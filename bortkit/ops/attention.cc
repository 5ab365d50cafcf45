// Fused self-attention for inference on Intel AMX (bf16): bortkit_self_attention
// (conventions: common.h).
//
// bortkit_self_attention(qkv, mask; heads, fill) -> context
//     qkv  (T, B, 3U) float32 in the interleaved layout of MXNet's
//          interleaved_matmul_selfatt_* operators, (T, B, H, 3, d): query, key and value
//          of head h are the d floats at h*3d, h*3d + d and h*3d + 2d of a row;
//     mask (B, T) float32, 1 for a real token, 0 for padding;
//     context (T, B, U), heads side by side (U = H * d), the layout of
//          interleaved_matmul_selfatt_valatt:
//     context[i, b, h] = sum_j p_ij v_j,
//     p_ij = softmax_j(bf16(q_i / sqrt(d)) . bf16(k_j) + (1 - mask[b, j]) * fill)
//     with both products on bf16 inputs (query, key, value and the probabilities rounded
//     to nearest even) and float32 sums (AMX TDPBF16PS), the softmax in float32.
//     The encoder computes the same at inference with four operators (scores, mask, softmax,
//     weighted values) and a (B, H, T, T) float32 tensor written and read three times; here
//     each (batch, head) pair is one work item and a block of 16 query rows goes through
//     scores, softmax and values while it is in L1. Inference only (its backward fails).
//     Without AMX the same bf16 arithmetic runs as scalar loops (slow: for tests on other
//     CPUs, never chosen by bortkit).
// Hand-written: the attention products are a fifth of an int8 Bort call in MXNet 1.9.1's
// oneDNN float32 kernels (bench/int8_profile.py), and its oneDNN 2.4.4 has no AMX bf16 path.
#include "common.h"
#include "amx.h"

#include <algorithm>
#include <limits>

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

constexpr int64_t kBlock = 16;  // query rows per block; keys and value columns per tile
constexpr int64_t kPairs = 32;  // bf16 values along the summed axis of one tile row

// float -> bf16 bits, round to nearest even (NaN is not expected here).
inline uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}

struct Attention {
  const float* qkv;
  const float* mask;
  float* out;
  int64_t T, B, H, d;
  int64_t rows;   // T rounded up to kBlock: query rows, and score columns
  int64_t keys;   // T rounded up to kPairs: keys summed over in the weighted values
  int64_t depth;  // d rounded up to kPairs
  float scale, fill;
  bool amx;
};

// The bf16 operands of one (batch, head) pair in AMX's layouts, zero-padded:
//   q  (rows, depth)        row-major: tile rows of the scores' left operand;
//   k  (depth / 2, keys, 2) k[c][j] = key j's dimensions 2c, 2c + 1 (the VNNI pairs of the
//                           scores' right operand, q . k summed over the dimensions);
//   v  (keys / 2, depth, 2) v[c][n] = dimension n of keys 2c, 2c + 1 (the right operand of
//                           the weighted values, summed over the keys);
//   p  (kBlock, keys)       a block's probabilities, the left operand of the values;
//   s, o  float32 (kBlock, rows) scores and (kBlock, depth) weighted values of a block.
// One per thread, kept between calls (thread_local), so that a call neither allocates nor
// touches fresh pages.
struct Scratch {
  std::vector<uint16_t> q, k, v, p, row;
  std::vector<float> s, o, bias;  // bias (T,): (1 - mask) * fill of the item's batch row
  void resize(const Attention& a) {  // every buffer is written before it is read
    q.resize(a.rows * a.depth);
    k.resize(a.depth * a.keys);
    v.resize(a.keys * a.depth);
    p.resize(kBlock * a.keys);
    row.resize(3 * a.depth);
    s.resize(kBlock * a.rows);
    o.resize(kBlock * a.depth);
    bias.resize(a.T);
  }
};

// Rows of n floats -> bf16 (times scale), zero from n to padded.
void convert_row(const float* x, int64_t n, int64_t padded, float scale, uint16_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16(x[i] * scale);
  std::fill(out + n, out + padded, 0);
}

void gather(const Attention& a, int64_t b, int64_t h, Scratch& w) {
  const int64_t stride = a.B * a.H * 3 * a.d, half = a.depth / 2;
  const float* base = a.qkv + (b * a.H + h) * 3 * a.d;
  uint16_t* key = w.row.data();              // (depth,)
  uint16_t* values = key + a.depth;          // (2, depth): two consecutive values
  uint32_t* k = reinterpret_cast<uint32_t*>(w.k.data());  // (depth / 2, keys) pairs
  uint32_t* v = reinterpret_cast<uint32_t*>(w.v.data());  // (keys / 2, depth) pairs
  for (int64_t t = 0; t < a.T; ++t) {
    const float* query = base + t * stride;
    if (t + 4 < a.T)  // rows are B * 3U floats apart: the prefetchers do not see them
      for (int64_t n = 0; n < 3 * a.d; n += 16) __builtin_prefetch(query + 4 * stride + n);
    convert_row(query, a.d, a.depth, a.scale, w.q.data() + t * a.depth);
    convert_row(query + a.d, a.d, a.depth, 1.0f, key);
    const uint32_t* pairs = reinterpret_cast<const uint32_t*>(key);
    for (int64_t c = 0; c < half; ++c) k[c * a.keys + t] = pairs[c];
    convert_row(query + 2 * a.d, a.d, a.depth, 1.0f, values + (t % 2) * a.depth);
    if (t % 2 == 1 || t + 1 == a.T) {
      if (t % 2 == 0) std::fill(values + a.depth, values + 2 * a.depth, 0);  // odd T
      uint32_t* out = v + (t / 2) * a.depth;
#pragma omp simd
      for (int64_t n = 0; n < a.depth; ++n)
        out[n] = values[n] | static_cast<uint32_t>(values[a.depth + n]) << 16;
    }
  }
  std::fill(w.q.begin() + a.T * a.depth, w.q.end(), 0);
  for (int64_t c = 0; c < half; ++c) std::fill(k + c * a.keys + a.T, k + (c + 1) * a.keys, 0);
  std::fill(v + (a.T + 1) / 2 * a.depth, v + a.keys / 2 * a.depth, 0);
}

// c (16, 16) float32 (row stride ldc floats) += a (16, K) bf16 (stride lda values) times
// the VNNI pairs b (K / 2, 16, 2) (stride ldb pairs), K a multiple of 32: what AMX's
// TDPBF16PS does over consecutive tiles, written out.
void tile_products_scalar(float* c, int64_t ldc, const uint16_t* a, int64_t lda,
                          const uint16_t* b, int64_t ldb, int64_t K) {
  for (int64_t m = 0; m < kBlock; ++m)
    for (int64_t n = 0; n < kBlock; ++n) {
      float sum = c[m * ldc + n];
      for (int64_t k = 0; k < K; k += 2)
        sum += from_bf16(a[m * lda + k]) * from_bf16(b[((k / 2) * ldb + n) * 2]) +
               from_bf16(a[m * lda + k + 1]) * from_bf16(b[((k / 2) * ldb + n) * 2 + 1]);
      c[m * ldc + n] = sum;
    }
}

#ifdef BORTKIT_AMX
// The same product as tile_products_scalar, for two column blocks (b and b + 32 values)
// at once, on AMX; c is overwritten instead of accumulated. Tiles (configure_tiles(5)):
// 0-1 accumulate, 2 holds rows of the left operand, 3-4 pairs of the right one.
__attribute__((target("amx-tile,amx-bf16"))) void tile_products_amx(
    float* c, int64_t ldc, const uint16_t* a, int64_t lda, const uint16_t* b, int64_t ldb,
    int64_t K, bool two) {
  _tile_zero(0);
  _tile_zero(1);
  for (int64_t k = 0; k < K; k += kPairs) {
    _tile_loadd(2, a + k, lda * 2);
    _tile_loadd(3, b + (k / 2) * ldb * 2, ldb * 4);
    _tile_dpbf16ps(0, 2, 3);
    if (two) {
      _tile_loadd(4, b + (k / 2) * ldb * 2 + kBlock * 2, ldb * 4);
      _tile_dpbf16ps(1, 2, 4);
    }
  }
  _tile_stored(0, c, ldc * 4);
  if (two) _tile_stored(1, c + kBlock, ldc * 4);
}
#endif

// c (16, N) = a (16, K) . b, N a multiple of 16, c overwritten.
void products(bool amx, float* c, int64_t ldc, const uint16_t* a, int64_t lda,
              const uint16_t* b, int64_t ldb, int64_t K, int64_t N) {
  for (int64_t n = 0; n < N; n += 2 * kBlock) {
    const bool two = n + kBlock < N;
#ifdef BORTKIT_AMX
    if (amx) {
      tile_products_amx(c + n, ldc, a, lda, b + n * 2, ldb, K, two);
      continue;
    }
#endif
    for (int64_t half = 0; half < (two ? 2 : 1); ++half) {
      float* cn = c + n + half * kBlock;
      for (int64_t m = 0; m < kBlock; ++m) std::fill(cn + m * ldc, cn + m * ldc + kBlock, 0.0f);
      tile_products_scalar(cn, ldc, a, lda, b + (n + half * kBlock) * 2, ldb, K);
    }
  }
}

// One row of scores -> bf16 probabilities exp(s - max) (zero past T) and their sum.
float softmax_row(float* s, const float* bias, const Attention& a, uint16_t* p) {
#pragma omp simd
  for (int64_t j = 0; j < a.T; ++j) s[j] += bias[j];
  float top = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : top)
  for (int64_t j = 0; j < a.T; ++j) top = s[j] > top ? s[j] : top;
#pragma omp simd
  for (int64_t j = 0; j < a.T; ++j) p[j] = to_bf16(exp_approx(s[j] - top));
  float sum = 0.0f;  // of what is multiplied, so that each row sums to 1
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < a.T; ++j) sum += from_bf16(p[j]);
  std::fill(p + a.T, p + a.keys, 0);
  return sum;
}

void attend(const Attention& a, int64_t b, int64_t h, Scratch& w) {
  const int64_t U = a.H * a.d;
  const float* mask = a.mask + b * a.T;
  for (int64_t j = 0; j < a.T; ++j) w.bias[j] = (1.0f - mask[j]) * a.fill;
  gather(a, b, h, w);
  for (int64_t i0 = 0; i0 < a.T; i0 += kBlock) {
    products(a.amx, w.s.data(), a.rows, w.q.data() + i0 * a.depth, a.depth, w.k.data(), a.keys,
             a.depth, a.rows);
    float sum[kBlock];
    const int64_t count = std::min(kBlock, a.T - i0);
    for (int64_t r = 0; r < count; ++r)
      sum[r] = softmax_row(w.s.data() + r * a.rows, w.bias.data(), a, w.p.data() + r * a.keys);
    std::fill(w.p.begin() + count * a.keys, w.p.end(), 0);
    products(a.amx, w.o.data(), a.depth, w.p.data(), a.keys, w.v.data(), a.depth, a.keys,
             (a.d + kBlock - 1) / kBlock * kBlock);
    for (int64_t r = 0; r < count; ++r) {
      float* out = a.out + ((i0 + r) * a.B + b) * U + h * a.d;
      const float inv = 1.0f / sum[r];
      const float* o = w.o.data() + r * a.depth;
#pragma omp simd
      for (int64_t n = 0; n < a.d; ++n) out[n] = o[n] * inv;
    }
  }
}

// --------------------------------------------------------------------------- operator
MXReturnValue attention_parse(const std::unordered_map<std::string, std::string>& attrs,
                              int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue attention_type(const std::unordered_map<std::string, std::string>& attrs,
                             std::vector<int>* in, std::vector<int>* out) {
  if ((*in)[0] != kFloat32 || (*in)[1] != kFloat32) {
    MX_ERROR_MSG << "bortkit_self_attention supports float32 only";
    return MX_FAIL;
  }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue attention_shape(const std::unordered_map<std::string, std::string>& attrs,
                              std::vector<std::vector<unsigned int>>* in,
                              std::vector<std::vector<unsigned int>>* out) {
  const int64_t heads = static_cast<int64_t>(attr_float(attrs, "heads", 0));
  const auto& qkv = (*in)[0];
  const auto& mask = (*in)[1];
  if (heads <= 0 || qkv.size() != 3 || qkv[2] % (3 * heads) != 0 || mask.size() != 2 ||
      mask[0] != qkv[1] || mask[1] != qkv[0]) {
    MX_ERROR_MSG << "bortkit_self_attention: qkv must be (T, B, 3U) with U divisible by "
                    "heads, and the mask (B, T)";
    return MX_FAIL;
  }
  out->assign(1, {qkv[0], qkv[1], qkv[2] / 3});
  return MX_SUCCESS;
}

MXReturnValue attention_forward(const std::unordered_map<std::string, std::string>& attrs,
                                std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                                const OpResource& res) {
  const MXTensor& qkv = (*inputs)[0];
  Attention a{static_cast<const float*>(qkv.data_ptr), (*inputs)[1].data<float>(),
              (*outputs)[0].data<float>(), qkv.shape[0], qkv.shape[1],
              static_cast<int64_t>(attr_float(attrs, "heads", 0)), 0, 0, 0, 0, 0.0f,
              attr_float(attrs, "fill", -1e4f), amx_ready(kAmxBf16)};
  a.d = qkv.shape[2] / (3 * a.H);
  a.rows = (a.T + kBlock - 1) / kBlock * kBlock;
  a.keys = (a.T + kPairs - 1) / kPairs * kPairs;
  a.depth = (a.d + kPairs - 1) / kPairs * kPairs;
  a.scale = 1.0f / std::sqrt(static_cast<float>(a.d));
  const int64_t items = a.B * a.H;
#pragma omp parallel if (items > 1 && items * a.T * a.T * a.d >= kParallelMin)
  {
    thread_local Scratch scratch;
    scratch.resize(a);
#ifdef BORTKIT_AMX
    if (a.amx) configure_tiles(5);
#endif
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) attend(a, item / a.H, item % a.H, scratch);
#ifdef BORTKIT_AMX
    if (a.amx) _tile_release();
#endif
  }
  return MX_SUCCESS;
}

// Gluon's CachedOp builds a gradient graph for every operator: the backward exists, and fails.
MXReturnValue attention_backward(const std::unordered_map<std::string, std::string>& attrs,
                                 std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                                 const OpResource& res) {
  MX_ERROR_MSG << "bortkit_self_attention is inference only: it has no gradient";
  return MX_FAIL;
}

}  // namespace

REGISTER_OP(bortkit_self_attention)
    .setParseAttrs(attention_parse)
    .setInferType(attention_type)
    .setInferShape(attention_shape)
    .setForward(attention_forward, "cpu")
    .setBackward(attention_backward, "cpu");

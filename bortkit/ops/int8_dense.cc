// int8 dense layer on Intel AMX: bortkit_int8_dense (conventions: common.h).
//
// bortkit_int8_dense(data, weight, scale, colsum, bias; units) -> out
//     data   (..., K) float32, quantized here per row: s = max|x| / 127,
//            q = rint(x * (127 / max|x|)) in [-127, 127], stored as u8 q + 128;
//     weight (N/16, K/64, 16, 64) int8: the (N, K) per-output-channel int8 weight, padded
//            with zeros to N % 16 == 0, K % 64 == 0, in AMX's VNNI tile layout:
//            weight[n / 16][k / 64][(k % 64) / 4][(n % 16) * 4 + k % 4] = W[n][k]
//            (bortkit/ops/int8_dense.py packs it);
//     scale  (N,) float32 weight scales; colsum (N,) int32 = sum_k W[n][k];
//     bias   (N,) float32.
//     acc[r][n] = sum_k (q[r][k] + 128) * W[n][k] (u8 x s8 -> s32, AMX TDPBUSD), then
//     out[r][n] = float(acc - 128 * colsum[n]) * (s[r] * scale[n]) + bias[n]; units = N.
//     Inference only (its backward fails).
// bortkit_int8_dense(data, weight, scale, colsum, bias, residual, gamma, beta;
//                    units, norm=1, eps) -> LayerNorm(out + residual) * gamma + beta
//     The same product, then a residual (..., N) added and LayerNorm over the row (mean,
//     then the mean square of the centred row, in float), while the row block is in cache:
//     BERT's "Dense -> (Dropout) -> add -> LayerNorm" at inference in one pass.
// bortkit_int8_dense(data, weight, scale, colsum, bias; units, activation="gelu")
//     -> GELU(out), the exact x * Phi(x) (erf to 1.5e-7, Abramowitz & Stegun 7.1.26): the
//     FFN's first product and its activation in one pass.
//
// bortkit_amx_ready() (plain C, for ctypes): 1 when amx_ready(kAmxInt8) (amx.h): the CPU,
// the OS and Linux's tile-data permission allow AMX-INT8. Without it the operator runs a scalar loop
// with the same arithmetic (slow: for tests on other CPUs, never chosen by bortkit).
// Hand-written: MXNet 1.9.1's oneDNN 2.4.4 has no AMX inner product.
#include "common.h"
#include "amx.h"

#include <algorithm>

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

constexpr int kTileRows = 16, kTileBytes = 64, kTile = kTileRows * kTileBytes;

// One row of x (K,) -> u8 q + 128 at dst (tile rows: 64 bytes, then the next tile's row
// kTile bytes further), zeros after K up to Kp; returns the row scale max|x| / 127.
float quantize_row(const float* xr, int64_t K, int64_t Kp, uint8_t* dst) {
  float amax = 0.0f;
  for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t k = 0; k < Kp; ++k) {
    uint8_t* d = dst + (k / kTileBytes) * kTile + k % kTileBytes;
    if (k >= K) {
      *d = 0;
      continue;
    }
    const float q = std::min(127.0f, std::max(-127.0f, std::nearbyint(xr[k] * inv)));
    *d = static_cast<uint8_t>(static_cast<int>(q) + 128);
  }
  return amax / 127.0f;
}

#ifdef BORTKIT_AMX
// The same with AVX-512 (every AMX CPU has it): cvtps rounds to nearest even, as rint.
__attribute__((target("avx512f,avx512bw"))) float quantize_row_avx512(
    const float* xr, int64_t K, int64_t Kp, uint8_t* dst) {
  __m512 vmax = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(xr + k)));
  float amax = _mm512_reduce_max_ps(vmax);
  for (; k < K; ++k) amax = std::max(amax, std::fabs(xr[k]));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127),
                off = _mm512_set1_epi32(128);
  for (k = 0; k < Kp; k += 16) {
    const int64_t left = K - k;
    const __mmask16 m = left >= 16 ? 0xFFFF : left <= 0 ? 0 : (1u << left) - 1;
    const __m512 x = _mm512_maskz_loadu_ps(m, xr + k);
    __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(x, vinv));
    q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off);
    q = _mm512_maskz_mov_epi32(m, q);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + (k / kTileBytes) * kTile + k % kTileBytes),
                     _mm512_cvtepi32_epi8(q));
  }
  return amax / 127.0f;
}
#endif

// Quantize rows [0, rows) of x (rows, K) into tiles: a (Mp/16, Kp/64, 16, 64) u8, pads 0.
void quantize_rows(const float* x, int64_t rows, int64_t K, int64_t Mp, int64_t Kp,
                   uint8_t* a, float* row_scale, bool avx512) {
  const int64_t kb_count = Kp / kTileBytes;
#pragma omp parallel for schedule(static) if (rows * K >= kParallelMin)
  for (int64_t r = 0; r < Mp; ++r) {
    uint8_t* base = a + (r / kTileRows) * kb_count * kTile + (r % kTileRows) * kTileBytes;
    if (r >= rows) {
      for (int64_t kb = 0; kb < kb_count; ++kb) std::memset(base + kb * kTile, 0, kTileBytes);
      row_scale[r] = 0.0f;
      continue;
    }
#ifdef BORTKIT_AMX
    if (avx512) {
      row_scale[r] = quantize_row_avx512(x + r * K, K, Kp, base);
      continue;
    }
#endif
    row_scale[r] = quantize_row(x + r * K, K, Kp, base);
  }
}

// x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2 with Abramowitz & Stegun's 7.1.26 for erf
// (|error| <= 1.5e-7), branch-free so that loops over it vectorise.
inline float gelu(float x) {
  const float z = std::fabs(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  const float poly =
      t * (0.254829592f +
           t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float erf_abs = 1.0f - poly * exp_approx(-z * z);
  return 0.5f * x * (1.0f + (x < 0.0f ? -erf_abs : erf_abs));
}

// float(acc - 128 colsum) * (s_r * scale_n) + bias_n for columns [n0, n0 + count) of a row,
// through GELU when ``activation``.
inline void dequantize(const int32_t* acc, int64_t n0, int64_t count, float row_scale,
                       const float* scale, const int32_t* colsum, const float* bias,
                       bool activation, float* out) {
  for (int64_t j = 0; j < count; ++j) {
    const int64_t n = n0 + j;
    out[j] = static_cast<float>(acc[j] - 128 * colsum[n]) * (row_scale * scale[n]) + bias[n];
  }
  if (activation) {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) out[j] = gelu(out[j]);
  }
}

struct Dense {
  const uint8_t* a;      // (Mp/16, KB, 16, 64) u8
  const int8_t* w;       // (Np/16, KB, 16, 64) s8
  const float* row_scale;
  const float* scale;
  const int32_t* colsum;
  const float* bias;
  float* out;            // (rows, N)
  int64_t rows, N, KB;
  bool gelu;              // GELU after the bias
  const float* residual;  // (rows, N) with gamma, beta (N,): LayerNorm(out + residual)
  const float* gamma;
  const float* beta;
  float eps;
};

// out <- LayerNorm(out + residual) * gamma + beta, for one row of n values.
void add_norm_row(float* out, const float* residual, const float* gamma, const float* beta,
                  int64_t n, float eps) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < n; ++j) {
    out[j] += residual[j];
    sum += out[j];
  }
  const float mean = sum / static_cast<float>(n);
  float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
  for (int64_t j = 0; j < n; ++j) squares += (out[j] - mean) * (out[j] - mean);
  const float rstd = 1.0f / std::sqrt(squares / static_cast<float>(n) + eps);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = (out[j] - mean) * rstd * gamma[j] + beta[j];
}

void add_norm_rows(const Dense& p, int64_t first, int64_t last) {
  if (p.residual == nullptr) return;
  for (int64_t row = first; row < last && row < p.rows; ++row)
    add_norm_row(p.out + row * p.N, p.residual + row * p.N, p.gamma, p.beta, p.N, p.eps);
}

#ifdef BORTKIT_AMX
// Blocks of 32 rows x 32 columns: tiles 0-3 accumulate, 4-5 hold u8 rows, 6-7 weights.
// A work item is a 32-row block (its u8 rows stay in L1) and a panel of columns, items in
// panel-major order: a panel's weights (at most kPanelBytes) stay in L2 while every row
// block passes over them, so each weight is read from memory once, not once per row block
// (the query/key/value weight of Bort, 3 MB, does not fit L2). With one panel (and enough
// row blocks for every thread) the residual + LayerNorm runs on each finished row block;
// else it waits for whole rows.
constexpr int64_t kPanelBytes = 256 * 1024;

__attribute__((target("amx-tile,amx-int8"))) void gemm_amx(const Dense& p) {
  const int64_t row_blocks = (p.rows + 31) / 32, col_tiles = (p.N + 15) / 16;
  const int64_t col_pairs = (col_tiles + 1) / 2;
#ifdef _OPENMP
  const int64_t threads = omp_get_max_threads();
#else
  const int64_t threads = 1;
#endif
  const int64_t pair_bytes = 2 * p.KB * kTile;
  const int64_t for_threads =  // batch 1: split the columns so that every thread works
      row_blocks >= 2 * threads ? 1 : (2 * threads + row_blocks - 1) / row_blocks;
  const int64_t splits = std::min<int64_t>(
      col_pairs, std::max<int64_t>(for_threads, (col_pairs * pair_bytes + kPanelBytes - 1) /
                                                    kPanelBytes));
  const int64_t pairs_per_item = (col_pairs + splits - 1) / splits;
#pragma omp parallel if (row_blocks * splits > 1)
  {
    configure_tiles(8);
    alignas(64) int32_t acc[32 * 32];
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < row_blocks * splits; ++item) {
      const int64_t mb = item % row_blocks, first = (item / row_blocks) * pairs_per_item * 2;
      const int64_t last = std::min<int64_t>(col_tiles, first + pairs_per_item * 2);
      const uint8_t* a0 = p.a + (2 * mb) * p.KB * kTile;
      const uint8_t* a1 = a0 + p.KB * kTile;
      for (int64_t nt = first; nt < last; nt += 2) {
        const int8_t* b0 = p.w + nt * p.KB * kTile;
        const int8_t* b1 = nt + 1 < col_tiles ? b0 + p.KB * kTile : b0;
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t kb = 0; kb < p.KB; ++kb) {
          _tile_loadd(4, a0 + kb * kTile, kTileBytes);
          _tile_loadd(6, b0 + kb * kTile, kTileBytes);
          _tile_dpbusd(0, 4, 6);
          _tile_loadd(7, b1 + kb * kTile, kTileBytes);
          _tile_dpbusd(1, 4, 7);
          _tile_loadd(5, a1 + kb * kTile, kTileBytes);
          _tile_dpbusd(2, 5, 6);
          _tile_dpbusd(3, 5, 7);
        }
        _tile_stored(0, acc, 128);
        _tile_stored(1, acc + 16, 128);
        _tile_stored(2, acc + 512, 128);
        _tile_stored(3, acc + 528, 128);
        const int64_t n0 = nt * 16, count = std::min<int64_t>(32, p.N - n0);
        for (int64_t r = 0; r < 32 && mb * 32 + r < p.rows; ++r) {
          const int64_t row = mb * 32 + r;
          dequantize(acc + r * 32, n0, count, p.row_scale[row], p.scale, p.colsum, p.bias,
                     p.gelu, p.out + row * p.N + n0);
        }
      }
      if (splits == 1) add_norm_rows(p, mb * 32, mb * 32 + 32);
    }
    _tile_release();
    if (splits > 1 && p.residual != nullptr) {
#pragma omp for schedule(static)
      for (int64_t row = 0; row < p.rows; ++row) add_norm_rows(p, row, row + 1);
    }
  }
}
#endif

// The same products without AMX, one row at a time (reads the same layouts).
void gemm_scalar(const Dense& p) {
  const int64_t col_tiles = (p.N + 15) / 16;
#pragma omp parallel for schedule(static) if (p.rows > 1)
  for (int64_t row = 0; row < p.rows; ++row) {
    std::vector<int32_t> acc(col_tiles * 16, 0);
    const uint8_t* a = p.a + (row / 16) * p.KB * kTile + (row % 16) * kTileBytes;
    for (int64_t nt = 0; nt < col_tiles; ++nt)
      for (int64_t kb = 0; kb < p.KB; ++kb) {
        const int8_t* b = p.w + (nt * p.KB + kb) * kTile;
        const uint8_t* ak = a + kb * kTile;
        for (int c = 0; c < 16; ++c) {
          int32_t s = 0;
          for (int k = 0; k < kTileBytes; ++k)
            s += static_cast<int32_t>(ak[k]) * b[(k / 4) * kTileBytes + c * 4 + k % 4];
          acc[nt * 16 + c] += s;
        }
      }
    dequantize(acc.data(), 0, p.N, p.row_scale[row], p.scale, p.colsum, p.bias, p.gelu,
               p.out + row * p.N);
    add_norm_rows(p, row, row + 1);
  }
}

// --------------------------------------------------------------------------- operator
bool has_norm(const std::unordered_map<std::string, std::string>& attrs) {
  return attr_float(attrs, "norm", 0) != 0;
}

bool has_gelu(const std::unordered_map<std::string, std::string>& attrs) {
  auto it = attrs.find("activation");
  return it != attrs.end() && it->second == "gelu";
}

MXReturnValue dense_parse(const std::unordered_map<std::string, std::string>& attrs,
                          int* num_in, int* num_out) {
  auto it = attrs.find("activation");
  if (it != attrs.end() && (it->second != "gelu" || has_norm(attrs))) {
    MX_ERROR_MSG << "bortkit_int8_dense: activation must be 'gelu', without norm; got '"
                 << it->second << "'";
    return MX_FAIL;
  }
  *num_in = has_norm(attrs) ? 8 : 5;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue dense_type(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<int>* in, std::vector<int>* out) {
  const int expected[8] = {kFloat32, kInt8, kFloat32, kInt32, kFloat32,
                           kFloat32, kFloat32, kFloat32};
  for (size_t i = 0; i < in->size(); ++i)
    if ((*in)[i] != expected[i]) {
      MX_ERROR_MSG << "bortkit_int8_dense: inputs must be float32 data, int8 weight, "
                      "float32 scale, int32 colsum, float32 bias (, residual, gamma, beta)";
      return MX_FAIL;
    }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue dense_shape(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<std::vector<unsigned int>>* in,
                          std::vector<std::vector<unsigned int>>* out) {
  const int64_t units = static_cast<int64_t>(attr_float(attrs, "units", 0));
  const auto& data = (*in)[0];
  const auto& w = (*in)[1];
  bool ok = !data.empty() && w.size() == 4 && w[2] == kTileRows && w[3] == kTileBytes &&
            units > 0 && static_cast<int64_t>(w[0]) == (units + 15) / 16 &&
            static_cast<int64_t>(w[1]) == (static_cast<int64_t>(data.back()) + 63) / 64;
  for (int i = 2; i < 5; ++i)
    ok = ok && (*in)[i].size() == 1 && static_cast<int64_t>((*in)[i][0]) == units;
  if (ok && in->size() == 8) {
    std::vector<unsigned int> shape(data.begin(), data.end() - 1);
    shape.push_back(static_cast<unsigned int>(units));
    ok = (*in)[5] == shape;
    for (int i = 6; i < 8; ++i)
      ok = ok && (*in)[i].size() == 1 && static_cast<int64_t>((*in)[i][0]) == units;
  }
  if (!ok) {
    MX_ERROR_MSG << "bortkit_int8_dense: for data (..., K) and units N the weight must be "
                    "(ceil(N/16), ceil(K/64), 16, 64), scale, colsum, bias (N,) (and the "
                    "residual (..., N), gamma, beta (N,))";
    return MX_FAIL;
  }
  std::vector<unsigned int> shape(data.begin(), data.end() - 1);
  shape.push_back(static_cast<unsigned int>(units));
  out->assign(1, shape);
  return MX_SUCCESS;
}

MXReturnValue dense_forward(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                            const OpResource& res) {
  const MXTensor& data = (*inputs)[0];
  const int64_t K = data.shape.back(), rows = rows_of(data);
  const int64_t KB = (*inputs)[1].shape[1];
  const int64_t Mp = (rows + 31) / 32 * 32;
  // scratch: u8 rows in tiles, then the row scales
  const int64_t bytes = Mp * KB * kTileBytes + Mp * static_cast<int64_t>(sizeof(float));
  uint8_t* scratch = static_cast<uint8_t*>(res.alloc_cpu(static_cast<int>(bytes)));
  if (scratch == nullptr) {
    MX_ERROR_MSG << "bortkit_int8_dense: no scratch memory";
    return MX_FAIL;
  }
  float* row_scale = reinterpret_cast<float*>(scratch + Mp * KB * kTileBytes);
  quantize_rows(static_cast<const float*>(data.data_ptr), rows, K, Mp, KB * kTileBytes, scratch,
                row_scale, amx_ready(kAmxInt8));
  Dense p{scratch, (*inputs)[1].data<int8_t>(), row_scale, (*inputs)[2].data<float>(),
          (*inputs)[3].data<int32_t>(), (*inputs)[4].data<float>(),
          (*outputs)[0].data<float>(), rows,
          static_cast<int64_t>(attr_float(attrs, "units", 0)), KB, has_gelu(attrs), nullptr,
          nullptr, nullptr,
          attr_float(attrs, "eps", 1e-12f)};
  if (inputs->size() == 8) {
    p.residual = (*inputs)[5].data<float>();
    p.gamma = (*inputs)[6].data<float>();
    p.beta = (*inputs)[7].data<float>();
  }
#ifdef BORTKIT_AMX
  if (amx_ready(kAmxInt8)) {
    gemm_amx(p);
    return MX_SUCCESS;
  }
#endif
  gemm_scalar(p);
  return MX_SUCCESS;
}

// Gluon's CachedOp builds a gradient graph for every operator: the backward exists, and fails.
MXReturnValue dense_backward(const std::unordered_map<std::string, std::string>& attrs,
                             std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                             const OpResource& res) {
  MX_ERROR_MSG << "bortkit_int8_dense is inference only: it has no gradient";
  return MX_FAIL;
}

REGISTER_OP(bortkit_int8_dense)
    .setParseAttrs(dense_parse)
    .setInferType(dense_type)
    .setInferShape(dense_shape)
    .setForward(dense_forward, "cpu")
    .setBackward(dense_backward, "cpu");

}  // namespace

extern "C" int bortkit_amx_ready() { return amx_ready(kAmxInt8) ? 1 : 0; }

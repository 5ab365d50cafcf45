// Shared by the operator sources of bortkit/ops (compiled together into one library).
// Fused CPU kernels for MXNet 1.9 (custom operator library, include/mxnet/lib_api.h);
// see the docstring of bortkit/ops/__init__.py for why. Built by bortkit/ops/library.py.
//
// bortkit_layer_norm(data, gamma, beta; eps) -> (out, mean, rstd)
//     LayerNorm over the last axis; mean and rstd = 1/sqrt(var + eps) have the shape of
//     data without its last axis. Only `out` carries a gradient.
// bortkit_mask_scores(scores, mask; fill) -> out
//     scores (B, ..., T) + (1 - mask) * fill, with mask (B, T) of 1 (keep) / 0 (pad)
//     broadcast over the middle axes. The gradient of scores is the output gradient; mask
//     gets none (zeros).
// bortkit_softmax_nll, bortkit_adamw: see below.
//
// Library operators see no request type (write / add): gradients are always written, so
// callers must not feed a parameter with grad_req="add" straight in (encoder.py wraps them
// in identity()). Backward functions receive [output gradients..., inputs..., outputs...]
// and write one gradient per input. Rows are split over OpenMP threads when there is
// enough work; results do not depend on the number of threads except for LayerNorm's
// gamma/beta gradients (per-thread partial sums).
#ifndef BORTKIT_OPS_COMMON_H_
#define BORTKIT_OPS_COMMON_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mxnet/lib_api.h"
#ifdef _OPENMP
#include <omp.h>
#endif

using namespace mxnet::ext;

namespace bortkit_ops {

constexpr int64_t kParallelMin = 1 << 16;  // elements below which one thread is faster

inline int64_t rows_of(const MXTensor& t) {
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
  return rows;
}

inline float attr_float(const std::unordered_map<std::string, std::string>& attrs,
                        const char* name, float fallback) {
  auto it = attrs.find(name);
  return it == attrs.end() ? fallback : std::stof(it->second);
}

// Row sums for the LayerNorm statistics, in order, in float: the arithmetic of MXNet's CPU
// LayerNorm kernel (layer_norm_cpu.h, as built in the mxnet 1.9.1 wheel, which MXNet runs
// for inference), so that inference outputs are bit-identical to MXNet's.
inline float row_sum(const float* x, int64_t n, float centre, bool square) {
  float s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float v = x[j] - centre;
    s += square ? v * v : v;
  }
  return s;
}

// exp(x) for x <= 88 (Cephes' expf: Cody-Waite reduction and a degree-6 polynomial, about
// 1 ulp), branch-free so that loops over it vectorise; x below -87.3 gives exp(-87.3),
// about 1e-38, instead of a smaller number or 0.
inline float exp_approx(float x) {
  const float clamped = x > -87.3f ? x : -87.3f;
  const float n = std::floor(clamped * 1.44269504088896341f + 0.5f);
  const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

}  // namespace bortkit_ops

#endif  // BORTKIT_OPS_COMMON_H_

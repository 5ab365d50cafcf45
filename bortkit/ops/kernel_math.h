// Scalar math shared by every kernel tier (tier.cc) and the operator sources: exp, GELU,
// bf16 rounding, the LayerNorm row sums. Every function is `static inline`, so each
// translation unit keeps its own copy compiled for its own ISA: an inline function with
// external linkage, emitted by an AVX-512 unit, could otherwise be the one the linker keeps
// for the baseline unit too (SIGILL on an AVX2 CPU).
#ifndef BORTKIT_OPS_KERNEL_MATH_H_
#define BORTKIT_OPS_KERNEL_MATH_H_

#include <math.h>
#include <stdint.h>
#include <string.h>

namespace bortkit_ops {

constexpr int64_t kParallelMin = 1 << 16;  // elements below which one thread is faster

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

// exp(x) for x <= 88 (Cephes' expf: Cody-Waite reduction and a degree-6 polynomial, about
// 1 ulp), branch-free so that loops over it vectorise; x below -87.3 gives 0, not a
// subnormal float (exp(-1e4) of a masked score times anything stays 0, where subnormal
// operands slowed the products that read them several-fold).
static inline float exp_approx(float x) {
  const float clamped = x > -87.3f ? x : -87.3f;
  const float n = floorf(clamped * 1.44269504088896341f + 0.5f);
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
  memcpy(&scale, &bits, sizeof(scale));
  return x > -87.3f ? y * scale : 0.0f;
}

// x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2 with Abramowitz & Stegun's 7.1.26 for erf
// (|error| <= 1.5e-7), branch-free so that loops over it vectorise.
static inline float gelu(float x) {
  const float z = fabsf(x) * 0.70710678118654752f;
  const float t = 1.0f / (1.0f + 0.3275911f * z);
  const float poly =
      t * (0.254829592f +
           t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  const float erf_abs = 1.0f - poly * exp_approx(-z * z);
  return 0.5f * x * (1.0f + (x < 0.0f ? -erf_abs : erf_abs));
}

// float -> bf16 bits, round to nearest even (NaN is not expected here).
static inline uint16_t to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof(u));
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

static inline float from_bf16(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float x;
  memcpy(&x, &u, sizeof(x));
  return x;
}

// Row sums for the LayerNorm statistics, in order, in float: the arithmetic of MXNet's CPU
// LayerNorm kernel (layer_norm_cpu.h, as built in the mxnet 1.9.1 wheel, which MXNet runs
// for inference), so that the fused LayerNorm's outputs are bit-identical to MXNet's
// LayerNorm's. In order: no tier vectorises it (a reordered sum would change the last bit),
// which makes the forward pass latency-bound in training too.
static inline float row_sum(const float* x, int64_t n, float centre, bool square) {
  float s = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float v = x[j] - centre;
    s += square ? v * v : v;
  }
  return s;
}

}  // namespace bortkit_ops

#endif  // BORTKIT_OPS_KERNEL_MATH_H_

// The kernel table: every loop of the fused operators, compiled once per ISA tier (tier.cc)
// and chosen at run time (isa.h). The operator sources (encoder.cc, loss.cc, optimizer.cc,
// int8_dense.cc, attention.cc, attention_training.cc) hold MXNet's registration and call
// kernels().
//
// Tiers, from the lowest: scalar (any x86-64: the build's -march), avx2 (AVX2, FMA, F16C),
// avx512 (AVX-512 F/BW/DQ/VL and VNNI), amx (avx512 and AMX-TILE/INT8/BF16). The tiers
// compute the same integer products in the int8 dense layer for the same packed weight
// (8-bit inputs on every tier, dense_kernels.h), so their outputs agree to float rounding in
// the epilogue.
#ifndef BORTKIT_OPS_KERNELS_H_
#define BORTKIT_OPS_KERNELS_H_

#include <stdint.h>

namespace bortkit_ops {

enum Tier { kScalar = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3, kTierCount = 4 };

// bortkit_int8_dense: out = dense(x) on the packed int8 weight (int8_dense.cc has the
// layouts), then GELU, or LayerNorm(out + residual) * gamma + beta, or neither.
struct DenseArgs {
  const float* x;        // (rows, K) float32
  int64_t rows, K, N, KB;  // KB = ceil(K / 64)
  const int8_t* w;       // (ceil(N/16), KB, 16, 64) int8, AMX's VNNI tile layout
  const float* scale;    // (N,) weight scales
  const int32_t* colsum; // (N,) sum_k W[n][k]
  int32_t weight_levels; // |W[n][k]| <= weight_levels (<= 127): which loop is exact (avx2)
  const float* bias;     // (N,)
  bool gelu;
  const float* residual;  // (rows, N) or null; then gamma, beta (N,) and eps
  const float* gamma;
  const float* beta;
  float eps;
  uint8_t* scratch;      // dense_scratch_bytes(rows, KB): quantized rows and their scales
  float* out;            // (rows, N)
};

inline int64_t dense_scratch_bytes(int64_t rows, int64_t KB) {
  const int64_t padded = (rows + 31) / 32 * 32;
  return padded * KB * 64 + padded * static_cast<int64_t>(sizeof(float));
}

// bortkit_self_attention (attention.cc has the arithmetic).
struct AttentionArgs {
  const float* qkv;   // (T, B, H, 3, d)
  const float* mask;  // (B, T), 1 real / 0 padding
  float* out;         // (T, B, H * d)
  int64_t T, B, H, d;
  float fill;
};

// bortkit_attention (attention_training.cc has the arithmetic): the forward pass reads qkv
// and mask and writes context and probs; the backward pass reads qkv, probs and the output
// gradients d_context and d_probs and writes d_qkv.
struct TrainingAttentionArgs {
  const float* qkv;   // (T, B, H, 3, d)
  const float* mask;  // (B, T), 1 real / 0 padding
  int64_t T, B, H, d;
  float fill;
  float dropout;      // the probabilities' dropout rate, 0 outside training
  uint32_t seed;      // dropout's keep mask is a hash of (seed, batch, head, query, key)
  float* context;     // (T, B, H * d)
  float* probs;       // (B, H, T, T) softmax before dropout
  const float* d_context;
  const float* d_probs;
  float* d_qkv;       // (T, B, H, 3, d)
};

struct Kernels {
  const char* name;
  int int8_levels;    // bortkit_int8_dense quantizes its input to [-levels, levels]
  int weight_levels;  // the weight levels its fastest loop takes (pack_weight's default)
  void (*layer_norm_forward)(const float* x, const float* gamma, const float* beta,
                             float* y, float* mean, float* rstd, int64_t rows, int64_t cols,
                             float eps);
  void (*layer_norm_backward)(const float* dy, const float* x, const float* gamma,
                              const float* mean, const float* rstd, float* dx, float* dgamma,
                              float* dbeta, int64_t rows, int64_t cols);
  void (*mask_scores)(const float* scores, const float* mask, float* out, int64_t rows,
                      int64_t rows_per_batch, int64_t cols, float fill);
  void (*softmax_nll_forward)(const float* logits, const float* labels, float* nll,
                              float* lse, int64_t rows, int64_t cols);
  void (*softmax_nll_backward)(const float* dnll, const float* logits, const float* labels,
                               const float* lse, float* dlogits, int64_t rows, int64_t cols);
  void (*adamw)(const float* grad, float scale, float* weight, float* mean, float* var,
                int64_t n, float lr, float wd, float beta1, float beta2, float epsilon);
  void (*int8_dense)(const DenseArgs& args);
  void (*self_attention)(const AttentionArgs& args);
  void (*dropout)(const float* x, float* y, int64_t n, float rate, uint32_t seed);
  double (*sum_squares)(const float* x, int64_t n);
  void (*attention_training_forward)(const TrainingAttentionArgs& args);
  void (*attention_training_backward)(const TrainingAttentionArgs& args);
};

// One table per tier, each from its own translation unit of tier.cc.
const Kernels& kernels_scalar();
const Kernels& kernels_avx2();
const Kernels& kernels_avx512();
const Kernels& kernels_amx();

// The table of the active tier (isa.h): the host's, or lower when capped.
const Kernels& kernels();

}  // namespace bortkit_ops

#endif  // BORTKIT_OPS_KERNELS_H_

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
// bortkit_dropout(data, training; p) -> (out, seed)
//     data * keep / (1 - p) with a counter-based keep mask (training_kernels.h) when the
//     training flag says so, else data; seed (2,) as in draw_seed. Only out carries a
//     gradient: the output gradient through the same mask.
// bortkit_interleave_heads(a, b, c; heads) -> out
//     three (U, ...) tensors -> (3U, ...): head i's U / heads rows of a, b, then c, for
//     i = 0..heads-1 (the query/key/value weights in the fused attention's layout). The
//     backward pass splits the output gradient the same way.
// bortkit_attention, bortkit_softmax_nll, bortkit_adamw, bortkit_sum_squares: see their
// sources.
//
// The loops are in the kernel table (kernels.h), one copy per ISA tier, chosen at run time
// (isa.h); these files hold MXNet's registration: attributes, types, shapes, and the call.
//
// Library operators see no request type (write / add): gradients are always written, so
// callers must not feed a parameter with grad_req="add" straight in (encoder.py wraps
// LayerNorm's in identity(); interleave_heads reads the q/k/v weights directly only when
// they are written, and make_trainer refuses to make them accumulate afterwards). Backward
// functions receive [output gradients..., inputs..., outputs...] and write one gradient
// per input. Rows are split over OpenMP threads when there is
// enough work; results do not depend on the number of threads except for LayerNorm's
// gamma/beta gradients (per-thread partial sums).
#ifndef BORTKIT_OPS_COMMON_H_
#define BORTKIT_OPS_COMMON_H_

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels.h"
#include "mxnet/lib_api.h"
#ifdef _OPENMP
#include <omp.h>
#endif

using namespace mxnet::ext;

namespace bortkit_ops {

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

inline int64_t heads_of(const std::unordered_map<std::string, std::string>& attrs) {
  return static_cast<int64_t>(attr_float(attrs, "heads", 0));
}

// The seed of a dropout mask (training_kernels.h), drawn from MXNet's random state (so
// mx.random.seed makes runs repeat) and kept for the backward pass as a (2,) float32
// output: two 16-bit halves, each exact in a float.
inline uint32_t draw_seed(const OpResource& res, float* kept) {
  const uint32_t seed = static_cast<uint32_t>((*res.get_cpu_rand_states())());
  kept[0] = static_cast<float>(seed >> 16);
  kept[1] = static_cast<float>(seed & 0xFFFFu);
  return seed;
}

inline uint32_t kept_seed(const float* kept) {
  return (static_cast<uint32_t>(kept[0]) << 16) | static_cast<uint32_t>(kept[1]);
}

// A (1,) training flag made by MXNet's Dropout of a 1 (ops/encoder.py): 1 exactly outside
// training, where dropout is off.
inline bool is_training(const MXTensor& flag) {
  return *static_cast<const float*>(flag.data_ptr) != 1.0f;
}

}  // namespace bortkit_ops

#endif  // BORTKIT_OPS_COMMON_H_

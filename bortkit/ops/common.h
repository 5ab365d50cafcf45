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
// The loops are in the kernel table (kernels.h), one copy per ISA tier, chosen at run time
// (isa.h); these files hold MXNet's registration: attributes, types, shapes, and the call.
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

}  // namespace bortkit_ops

#endif  // BORTKIT_OPS_COMMON_H_

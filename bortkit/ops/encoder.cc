// Encoder operators: bortkit_layer_norm, bortkit_mask_scores, bortkit_dropout,
// bortkit_interleave_heads (conventions: common.h).
// library.py compiles every .cc here as one translation unit, with MXNet's lib_api.cc.
#include "common.h"

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

// ------------------------------------------------------------------------- layer norm
MXReturnValue ln_parse(const std::unordered_map<std::string, std::string>& attrs,
                       int* num_in, int* num_out) {
  *num_in = 3;
  *num_out = 3;
  return MX_SUCCESS;
}

MXReturnValue ln_type(const std::unordered_map<std::string, std::string>& attrs,
                      std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32) {
      MX_ERROR_MSG << "bortkit_layer_norm supports float32 only";
      return MX_FAIL;
    }
  out->assign(3, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue ln_shape(const std::unordered_map<std::string, std::string>& attrs,
                       std::vector<std::vector<unsigned int>>* in,
                       std::vector<std::vector<unsigned int>>* out) {
  const auto& data = (*in)[0];
  if (data.empty() || (*in)[1].size() != 1 || (*in)[2].size() != 1 ||
      (*in)[1][0] != data.back() || (*in)[2][0] != data.back()) {
    MX_ERROR_MSG << "bortkit_layer_norm: gamma and beta must be (C,) for data (..., C)";
    return MX_FAIL;
  }
  std::vector<unsigned int> stats(data.begin(), data.end() - 1);
  if (stats.empty()) stats.push_back(1);
  out->clear();
  out->push_back(data);
  out->push_back(stats);
  out->push_back(stats);
  return MX_SUCCESS;
}

MXReturnValue ln_forward(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource& res) {
  const MXTensor& data = (*inputs)[0];
  kernels().layer_norm_forward(
      static_cast<const float*>(data.data_ptr), (*inputs)[1].data<float>(),
      (*inputs)[2].data<float>(), (*outputs)[0].data<float>(), (*outputs)[1].data<float>(),
      (*outputs)[2].data<float>(), rows_of(data), data.shape.back(),
      attr_float(attrs, "eps", 1e-5f));
  return MX_SUCCESS;
}

// inputs: d_out, d_mean, d_rstd, data, gamma, beta, out, mean, rstd
MXReturnValue ln_backward(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  const MXTensor& data = (*inputs)[3];
  kernels().layer_norm_backward(
      (*inputs)[0].data<float>(), static_cast<const float*>(data.data_ptr),
      (*inputs)[4].data<float>(), (*inputs)[7].data<float>(), (*inputs)[8].data<float>(),
      (*outputs)[0].data<float>(), (*outputs)[1].data<float>(), (*outputs)[2].data<float>(),
      rows_of(data), data.shape.back());
  return MX_SUCCESS;
}

// ------------------------------------------------------------------------ mask scores
MXReturnValue mask_parse(const std::unordered_map<std::string, std::string>& attrs,
                         int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue mask_type(const std::unordered_map<std::string, std::string>& attrs,
                        std::vector<int>* in, std::vector<int>* out) {
  if ((*in)[0] != kFloat32 || (*in)[1] != kFloat32) {
    MX_ERROR_MSG << "bortkit_mask_scores supports float32 only";
    return MX_FAIL;
  }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue mask_shape(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<std::vector<unsigned int>>* in,
                         std::vector<std::vector<unsigned int>>* out) {
  const auto& scores = (*in)[0];
  const auto& mask = (*in)[1];
  if (scores.size() < 2 || mask.size() != 2 || mask[0] != scores[0] ||
      mask[1] != scores.back()) {
    MX_ERROR_MSG << "bortkit_mask_scores: mask must be (B, T) for scores (B, ..., T)";
    return MX_FAIL;
  }
  out->assign(1, scores);
  return MX_SUCCESS;
}

MXReturnValue mask_forward(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                           const OpResource& res) {
  const MXTensor& scores = (*inputs)[0];
  const int64_t rows = rows_of(scores);
  kernels().mask_scores(static_cast<const float*>(scores.data_ptr), (*inputs)[1].data<float>(),
                        (*outputs)[0].data<float>(), rows, rows / scores.shape[0],
                        scores.shape.back(), attr_float(attrs, "fill", -1e4f));
  return MX_SUCCESS;
}

// inputs: d_out, scores, mask, out
MXReturnValue mask_backward(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                            const OpResource& res) {
  const MXTensor& dout = (*inputs)[0];
  std::memcpy((*outputs)[0].data_ptr, dout.data_ptr, sizeof(float) * dout.size());
  std::memset((*outputs)[1].data_ptr, 0, sizeof(float) * (*outputs)[1].size());
  return MX_SUCCESS;
}

// --------------------------------------------------------------------------- dropout
// Hand-written: MXNet 1.9.1's Dropout drew a random number per element at about 3 ms per
// million on two threads (bench/pretrain.py --profile); the hash mask costs a few
// instructions per element and needs no stored mask.
MXReturnValue dropout_parse(const std::unordered_map<std::string, std::string>& attrs,
                            int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 2;
  return MX_SUCCESS;
}

MXReturnValue dropout_type(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<int>* in, std::vector<int>* out) {
  if ((*in)[0] != kFloat32 || (*in)[1] != kFloat32) {
    MX_ERROR_MSG << "bortkit_dropout supports float32 only";
    return MX_FAIL;
  }
  out->assign(2, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue dropout_shape(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<std::vector<unsigned int>>* in,
                            std::vector<std::vector<unsigned int>>* out) {
  const float rate = attr_float(attrs, "p", 0.0f);
  if ((*in)[1].size() != 1 || (*in)[1][0] != 1 || !(rate >= 0.0f && rate < 1.0f)) {
    MX_ERROR_MSG << "bortkit_dropout: the training flag must be (1,) and p in [0, 1)";
    return MX_FAIL;
  }
  out->clear();
  out->push_back((*in)[0]);
  out->push_back({2});
  return MX_SUCCESS;
}

float dropout_rate(const std::unordered_map<std::string, std::string>& attrs,
                   const MXTensor& training) {
  return is_training(training) ? attr_float(attrs, "p", 0.0f) : 0.0f;
}

MXReturnValue dropout_forward(const std::unordered_map<std::string, std::string>& attrs,
                              std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                              const OpResource& res) {
  const MXTensor& data = (*inputs)[0];
  const uint32_t seed = draw_seed(res, (*outputs)[1].data<float>());
  kernels().dropout(static_cast<const float*>(data.data_ptr), (*outputs)[0].data<float>(),
                    data.size(), dropout_rate(attrs, (*inputs)[1]), seed);
  return MX_SUCCESS;
}

// inputs: d_out, d_seed, data, training, out, seed
MXReturnValue dropout_backward(const std::unordered_map<std::string, std::string>& attrs,
                               std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                               const OpResource& res) {
  const MXTensor& dout = (*inputs)[0];
  kernels().dropout(static_cast<const float*>(dout.data_ptr), (*outputs)[0].data<float>(),
                    dout.size(), dropout_rate(attrs, (*inputs)[3]),
                    kept_seed((*inputs)[5].data<float>()));
  std::memset((*outputs)[1].data_ptr, 0, sizeof(float));
  return MX_SUCCESS;
}

// ------------------------------------------------------------------ interleave heads
// Hand-written: the same layout from MXNet's operators (a reshape per parameter, then a
// concat, and their backward passes) copied every q/k/v weight twice each way, 33 ms of a
// Bort step at two threads (bench/pretrain.py --profile); this is one copy each way.
MXReturnValue interleave_parse(const std::unordered_map<std::string, std::string>& attrs,
                               int* num_in, int* num_out) {
  *num_in = 3;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue interleave_type(const std::unordered_map<std::string, std::string>& attrs,
                              std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32) {
      MX_ERROR_MSG << "bortkit_interleave_heads supports float32 only";
      return MX_FAIL;
    }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue interleave_shape(const std::unordered_map<std::string, std::string>& attrs,
                               std::vector<std::vector<unsigned int>>* in,
                               std::vector<std::vector<unsigned int>>* out) {
  const auto& first = (*in)[0];
  const int64_t heads = heads_of(attrs);
  if (first.empty() || (*in)[1] != first || (*in)[2] != first || heads <= 0 ||
      first[0] % heads != 0) {
    MX_ERROR_MSG << "bortkit_interleave_heads: three tensors of one shape (U, ...) with U "
                    "a multiple of heads";
    return MX_FAIL;
  }
  std::vector<unsigned int> shape(first);
  shape[0] *= 3;
  out->assign(1, shape);
  return MX_SUCCESS;
}

// Block (head h, part p) of the (3U, ...) tensor <-> block h of part p's (U, ...) tensor;
// `to_parts` copies the other way (the backward pass).
void copy_blocks(float* whole, float* const parts[3], int64_t heads, int64_t block,
                 bool to_parts) {
#pragma omp parallel for schedule(static) if (3 * heads * block >= (1 << 16))
  for (int64_t i = 0; i < 3 * heads; ++i) {
    float* w = whole + i * block;
    float* p = parts[i % 3] + (i / 3) * block;
    if (to_parts) {
      std::memcpy(p, w, sizeof(float) * block);
    } else {
      std::memcpy(w, p, sizeof(float) * block);
    }
  }
}

MXReturnValue interleave_forward(const std::unordered_map<std::string, std::string>& attrs,
                                 std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                                 const OpResource& res) {
  const int64_t heads = heads_of(attrs);
  float* const parts[3] = {(*inputs)[0].data<float>(), (*inputs)[1].data<float>(),
                           (*inputs)[2].data<float>()};
  copy_blocks((*outputs)[0].data<float>(), parts, heads, (*inputs)[0].size() / heads, false);
  return MX_SUCCESS;
}

// inputs: d_out, a, b, c, out
MXReturnValue interleave_backward(const std::unordered_map<std::string, std::string>& attrs,
                                  std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                                  const OpResource& res) {
  const int64_t heads = heads_of(attrs);
  float* const parts[3] = {(*outputs)[0].data<float>(), (*outputs)[1].data<float>(),
                           (*outputs)[2].data<float>()};
  copy_blocks((*inputs)[0].data<float>(), parts, heads, (*outputs)[0].size() / heads, true);
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(bortkit_dropout)
    .setParseAttrs(dropout_parse)
    .setInferType(dropout_type)
    .setInferShape(dropout_shape)
    .setForward(dropout_forward, "cpu")
    .setBackward(dropout_backward, "cpu");

REGISTER_OP(bortkit_layer_norm)
    .setParseAttrs(ln_parse)
    .setInferType(ln_type)
    .setInferShape(ln_shape)
    .setForward(ln_forward, "cpu")
    .setBackward(ln_backward, "cpu");

REGISTER_OP(bortkit_mask_scores)
    .setParseAttrs(mask_parse)
    .setInferType(mask_type)
    .setInferShape(mask_shape)
    .setForward(mask_forward, "cpu")
    .setBackward(mask_backward, "cpu");

REGISTER_OP(bortkit_interleave_heads)
    .setParseAttrs(interleave_parse)
    .setInferType(interleave_type)
    .setInferShape(interleave_shape)
    .setForward(interleave_forward, "cpu")
    .setBackward(interleave_backward, "cpu");

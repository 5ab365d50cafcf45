// Loss operator: bortkit_softmax_nll (conventions: common.h).
// library.py compiles every .cc here as one translation unit, with MXNet's lib_api.cc.
#include "common.h"

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

// ------------------------------------------------------------ softmax cross entropy
// bortkit_softmax_nll(logits (M, V), labels (M,)) -> (nll (M,), lse (M,))
//     nll = logsumexp(logits) - logits[label] per row (labels clipped into [0, V)); lse is
//     kept for the backward pass: d logits = d nll * (softmax(logits) - onehot(label)).
MXReturnValue nll_parse(const std::unordered_map<std::string, std::string>& attrs,
                        int* num_in, int* num_out) {
  *num_in = 2;
  *num_out = 2;
  return MX_SUCCESS;
}

MXReturnValue nll_type(const std::unordered_map<std::string, std::string>& attrs,
                       std::vector<int>* in, std::vector<int>* out) {
  if ((*in)[0] != kFloat32 || (*in)[1] != kFloat32) {
    MX_ERROR_MSG << "bortkit_softmax_nll supports float32 only";
    return MX_FAIL;
  }
  out->assign(2, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue nll_shape(const std::unordered_map<std::string, std::string>& attrs,
                        std::vector<std::vector<unsigned int>>* in,
                        std::vector<std::vector<unsigned int>>* out) {
  const auto& logits = (*in)[0];
  const auto& labels = (*in)[1];
  if (logits.size() != 2 || labels.size() != 1 || labels[0] != logits[0]) {
    MX_ERROR_MSG << "bortkit_softmax_nll: logits must be (M, V) and labels (M,)";
    return MX_FAIL;
  }
  out->assign(2, std::vector<unsigned int>{logits[0]});
  return MX_SUCCESS;
}

inline int64_t label_of(float value, int64_t classes) {
  const int64_t k = static_cast<int64_t>(value);
  return k < 0 ? 0 : (k >= classes ? classes - 1 : k);
}

MXReturnValue nll_forward(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  const MXTensor& logits = (*inputs)[0];
  const float* x = static_cast<const float*>(logits.data_ptr);
  const float* labels = (*inputs)[1].data<float>();
  float* nll = (*outputs)[0].data<float>();
  float* lse_out = (*outputs)[1].data<float>();
  const int64_t rows = logits.shape[0], cols = logits.shape[1];
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float mx[8];
    for (int k = 0; k < 8; ++k) mx[k] = -INFINITY;
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8)
      for (int k = 0; k < 8; ++k) mx[k] = xr[j + k] > mx[k] ? xr[j + k] : mx[k];
    float m = -INFINITY;
    for (; j < cols; ++j) m = xr[j] > m ? xr[j] : m;
    for (int k = 0; k < 8; ++k) m = mx[k] > m ? mx[k] : m;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (j = 0; j + 8 <= cols; j += 8)
      for (int k = 0; k < 8; ++k) acc[k] += exp_approx(xr[j + k] - m);
    float sum = 0;
    for (; j < cols; ++j) sum += exp_approx(xr[j] - m);
    for (int k = 0; k < 8; ++k) sum += acc[k];
    const float lse = m + std::log(sum);
    lse_out[r] = lse;
    nll[r] = lse - xr[label_of(labels[r], cols)];
  }
  return MX_SUCCESS;
}

// inputs: d_nll, d_lse, logits, labels, nll, lse
MXReturnValue nll_backward(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                           const OpResource& res) {
  const float* dnll = (*inputs)[0].data<float>();
  const MXTensor& logits = (*inputs)[2];
  const float* x = static_cast<const float*>(logits.data_ptr);
  const float* labels = (*inputs)[3].data<float>();
  const float* lse = (*inputs)[5].data<float>();
  float* dx = (*outputs)[0].data<float>();
  const int64_t rows = logits.shape[0], cols = logits.shape[1];
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* dxr = dx + r * cols;
    const float g = dnll[r], l = lse[r];
    for (int64_t j = 0; j < cols; ++j) dxr[j] = g * exp_approx(xr[j] - l);
    dxr[label_of(labels[r], cols)] -= g;
  }
  std::memset((*outputs)[1].data_ptr, 0, sizeof(float) * (*outputs)[1].size());
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(bortkit_softmax_nll)
    .setParseAttrs(nll_parse)
    .setInferType(nll_type)
    .setInferShape(nll_shape)
    .setForward(nll_forward, "cpu")
    .setBackward(nll_backward, "cpu");

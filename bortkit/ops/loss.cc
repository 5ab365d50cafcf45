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

MXReturnValue nll_forward(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  const MXTensor& logits = (*inputs)[0];
  kernels().softmax_nll_forward(static_cast<const float*>(logits.data_ptr),
                                (*inputs)[1].data<float>(), (*outputs)[0].data<float>(),
                                (*outputs)[1].data<float>(), logits.shape[0], logits.shape[1]);
  return MX_SUCCESS;
}

// inputs: d_nll, d_lse, logits, labels, nll, lse
MXReturnValue nll_backward(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                           const OpResource& res) {
  const MXTensor& logits = (*inputs)[2];
  kernels().softmax_nll_backward((*inputs)[0].data<float>(),
                                 static_cast<const float*>(logits.data_ptr),
                                 (*inputs)[3].data<float>(), (*inputs)[5].data<float>(),
                                 (*outputs)[0].data<float>(), logits.shape[0], logits.shape[1]);
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

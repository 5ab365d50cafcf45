// Fused self-attention for inference: bortkit_self_attention (conventions: common.h;
// loops: attention_kernels.h).
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
//     to nearest even) and float32 sums (AMX TDPBF16PS, or float32 FMAs of the decoded
//     values on the other tiers), the softmax in float32.
//     The encoder computes the same at inference with four operators (scores, mask, softmax,
//     weighted values) and a (B, H, T, T) float32 tensor written and read three times; here
//     each (batch, head) pair is one work item and a block of 16 query rows goes through
//     scores, softmax and values while it is in L1. Inference only (its backward fails).
// Hand-written: the attention products are a fifth of an int8 Bort call in MXNet 1.9.1's
// oneDNN float32 kernels (bench/int8_profile.py), and its oneDNN 2.4.4 has no AMX bf16 path
// and no fused attention.
#include "common.h"

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

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
  const int64_t heads = static_cast<int64_t>(attr_float(attrs, "heads", 0));
  AttentionArgs args{static_cast<const float*>(qkv.data_ptr), (*inputs)[1].data<float>(),
                     (*outputs)[0].data<float>(), qkv.shape[0], qkv.shape[1], heads,
                     qkv.shape[2] / (3 * heads), attr_float(attrs, "fill", -1e4f)};
  kernels().self_attention(args);
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

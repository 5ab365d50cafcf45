// Fused self-attention for training: bortkit_attention (conventions: common.h; loops:
// attention_training_kernels.h).
//
// bortkit_attention(qkv, mask, training; heads, fill, dropout) -> (context, probs, seed)
//     qkv  (T, B, 3U) float32 in the interleaved layout of MXNet's
//          interleaved_matmul_selfatt_* operators, (T, B, H, 3, d);
//     mask (B, T) float32, 1 for a real token, 0 for padding;
//     training (1,) float32, the flag of is_training (common.h): no dropout outside training;
//     probs (B, H, T, T) = softmax_j(q_i . k_j / sqrt(d) + (1 - mask[b, j]) * fill);
//     context (T, B, U) = dropout(probs) . v, heads side by side (U = H * d);
//     seed (2,) the dropout mask's seed (draw_seed, common.h), for the backward pass.
//     The same arithmetic as MXNet's interleaved_matmul_selfatt_qk, mask, softmax, Dropout
//     and interleaved_matmul_selfatt_valatt, all in float32, with one work item per (batch,
//     head) whose operands stay in cache, and no (B, H, T, T) tensor but probs written or
//     read. Only context and probs carry gradients; mask and training get zeros.
// Hand-written: those five MXNet operators took a third of a small model's training step at
// two threads (bench/pretrain.py --profile), most of it in the batched products' backward.
#include "common.h"

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

MXReturnValue training_parse(const std::unordered_map<std::string, std::string>& attrs,
                             int* num_in, int* num_out) {
  *num_in = 3;
  *num_out = 3;
  return MX_SUCCESS;
}

MXReturnValue training_type(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32) {
      MX_ERROR_MSG << "bortkit_attention supports float32 only";
      return MX_FAIL;
    }
  out->assign(3, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue training_shape(const std::unordered_map<std::string, std::string>& attrs,
                             std::vector<std::vector<unsigned int>>* in,
                             std::vector<std::vector<unsigned int>>* out) {
  const int64_t heads = heads_of(attrs);
  const float dropout = attr_float(attrs, "dropout", 0.0f);
  const auto& qkv = (*in)[0];
  const auto& mask = (*in)[1];
  if (heads <= 0 || qkv.size() != 3 || qkv[2] % (3 * heads) != 0 || mask.size() != 2 ||
      mask[0] != qkv[1] || mask[1] != qkv[0] || (*in)[2].size() != 1 || (*in)[2][0] != 1) {
    MX_ERROR_MSG << "bortkit_attention: qkv must be (T, B, 3U) with U divisible by heads, "
                    "the mask (B, T) and the training flag (1,)";
    return MX_FAIL;
  }
  if (!(dropout >= 0.0f && dropout < 1.0f)) {
    MX_ERROR_MSG << "bortkit_attention: dropout must be in [0, 1)";
    return MX_FAIL;
  }
  const unsigned int heads_u = static_cast<unsigned int>(heads);
  out->clear();
  out->push_back({qkv[0], qkv[1], qkv[2] / 3});
  out->push_back({qkv[1], heads_u, qkv[0], qkv[0]});
  out->push_back({2});
  return MX_SUCCESS;
}

TrainingAttentionArgs args_of(const std::unordered_map<std::string, std::string>& attrs,
                              const MXTensor& qkv, const MXTensor& mask,
                              const MXTensor& training) {
  const int64_t heads = heads_of(attrs);
  TrainingAttentionArgs args{};
  args.qkv = static_cast<const float*>(qkv.data_ptr);
  args.mask = static_cast<const float*>(mask.data_ptr);
  args.T = qkv.shape[0];
  args.B = qkv.shape[1];
  args.H = heads;
  args.d = qkv.shape[2] / (3 * heads);
  args.fill = attr_float(attrs, "fill", -1e4f);
  args.dropout = is_training(training) ? attr_float(attrs, "dropout", 0.0f) : 0.0f;
  return args;
}

MXReturnValue training_forward(const std::unordered_map<std::string, std::string>& attrs,
                               std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                               const OpResource& res) {
  TrainingAttentionArgs args = args_of(attrs, (*inputs)[0], (*inputs)[1], (*inputs)[2]);
  args.seed = draw_seed(res, (*outputs)[2].data<float>());
  args.context = (*outputs)[0].data<float>();
  args.probs = (*outputs)[1].data<float>();
  kernels().attention_training_forward(args);
  return MX_SUCCESS;
}

// inputs: d_context, d_probs, d_seed, qkv, mask, training, context, probs, seed
MXReturnValue training_backward(const std::unordered_map<std::string, std::string>& attrs,
                                std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                                const OpResource& res) {
  TrainingAttentionArgs args = args_of(attrs, (*inputs)[3], (*inputs)[4], (*inputs)[5]);
  args.seed = kept_seed((*inputs)[8].data<float>());
  args.probs = (*inputs)[7].data<float>();
  args.d_context = (*inputs)[0].data<float>();
  args.d_probs = (*inputs)[1].data<float>();
  args.d_qkv = (*outputs)[0].data<float>();
  kernels().attention_training_backward(args);
  std::memset((*outputs)[1].data_ptr, 0, sizeof(float) * (*outputs)[1].size());
  std::memset((*outputs)[2].data_ptr, 0, sizeof(float) * (*outputs)[2].size());
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(bortkit_attention)
    .setParseAttrs(training_parse)
    .setInferType(training_type)
    .setInferShape(training_shape)
    .setForward(training_forward, "cpu")
    .setBackward(training_backward, "cpu");

// Optimizer operators: bortkit_adamw, bortkit_sum_squares (conventions: common.h).
// library.py compiles every .cc here as one translation unit, with MXNet's lib_api.cc.
#include "common.h"

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

// ------------------------------------------------------------------------------ adamw
// bortkit_adamw(grad, scale, weight, mean, var; lr, wd, beta1, beta2, epsilon) -> flag (1,)
//     BERTAdam / MXNet adamw_update with lr=1, eta=lr, in place on weight, mean and var:
//       g = scale * grad; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//       w -= lr * (m / (sqrt(v) + eps) + wd * w)
//     scale (1,) is read on the device (clipping needs no host sync); a non-finite scale
//     skips the update, as MXNet's. flag is 1 if the update was applied.
MXReturnValue adamw_parse(const std::unordered_map<std::string, std::string>& attrs,
                          int* num_in, int* num_out) {
  *num_in = 5;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue adamw_type(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32) {
      MX_ERROR_MSG << "bortkit_adamw supports float32 only";
      return MX_FAIL;
    }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue adamw_shape(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<std::vector<unsigned int>>* in,
                          std::vector<std::vector<unsigned int>>* out) {
  const auto& g = (*in)[0];
  if ((*in)[2] != g || (*in)[3] != g || (*in)[4] != g || (*in)[1].size() != 1 ||
      (*in)[1][0] != 1) {
    MX_ERROR_MSG << "bortkit_adamw: grad, weight, mean and var must have one shape; scale (1,)";
    return MX_FAIL;
  }
  out->assign(1, std::vector<unsigned int>{1});
  return MX_SUCCESS;
}

MXReturnValue adamw_mutate(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<int>* indices) {
  indices->assign({2, 3, 4});
  return MX_SUCCESS;
}

MXReturnValue adamw_forward(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                            const OpResource& res) {
  const float scale = (*inputs)[1].data<float>()[0];
  float* flag = (*outputs)[0].data<float>();
  flag[0] = std::isfinite(scale) ? 1.0f : 0.0f;
  if (!std::isfinite(scale)) return MX_SUCCESS;
  kernels().adamw((*inputs)[0].data<float>(), scale, (*inputs)[2].data<float>(),
                  (*inputs)[3].data<float>(), (*inputs)[4].data<float>(), (*inputs)[0].size(),
                  attr_float(attrs, "lr", 0.0f), attr_float(attrs, "wd", 0.0f),
                  attr_float(attrs, "beta1", 0.9f), attr_float(attrs, "beta2", 0.999f),
                  attr_float(attrs, "epsilon", 1e-6f));
  return MX_SUCCESS;
}

// ------------------------------------------------------------------------ sum squares
// bortkit_sum_squares(x_1, ..., x_n; num_arrays) -> (1,) the sum of every squared entry,
//     summed in double (gradient clipping's global norm). Hand-written: one BLAS dot per
//     array ran on one thread, and norm/multi_sum_sq sum in float32 (about 1% off over
//     millions of entries).
MXReturnValue squares_parse(const std::unordered_map<std::string, std::string>& attrs,
                            int* num_in, int* num_out) {
  *num_in = static_cast<int>(attr_float(attrs, "num_arrays", 1));
  *num_out = 1;
  return *num_in >= 1 ? MX_SUCCESS : MX_FAIL;
}

MXReturnValue squares_type(const std::unordered_map<std::string, std::string>& attrs,
                           std::vector<int>* in, std::vector<int>* out) {
  for (int t : *in)
    if (t != kFloat32) {
      MX_ERROR_MSG << "bortkit_sum_squares supports float32 only";
      return MX_FAIL;
    }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue squares_shape(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<std::vector<unsigned int>>* in,
                            std::vector<std::vector<unsigned int>>* out) {
  out->assign(1, std::vector<unsigned int>{1});
  return MX_SUCCESS;
}

MXReturnValue squares_forward(const std::unordered_map<std::string, std::string>& attrs,
                              std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                              const OpResource& res) {
  double total = 0.0;
  for (const MXTensor& x : *inputs)
    total += kernels().sum_squares(static_cast<const float*>(x.data_ptr), x.size());
  (*outputs)[0].data<float>()[0] = static_cast<float>(total);
  return MX_SUCCESS;
}

}  // namespace

REGISTER_OP(bortkit_sum_squares)
    .setParseAttrs(squares_parse)
    .setInferType(squares_type)
    .setInferShape(squares_shape)
    .setForward(squares_forward, "cpu");

REGISTER_OP(bortkit_adamw)
    .setParseAttrs(adamw_parse)
    .setInferType(adamw_type)
    .setInferShape(adamw_shape)
    .setMutateInputs(adamw_mutate)
    .setForward(adamw_forward, "cpu");

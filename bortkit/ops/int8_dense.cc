// int8 dense layer: bortkit_int8_dense (conventions: common.h; loops: dense_kernels.h).
//
// bortkit_int8_dense(data, weight, scale, colsum, bias; units, weight_levels=127) -> out
//     data   (..., K) float32, quantized here per row: s = max|x| / 127,
//            q = rint(x * (127 / max|x|)) in [-127, 127], stored as u8 q + 128;
//     weight (N/16, K/64, 16, 64) int8: the (N, K) per-output-channel int8 weight,
//            |W[n][k]| <= weight_levels (1 .. 127), padded with zeros to N % 16 == 0,
//            K % 64 == 0, in AMX's VNNI tile layout:
//            weight[n / 16][k / 64][(k % 64) / 4][(n % 16) * 4 + k % 4] = W[n][k]
//            (bortkit/ops/int8_dense.py packs it);
//     scale  (N,) float32 weight scales; colsum (N,) int32 = sum_k W[n][k];
//     bias   (N,) float32.
//     acc[r][n] = sum_k q[r][k] * W[n][k] in int32 (AMX TDPBUSD, AVX-512 VPDPBUSD or, for
//     weight_levels <= 63, AVX2 VPMADDUBSW on u8 q + 128, less 128 * colsum[n]; AVX2
//     VPMADDUBSW on |q| and sign-moved weights for wider ones; or a scalar loop: the same
//     sums on every tier), then
//     out[r][n] = float(acc) * (s[r] * scale[n]) + bias[n]; units = N.
//     Inference only (its backward fails).
// bortkit_int8_dense(data, weight, scale, colsum, bias, residual, gamma, beta;
//                    units, norm=1, eps) -> LayerNorm(out + residual) * gamma + beta
//     The same product, then a residual (..., N) added and LayerNorm over the row (mean,
//     then the mean square of the centred row, in float), while the row block is in cache:
//     BERT's "Dense -> (Dropout) -> add -> LayerNorm" at inference in one pass.
// bortkit_int8_dense(data, weight, scale, colsum, bias; units, activation="gelu")
//     -> GELU(out), the exact x * Phi(x) (erf to 1.5e-7, Abramowitz & Stegun 7.1.26): the
//     FFN's first product and its activation in one pass.
//
// Hand-written: MXNet 1.9.1's oneDNN 2.4.4 has no AMX inner product, and its int8 inner
// product needs static thresholds and cannot fuse the epilogues.
#include <cstdlib>

#include "common.h"

using namespace mxnet::ext;
using namespace bortkit_ops;

namespace {

constexpr unsigned kTileRows = 16, kTileBytes = 64;

// --------------------------------------------------------------------------- operator
bool has_norm(const std::unordered_map<std::string, std::string>& attrs) {
  return attr_float(attrs, "norm", 0) != 0;
}

bool has_gelu(const std::unordered_map<std::string, std::string>& attrs) {
  auto it = attrs.find("activation");
  return it != attrs.end() && it->second == "gelu";
}

// The weight's levels (attribute weight_levels, default 127); 0 when not 1 .. 127.
int32_t weight_levels(const std::unordered_map<std::string, std::string>& attrs) {
  auto it = attrs.find("weight_levels");
  if (it == attrs.end()) return 127;
  char* end = nullptr;
  const long levels = std::strtol(it->second.c_str(), &end, 10);
  return end != it->second.c_str() && *end == '\0' && levels >= 1 && levels <= 127
             ? static_cast<int32_t>(levels) : 0;
}

MXReturnValue dense_parse(const std::unordered_map<std::string, std::string>& attrs,
                          int* num_in, int* num_out) {
  if (weight_levels(attrs) == 0) {
    MX_ERROR_MSG << "bortkit_int8_dense: weight_levels must be an integer in 1 .. 127; got '"
                 << attrs.at("weight_levels") << "'";
    return MX_FAIL;
  }
  auto it = attrs.find("activation");
  if (it != attrs.end() && (it->second != "gelu" || has_norm(attrs))) {
    MX_ERROR_MSG << "bortkit_int8_dense: activation must be 'gelu', without norm; got '"
                 << it->second << "'";
    return MX_FAIL;
  }
  *num_in = has_norm(attrs) ? 8 : 5;
  *num_out = 1;
  return MX_SUCCESS;
}

MXReturnValue dense_type(const std::unordered_map<std::string, std::string>& attrs,
                         std::vector<int>* in, std::vector<int>* out) {
  const int expected[8] = {kFloat32, kInt8, kFloat32, kInt32, kFloat32,
                           kFloat32, kFloat32, kFloat32};
  for (size_t i = 0; i < in->size(); ++i)
    if ((*in)[i] != expected[i]) {
      MX_ERROR_MSG << "bortkit_int8_dense: inputs must be float32 data, int8 weight, "
                      "float32 scale, int32 colsum, float32 bias (, residual, gamma, beta)";
      return MX_FAIL;
    }
  out->assign(1, kFloat32);
  return MX_SUCCESS;
}

MXReturnValue dense_shape(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<std::vector<unsigned int>>* in,
                          std::vector<std::vector<unsigned int>>* out) {
  const int64_t units = static_cast<int64_t>(attr_float(attrs, "units", 0));
  const auto& data = (*in)[0];
  const auto& w = (*in)[1];
  bool ok = !data.empty() && w.size() == 4 && w[2] == kTileRows && w[3] == kTileBytes &&
            units > 0 && static_cast<int64_t>(w[0]) == (units + 15) / 16 &&
            static_cast<int64_t>(w[1]) == (static_cast<int64_t>(data.back()) + 63) / 64;
  for (int i = 2; i < 5; ++i)
    ok = ok && (*in)[i].size() == 1 && static_cast<int64_t>((*in)[i][0]) == units;
  if (ok && in->size() == 8) {
    std::vector<unsigned int> shape(data.begin(), data.end() - 1);
    shape.push_back(static_cast<unsigned int>(units));
    ok = (*in)[5] == shape;
    for (int i = 6; i < 8; ++i)
      ok = ok && (*in)[i].size() == 1 && static_cast<int64_t>((*in)[i][0]) == units;
  }
  if (!ok) {
    MX_ERROR_MSG << "bortkit_int8_dense: for data (..., K) and units N the weight must be "
                    "(ceil(N/16), ceil(K/64), 16, 64), scale, colsum, bias (N,) (and the "
                    "residual (..., N), gamma, beta (N,))";
    return MX_FAIL;
  }
  std::vector<unsigned int> shape(data.begin(), data.end() - 1);
  shape.push_back(static_cast<unsigned int>(units));
  out->assign(1, shape);
  return MX_SUCCESS;
}

MXReturnValue dense_forward(const std::unordered_map<std::string, std::string>& attrs,
                            std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                            const OpResource& res) {
  const MXTensor& data = (*inputs)[0];
  const int64_t K = data.shape.back(), rows = rows_of(data), KB = (*inputs)[1].shape[1];
  const int64_t bytes = dense_scratch_bytes(rows, KB);
  uint8_t* scratch = static_cast<uint8_t*>(res.alloc_cpu(static_cast<int>(bytes)));
  if (scratch == nullptr) {
    MX_ERROR_MSG << "bortkit_int8_dense: no scratch memory";
    return MX_FAIL;
  }
  DenseArgs p{static_cast<const float*>(data.data_ptr), rows, K,
              static_cast<int64_t>(attr_float(attrs, "units", 0)), KB,
              (*inputs)[1].data<int8_t>(), (*inputs)[2].data<float>(),
              (*inputs)[3].data<int32_t>(), weight_levels(attrs), (*inputs)[4].data<float>(),
              has_gelu(attrs), nullptr, nullptr, nullptr, attr_float(attrs, "eps", 1e-12f),
              scratch, (*outputs)[0].data<float>()};
  if (inputs->size() == 8) {
    p.residual = (*inputs)[5].data<float>();
    p.gamma = (*inputs)[6].data<float>();
    p.beta = (*inputs)[7].data<float>();
  }
  kernels().int8_dense(p);
  return MX_SUCCESS;
}

// Gluon's CachedOp builds a gradient graph for every operator: the backward exists, and fails.
MXReturnValue dense_backward(const std::unordered_map<std::string, std::string>& attrs,
                             std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                             const OpResource& res) {
  MX_ERROR_MSG << "bortkit_int8_dense is inference only: it has no gradient";
  return MX_FAIL;
}

REGISTER_OP(bortkit_int8_dense)
    .setParseAttrs(dense_parse)
    .setInferType(dense_type)
    .setInferShape(dense_shape)
    .setForward(dense_forward, "cpu")
    .setBackward(dense_backward, "cpu");

}  // namespace


// Encoder operators: bortkit_layer_norm, bortkit_mask_scores (conventions: common.h).
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
  const float eps = attr_float(attrs, "eps", 1e-5f);
  const MXTensor& data = (*inputs)[0];
  const float* x = (*inputs)[0].data<float>();
  const float* gamma = (*inputs)[1].data<float>();
  const float* beta = (*inputs)[2].data<float>();
  float* y = (*outputs)[0].data<float>();
  float* mean_out = (*outputs)[1].data<float>();
  float* rstd_out = (*outputs)[2].data<float>();
  const int64_t cols = data.shape.back(), rows = rows_of(data);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float mean = row_sum(xr, cols, 0.0f, false) / static_cast<float>(cols);
    const float sigma = std::sqrt(row_sum(xr, cols, mean, true) / static_cast<float>(cols)
                                  + eps);
    for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mean) * gamma[j] / sigma + beta[j];
    mean_out[r] = mean;
    rstd_out[r] = 1.0f / sigma;
  }
  return MX_SUCCESS;
}

// inputs: d_out, d_mean, d_rstd, data, gamma, beta, out, mean, rstd
MXReturnValue ln_backward(const std::unordered_map<std::string, std::string>& attrs,
                          std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                          const OpResource& res) {
  const MXTensor& data = (*inputs)[3];
  const float* dy = (*inputs)[0].data<float>();
  const float* x = static_cast<const float*>(data.data_ptr);
  const float* gamma = (*inputs)[4].data<float>();
  const float* mean = (*inputs)[7].data<float>();
  const float* rstd = (*inputs)[8].data<float>();
  float* dx = (*outputs)[0].data<float>();
  float* dgamma = (*outputs)[1].data<float>();
  float* dbeta = (*outputs)[2].data<float>();
  const int64_t cols = data.shape.back(), rows = rows_of(data);
  const bool parallel = rows * cols >= kParallelMin;
  // One row of partial dgamma/dbeta sums per thread, added up at the end.
  int threads = 1;
#ifdef _OPENMP
  if (parallel) threads = omp_get_max_threads();
#endif
  std::vector<float> partial(static_cast<size_t>(threads) * 2 * cols, 0.0f);
  std::vector<float> scratch(static_cast<size_t>(threads) * cols);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    float* pg = partial.data() + static_cast<size_t>(t) * 2 * cols;
    float* pb = pg + cols;
    float* xhat = scratch.data() + static_cast<size_t>(t) * cols;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      const float m = mean[r], s = rstd[r];
      float acc1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, acc2[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 8 <= cols; j += 8)
        for (int k = 0; k < 8; ++k) {
          const float h = (xr[j + k] - m) * s, g = dyr[j + k] * gamma[j + k];
          xhat[j + k] = h;
          acc1[k] += g;
          acc2[k] += g * h;
        }
      float sum_g = 0, sum_gh = 0;
      for (; j < cols; ++j) {
        const float h = (xr[j] - m) * s, g = dyr[j] * gamma[j];
        xhat[j] = h;
        sum_g += g;
        sum_gh += g * h;
      }
      for (int k = 0; k < 8; ++k) {
        sum_g += acc1[k];
        sum_gh += acc2[k];
      }
      const float a = sum_g / cols, b = sum_gh / cols;
      for (j = 0; j < cols; ++j) {
        dxr[j] = s * (dyr[j] * gamma[j] - a - xhat[j] * b);
        pg[j] += dyr[j] * xhat[j];
        pb[j] += dyr[j];
      }
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    float g = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
      g += partial[static_cast<size_t>(t) * 2 * cols + j];
      b += partial[static_cast<size_t>(t) * 2 * cols + cols + j];
    }
    dgamma[j] = g;
    dbeta[j] = b;
  }
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
  const float fill = attr_float(attrs, "fill", -1e4f);
  const MXTensor& scores = (*inputs)[0];
  const float* s = static_cast<const float*>(scores.data_ptr);
  const float* mask = (*inputs)[1].data<float>();
  float* out = (*outputs)[0].data<float>();
  const int64_t batch = scores.shape[0], cols = scores.shape.back();
  const int64_t rows_per_batch = rows_of(scores) / batch, rows = rows_of(scores);
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* m = mask + (r / rows_per_batch) * cols;
    const float* sr = s + r * cols;
    float* o = out + r * cols;
    for (int64_t j = 0; j < cols; ++j) o[j] = sr[j] + (1.0f - m[j]) * fill;
  }
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

}  // namespace

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

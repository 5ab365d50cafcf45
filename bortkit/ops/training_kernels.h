// The training operators' loops (encoder.cc, loss.cc, optimizer.cc say what each computes).
// Included by tier.cc only, inside its anonymous namespace: compiled once per tier, each
// copy vectorised for that tier's ISA. Rows are split over OpenMP threads when there is
// enough work; results do not depend on the number of threads except for LayerNorm's
// gamma/beta gradients (per-thread partial sums).

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* mean_out, float* rstd_out, int64_t rows, int64_t cols,
                        float eps) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* yr = y + r * cols;
    const float mean = row_sum(xr, cols, 0.0f, false) / static_cast<float>(cols);
    const float sigma = sqrtf(row_sum(xr, cols, mean, true) / static_cast<float>(cols) + eps);
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mean) * gamma[j] / sigma + beta[j];
    mean_out[r] = mean;
    rstd_out[r] = 1.0f / sigma;
  }
}

void layer_norm_backward(const float* dy, const float* x, const float* gamma,
                         const float* mean, const float* rstd, float* dx, float* dgamma,
                         float* dbeta, int64_t rows, int64_t cols) {
  const bool parallel = rows * cols >= kParallelMin;
  int threads = 1;
#ifdef _OPENMP
  if (parallel) threads = omp_get_max_threads();
#endif
  // per thread: partial dgamma and dbeta sums (2 cols), then x-hat of the row (cols)
  float* work = static_cast<float*>(calloc(static_cast<size_t>(threads) * 3 * cols,
                                           sizeof(float)));
  if (work == nullptr) abort();
#pragma omp parallel num_threads(threads) if (parallel)
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    float* pg = work + static_cast<size_t>(t) * 3 * cols;
    float* pb = pg + cols;
    float* xhat = pb + cols;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      const float* dyr = dy + r * cols;
      float* dxr = dx + r * cols;
      const float m = mean[r], s = rstd[r];
      float sum_g = 0, sum_gh = 0;
#pragma omp simd reduction(+ : sum_g, sum_gh)
      for (int64_t j = 0; j < cols; ++j) {
        const float h = (xr[j] - m) * s, g = dyr[j] * gamma[j];
        xhat[j] = h;
        sum_g += g;
        sum_gh += g * h;
      }
      const float a = sum_g / cols, b = sum_gh / cols;
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) {
        dxr[j] = s * (dyr[j] * gamma[j] - a - xhat[j] * b);
        pg[j] += dyr[j] * xhat[j];
        pb[j] += dyr[j];
      }
    }
  }
  for (int64_t j = 0; j < cols; ++j) {
    float g = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
      g += work[static_cast<size_t>(t) * 3 * cols + j];
      b += work[static_cast<size_t>(t) * 3 * cols + cols + j];
    }
    dgamma[j] = g;
    dbeta[j] = b;
  }
  free(work);
}

void mask_scores(const float* s, const float* mask, float* out, int64_t rows,
                 int64_t rows_per_batch, int64_t cols, float fill) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* m = mask + (r / rows_per_batch) * cols;
    const float* sr = s + r * cols;
    float* o = out + r * cols;
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) o[j] = sr[j] + (1.0f - m[j]) * fill;
  }
}

inline int64_t label_of(float value, int64_t classes) {
  const int64_t k = static_cast<int64_t>(value);
  return k < 0 ? 0 : (k >= classes ? classes - 1 : k);
}

void softmax_nll_forward(const float* x, const float* labels, float* nll, float* lse_out,
                         int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float m = -INFINITY;
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < cols; ++j) m = xr[j] > m ? xr[j] : m;
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < cols; ++j) sum += exp_approx(xr[j] - m);
    const float lse = m + logf(sum);
    lse_out[r] = lse;
    nll[r] = lse - xr[label_of(labels[r], cols)];
  }
}

void softmax_nll_backward(const float* dnll, const float* x, const float* labels,
                          const float* lse, float* dx, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float* dxr = dx + r * cols;
    const float g = dnll[r], l = lse[r];
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dxr[j] = g * exp_approx(xr[j] - l);
    dxr[label_of(labels[r], cols)] -= g;
  }
}

void adamw(const float* grad, float scale, float* w, float* m, float* v, int64_t n, float lr,
           float wd, float b1, float b2, float eps) {
#pragma omp parallel for simd schedule(static) if (n >= 4 * kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = scale * grad[i];
    const float mi = b1 * m[i] + (1.0f - b1) * g;
    const float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    w[i] -= lr * (mi / (sqrtf(vi) + eps) + wd * w[i]);
  }
}

// Dropout's keep mask, counter-based so that the backward pass recomputes the forward's
// and the result does not depend on the number of threads: element j of block `block`
// (1,024 elements of a tensor, or one row of attention probabilities) is kept when the top
// 24 bits of mix32(key + j), key = a hash of (seed, block), are >= rate * 2^24; lowbias32
// (mix32) is a bijection with full avalanche. Kept values are scaled by 1 / (1 - rate).
struct DropoutMask {
  uint32_t seed, threshold;  // threshold 0: keep everything
  float kept;
};

inline DropoutMask dropout_mask(float rate, uint32_t seed) {
  if (!(rate > 0.0f)) return DropoutMask{seed, 0u, 1.0f};
  return DropoutMask{seed, static_cast<uint32_t>(lrintf(rate * 16777216.0f)),
                     1.0f / (1.0f - rate)};
}

static inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// factor[j] = 1 / (1 - rate) where element j of the block is kept, else 0 (j < n).
static inline void keep_factors(float* factor, const DropoutMask& m, int64_t block, int64_t n) {
  const uint32_t key = mix32(m.seed ^ mix32(static_cast<uint32_t>(block) * 0x9E3779B9u + 1u));
  const uint32_t threshold = m.threshold;  // locals: read through m, they stop vectorisation
  const float kept = m.kept;
#pragma omp simd
  for (int64_t j = 0; j < n; ++j)
    factor[j] = (mix32(key + static_cast<uint32_t>(j)) >> 8) >= threshold ? kept : 0.0f;
}

constexpr int64_t kDropoutBlock = 1024;

// y = x * factor (the forward pass on the input, the backward pass on the output gradient).
void dropout(const float* x, float* y, int64_t n, float rate, uint32_t seed) {
  const DropoutMask m = dropout_mask(rate, seed);
  if (m.threshold == 0) {  // outside training: a copy
    if (y != x) memcpy(y, x, n * sizeof(float));
    return;
  }
  const int64_t blocks = (n + kDropoutBlock - 1) / kDropoutBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t block = 0; block < blocks; ++block) {
    float factor[kDropoutBlock];
    const int64_t start = block * kDropoutBlock, count = min64(kDropoutBlock, n - start);
    keep_factors(factor, m, block, count);
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) y[start + j] = x[start + j] * factor[j];
  }
}

// sum of x[i]^2 in double (float32 sums lose about 1% over millions of entries).
double sum_squares(const float* x, int64_t n) {
  double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (n >= 4 * kParallelMin)
  for (int64_t start = 0; start < n; start += 4096) {
    float part = 0.0f;  // 4,096 squares in float, then added in double
    const int64_t end = min64(n, start + 4096);
#pragma omp simd reduction(+ : part)
    for (int64_t i = start; i < end; ++i) part += x[i] * x[i];
    total += part;
  }
  return total;
}

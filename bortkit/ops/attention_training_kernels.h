// The training self-attention's loops (attention_training.cc says what it computes).
// Included by tier.cc only, inside its anonymous namespace. Each (batch, head) pair is one
// work item; its operands are copied into per-thread buffers in the layouts small_gemm
// reads (summed axis first for the left operand, rows for the right one), padded to
// multiples of 16 with zeros. Everything is float32. Dropout's mask is training_kernels.h's,
// one block per row of probabilities.

struct TrainingAttention {
  TrainingAttentionArgs args;
  int64_t rows;   // T rounded up to 16
  int64_t depth;  // d rounded up to 16
  float scale;    // 1 / sqrt(d)
  DropoutMask dropout;  // of the probabilities: block (batch * H + head) * T + query
};

// Per-thread buffers (PaddedMemory, small_gemm.h):
//   qt, kt, vt, dct  (depth, rows): q / sqrt(d), k, v and the context gradient, transposed
//   q, k, v, dc      (rows, depth): the same by rows
//   s, ds, dst       (rows, rows): probabilities or score gradients, and ds transposed
//   block            (rows, 16): one block's dropped probabilities, keys first
//   out, dq, dk, dv  (rows, depth): products before they are scattered
//   bias, factor     (rows): the mask's additive term, a row's dropout factors
//   row              (16, 3 depth): 16 input rows staged for a transpose
struct TrainingScratch {
  float *qt, *kt, *vt, *dct, *q, *k, *v, *dc, *s, *ds, *dst, *block, *out, *dq, *dk, *dv,
      *bias, *factor, *row;
  PaddedMemory memory;
  void resize(const TrainingAttention& a) {
    const size_t plane = a.rows * a.depth, square = a.rows * a.rows;
    const size_t floats = 12 * plane + 3 * square + 16 * a.rows + 2 * a.rows + 48 * a.depth;
    float* x = static_cast<float*>(memory.get(floats * sizeof(float), a.args.T, a.args.d));
    float** planes[] = {&qt, &kt, &vt, &dct, &q, &k, &v, &dc, &out, &dq, &dk, &dv};
    for (float** p : planes) *p = x, x += plane;
    float** squares[] = {&s, &ds, &dst};
    for (float** p : squares) *p = x, x += square;
    block = x, x += 16 * a.rows;
    bias = x, x += a.rows;
    factor = x, x += a.rows;
    row = x;
  }
};

thread_local TrainingScratch training_scratch;

// Row t of item (b, h): query, key and value at row, row + d, row + 2d.
inline const float* qkv_row(const TrainingAttention& a, int64_t t, int64_t b, int64_t h) {
  const TrainingAttentionArgs& x = a.args;
  return x.qkv + ((t * x.B + b) * x.H + h) * 3 * x.d;
}

// The rows t0 .. t0 + 15 of item (b, h) are B * 3U floats apart, too far for the hardware
// prefetcher: the next block's are asked for while this one is copied.
inline void prefetch_rows(const TrainingAttention& a, int64_t t0, int64_t b, int64_t h) {
  for (int64_t t = t0; t < min64(t0 + 16, a.args.T); ++t)
    for (int64_t n = 0; n < 3 * a.args.d; n += 16) __builtin_prefetch(qkv_row(a, t, b, h) + n);
}

void attend_forward(const TrainingAttention& a, int64_t b, int64_t h, TrainingScratch& w) {
  const TrainingAttentionArgs& x = a.args;
  const int64_t T = x.T, d = x.d, R = a.rows, D = a.depth, item = b * x.H + h;
  // 16 rows at a time: q / sqrt(d) and k staged by rows (zeros past T) and transposed, v
  // copied by rows
  prefetch_rows(a, 0, b, h);
  for (int64_t t0 = 0; t0 < T; t0 += 16) {
    prefetch_rows(a, t0 + 16, b, h);
    for (int64_t r = 0; r < 16; ++r) {
      float* staged = w.row + r * 2 * d;
      if (t0 + r >= T) {
        memset(staged, 0, 2 * d * sizeof(float));
        continue;
      }
      const float* row = qkv_row(a, t0 + r, b, h);
#pragma omp simd
      for (int64_t n = 0; n < d; ++n) staged[n] = row[n] * a.scale;
      memcpy(staged + d, row + d, d * sizeof(float));
      memcpy(w.v + (t0 + r) * D, row + 2 * d, d * sizeof(float));
    }
    transpose16(w.qt + t0, R, w.row, 2 * d, d);
    transpose16(w.kt + t0, R, w.row + d, 2 * d, d);
  }
  for (int64_t j = 0; j < T; ++j) w.bias[j] = (1.0f - x.mask[b * T + j]) * x.fill;
  for (int64_t i0 = 0; i0 < T; i0 += 16) {
    const int64_t count = min64(16, T - i0);
    small_gemm(w.s, R, w.qt + i0, R, w.kt, R, 16, d, R);  // scores (16, R)
    for (int64_t r = 0; r < count; ++r) {
      float* s = w.s + r * R;
      float top = -INFINITY;
#pragma omp simd reduction(max : top)
      for (int64_t j = 0; j < T; ++j) {
        s[j] += w.bias[j];
        top = s[j] > top ? s[j] : top;
      }
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < T; ++j) {
        s[j] = exp_approx(s[j] - top);
        sum += s[j];
      }
      const float inv = 1.0f / sum;
      float* probs = x.probs + (item * T + i0 + r) * T;
#pragma omp simd
      for (int64_t j = 0; j < T; ++j) probs[j] = s[j] * inv;
      if (a.dropout.threshold > 0) {  // s: the dropped probabilities the values are weighed by
        keep_factors(w.factor, a.dropout, item * T + i0 + r, T);
#pragma omp simd
        for (int64_t j = 0; j < T; ++j) s[j] = probs[j] * w.factor[j];
      } else {
        memcpy(s, probs, T * sizeof(float));
      }
    }
    transpose16(w.block, 16, w.s, R, T);  // rows past T: zero scores of zero queries
    small_gemm(w.out, D, w.block, 16, w.v, D, 16, T, D);  // context rows (16, D)
    for (int64_t r = 0; r < count; ++r)
      memcpy(x.context + ((i0 + r) * x.B + b) * x.H * d + h * d, w.out + r * D,
             d * sizeof(float));
  }
}

void attend_backward(const TrainingAttention& a, int64_t b, int64_t h, TrainingScratch& w) {
  const TrainingAttentionArgs& x = a.args;
  const int64_t T = x.T, d = x.d, R = a.rows, D = a.depth, item = b * x.H + h;
  const int64_t U = x.H * d;
  // 16 rows at a time: q / sqrt(d), k and the context gradient copied by rows, v and the
  // context gradient staged by rows (zeros past T) and transposed
  prefetch_rows(a, 0, b, h);
  for (int64_t t0 = 0; t0 < T; t0 += 16) {
    prefetch_rows(a, t0 + 16, b, h);
    for (int64_t r = 0; r < 16; ++r) {
      const int64_t t = t0 + r;
      float* staged = w.row + r * 2 * d;
      if (t >= T) {
        memset(staged, 0, 2 * d * sizeof(float));
        continue;
      }
      const float* row = qkv_row(a, t, b, h);
      const float* dc = x.d_context + (t * x.B + b) * U + h * d;
#pragma omp simd
      for (int64_t n = 0; n < d; ++n) w.q[t * D + n] = row[n] * a.scale;
      memcpy(w.k + t * D, row + d, d * sizeof(float));
      memcpy(w.dc + t * D, dc, d * sizeof(float));
      memcpy(staged, row + 2 * d, d * sizeof(float));
      memcpy(staged + d, dc, d * sizeof(float));
    }
    transpose16(w.vt + t0, R, w.row, 2 * d, d);
    transpose16(w.dct + t0, R, w.row + d, 2 * d, d);
  }
  // s: the dropped probabilities the forward pass multiplied the values by
  const float* probs = x.probs + item * T * T;
  for (int64_t i = 0; i < T; ++i) {
    float* s = w.s + i * R;
    if (a.dropout.threshold > 0) {
      keep_factors(w.factor, a.dropout, item * T + i, T);
#pragma omp simd
      for (int64_t j = 0; j < T; ++j) s[j] = probs[i * T + j] * w.factor[j];
    } else {
      memcpy(s, probs + i * T, T * sizeof(float));
    }
  }
  small_gemm(w.dv, D, w.s, R, w.dc, D, R, T, D);    // dv (j, n) = sum_i s(i, j) dc(i, n)
  small_gemm(w.ds, R, w.dct, R, w.vt, R, R, d, R);  // ds (i, j) = dc_i . v_j
  const float* d_probs = x.d_probs + item * T * T;
  for (int64_t i = 0; i < T; ++i) {
    float* ds = w.ds + i * R;
    const float* p = probs + i * T;
    if (a.dropout.threshold > 0) {
      keep_factors(w.factor, a.dropout, item * T + i, T);
#pragma omp simd
      for (int64_t j = 0; j < T; ++j) ds[j] = ds[j] * w.factor[j] + d_probs[i * T + j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < T; ++j) ds[j] += d_probs[i * T + j];
    }
    float dot = 0.0f;  // the softmax's backward: ds = p (dp - p . dp)
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < T; ++j) dot += p[j] * ds[j];
#pragma omp simd
    for (int64_t j = 0; j < T; ++j) ds[j] = p[j] * (ds[j] - dot);
  }
  for (int64_t i0 = 0; i0 < R; i0 += 16) transpose16(w.dst + i0, R, w.ds + i0 * R, R, R);
  small_gemm(w.dk, D, w.ds, R, w.q, D, R, T, D);   // dk (j, n) = sum_i ds(i, j) q(i, n)
  small_gemm(w.dq, D, w.dst, R, w.k, D, R, T, D);  // dq (i, n) = sum_j ds(i, j) k(j, n)
  for (int64_t t = 0; t < T; ++t) {
    float* g = x.d_qkv + ((t * x.B + b) * x.H + h) * 3 * d;
#pragma omp simd
    for (int64_t n = 0; n < d; ++n) g[n] = w.dq[t * D + n] * a.scale;
    memcpy(g + d, w.dk + t * D, d * sizeof(float));
    memcpy(g + 2 * d, w.dv + t * D, d * sizeof(float));
  }
}

void attention_training(const TrainingAttentionArgs& args, bool backward) {
  TrainingAttention a{args, (args.T + 15) / 16 * 16, (args.d + 15) / 16 * 16,
                      1.0f / sqrtf(static_cast<float>(args.d)),
                      dropout_mask(args.dropout, args.seed)};
  const int64_t items = args.B * args.H;
#pragma omp parallel if (items > 1 && items * args.T * args.T * args.d >= kParallelMin)
  {
    TrainingScratch& scratch = training_scratch;
    scratch.resize(a);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      if (backward)
        attend_backward(a, item / args.H, item % args.H, scratch);
      else
        attend_forward(a, item / args.H, item % args.H, scratch);
    }
  }
}

void attention_training_forward(const TrainingAttentionArgs& args) {
  attention_training(args, false);
}

void attention_training_backward(const TrainingAttentionArgs& args) {
  attention_training(args, true);
}

// The fused self-attention's loops (attention.cc says what it computes). Included by
// tier.cc only, inside its anonymous namespace. Each (batch, head) pair is one work item;
// a block of 16 query rows goes through scores, softmax and weighted values while it is in
// L1. Both products read bf16-rounded operands and sum in float32: on AMX tiles
// (TDPBF16PS, operands stored as bf16 pairs), else as float32 FMAs on the rounded values
// stored as floats (16 independent sums of 16 columns, at this tier's vector width).

// The tile path (TDPBF16PS) measured 2.5x (d 32) and 1.25x (d 128) slower than the AVX-512
// path at T 128 (`python bench/attention.py`; bench/README.md), so the amx tier runs the
// AVX-512 path; -DBORTKIT_AMX_ATTENTION brings the tiles back, for whoever tunes them.
#if defined(__AMX_BF16__) && defined(BORTKIT_AMX_ATTENTION)
#define BORTKIT_ATTENTION_TILES 1
#endif

constexpr int64_t kBlock = 16;  // query rows per block; keys and value columns per tile
constexpr int64_t kPairs = 32;  // bf16 values along the summed axis of one tile row

#if defined(BORTKIT_ATTENTION_TILES)
typedef uint16_t Value;  // bf16 bits
inline Value to_value(float x) { return to_bf16(x); }
#else
typedef float Value;  // a float rounded to bf16
inline Value to_value(float x) { return from_bf16(to_bf16(x)); }
#endif

struct Attention {
  AttentionArgs args;
  int64_t rows;   // T rounded up to kBlock: query rows, and score columns
  int64_t keys;   // T rounded up to kPairs: keys summed over in the weighted values
  int64_t depth;  // d rounded up to kPairs
  float scale;
};

// The operands of one (batch, head) pair, zero-padded:
//   q  query t's dimension n (times 1/sqrt(d)) at query_at(t, n): the scores' left operand;
//   k  key j's dimension n at key_at(n, j): the scores' right operand (summed over n);
//   v  value j's dimension n at value_at(j, n): the weighted values' right operand;
//   p  a block's probability (row r, key j) at prob_at(r, j): the values' left operand;
//   s, o  float32 (kBlock, rows) scores and (kBlock, depth) weighted values of a block.
// AMX reads its left operands as rows (q (rows, depth), p (kBlock, keys)) and its right
// ones as VNNI pairs (k (depth / 2, keys, 2), v (keys / 2, depth, 2)); the FMA tiers read
// every operand along the summed axis first (q (depth, rows), p (keys, kBlock), k (depth,
// keys), v (keys, depth)), so that a block's 16 left values of one step are adjacent.
// One per thread, kept between calls, so that a call neither allocates nor touches fresh
// pages (plain buffers: no std::vector in a tier's unit, see kernel_math.h). The padding is
// zeroed when the shape changes; each item writes only the real values.
struct Scratch {
  Value *q = nullptr, *k = nullptr, *v = nullptr, *p = nullptr, *row = nullptr;
  float *s = nullptr, *o = nullptr, *bias = nullptr;
  PaddedMemory memory;
  void resize(const Attention& a) {
    const size_t values = a.rows * a.depth + 2 * a.depth * a.keys + kBlock * a.keys +
                          kBlock * 3 * a.depth;
    const size_t floats = kBlock * a.rows + kBlock * a.depth + a.args.T;
    const size_t head = (values * sizeof(Value) + 63) / 64 * 64;
    char* base = static_cast<char*>(memory.get(head + floats * 4, a.args.T, a.args.d));
    Value* x = reinterpret_cast<Value*>(base);
    q = x, x += a.rows * a.depth;
    k = x, x += a.depth * a.keys;
    v = x, x += a.keys * a.depth;
    p = x, x += kBlock * a.keys;
    row = x;
    float* f = reinterpret_cast<float*>(base + head);
    s = f, f += kBlock * a.rows;
    o = f, f += kBlock * a.depth;
    bias = f;
  }
};

inline int64_t query_at(const Attention& a, int64_t t, int64_t n) {
#if defined(BORTKIT_ATTENTION_TILES)
  return t * a.depth + n;
#else
  return n * a.rows + t;
#endif
}

inline int64_t prob_at(const Attention& a, int64_t r, int64_t j) {
#if defined(BORTKIT_ATTENTION_TILES)
  return r * a.keys + j;
#else
  return j * kBlock + r;
#endif
}

inline int64_t key_at(const Attention& a, int64_t n, int64_t j) {
#if defined(BORTKIT_ATTENTION_TILES)
  return ((n / 2) * a.keys + j) * 2 + n % 2;
#else
  return n * a.keys + j;
#endif
}

inline int64_t value_at(const Attention& a, int64_t j, int64_t n) {
#if defined(BORTKIT_ATTENTION_TILES)
  return ((j / 2) * a.depth + n) * 2 + j % 2;
#else
  return j * a.depth + n;
#endif
}

void gather(const Attention& a, int64_t b, int64_t h, Scratch& w) {
  const AttentionArgs& x = a.args;
  const int64_t stride = x.B * x.H * 3 * x.d;
  const float* base = x.qkv + (b * x.H + h) * 3 * x.d;
  // 16 rows at a time: rounded into w.row (16, 3d), then stored in the operands' layouts
  // one dimension at a time, so that the transposed stores go to adjacent addresses
  // The rows are B * 3U floats apart: no hardware prefetcher follows them, and waiting for
  // each line in turn took most of the operator's time (perf), so the next 16 are asked for
  // while these are converted.
  for (int64_t r = 0; r < min64(kBlock, x.T); ++r)
    for (int64_t n = 0; n < 3 * x.d; n += 16) __builtin_prefetch(base + r * stride + n);
  for (int64_t t0 = 0; t0 < x.T; t0 += kBlock) {
    const int64_t count = min64(kBlock, x.T - t0);
    for (int64_t r = t0 + kBlock; r < min64(t0 + 2 * kBlock, x.T); ++r)
      for (int64_t n = 0; n < 3 * x.d; n += 16) __builtin_prefetch(base + r * stride + n);
    for (int64_t r = 0; r < count; ++r) {
      const float* row = base + (t0 + r) * stride;
      Value* rounded = w.row + r * 3 * x.d;
#pragma omp simd
      for (int64_t n = 0; n < x.d; ++n) rounded[n] = to_value(row[n] * a.scale);
#pragma omp simd
      for (int64_t n = x.d; n < 3 * x.d; ++n) rounded[n] = to_value(row[n]);
    }
    // v: a row a key, the input's layout (copied), or the tiles' pairs of keys; q and k
    // transposed, a column of the 16 rows at a time (one gather each at AVX-512: the scalar
    // copies were a third of the operator's own time, perf).
    for (int64_t r = 0; r < count; ++r) {
      const Value* rounded = w.row + r * 3 * x.d + 2 * x.d;
#if defined(BORTKIT_ATTENTION_TILES)
      for (int64_t n = 0; n < x.d; ++n) w.v[value_at(a, t0 + r, n)] = rounded[n];
#else
      memcpy(w.v + value_at(a, t0 + r, 0), rounded, x.d * sizeof(Value));
#endif
    }
#if !defined(BORTKIT_ATTENTION_TILES)
    if (count == kBlock) {
      transpose16(w.q + query_at(a, t0, 0), a.rows, w.row, 3 * x.d, x.d);
      transpose16(w.k + key_at(a, 0, t0), a.keys, w.row + x.d, 3 * x.d, x.d);
      continue;
    }
#endif
    for (int64_t n = 0; n < x.d; ++n)
      for (int64_t r = 0; r < count; ++r) {
        const Value* rounded = w.row + r * 3 * x.d;
        w.q[query_at(a, t0 + r, n)] = rounded[n];
        w.k[key_at(a, n, t0 + r)] = rounded[x.d + n];
      }
  }
}

// c (16, N) = a (16, K) . b (K, N), K a multiple of 32, N of 16; c (row stride ldc floats)
// overwritten. a: AMX, 16 rows lda values apart; the FMA tiers, K steps of 16 adjacent
// values lda apart. b: K's stride ldb in b's layout (key_at / value_at).
void products(float* c, int64_t ldc, const Value* a, int64_t lda, const Value* b, int64_t ldb,
              int64_t K, int64_t N) {
#if defined(BORTKIT_ATTENTION_TILES)
  // tiles 0-1 accumulate, 2 holds rows of the left operand, 3-4 pairs of the right one
  for (int64_t n = 0; n < N; n += 2 * kBlock) {
    const bool two = n + kBlock < N;
    const Value* bn = b + n * 2;
    _tile_zero(0);
    _tile_zero(1);
    for (int64_t k = 0; k < K; k += kPairs) {
      _tile_loadd(2, a + k, lda * 2);
      _tile_loadd(3, bn + (k / 2) * ldb * 2, ldb * 4);
      _tile_dpbf16ps(0, 2, 3);
      if (two) {
        _tile_loadd(4, bn + (k / 2) * ldb * 2 + kBlock * 2, ldb * 4);
        _tile_dpbf16ps(1, 2, 4);
      }
    }
    _tile_stored(0, c + n, ldc * 4);
    if (two) _tile_stored(1, c + n + kBlock, ldc * 4);
  }
#else
  small_gemm(c, ldc, a, lda, b, ldb, kBlock, K, N);
#endif
}

#if defined(BORTKIT_ATTENTION_TILES)
// One row of scores -> probabilities exp(s - max) rounded to bf16 (zero past T), and the
// sum of the rounded values (what is multiplied), so that each row sums to 1.
float softmax_row(float* s, const float* bias, const Attention& a, Value* p, int64_t r) {
  const int64_t T = a.args.T;
#pragma omp simd
  for (int64_t j = 0; j < T; ++j) s[j] += bias[j];
  float top = -INFINITY;
#pragma omp simd reduction(max : top)
  for (int64_t j = 0; j < T; ++j) top = s[j] > top ? s[j] : top;
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < T; ++j) {
    const float rounded = from_bf16(to_bf16(exp_approx(s[j] - top)));
    p[prob_at(a, r, j)] = to_value(rounded);
    sum += rounded;
  }
  return sum;
}
#else
// A block's scores, transposed (st[j * kBlock + r]: key j, query r), -> probabilities
// exp(s - max) rounded to bf16 at prob_at(r, j) = the same place (zero past T, left as
// padded), and each query's sum of the rounded values (what is multiplied), so that each
// row sums to 1. One vector holds the block's 16 queries of one key: the maximum, the sum
// and the stores run across queries (row by row, the stores to prob_at's columns were
// scalar and took most of the operator's time at MiniLM's head size, perf).
void softmax_block(float* st, const float* bias, const Attention& a, Value* p, float* sum) {
  const int64_t T = a.args.T;
  float top[kBlock];
  for (int64_t r = 0; r < kBlock; ++r) top[r] = -INFINITY, sum[r] = 0.0f;
  for (int64_t j = 0; j < T; ++j) {
    float* s = st + j * kBlock;
#pragma omp simd
    for (int64_t r = 0; r < kBlock; ++r) {
      s[r] += bias[j];
      top[r] = s[r] > top[r] ? s[r] : top[r];
    }
  }
  for (int64_t j = 0; j < T; ++j) {
    const float* s = st + j * kBlock;
    Value* pj = p + prob_at(a, 0, j);
#pragma omp simd
    for (int64_t r = 0; r < kBlock; ++r) {
      const float rounded = from_bf16(to_bf16(exp_approx(s[r] - top[r])));
      pj[r] = to_value(rounded);
      sum[r] += rounded;
    }
  }
}
#endif

void attend(const Attention& a, int64_t b, int64_t h, Scratch& w) {
  const AttentionArgs& x = a.args;
  const int64_t U = x.H * x.d;
  const float* mask = x.mask + b * x.T;
  for (int64_t j = 0; j < x.T; ++j) w.bias[j] = (1.0f - mask[j]) * x.fill;
  gather(a, b, h, w);
#if defined(BORTKIT_ATTENTION_TILES)
  const int64_t p_step = a.keys;  // rows apart
#else
  const int64_t p_step = kBlock;  // steps of the summed axis apart
#endif
  for (int64_t i0 = 0; i0 < x.T; i0 += kBlock) {
    float sum[kBlock];
    const int64_t count = min64(kBlock, x.T - i0);
#if defined(BORTKIT_ATTENTION_TILES)
    products(w.s, a.rows, w.q + query_at(a, i0, 0), a.depth, w.k, a.keys, a.depth, a.rows);
    for (int64_t r = 0; r < count; ++r)
      sum[r] = softmax_row(w.s + r * a.rows, w.bias, a, w.p, r);
    for (int64_t r = count; r < kBlock; ++r)  // the last block's rows past T
      for (int64_t j = 0; j < x.T; ++j) w.p[prob_at(a, r, j)] = 0;
#else
    // (rows, 16) = k (rows keys, depth) . q (depth, 16 queries): the scores transposed; a
    // last block's queries past T are zero rows of q, their outputs are not written
    small_gemm(w.s, kBlock, w.k, a.keys, w.q + query_at(a, i0, 0), a.rows, a.rows, a.depth,
               kBlock);
    softmax_block(w.s, w.bias, a, w.p, sum);
#endif
    products(w.o, a.depth, w.p, p_step, w.v, a.depth, a.keys,
             (x.d + kBlock - 1) / kBlock * kBlock);
    for (int64_t r = 0; r < count; ++r) {
      float* out = x.out + ((i0 + r) * x.B + b) * U + h * x.d;
      const float inv = 1.0f / sum[r];
      const float* o = w.o + r * a.depth;
#pragma omp simd
      for (int64_t n = 0; n < x.d; ++n) out[n] = o[n] * inv;
    }
  }
}

thread_local Scratch attention_scratch;

void self_attention(const AttentionArgs& args) {
  Attention a{args, 0, 0, 0, 0.0f};
  a.rows = (args.T + kBlock - 1) / kBlock * kBlock;
  a.keys = (args.T + kPairs - 1) / kPairs * kPairs;
  a.depth = (args.d + kPairs - 1) / kPairs * kPairs;
  a.scale = 1.0f / sqrtf(static_cast<float>(args.d));
  const int64_t items = args.B * args.H;
#pragma omp parallel if (items > 1 && items * args.T * args.T * args.d >= kParallelMin)
  {
    Scratch& scratch = attention_scratch;
    scratch.resize(a);
#if defined(BORTKIT_ATTENTION_TILES)
    configure_tiles(5);
#endif
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) attend(a, item / args.H, item % args.H, scratch);
#if defined(BORTKIT_ATTENTION_TILES)
    _tile_release();
#endif
  }
}

// The fused self-attention's loops (attention.cc says what it computes). Included by
// tier.cc only, inside its anonymous namespace. Each (batch, head) pair is one work item;
// a block of 16 query rows goes through scores, softmax and weighted values while it is in
// L1. The two products read bf16 operands: on AMX tiles (TDPBF16PS), else as float32 FMAs
// on the decoded values (vectorised over 16 columns at this tier's width).

constexpr int64_t kBlock = 16;  // query rows per block; keys and value columns per tile
constexpr int64_t kPairs = 32;  // bf16 values along the summed axis of one tile row

struct Attention {
  AttentionArgs args;
  int64_t rows;   // T rounded up to kBlock: query rows, and score columns
  int64_t keys;   // T rounded up to kPairs: keys summed over in the weighted values
  int64_t depth;  // d rounded up to kPairs
  float scale;
};

// The bf16 operands of one (batch, head) pair in AMX's layouts, zero-padded:
//   q  (rows, depth)        row-major: tile rows of the scores' left operand;
//   k  (depth / 2, keys, 2) k[c][j] = key j's dimensions 2c, 2c + 1 (the VNNI pairs of the
//                           scores' right operand, q . k summed over the dimensions);
//   v  (keys / 2, depth, 2) v[c][n] = dimension n of keys 2c, 2c + 1 (the right operand of
//                           the weighted values, summed over the keys);
//   p  (kBlock, keys)       a block's probabilities, the left operand of the values;
//   s, o  float32 (kBlock, rows) scores and (kBlock, depth) weighted values of a block;
//   b  float32 (2 * max(depth, keys) / 2 * kBlock) a column block of the right operand,
//      decoded (tiers without AMX).
// One per thread, kept between calls, so that a call neither allocates nor touches fresh
// pages (plain buffers: no std::vector in a tier's unit, see math.h).
struct Scratch {
  uint16_t *q = nullptr, *k = nullptr, *v = nullptr, *p = nullptr, *row = nullptr;
  float *s = nullptr, *o = nullptr, *bias = nullptr, *b = nullptr;
  void* memory = nullptr;
  size_t capacity = 0;
  void resize(const Attention& a) {  // every buffer is written before it is read
    const size_t halves = a.rows * a.depth + 2 * a.depth * a.keys + kBlock * a.keys +
                          3 * a.depth;
    const size_t floats = kBlock * a.rows + kBlock * a.depth + a.args.T +
                          max64(a.depth, a.keys) * kBlock;
    const size_t bytes = (halves * 2 + 63) / 64 * 64 + floats * 4;
    if (bytes > capacity) {
      free(memory);
      memory = aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (memory == nullptr) abort();
      capacity = bytes;
    }
    uint16_t* h = static_cast<uint16_t*>(memory);
    q = h, h += a.rows * a.depth;
    k = h, h += a.depth * a.keys;
    v = h, h += a.keys * a.depth;
    p = h, h += kBlock * a.keys;
    row = h;
    float* f = reinterpret_cast<float*>(static_cast<char*>(memory) + (halves * 2 + 63) / 64 * 64);
    s = f, f += kBlock * a.rows;
    o = f, f += kBlock * a.depth;
    bias = f, f += a.args.T;
    b = f;
  }
};

// Rows of n floats -> bf16 (times scale), zero from n to padded.
void convert_row(const float* x, int64_t n, int64_t padded, float scale, uint16_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = to_bf16(x[i] * scale);
  for (int64_t i = n; i < padded; ++i) out[i] = 0;
}

void gather(const Attention& a, int64_t b, int64_t h, Scratch& w) {
  const AttentionArgs& x = a.args;
  const int64_t stride = x.B * x.H * 3 * x.d, half = a.depth / 2;
  const float* base = x.qkv + (b * x.H + h) * 3 * x.d;
  uint16_t* key = w.row;                     // (depth,)
  uint16_t* values = key + a.depth;          // (2, depth): two consecutive values
  uint32_t* k = reinterpret_cast<uint32_t*>(w.k);  // (depth / 2, keys) pairs
  uint32_t* v = reinterpret_cast<uint32_t*>(w.v);  // (keys / 2, depth) pairs
  for (int64_t t = 0; t < x.T; ++t) {
    const float* query = base + t * stride;
    if (t + 4 < x.T)  // rows are B * 3U floats apart: the prefetchers do not see them
      for (int64_t n = 0; n < 3 * x.d; n += 16) __builtin_prefetch(query + 4 * stride + n);
    convert_row(query, x.d, a.depth, a.scale, w.q + t * a.depth);
    convert_row(query + x.d, x.d, a.depth, 1.0f, key);
    const uint32_t* pairs = reinterpret_cast<const uint32_t*>(key);
    for (int64_t c = 0; c < half; ++c) k[c * a.keys + t] = pairs[c];
    convert_row(query + 2 * x.d, x.d, a.depth, 1.0f, values + (t % 2) * a.depth);
    if (t % 2 == 1 || t + 1 == x.T) {
      if (t % 2 == 0)  // odd T: the last pair's second key is zero
        for (int64_t n = 0; n < a.depth; ++n) values[a.depth + n] = 0;
      uint32_t* out = v + (t / 2) * a.depth;
#pragma omp simd
      for (int64_t n = 0; n < a.depth; ++n)
        out[n] = values[n] | static_cast<uint32_t>(values[a.depth + n]) << 16;
    }
  }
  for (int64_t i = x.T * a.depth; i < a.rows * a.depth; ++i) w.q[i] = 0;
  for (int64_t c = 0; c < half; ++c)
    for (int64_t t = x.T; t < a.keys; ++t) k[c * a.keys + t] = 0;
  for (int64_t i = (x.T + 1) / 2 * a.depth; i < a.keys / 2 * a.depth; ++i) v[i] = 0;
}

// c (16, N) = a (16, K) bf16 (row stride lda values) . b, the VNNI pairs (K / 2, N, 2)
// (stride ldb pairs), K a multiple of 32, N of 16; c (row stride ldc floats) overwritten.
// `decoded` holds K * 16 floats (tiers without AMX).
void products(float* c, int64_t ldc, const uint16_t* a, int64_t lda, const uint16_t* b,
              int64_t ldb, int64_t K, int64_t N, float* decoded) {
#if defined(__AMX_BF16__)
  (void)decoded;
  // tiles 0-1 accumulate, 2 holds rows of the left operand, 3-4 pairs of the right one
  for (int64_t n = 0; n < N; n += 2 * kBlock) {
    const bool two = n + kBlock < N;
    const uint16_t* bn = b + n * 2;
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
  for (int64_t n = 0; n < N; n += kBlock) {
    // decoded[k][j] = b's value k of column n + j, as float
    for (int64_t k = 0; k < K; k += 2) {
      const uint16_t* pair = b + ((k / 2) * ldb + n) * 2;
#pragma omp simd
      for (int64_t j = 0; j < kBlock; ++j) {
        decoded[k * kBlock + j] = from_bf16(pair[2 * j]);
        decoded[(k + 1) * kBlock + j] = from_bf16(pair[2 * j + 1]);
      }
    }
    for (int64_t m = 0; m < kBlock; ++m) {
      float sum[kBlock] = {0};
      const uint16_t* am = a + m * lda;
      for (int64_t k = 0; k < K; ++k) {
        const float x = from_bf16(am[k]);
        const float* row = decoded + k * kBlock;
#pragma omp simd
        for (int64_t j = 0; j < kBlock; ++j) sum[j] += x * row[j];
      }
      for (int64_t j = 0; j < kBlock; ++j) c[m * ldc + n + j] = sum[j];
    }
  }
#endif
}

// One row of scores -> bf16 probabilities exp(s - max) (zero past T) and their sum.
float softmax_row(float* s, const float* bias, const Attention& a, uint16_t* p) {
  const int64_t T = a.args.T;
#pragma omp simd
  for (int64_t j = 0; j < T; ++j) s[j] += bias[j];
  float top = -INFINITY;
#pragma omp simd reduction(max : top)
  for (int64_t j = 0; j < T; ++j) top = s[j] > top ? s[j] : top;
#pragma omp simd
  for (int64_t j = 0; j < T; ++j) p[j] = to_bf16(exp_approx(s[j] - top));
  float sum = 0.0f;  // of what is multiplied, so that each row sums to 1
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < T; ++j) sum += from_bf16(p[j]);
  for (int64_t j = T; j < a.keys; ++j) p[j] = 0;
  return sum;
}

void attend(const Attention& a, int64_t b, int64_t h, Scratch& w) {
  const AttentionArgs& x = a.args;
  const int64_t U = x.H * x.d;
  const float* mask = x.mask + b * x.T;
  for (int64_t j = 0; j < x.T; ++j) w.bias[j] = (1.0f - mask[j]) * x.fill;
  gather(a, b, h, w);
  for (int64_t i0 = 0; i0 < x.T; i0 += kBlock) {
    products(w.s, a.rows, w.q + i0 * a.depth, a.depth, w.k, a.keys, a.depth, a.rows, w.b);
    float sum[kBlock];
    const int64_t count = min64(kBlock, x.T - i0);
    for (int64_t r = 0; r < count; ++r)
      sum[r] = softmax_row(w.s + r * a.rows, w.bias, a, w.p + r * a.keys);
    for (int64_t i = count * a.keys; i < kBlock * a.keys; ++i) w.p[i] = 0;
    products(w.o, a.depth, w.p, a.keys, w.v, a.depth, a.keys,
             (x.d + kBlock - 1) / kBlock * kBlock, w.b);
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
#if defined(__AMX_BF16__)
    configure_tiles(5);
#endif
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) attend(a, item / args.H, item % args.H, scratch);
#if defined(__AMX_BF16__)
    _tile_release();
#endif
  }
}

// The attention's small float32 products (a few hundred rows, a summed axis of 32-512),
// shared by the inference and the training attention (attention_kernels.h,
// attention_training_kernels.h). Included by tier.cc only, inside its anonymous namespace.
// Hand-written: at these sizes MXNet 1.9.1's batched products (interleaved_matmul_selfatt_*)
// spend more on calls and layout than on arithmetic (bench/pretrain.py --profile).
//
// One thread's buffers for the attention's operands, kept between calls (no allocation and
// no fresh pages per call). The padding is zeroed when the shape (T, d) changes, and each
// work item writes only the real values, so the padding stays zero.
struct PaddedMemory {
  void* memory = nullptr;
  size_t capacity = 0;
  int64_t shape[2] = {-1, -1};  // (T, d) the padding was zeroed for
  void* get(size_t bytes, int64_t T, int64_t d) {
    if (bytes > capacity) {
      free(memory);
      memory = aligned_alloc(64, (bytes + 63) / 64 * 64);
      if (memory == nullptr) abort();
      capacity = bytes;
      shape[0] = -1;
    }
    if (shape[0] != T || shape[1] != d) {
      memset(memory, 0, bytes);
      shape[0] = T;
      shape[1] = d;
    }
    return memory;
  }
};

// dst[n * ldd + r] = src[r * lds + n] for r < 16, n < cols: 16 rows of src become 16
// adjacent values of each row of dst (one gather per row at AVX-512), so that the
// transposed stores are contiguous. 16 * lds must fit in an int32.
void transpose16(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t cols) {
#if defined(__AVX512F__)
  const __m512i rows =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(static_cast<int32_t>(lds)));
  for (int64_t n = 0; n < cols; ++n)
    _mm512_storeu_ps(dst + n * ldd, _mm512_i32gather_ps(rows, src + n, 4));
#else
  for (int64_t n = 0; n < cols; ++n)
    for (int64_t r = 0; r < 16; ++r) dst[n * ldd + r] = src[r * lds + n];
#endif
}

// c (M, N) = a (M, K) . b (K, N); a is read along its summed axis first (a(m, k) at
// a[k * lda + m], M a multiple of 16), b by rows (b(k, n) at b[k * ldb + n], N a multiple of
// 16); c (rows ldc apart) is overwritten. At each step of k, one row of b is loaded and the
// values of a are broadcast: AVX-512 blocks of 16 x 16 (16 accumulators), AVX2 4 x 16 (8).
void small_gemm(float* c, int64_t ldc, const float* a, int64_t lda, const float* b,
                int64_t ldb, int64_t M, int64_t K, int64_t N) {
  for (int64_t m0 = 0; m0 < M; m0 += 16) {
    const float* am = a + m0;
    float* cm = c + m0 * ldc;
#if defined(__AVX512F__)
    for (int64_t n = 0; n < N; n += 16) {
      __m512 acc[16];
      for (int m = 0; m < 16; ++m) acc[m] = _mm512_setzero_ps();
      for (int64_t k = 0; k < K; ++k) {
        const __m512 row = _mm512_loadu_ps(b + k * ldb + n);
#pragma GCC unroll 16
        for (int m = 0; m < 16; ++m)
          acc[m] = _mm512_fmadd_ps(_mm512_set1_ps(am[k * lda + m]), row, acc[m]);
      }
      for (int m = 0; m < 16; ++m) _mm512_storeu_ps(cm + m * ldc + n, acc[m]);
    }
#elif defined(__AVX2__)
    for (int64_t n = 0; n < N; n += 16)
      for (int m0 = 0; m0 < 16; m0 += 4) {
        __m256 lo[4], hi[4];
        for (int i = 0; i < 4; ++i) lo[i] = hi[i] = _mm256_setzero_ps();
        for (int64_t k = 0; k < K; ++k) {
          const __m256 left = _mm256_loadu_ps(b + k * ldb + n);
          const __m256 right = _mm256_loadu_ps(b + k * ldb + n + 8);
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            const __m256 x = _mm256_broadcast_ss(am + k * lda + m0 + i);
            lo[i] = _mm256_fmadd_ps(x, left, lo[i]);
            hi[i] = _mm256_fmadd_ps(x, right, hi[i]);
          }
        }
        for (int i = 0; i < 4; ++i) {
          _mm256_storeu_ps(cm + (m0 + i) * ldc + n, lo[i]);
          _mm256_storeu_ps(cm + (m0 + i) * ldc + n + 8, hi[i]);
        }
      }
#else
    for (int m = 0; m < 16; ++m)
      for (int64_t n = 0; n < N; n += 16) {
        float sum[16] = {0};
        for (int64_t k = 0; k < K; ++k)
          for (int j = 0; j < 16; ++j) sum[j] += am[k * lda + m] * b[k * ldb + n + j];
        for (int j = 0; j < 16; ++j) cm[m * ldc + n + j] = sum[j];
      }
#endif
  }
}

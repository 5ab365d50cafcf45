// The int8 multiply-add peak of one core, per ISA tier: independent accumulator chains of
// the instruction sequence each tier's int8 products are made of, in registers only, so that
// nothing but the arithmetic units limits it. Hand-written because no library reports the
// core's own int8 ceiling; bench/inference.py --roofline compiles it with g++ and calls it
// through ctypes. Each function returns a checksum (so the loop is not removed) and does
// `iterations` x MACS_PER_ITERATION multiply-adds.
#include <immintrin.h>
#include <cstdint>

extern "C" {

// AVX-512 VNNI: VPDPBUSD, 64 u8 x s8 multiply-adds into 16 s32 lanes per instruction.
__attribute__((target("avx512f,avx512bw,avx512vnni")))
int64_t peak_avx512(int64_t iterations, const int8_t* a, const int8_t* b) {
  __m512i x = _mm512_loadu_si512(a), y = _mm512_loadu_si512(b);
  __m512i acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = _mm512_setzero_si512();
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = _mm512_dpbusd_epi32(acc[j], x, y);
    __asm__ volatile("" : "+v"(x));  // x may change: no hoisting out of the loop
    // (one x serves every chain: each VPDPBUSD adds into its own accumulator, so none
    // can be shared)
  }
  __m512i sum = acc[0];
  for (int j = 1; j < 12; ++j) sum = _mm512_add_epi32(sum, acc[j]);
  return _mm512_reduce_add_epi32(sum);
}
int64_t macs_avx512() { return 12 * 64; }

// AVX2: VPMADDUBSW (32 u8 x s8 products summed in pairs to s16) + VPMADDWD by ones (to s32)
// + VPADDD, the sequence of bortkit's, fbgemm's and MLAS's AVX2 int8 kernels.
__attribute__((target("avx2,fma")))
int64_t peak_avx2(int64_t iterations, const int8_t* a, const int8_t* b) {
  // 6 chains of 6 different products (with one input, the compiler computes the products
  // once for every chain and times only the additions), as named variables that fit the 16
  // registers with their temporaries: an array, or more chains, would spill to the stack
  // and time store-to-load forwarding instead
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a));
  __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 4));
  __m256i x2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + 8));
  __m256i y0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
  __m256i y1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 12));
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
  for (int64_t i = 0; i < iterations; ++i) {
#define STEP(c, x, y) c = _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), ones));
    STEP(c0, x0, y0) STEP(c1, x1, y0) STEP(c2, x2, y0)
    STEP(c3, x0, y1) STEP(c4, x1, y1) STEP(c5, x2, y1)
#undef STEP
    __asm__ volatile("" : "+x"(x0), "+x"(x1), "+x"(x2), "+x"(y0), "+x"(y1));  // no hoisting
  }
  const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), c2),
                                       _mm256_add_epi32(_mm256_add_epi32(c3, c4), c5));
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
  int64_t total = 0;
  for (int j = 0; j < 8; ++j) total += lanes[j];
  return total;
}
int64_t macs_avx2() { return 6 * 32; }

}  // extern "C"

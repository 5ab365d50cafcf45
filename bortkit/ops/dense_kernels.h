// The int8 dense layer's loops (int8_dense.cc says what it computes; kernels.h the layouts).
// Included by tier.cc only, inside its anonymous namespace; the product of a 32 x 32 block
// is this tier's: AMX tiles (TDPBUSD), AVX-512 VNNI (VPDPBUSD), AVX2 (VPMADDUBSW then
// VPMADDWD), or a scalar loop, all on u8 inputs (q + kZero) and s8 weights.

constexpr int64_t kTileRows = 16, kTileBytes = 64, kTile = kTileRows * kTileBytes;

// 8-bit inputs on every tier, q in [-127, 127] stored as u8 q + kZero (TDPBUSD, VPDPBUSD
// and VPMADDUBSW multiply u8 by s8), int32 sums throughout.
constexpr int32_t kLevels = 127;
constexpr int32_t kZero = kLevels + 1;

// The weight levels this tier is fastest on (pack_weight's default, DenseArgs::
// weight_levels). AVX2's VPMADDUBSW sums two u8 x s8 products in a saturating int16, exact
// for |w| <= 63 (2 * 255 * 63 < 2^15; oneDNN's way on AVX2); wider weights take a slower
// exact loop. 7-bit weights, not 7-bit inputs (fbgemm's and MLAS's way): those kept 98.85 %
// of a fine-tuned MiniLM's fp32 SST-2 predictions, under the 99 % goal (bench/README.md).
// The other tiers sum in int32 and take any s8 weight.
#if defined(__AVX2__) && !defined(__AVX512VNNI__)
constexpr int32_t kWeightLevels = 63;
#else
constexpr int32_t kWeightLevels = 127;
#endif

#if defined(__AVX512VNNI__) && !defined(__AMX_INT8__)
constexpr int64_t kBlockTiles = 4;  // 64 columns: each broadcast row feeds 4 products
#else
constexpr int64_t kBlockTiles = 2;  // 32 columns
#endif
constexpr int64_t kBlockCols = 16 * kBlockTiles;  // the columns of one block product

// One row of x (K,) -> q + kZero (one byte) at dst (64 bytes, then the next tile's row
// kTile bytes further), zeros from K up to KB * 64; returns the row scale max|x| / kLevels.
float quantize_row(const float* xr, int64_t K, int64_t KB, uint8_t* dst) {
  float amax = 0.0f;
  int64_t k = 0;
#if defined(__AVX512F__)
  // Four running maxima: with one, each step waited on the last (a tenth of the model's
  // int8 time went to this loop, perf). A NaN input is skipped, as by the scalar loop:
  // MAXPS returns its second operand, the running maximum, when either is NaN.
  const __m512 magnitude = _mm512_castsi512_ps(_mm512_set1_epi32(0x7FFFFFFF));
  __m512 m[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                 _mm512_setzero_ps()};
  for (; k + 64 <= K; k += 64)
    for (int i = 0; i < 4; ++i)
      m[i] = _mm512_max_ps(_mm512_and_ps(_mm512_loadu_ps(xr + k + 16 * i), magnitude), m[i]);
  amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m[0], m[1]),
                                            _mm512_max_ps(m[2], m[3])));
#elif defined(__AVX2__)
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  __m256 m[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                 _mm256_setzero_ps()};
  for (; k + 32 <= K; k += 32)
    for (int i = 0; i < 4; ++i)
      m[i] = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xr + k + 8 * i), magnitude), m[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3])));
  for (int i = 0; i < 8; ++i) amax = lanes[i] > amax ? lanes[i] : amax;
#endif
  for (; k < K; ++k) amax = fabsf(xr[k]) > amax ? fabsf(xr[k]) : amax;
  const float levels = static_cast<float>(kLevels);
  const float inv = amax > 0.0f ? levels / amax : 0.0f;
  for (int64_t kb = 0; kb < KB; ++kb) {
    uint8_t* d = dst + kb * kTile;
    const float* xk = xr + kb * kTileBytes;
    const int64_t n = min64(kTileBytes, K - kb * kTileBytes);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      float q = nearbyintf(xk[j] * inv);  // to nearest even, as rint
      q = q > levels ? levels : (q < -levels ? -levels : q);
      d[j] = static_cast<uint8_t>(static_cast<int32_t>(q) + kZero);
    }
    for (int64_t j = n; j < kTileBytes; ++j) d[j] = 0;
  }
  return amax / levels;
}

// Rows [0, rows) of x into a (Mp/16, KB, 16, 64) u8 buffer, Mp = rows rounded up to 32;
// rows past `rows` are zeros with scale 0.
void quantize_rows(const DenseArgs& p, uint8_t* a, float* row_scale) {
  const int64_t Mp = (p.rows + 31) / 32 * 32;
#pragma omp parallel for schedule(static) if (p.rows * p.K >= kParallelMin)
  for (int64_t r = 0; r < Mp; ++r) {
    uint8_t* base = a + (r / kTileRows) * p.KB * kTile + (r % kTileRows) * kTileBytes;
    if (r >= p.rows) {
      for (int64_t kb = 0; kb < p.KB; ++kb) memset(base + kb * kTile, 0, kTileBytes);
      row_scale[r] = 0.0f;
      continue;
    }
    row_scale[r] = quantize_row(p.x + r * p.K, p.K, p.KB, base);
  }
}

// Row r of the quantized block: its 64 bytes of tile kb are at row_of(...) + kb * kTile.
inline const uint8_t* row_of(const uint8_t* a, int64_t KB, int64_t r) {
  return a + (r / kTileRows) * KB * kTile + (r % kTileRows) * kTileBytes;
}

// float(acc) * (s_r * scale_n) + bias_n for columns [n0, n0 + count) of a row, through
// GELU when asked.
inline void dequantize(const DenseArgs& p, const int32_t* acc, int64_t n0, int64_t count,
                       float row_scale, float* out) {
  const float* scale = p.scale + n0;
  const float* bias = p.bias + n0;
#pragma omp simd
  for (int64_t j = 0; j < count; ++j)
    out[j] = static_cast<float>(acc[j]) * (row_scale * scale[j]) + bias[j];
  if (p.gelu) {
#pragma omp simd
    for (int64_t j = 0; j < count; ++j) out[j] = gelu(out[j]);
  }
}

// A finished block's sums waiting for their epilogue (dequantize, GELU) into the output.
// The AMX tier runs it a few rows at a time between the next block's tile products, so
// that the vector units work while the tiles do (run in order, the tiles sat idle for the
// epilogue: a quarter of the layer's time, perf); the other tiers run it whole.
struct Pending {
  const int32_t* acc = nullptr;  // (32, kBlockCols)
  int64_t mb = 0, n0 = 0, count = 0, done = 0;  // rows [0, done) are written
  // Rows [done, until) of the block into the output.
  void run(const DenseArgs& p, const float* row_scale, int64_t until) {
    if (acc == nullptr) return;
    for (; done < until && done < 32 && mb * 32 + done < p.rows; ++done) {
      const int64_t row = mb * 32 + done;
      dequantize(p, acc + done * kBlockCols, n0, count, row_scale[row], p.out + row * p.N + n0);
    }
  }
};

#if defined(__AVX2__) && !defined(__AVX512VNNI__)
// Rows 32 mb .. 32 mb + 31 by the 16 columns of one weight tile b into out (rows
// kBlockCols apart), 4 rows a pass: a weight row of a tile (64 bytes) is 4 k values of 16
// columns, two registers, against which a row's 4 bytes are broadcast. VPMADDUBSW sums
// pairs of products to int16, VPMADDWD with ones the pairs of pairs to int32. On u8
// q + kZero (sums (q + kZero) . w) when |w| <= kWeightLevels; kSigned, for wider weights,
// on |q| and sign(q) w (sums q . w; 2 * 127 * 127 < 2^15 keeps every pair exact).
template <bool kSigned>
void avx2_tile(const uint8_t* a, int64_t KB, int64_t mb, const int8_t* b, int32_t* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));  // u8 q + 128 -> s8 q
  for (int64_t g = 0; g < 8; ++g) {
    __m256i lo[4], hi[4];
    for (int i = 0; i < 4; ++i) lo[i] = hi[i] = _mm256_setzero_si256();
    const uint8_t* rows = row_of(a, KB, mb * 32 + g * 4);  // the 4 rows are kTileBytes apart
    for (int64_t kb = 0; kb < KB; ++kb)
      for (int64_t c = 0; c < 16; ++c) {
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
            b + kb * kTile + c * 64));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
            b + kb * kTile + c * 64 + 32));
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
          int32_t quad;
          memcpy(&quad, rows + kb * kTile + i * kTileBytes + c * 4, 4);
          const __m256i u = _mm256_set1_epi32(quad);
          __m256i x = u, y0 = w0, y1 = w1;
          if (kSigned) {
            const __m256i q = _mm256_xor_si256(u, flip);
            x = _mm256_abs_epi8(q);
            y0 = _mm256_sign_epi8(w0, q);
            y1 = _mm256_sign_epi8(w1, q);
          }
          lo[i] = _mm256_add_epi32(lo[i], _mm256_madd_epi16(_mm256_maddubs_epi16(x, y0), ones));
          hi[i] = _mm256_add_epi32(hi[i], _mm256_madd_epi16(_mm256_maddubs_epi16(x, y1), ones));
        }
      }
    for (int i = 0; i < 4; ++i) {
      int32_t* o = out + (g * 4 + i) * kBlockCols;
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), lo[i]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), hi[i]);
    }
  }
}
#endif

// acc (32, kBlockCols) int32 = q . W for rows 32 mb .. 32 mb + 31 and the columns of tiles
// nt .. nt + kBlockTiles - 1 (tiles past col_tiles are skipped, their sums undefined).
// The products sum (q + kZero) . w (AVX2's signed loop: q . w); the zero's colsum is taken
// off when they are stored.
// An earlier block's epilogue (pending) is finished before this returns.
void block_product(const DenseArgs& p, const uint8_t* a, int64_t mb, int64_t nt,
                   int64_t col_tiles, int32_t* acc, Pending& pending, const float* row_scale) {
  const int64_t tiles = min64(kBlockTiles, col_tiles - nt);
  const int8_t* b0 = p.w + nt * p.KB * kTile;
  int32_t zero = kZero;  // the products sum (q + zero) . w
#if !defined(__AMX_INT8__)
  pending.run(p, row_scale, 32);
#endif
#if defined(__AMX_INT8__)
  const int8_t* b1 = tiles == 2 ? b0 + p.KB * kTile : b0;
  // tiles 0-3 accumulate, 4-5 hold u8 rows, 6-7 weights (configure_tiles(8) per thread)
  const uint8_t* a0 = a + (2 * mb) * p.KB * kTile;
  const uint8_t* a1 = a0 + p.KB * kTile;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t kb = 0; kb < p.KB; ++kb) {
    _tile_loadd(4, a0 + kb * kTile, kTileBytes);
    _tile_loadd(6, b0 + kb * kTile, kTileBytes);
    _tile_dpbusd(0, 4, 6);
    _tile_loadd(7, b1 + kb * kTile, kTileBytes);
    _tile_dpbusd(1, 4, 7);
    _tile_loadd(5, a1 + kb * kTile, kTileBytes);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
    pending.run(p, row_scale, (kb + 1) * 32 / p.KB);
  }
  pending.run(p, row_scale, 32);
  _tile_stored(0, acc, 128);
  _tile_stored(1, acc + 16, 128);
  _tile_stored(2, acc + 512, 128);
  _tile_stored(3, acc + 528, 128);
#elif defined(__AVX512VNNI__)
  // 4 rows x 64 columns a pass: 16 accumulators; a weight row of a tile (64 bytes) is 4
  // k values of 16 columns, a row's 4 bytes are broadcast against 4 of them. The 8 groups
  // of 4 rows pass over a chunk of kChunk tiles' weights (16 KB, kept in L1) before the
  // next chunk, the sums kept in acc between chunks: group by group over all of K, the
  // weights came from L2 once per group, whose bandwidth held VPDPBUSD to half its peak.
  constexpr int64_t kChunk = 4;
  static_assert(kBlockTiles == 4, "the loop below names its four weight tiles");
  const int8_t* b[kBlockTiles];
  for (int64_t t = 0; t < kBlockTiles; ++t) b[t] = b0 + (t < tiles ? t : 0) * p.KB * kTile;
  for (int64_t k0 = 0; k0 < p.KB; k0 += kChunk) {
    const int64_t k1 = min64(p.KB, k0 + kChunk);
    for (int64_t g = 0; g < 8; ++g) {
      int32_t* sums = acc + g * 4 * kBlockCols;
      __m512i c[4][kBlockTiles];
      for (int i = 0; i < 4; ++i)
        for (int t = 0; t < kBlockTiles; ++t)
          c[i][t] = k0 == 0 ? _mm512_setzero_si512()
                            : _mm512_loadu_si512(sums + i * kBlockCols + t * 16);
      const uint8_t* rows = row_of(a, p.KB, mb * 32 + g * 4);  // the 4 rows are kTileBytes apart
      for (int64_t kb = k0; kb < k1; ++kb) {
        // one base pointer each, constant offsets from it: with an address per row and tile
        // GCC ran out of registers and moved them through vector registers every step
        const uint8_t* quads = rows + kb * kTile;
        const int8_t* w0 = b[0] + kb * kTile;
        const int8_t* w1 = b[1] + kb * kTile;
        const int8_t* w2 = b[2] + kb * kTile;
        const int8_t* w3 = b[3] + kb * kTile;
#pragma GCC unroll 2
        for (int64_t q4 = 0; q4 < 16; ++q4) {
          const __m512i w[kBlockTiles] = {
              _mm512_loadu_si512(w0 + q4 * 64), _mm512_loadu_si512(w1 + q4 * 64),
              _mm512_loadu_si512(w2 + q4 * 64), _mm512_loadu_si512(w3 + q4 * 64)};
#pragma GCC unroll 4
          for (int i = 0; i < 4; ++i) {
            int32_t quad;
            memcpy(&quad, quads + i * kTileBytes + q4 * 4, 4);
            const __m512i q = _mm512_set1_epi32(quad);
#pragma GCC unroll 4
            for (int t = 0; t < kBlockTiles; ++t)
              c[i][t] = _mm512_dpbusd_epi32(c[i][t], q, w[t]);
          }
        }
      }
      for (int i = 0; i < 4; ++i)
        for (int t = 0; t < kBlockTiles; ++t)
          _mm512_storeu_si512(sums + i * kBlockCols + t * 16, c[i][t]);
    }
  }
#elif defined(__AVX2__)
  if (p.weight_levels <= kWeightLevels) {
    for (int64_t half = 0; half < tiles; ++half)
      avx2_tile<false>(a, p.KB, mb, b0 + half * p.KB * kTile, acc + half * 16);
  } else {
    for (int64_t half = 0; half < tiles; ++half)
      avx2_tile<true>(a, p.KB, mb, b0 + half * p.KB * kTile, acc + half * 16);
    zero = 0;
  }
#else
  for (int64_t r = 0; r < 32; ++r) {
    const uint8_t* row = row_of(a, p.KB, mb * 32 + r);
    for (int64_t half = 0; half < tiles; ++half) {
      const int8_t* b = b0 + half * p.KB * kTile;
      for (int c = 0; c < 16; ++c) {
        int32_t s = 0;
        for (int64_t kb = 0; kb < p.KB; ++kb)
          for (int k = 0; k < kTileBytes; ++k)
            s += static_cast<int32_t>(row[kb * kTile + k]) *
                 b[kb * kTile + (k / 4) * kTileBytes + c * 4 + k % 4];
        acc[r * kBlockCols + half * 16 + c] = s;
      }
    }
  }
#endif
  if (zero != 0) {  // (q + zero) . w = q . w + zero colsum
    const int64_t n0 = nt * 16, count = min64(tiles * 16, p.N - n0);
    for (int64_t r = 0; r < 32; ++r)
#pragma omp simd
      for (int64_t j = 0; j < count; ++j) acc[r * kBlockCols + j] -= zero * p.colsum[n0 + j];
  }
}

// out <- LayerNorm(out + residual) * gamma + beta for rows [first, last) (mean, then the
// mean square of the centred row, in float).
void add_norm_rows(const DenseArgs& p, int64_t first, int64_t last) {
  if (p.residual == nullptr) return;
  for (int64_t row = first; row < last && row < p.rows; ++row) {
    float* out = p.out + row * p.N;
    const float* residual = p.residual + row * p.N;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < p.N; ++j) {
      out[j] += residual[j];
      sum += out[j];
    }
    const float mean = sum / static_cast<float>(p.N);
    float squares = 0.0f;
#pragma omp simd reduction(+ : squares)
    for (int64_t j = 0; j < p.N; ++j) squares += (out[j] - mean) * (out[j] - mean);
    const float rstd = 1.0f / sqrtf(squares / static_cast<float>(p.N) + p.eps);
#pragma omp simd
    for (int64_t j = 0; j < p.N; ++j) out[j] = (out[j] - mean) * rstd * p.gamma[j] + p.beta[j];
  }
}

// Work items are a 32-row block (its u8 rows stay in L1) and a panel of columns, in
// panel-major order: a panel's weights (at most panel_bytes()) stay in L2 while every row
// block passes over them, so each weight is read from memory once, not once per row block
// (the query/key/value weight of Bort, 3 MB, does not fit L2). With one panel (and enough
// row blocks for every thread) the residual + LayerNorm runs on each finished row block;
// else it waits for whole rows.
//
// A panel is half this CPU's L2 (at least 256 KB, where it cannot be read): 1 MB on a
// Sapphire Rapids core, so that Bort's attention output and FFN weights (0.75-1 MB) are one
// panel and their LayerNorm runs on rows still in cache; 256 KB where L2 is 512 KB.
int64_t panel_bytes() {
  static const int64_t bytes = [] {
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return max64(256 * 1024, l2 > 0 ? static_cast<int64_t>(l2) / 2 : 0);
  }();
  return bytes;
}

void int8_dense(const DenseArgs& p) {
  uint8_t* a = p.scratch;
  const int64_t Mp = (p.rows + 31) / 32 * 32;
  float* row_scale = reinterpret_cast<float*>(p.scratch + Mp * p.KB * kTileBytes);
  quantize_rows(p, a, row_scale);
  const int64_t row_blocks = Mp / 32, col_tiles = (p.N + 15) / 16;
  const int64_t col_blocks = (col_tiles + kBlockTiles - 1) / kBlockTiles;
#ifdef _OPENMP
  const int64_t threads = omp_get_max_threads();
#else
  const int64_t threads = 1;
#endif
  const int64_t block_bytes = kBlockTiles * p.KB * kTile;
  const int64_t for_threads =  // batch 1: split the columns so that every thread works
      row_blocks >= 2 * threads ? 1 : (2 * threads + row_blocks - 1) / row_blocks;
  const int64_t panel = panel_bytes();
  const int64_t splits = min64(
      col_blocks, max64(for_threads, (col_blocks * block_bytes + panel - 1) / panel));
  const int64_t blocks_per_item = (col_blocks + splits - 1) / splits;
#pragma omp parallel if (row_blocks * splits > 1)
  {
#if defined(__AMX_INT8__)
    configure_tiles(8);
#endif
    alignas(64) int32_t acc[2][32 * kBlockCols];  // this block's sums and the pending ones
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < row_blocks * splits; ++item) {
      const int64_t mb = item % row_blocks;
      const int64_t first = (item / row_blocks) * blocks_per_item * kBlockTiles;
      const int64_t last = min64(col_tiles, first + blocks_per_item * kBlockTiles);
      Pending pending;
      for (int64_t nt = first; nt < last; nt += kBlockTiles) {
        int32_t* sums = acc[(nt / kBlockTiles) % 2];
        block_product(p, a, mb, nt, col_tiles, sums, pending, row_scale);
        pending = Pending{sums, mb, nt * 16, min64(kBlockCols, p.N - nt * 16), 0};
      }
      pending.run(p, row_scale, 32);
      if (splits == 1) add_norm_rows(p, mb * 32, mb * 32 + 32);
    }
#if defined(__AMX_INT8__)
    _tile_release();
#endif
    if (splits > 1 && p.residual != nullptr) {
#pragma omp for schedule(static)
      for (int64_t row = 0; row < p.rows; ++row) add_norm_rows(p, row, row + 1);
    }
  }
}

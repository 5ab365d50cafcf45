// One kernel tier: every loop of the fused operators (training_kernels.h, dense_kernels.h,
// small_gemm.h, attention_kernels.h, attention_training_kernels.h) compiled for one ISA.
// library.py compiles this file once per tier with that tier's flags and
// -DBORTKIT_TIER=<name> (kernels.h lists the tiers); the micro-kernels pick their
// instructions from the compiler's own macros (__AVX2__, __AVX512VNNI__, __AMX_INT8__,
// ...). Everything but the table is in an anonymous namespace, so no function of one tier
// can stand in for another's at link time.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels.h"
#include "kernel_math.h"

#ifndef BORTKIT_TIER
#error "compile with -DBORTKIT_TIER=scalar|avx2|avx512|amx"
#endif

namespace bortkit_ops {
namespace {

#if defined(__AMX_TILE__)
struct TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles 0 .. count - 1 of this thread: 16 rows of 64 bytes each (release: _tile_release()).
void configure_tiles(int count) {
  TileConfig config;
  memset(&config, 0, sizeof(config));
  config.palette = 1;
  for (int t = 0; t < count; ++t) {
    config.rows[t] = 16;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
}
#endif

#include "training_kernels.h"
#include "dense_kernels.h"
#include "small_gemm.h"
#include "attention_kernels.h"
#include "attention_training_kernels.h"

#define BORTKIT_STR2(x) #x
#define BORTKIT_STR(x) BORTKIT_STR2(x)

const Kernels kTable = {
    BORTKIT_STR(BORTKIT_TIER), kLevels, kWeightLevels, layer_norm_forward, layer_norm_backward,
    mask_scores, softmax_nll_forward, softmax_nll_backward, adamw, int8_dense, self_attention,
    dropout, sum_squares, attention_training_forward, attention_training_backward};

}  // namespace

#define BORTKIT_CAT2(a, b) a##b
#define BORTKIT_CAT(a, b) BORTKIT_CAT2(a, b)

const Kernels& BORTKIT_CAT(kernels_, BORTKIT_TIER)() { return kTable; }

}  // namespace bortkit_ops

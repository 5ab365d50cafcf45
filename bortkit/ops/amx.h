// Intel AMX detection, shared by int8_dense.cc and attention.cc (conventions: common.h).
//
// amx_ready(feature): the CPU has AMX-TILE and the feature (AMX-INT8 or AMX-BF16), the OS
// enables the tile state, and Linux granted this process the tile data permission
// (arch_prctl ARCH_REQ_XCOMP_PERM, asked once). BORTKIT_AMX is defined where the compiler
// has the AMX intrinsics; configure_tiles sets up a thread's tiles.
#ifndef BORTKIT_OPS_AMX_H_
#define BORTKIT_OPS_AMX_H_

#include <cstdint>
#include <cstring>
#include <mutex>
#if defined(__x86_64__) && defined(__GNUC__) && __GNUC__ >= 11
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#define BORTKIT_AMX 1
#endif

namespace bortkit_ops {

enum AmxFeature { kAmxBf16 = 22, kAmxInt8 = 25 };  // bits of CPUID.(7, 0).EDX

#ifdef BORTKIT_AMX
inline bool amx_cpu_has(int bit) {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> bit) & 1);
}

inline bool amx_tiles_usable() {
  unsigned a, b, c, d;
  if (!amx_cpu_has(24)) return false;  // AMX-TILE
  if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return false;  // OSXSAVE
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if (((lo >> 17) & 3) != 3) return false;  // XTILECFG and XTILEDATA enabled by the OS
  const long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
}

struct TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// Tiles 0 .. count - 1 of this thread: 16 rows of 64 bytes each (release: _tile_release()).
__attribute__((target("amx-tile"))) inline void configure_tiles(int count) {
  TileConfig config;
  std::memset(&config, 0, sizeof(config));
  config.palette = 1;
  for (int t = 0; t < count; ++t) {
    config.rows[t] = 16;
    config.colsb[t] = 64;
  }
  _tile_loadconfig(&config);
}
#endif

inline bool amx_ready(AmxFeature feature) {
#ifdef BORTKIT_AMX
  static std::once_flag once;
  static bool tiles = false;
  std::call_once(once, [] { tiles = amx_tiles_usable(); });
  return tiles && amx_cpu_has(feature);
#else
  return false;
#endif
}

}  // namespace bortkit_ops

#endif  // BORTKIT_OPS_AMX_H_

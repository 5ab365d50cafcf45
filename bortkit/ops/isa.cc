// Tier detection and the cap (isa.h). Compiled at the build's baseline ISA.
#include "isa.h"

#include <atomic>
#include <mutex>

#include "kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace bortkit_ops {
namespace {

std::atomic<int> cap{kAmx};

#if defined(__x86_64__)
bool bit(unsigned reg, int n) { return (reg >> n) & 1u; }

int detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return kScalar;
  const bool fma = bit(c, 12), osxsave = bit(c, 27), f16c = bit(c, 29);
  if (!osxsave) return kScalar;
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const bool ymm = (lo & 0x6) == 0x6;     // SSE and AVX state
  const bool zmm = (lo & 0xE0) == 0xE0;   // opmask, ZMM_Hi256, Hi16_ZMM state
  const bool tiles = ((lo >> 17) & 3) == 3;  // XTILECFG, XTILEDATA
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return kScalar;
  if (!(ymm && fma && f16c && bit(b, 5))) return kScalar;  // AVX2
  // AVX-512 F (16), DQ (17), BW (30), VL (31); VNNI (ECX 11)
  if (!(zmm && bit(b, 16) && bit(b, 17) && bit(b, 30) && bit(b, 31) && bit(c, 11)))
    return kAvx2;
  // AMX-BF16 (EDX 22), AMX-TILE (24), AMX-INT8 (25); Linux hands out the tile data state
  // only to a process that asks for it (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
  if (!(tiles && bit(d, 22) && bit(d, 24) && bit(d, 25))) return kAvx512;
  const long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) != 0) return kAvx512;
  return kAmx;
}
#else
int detect() { return kScalar; }
#endif

}  // namespace

int host_tier() {
  static std::once_flag once;
  static int tier = kScalar;
  std::call_once(once, [] { tier = detect(); });
  return tier;
}

int active_tier() {
  const int capped = cap.load(std::memory_order_relaxed);
  const int host = host_tier();
  return capped < host ? capped : host;
}

const Kernels& kernels() {
  switch (active_tier()) {
    case kAmx: return kernels_amx();
    case kAvx512: return kernels_avx512();
    case kAvx2: return kernels_avx2();
    default: return kernels_scalar();
  }
}

}  // namespace bortkit_ops

extern "C" int bortkit_isa_host() { return bortkit_ops::host_tier(); }
extern "C" int bortkit_isa_active() { return bortkit_ops::active_tier(); }
extern "C" int bortkit_int8_levels() { return bortkit_ops::kernels().int8_levels; }
extern "C" int bortkit_weight_levels() { return bortkit_ops::kernels().weight_levels; }
extern "C" int bortkit_isa_cap(int tier) {
  if (tier < bortkit_ops::kScalar || tier >= bortkit_ops::kTierCount) return -1;
  bortkit_ops::cap.store(tier);
  return bortkit_ops::active_tier();
}

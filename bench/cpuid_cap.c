// CPUID capped at an ISA tier, for a whole benchmark process (every library in it: ONNX
// Runtime's MLAS, MKL, oneDNN, PyTorch, NumPy, bortkit's kernels), so that one machine
// measures the anchors of a lower tier too. Preloaded by bench/common.py (run_per_tier):
//
//     LD_PRELOAD=cpuid_cap.so BENCH_CPUID_TIER=avx2|avx512 python bench/inference.py ...
//
// Hand-written: ONNX Runtime and MKL read CPUID themselves and have no ISA cap of their own.
// How: at load, before any other library's initialisation reads it, every CPUID leaf is read
// once and the features above the tier are cleared; then Linux's CPUID faulting
// (arch_prctl(ARCH_SET_CPUID, 0), inherited by the threads and processes started later)
// turns each CPUID instruction into a SIGSEGV, whose handler answers from the capped table
// and steps over the instruction. Other SIGSEGVs go to the handler the program installed
// (sigaction and signal are wrapped so that nobody replaces ours). What it cannot cap:
// glibc's string functions (chosen before it loads), and XGETBV, which still reports the
// AVX-512 and AMX register state enabled; code that checks a feature's CPUID bit first (all
// the above) does not use it.
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef ARCH_SET_CPUID
#define ARCH_SET_CPUID 0x1012
#endif

enum { kSubleaves = 64, kBasic = 0x40, kExtended = 0x40, kHypervisor = 0x20 };
typedef struct { uint32_t a, b, c, d; } Regs;

static Regs basic[kBasic][kSubleaves];        // leaves 0x0..: every subleaf
static Regs extended[kExtended][8];           // 0x80000000..
static Regs hypervisor[kHypervisor];          // 0x40000000..
static uint32_t max_basic, max_extended;
static struct sigaction chained;              // the program's own SIGSEGV handler
static int (*real_sigaction)(int, const struct sigaction*, struct sigaction*);

static Regs read_cpuid(uint32_t leaf, uint32_t sub) {
  Regs r;
  __cpuid_count(leaf, sub, r.a, r.b, r.c, r.d);
  return r;
}

#define CLEAR(reg, ...)                                             \
  do {                                                              \
    const int bits[] = {__VA_ARGS__};                               \
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); ++i)     \
      (reg) &= ~(1u << bits[i]);                                    \
  } while (0)

// avx512: AVX-512 with VNNI (Cascade Lake): no AMX, AVX512-BF16/FP16, AVX-VNNI, AVX10.
// avx2: x86-64-v3 (AVX2, FMA): no AVX-512 either.
static void cap(int avx512) {
  Regs* l7 = basic[7];
  CLEAR(l7[0].d, 22, 23, 24, 25);            // AMX-BF16, AVX512-FP16, AMX-TILE, AMX-INT8
  CLEAR(l7[1].a, 4, 5, 21, 23);              // AVX-VNNI, AVX512-BF16, AMX-FP16, AVX-IFMA
  CLEAR(l7[1].d, 19);                        // AVX10
  memset(basic[0x1d], 0, sizeof(basic[0x1d]));  // AMX palettes
  memset(basic[0x1e], 0, sizeof(basic[0x1e]));  // AMX TMUL
  memset(basic[0x24], 0, sizeof(basic[0x24]));  // AVX10
  CLEAR(basic[0xd][0].a, 17, 18);            // XTILECFG, XTILEDATA state
  if (avx512) return;
  CLEAR(l7[0].b, 16, 17, 21, 26, 27, 28, 30, 31);  // AVX512 F DQ IFMA PF ER CD BW VL
  CLEAR(l7[0].c, 1, 6, 11, 12, 14);          // AVX512 VBMI VBMI2 VNNI BITALG VPOPCNTDQ
  CLEAR(l7[0].d, 2, 3, 8);                   // AVX512 4VNNIW 4FMAPS VP2INTERSECT
  CLEAR(basic[0xd][0].a, 5, 6, 7);           // opmask, ZMM state
}

static void answer(int sig, siginfo_t* info, void* context) {
  ucontext_t* uc = (ucontext_t*)context;
  greg_t* g = uc->uc_mcontext.gregs;
  const unsigned char* ip = (const unsigned char*)g[REG_RIP];
  if (ip[0] == 0x0f && ip[1] == 0xa2) {  // CPUID
    const uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
    Regs r = {0, 0, 0, 0};
    if (leaf <= max_basic && leaf < kBasic)
      r = basic[leaf][sub < kSubleaves ? sub : kSubleaves - 1];
    else if (leaf >= 0x80000000u && leaf <= max_extended && leaf - 0x80000000u < kExtended)
      r = extended[leaf - 0x80000000u][sub < 8 ? sub : 7];
    else if (leaf >= 0x40000000u && leaf - 0x40000000u < kHypervisor)
      r = hypervisor[leaf - 0x40000000u];
    g[REG_RAX] = r.a, g[REG_RBX] = r.b, g[REG_RCX] = r.c, g[REG_RDX] = r.d;
    g[REG_RIP] += 2;
    return;
  }
  if ((chained.sa_flags & SA_SIGINFO) && chained.sa_sigaction) {
    chained.sa_sigaction(sig, info, context);
  } else if (chained.sa_handler != SIG_DFL && chained.sa_handler != SIG_IGN &&
             chained.sa_handler != NULL) {
    chained.sa_handler(sig);
  } else {  // a real fault: die of it
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL);
  }
}

int sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
  if (!real_sigaction)
    real_sigaction = (int (*)(int, const struct sigaction*, struct sigaction*))dlsym(
        RTLD_NEXT, "sigaction");
  if (sig != SIGSEGV) return real_sigaction(sig, act, old);
  if (old) *old = chained;  // the program sees its own handler, and keeps it chained
  if (act) chained = *act;
  return 0;
}

sighandler_t signal(int sig, sighandler_t handler) {
  struct sigaction act, old;
  memset(&act, 0, sizeof(act));
  act.sa_handler = handler;
  if (sigaction(sig, &act, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

__attribute__((constructor)) static void start(void) {
  const char* tier = getenv("BENCH_CPUID_TIER");
  if (!tier || !*tier) return;
  const int avx512 = strcmp(tier, "avx512") == 0;
  if (!avx512 && strcmp(tier, "avx2") != 0) {
    fprintf(stderr, "cpuid_cap: BENCH_CPUID_TIER must be avx2 or avx512, got %s\n", tier);
    _exit(2);
  }
  real_sigaction = (int (*)(int, const struct sigaction*, struct sigaction*))dlsym(
      RTLD_NEXT, "sigaction");
  max_basic = read_cpuid(0, 0).a;
  for (uint32_t leaf = 0; leaf <= max_basic && leaf < kBasic; ++leaf)
    for (uint32_t sub = 0; sub < kSubleaves; ++sub) basic[leaf][sub] = read_cpuid(leaf, sub);
  max_extended = read_cpuid(0x80000000u, 0).a;
  for (uint32_t leaf = 0x80000000u; leaf <= max_extended && leaf - 0x80000000u < kExtended;
       ++leaf)
    for (uint32_t sub = 0; sub < 8; ++sub)
      extended[leaf - 0x80000000u][sub] = read_cpuid(leaf, sub);
  for (uint32_t i = 0; i < kHypervisor; ++i) hypervisor[i] = read_cpuid(0x40000000u + i, 0);
  cap(avx512);
  struct sigaction act;
  memset(&act, 0, sizeof(act));
  act.sa_sigaction = answer;
  act.sa_flags = SA_SIGINFO;
  real_sigaction(SIGSEGV, &act, NULL);
  if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) != 0) {
    fprintf(stderr, "cpuid_cap: this CPU or kernel has no CPUID faulting; cannot cap\n");
    _exit(2);
  }
}

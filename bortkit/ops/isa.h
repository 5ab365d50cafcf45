// Which kernel tier runs (kernels.h): what the CPU and the OS allow, capped from Python
// (bortkit.ops.isa, BORTKIT_ISA) so that one machine can run every tier below its own.
#ifndef BORTKIT_OPS_ISA_H_
#define BORTKIT_OPS_ISA_H_

namespace bortkit_ops {

// The highest tier the CPU and the OS allow here (AMX: also Linux's tile-data permission,
// asked for once). Detected once, by CPUID and XGETBV.
int host_tier();

// The tier in use: host_tier(), or the cap when it is lower.
int active_tier();

}  // namespace bortkit_ops

// For ctypes (bortkit/ops/isa.py).
extern "C" {
int bortkit_isa_host();
int bortkit_isa_active();
// bortkit_int8_dense's input levels at the active tier: 127 on every tier.
int bortkit_int8_levels();
// The weight levels bortkit_int8_dense's fastest loop at the active tier takes: 63 (avx2)
// or 127.
int bortkit_weight_levels();
// Cap the tier at `tier` (0 scalar .. 3 amx); returns the tier now active, or -1 (nothing
// changed) when `tier` is not a tier.
int bortkit_isa_cap(int tier);
}

#endif  // BORTKIT_OPS_ISA_H_

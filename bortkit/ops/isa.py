"""Which ISA tier the fused kernels run on, and the cap that lowers it.

The library holds every loop once per tier (``library.TIERS``: scalar, avx2, avx512, amx)
and picks the highest the CPU and the OS allow (``isa.cc``: CPUID, XGETBV and, for AMX,
Linux's tile-data permission). ``BORTKIT_ISA=<tier>`` (read when the library loads) or
:func:`cap` lowers it, so that one machine runs, tests and benchmarks every tier below its
own. A tier above the host's is an error, not a quiet fallback.
"""
from __future__ import annotations

import ctypes
import os
from typing import Optional

from ..errors import ConfigError
from .library import TIERS

__all__ = ["ENV_ISA", "TIERS", "host", "active", "cap", "cap_from_env", "int8_levels",
           "weight_levels"]

ENV_ISA = "BORTKIT_ISA"
_handles: dict = {}  # library path -> ctypes handle (the image MXNet already loaded)


def _handle():
    from . import loaded_path
    path = loaded_path()
    if path is None:
        return None
    if path not in _handles:
        _handles[path] = ctypes.CDLL(str(path))
    return _handles[path]


def host() -> Optional[str]:
    """The highest tier this CPU and OS run (None when the fused kernels are not loaded)."""
    lib = _handle()
    return None if lib is None else TIERS[lib.bortkit_isa_host()]


def active() -> Optional[str]:
    """The tier the fused kernels run on now (None when they are not loaded)."""
    lib = _handle()
    return None if lib is None else TIERS[lib.bortkit_isa_active()]


def int8_levels() -> Optional[int]:
    """The int8 dense layer's input levels at the active tier: inputs are quantized per row
    to [-levels, levels], 127 (8 bits) on every tier (avx2 too, unlike fbgemm's and MLAS's
    7-bit AVX2 kernels); None when the fused kernels are not loaded."""
    lib = _handle()
    return None if lib is None else lib.bortkit_int8_levels()


def weight_levels() -> Optional[int]:
    """The weight levels the int8 dense layer's fastest loop takes at the active tier (the
    default of :func:`bortkit.ops.int8_dense.pack_weight`): 63 (7 bits) at avx2, whose
    VPMADDUBSW sums products in pairs to int16 (oneDNN's way), else 127; None when the fused
    kernels are not loaded. A weight packed with other levels still runs, exactly."""
    lib = _handle()
    return None if lib is None else lib.bortkit_weight_levels()


def _check(tier, where: str) -> int:
    if tier not in TIERS:
        raise ConfigError(f"{where} must be one of {', '.join(TIERS)}, got {tier!r}")
    top = host()
    if TIERS.index(tier) > TIERS.index(top):
        raise ConfigError(f"{where}={tier}: this CPU runs at most {top}")
    return TIERS.index(tier)


def cap(tier: str) -> str:
    """Run the fused kernels at ``tier`` (at most :func:`host`); returns the active tier.
    Needs the fused kernels (:func:`bortkit.ops.available`)."""
    lib = _handle()
    if lib is None:
        raise ConfigError("the ISA cap needs the fused kernels, which are not loaded")
    return TIERS[lib.bortkit_isa_cap(_check(tier, "tier"))]


def cap_from_env() -> None:
    """Apply ``BORTKIT_ISA`` when it is set (called when the library loads)."""
    value = os.environ.get(ENV_ISA, "").strip()
    if value:
        _handle().bortkit_isa_cap(_check(value.lower(), ENV_ISA))

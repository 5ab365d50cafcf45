"""The benchmarks' CPUID cap (bench/cpuid_cap.c through bench/common.py's configure_isa):
a process capped at a tier below the machine's sees that tier's CPU in every library that
reads CPUID (NumPy, bortkit's kernels), and a real segmentation fault still ends it."""
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))
import common  # noqa: E402  bench/common.py

TIERS = ("scalar", "avx2", "avx512", "amx")

PROBE = f"""
import os, sys
sys.path.insert(0, {str(BENCH)!r})
import common
common.configure_isa(sys.argv[1])
from numpy.core._multiarray_umath import __cpu_features__ as features
from bortkit import ops
from bortkit.ops import isa
assert ops.available(), ops.status()
print(os.environ.get(common.CPUID_VARIABLE), features["AVX2"], features["AVX512F"],
      features.get("AVX512_SPR", False), isa.host())
if len(sys.argv) > 2:  # a real fault must still end the process
    import ctypes
    ctypes.string_at(0)
"""


def _capped(tier: str, *extra: str, cap: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", common.CPUID_VARIABLE)}
    env["BENCH_CPUID_CAP"] = "1" if cap else "0"
    return subprocess.run([sys.executable, "-c", PROBE, tier, *extra], capture_output=True,
                          text=True, timeout=300, env=env)


def _require_cap(tier: str) -> None:
    if "cpuid_fault" not in common.cpu_flags():
        pytest.skip("this CPU (or its hypervisor) cannot fault on CPUID: nothing to cap with")
    if TIERS.index(common.machine_tier()) <= TIERS.index(tier):
        pytest.skip(f"this machine runs at most {common.machine_tier()}: no tier above "
                    f"{tier} to cap")
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        pytest.skip("no C compiler to build bench/cpuid_cap.c")


@pytest.mark.parametrize("cap,avx512", [("avx2", False), ("avx512", True)])
def test_a_capped_process_sees_the_tiers_cpu(cap, avx512, kernels):
    _require_cap(cap)
    done = _capped(cap)
    assert done.returncode == 0, done.stderr[-2000:]
    capped, avx2_seen, avx512_seen, spr_seen, host = done.stdout.split()
    assert capped == cap
    assert (avx2_seen, avx512_seen, spr_seen) == ("True", str(avx512), "False")
    assert host == cap  # bortkit's own CPUID dispatch sees the capped CPU too


def test_a_real_fault_still_ends_a_capped_process(kernels):
    """The program's own SIGSEGV handler (MXNet's, which prints and exits) still gets the
    real faults: the capped process ends as the uncapped one does."""
    _require_cap("avx2")
    uncapped = _capped("avx2", "fault", cap=False)
    done = _capped("avx2", "fault")
    assert done.stdout.startswith("avx2 True False")  # it ran capped, then faulted
    assert uncapped.stdout.startswith("None True True")
    assert "Segmentation fault" in done.stderr
    assert done.returncode == uncapped.returncode != 0

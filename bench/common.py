"""Small helpers shared by the benchmarks: thread settings, interleaved timing, tables, results.

A 2-core machine shared with other work is noisy: a number measured a minute apart from its
baseline says little. Benchmarks therefore compare contenders side by side in one process and
one run, taking turns (:func:`interleave`), and report medians and paired ratios.
"""
from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

RESULTS_DIR = Path(__file__).resolve().parent / "results"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS", "MXNET_ENGINE_TYPE",
                    "MXNET_SUBGRAPH_BACKEND", "KMP_AFFINITY", "OMP_WAIT_POLICY")


def usable_cores() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    return len(os.sched_getaffinity(0))


def configure_threads(threads: Optional[int] = None, passive: bool = False) -> dict[str, str]:
    """Give every framework ``threads`` compute threads (default: ``OMP_NUM_THREADS`` if
    set, else all usable cores).

    Sets ``OMP_NUM_THREADS`` (operator threads of MXNet and PyTorch) and, unless already set,
    ``MXNET_CPU_WORKER_NTHREADS=1`` (one MXNet engine worker, so operators never compete
    for the cores). With ``passive``, also ``OMP_WAIT_POLICY=PASSIVE`` unless set: OpenMP
    threads sleep instead of spinning when idle, as ORT's threads do with spinning off, so
    contenders timed in one process do not take each other's cores. Must run before MXNet
    or PyTorch is imported. Returns the thread-related variables now set, for the record.
    """
    threads = threads or int(os.environ.get("OMP_NUM_THREADS") or usable_cores())
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if "mxnet" in sys.modules or "torch" in sys.modules:
        raise RuntimeError("configure_threads must run before mxnet or torch is imported")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")
    if passive:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}


# What each framework's own ISA cap is called for a bortkit tier (bortkit.ops.isa.TIERS):
# oneDNN (MXNet's, and PyTorch's) reads DNNL_MAX_CPU_ISA / ONEDNN_MAX_CPU_ISA, PyTorch's own
# kernels ATEN_CPU_CAPABILITY, MKL (PyTorch's fp32 GEMM) MKL_ENABLE_INSTRUCTIONS. ONNX Runtime
# has no cap of its own: at the avx2 and avx512 tiers below the host's, the whole process
# runs under a capped CPUID instead (cap_cpuid, bench/cpuid_cap.c), where the CPU allows;
# elsewhere its figures are conservative anchors (it keeps the host's ISA).
ONEDNN_ISA = {"scalar": "SSE41", "avx2": "AVX2", "avx512": "AVX512_CORE_VNNI",
              "amx": "AVX512_CORE_AMX"}
ATEN_CAPABILITY = {"scalar": "default", "avx2": "avx2", "avx512": "avx512", "amx": "avx512"}
MKL_INSTRUCTIONS = {"scalar": "SSE4_2", "avx2": "AVX2", "avx512": "AVX512",
                    "amx": "AVX512_E4"}  # PyTorch's fp32 GEMM (MKL)
ISA_VARIABLES = ("BORTKIT_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                 "MKL_ENABLE_INSTRUCTIONS")


def configure_isa(tier: Optional[str]) -> dict[str, str]:
    """Cap bortkit's kernels, oneDNN and PyTorch at ``tier`` (None: the host's ISA). Must
    run before MXNet or PyTorch is imported. Returns the variables now set."""
    if tier is not None:
        if tier not in ONEDNN_ISA:
            raise ValueError(f"--isa must be one of {', '.join(ONEDNN_ISA)}, got {tier!r}")
        if "mxnet" in sys.modules or "torch" in sys.modules:
            raise RuntimeError("configure_isa must run before mxnet or torch is imported")
        cap_cpuid(tier)
        os.environ.update({"BORTKIT_ISA": tier, "DNNL_MAX_CPU_ISA": ONEDNN_ISA[tier],
                           "ONEDNN_MAX_CPU_ISA": ONEDNN_ISA[tier],
                           "ATEN_CPU_CAPABILITY": ATEN_CAPABILITY[tier],
                           "MKL_ENABLE_INSTRUCTIONS": MKL_INSTRUCTIONS[tier]})
    return {name: os.environ[name] for name in ISA_VARIABLES if name in os.environ}


CPUID_TIERS = ("avx2", "avx512")  # the tiers bench/cpuid_cap.c caps CPUID at
CPUID_VARIABLE = "BENCH_CPUID_TIER"  # set in a process running under the capped CPUID


def cpu_flags() -> set[str]:
    """The CPU's flags as the kernel reports them (/proc/cpuinfo; not CPUID, which
    :func:`cap_cpuid` may have capped)."""
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def machine_tier() -> str:
    """The machine's own tier (bortkit.ops.isa's definitions), from :func:`cpu_flags`."""
    flags = cpu_flags()
    avx512 = {"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512_vnni"}
    if avx512 | {"amx_tile", "amx_int8", "amx_bf16"} <= flags:
        return "amx"
    if avx512 <= flags:
        return "avx512"
    return "avx2" if {"avx2", "fma", "f16c"} <= flags else "scalar"


def cap_cpuid(tier: str) -> None:
    """Re-run this process under CPUID capped at ``tier`` (bench/cpuid_cap.c, preloaded), so
    that ONNX Runtime, MKL, oneDNN and NumPy see that tier's CPU, when ``tier`` is avx2 or
    avx512 below the machine's, the CPU can fault on CPUID, and a C compiler exists;
    otherwise (or with ``BENCH_CPUID_CAP=0``) return and leave CPUID alone."""
    import hashlib
    import subprocess
    tiers = tuple(ONEDNN_ISA)
    if os.environ.get(CPUID_VARIABLE) == tier or tier not in CPUID_TIERS or \
            tiers.index(tier) >= tiers.index(machine_tier()) or \
            os.environ.get("BENCH_CPUID_CAP", "1") == "0" or "cpuid_fault" not in cpu_flags():
        return
    source = Path(__file__).with_name("cpuid_cap.c")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bortkit"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    library = cache / f"cpuid_cap-{digest}.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(f".{os.getpid()}.tmp")
        built = subprocess.run([os.environ.get("CC", "gcc"), "-O2", "-shared", "-fPIC",
                                str(source), "-o", str(partial), "-ldl"])
        if built.returncode != 0:
            partial.unlink(missing_ok=True)
            return
        partial.replace(library)
    preload = " ".join(filter(None, [str(library), os.environ.get("LD_PRELOAD")]))
    env = {**os.environ, "LD_PRELOAD": preload, CPUID_VARIABLE: tier}
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def isa_record() -> dict:
    """The tier bortkit's kernels run at and the host's (after the library loaded); under a
    capped CPUID (``cpuid``), the host is the capped CPU and ``machine`` the real one."""
    from bortkit import ops
    from bortkit.ops import isa
    cpuid = {"cpuid": os.environ.get(CPUID_VARIABLE) or "host", "machine": machine_tier()}
    if not ops.available():
        return {"tier": None, "host": None, "status": ops.status(), **cpuid}
    return {"tier": isa.active(), "host": isa.host(), "int8_levels": isa.int8_levels(),
            "weight_levels": isa.weight_levels(),
            "capped": isa.active() != isa.host(), **cpuid,
            "variables": {n: os.environ[n] for n in ISA_VARIABLES if n in os.environ}}


def strip_options(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """``argv`` without the options ``names`` and their values (``--x v ...`` or ``--x=v``)."""
    out, skipping = [], False
    for token in argv:
        if token.startswith("--"):
            skipping = token.split("=", 1)[0] in names and "=" not in token
            if token.split("=", 1)[0] in names:
                continue
        elif skipping:
            continue
        out.append(token)
    return out


def run_per_tier(script: str, argv: Sequence[str], tiers: Sequence[str],
                 directory: Path) -> dict[str, dict]:
    """Run ``script`` once per tier, each in its own process (a cap is set before the
    frameworks load), with ``--isa TIER --out DIR/TIER.json``; returns each tier's results."""
    import json
    import subprocess
    base = strip_options(argv, ("--isa", "--out"))
    results = {}
    for tier in tiers:
        out = Path(directory) / f"{tier}.json"
        done = subprocess.run([sys.executable, script, *base, "--isa", tier, "--out", str(out)])
        if done.returncode != 0:
            raise SystemExit(f"bortkit: error: the run at the {tier} tier failed (exit "
                             f"{done.returncode}; its output is above)")
        results[tier] = json.loads(out.read_text(encoding="utf-8"))
    return results


@dataclass
class Samples:
    """Per-call times of one contender, one entry per round."""

    wall: list[float] = field(default_factory=list)  # elapsed seconds
    cpu: list[float] = field(default_factory=list)   # CPU seconds of the whole process (all
    # threads): less disturbed than `wall` by other jobs taking the cores, but it counts
    # OpenMP threads spinning at barriers as work


def _timed(fn: Callable[[], object], number: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(number):
        fn()
    return (time.perf_counter() - wall) / number, (time.process_time() - cpu) / number


def interleave(contenders: Mapping[str, Callable[[], object]], rounds: int = 7,
               warmup: int = 2, min_seconds: float = 0.2) -> dict[str, Samples]:
    """Time each contender in turns.

    Each contender is first called ``warmup`` times (graph building, allocator, caches); the
    last warm-up call sets how many calls make one sample of at least ``min_seconds``. Then
    every round takes one sample of each contender, rotating the order between rounds so
    none always runs first.
    """
    if rounds < 1 or warmup < 1:
        raise ValueError(f"rounds and warmup must be >= 1, got {rounds} and {warmup}")
    number = {}
    for name, fn in contenders.items():
        for _ in range(warmup - 1):
            fn()
        number[name] = max(1, math.ceil(min_seconds / max(_timed(fn, 1)[0], 1e-9)))
    names = list(contenders)
    samples = {name: Samples() for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = _timed(contenders[name], number[name])
            samples[name].wall.append(wall)
            samples[name].cpu.append(cpu)
    return samples


def median(values: Iterable[float]) -> float:
    return statistics.median(values)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """Median over rounds of ``numerator[i] / denominator[i]``: drift common to both
    contenders within a round cancels out."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError("paired_ratio needs two non-empty sequences of the same length")
    return median(a / b for a, b in zip(numerator, denominator))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, numbers right-aligned; floats printed with 2 decimals."""
    def cell(value):
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for row in fh:
                if row.startswith("model name"):
                    return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment(packages: Sequence[str] = ("mxnet", "numpy", "torch", "transformers")) -> dict:
    """Machine, thread settings and package versions, to store beside the numbers."""
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"cpu": _cpu_model(), "usable_cores": usable_cores(),
            "python": platform.python_version(), "platform": platform.platform(),
            "threads": {n: os.environ[n] for n in THREAD_VARIABLES if n in os.environ},
            "packages": versions}


def write_results(name: str, payload: Mapping, path: Optional[os.PathLike | str] = None) -> Path:
    """Write ``payload`` plus :func:`environment` and the command line, atomically, to
    ``path`` (default ``bench/results/<name>.json``)."""
    from bortkit.io import write_json
    path = Path(path) if path else RESULTS_DIR / f"{name}.json"
    write_json(path, {"bench": name, "command": " ".join(sys.argv),
                      "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "environment": environment(), **payload})
    return path


PEAK_TIERS = ("avx2", "avx512")   # AMX's tile peak is not measured (no AMX kernel here)


def int8_peak(tier: str, work: Path):
    """A call doing a fixed number of the tier's int8 multiply-adds at the core's peak, and
    that number (``bench/int8_peak.cc``, built with g++ here)."""
    import ctypes
    import subprocess
    if tier not in PEAK_TIERS:
        raise ValueError(f"no int8 peak kernel for the {tier} tier; one of "
                         f"{', '.join(PEAK_TIERS)}")
    library = work / f"int8_peak_{tier}.so"
    source = Path(__file__).with_name("int8_peak.cc")
    subprocess.run([os.environ.get("CXX", "g++"), "-O2", "-shared", "-fPIC", str(source),
                    "-o", str(library)], check=True)
    lib = ctypes.CDLL(str(library))
    run = getattr(lib, f"peak_{tier}")
    run.restype, run.argtypes = ctypes.c_int64, [ctypes.c_int64, ctypes.c_char_p,
                                                 ctypes.c_char_p]
    getattr(lib, f"macs_{tier}").restype = ctypes.c_int64
    operands = bytes(range(1, 65))
    iterations = 200_000
    return (lambda: run(iterations, operands, operands)), \
        iterations * getattr(lib, f"macs_{tier}")()

"""Building, caching, checking and loading the fused operator library.

The sources are the ``*.cc`` and ``*.h`` files beside this module (package data). The
operator sources (MXNet's registration, ``isa.cc``, ``library.cc``) are one translation unit
at the build's baseline ISA (:func:`march`); ``tier.cc`` (every
loop) is compiled once per ISA tier with that tier's flags (:data:`TIER_FLAGS`), so the
library builds on any x86-64 CPU with GCC 11 or later whatever the CPU of the machine that
builds it, and ``isa.cc`` picks the tier at run time by CPUID. The objects are linked with
MXNet's ``lib_api.cc`` into one shared library cached under ``$BORTKIT_CACHE/kernels``
(default ``~/.cache/bortkit/kernels``), named by a hash of the sources, MXNet's version, the
compiler, the compile commands and the platform. ``python -m bortkit.ops build`` builds it
ahead of time (``scripts/install.sh`` does); otherwise the first use builds it.

Every library is written with a *stamp* beside it (``<library>.stamp``: size and SHA-256),
written atomically after the library is in place. A library whose stamp is missing or does
not match (a build killed half-way, a truncated copy, garbage) is never loaded: loading a
damaged shared object can kill the process with SIGBUS. It is deleted and rebuilt.

A build that fails is remembered beside it (``<library>.failed``: the compiler's first
error, and ``<library>.log``: all it printed), so that later processes neither retry it nor
pay for it; only ``python -m bortkit.ops build`` (``build(retry=True)``) tries again.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import Dict, List, Optional


from ..io import atomic_write, write_json

__all__ = ["ENV_CACHE", "ENV_MARCH", "SOURCE_DIR", "TIERS", "TIER_FLAGS", "sources", "march",
           "library_path", "stamp_path", "failure_path", "is_verified", "build", "load"]

ENV_CACHE = "BORTKIT_CACHE"
SOURCE_DIR = Path(__file__).resolve().parent
TIERS = ("scalar", "avx2", "avx512", "amx")  # the order of kernels.h's Tier
_AVX2 = ["-mavx2", "-mfma", "-mf16c"]
_AVX512 = _AVX2 + ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx512vnni"]
TIER_FLAGS: Dict[str, List[str]] = {
    "scalar": [], "avx2": _AVX2, "avx512": _AVX512,
    "amx": _AVX512 + ["-mamx-tile", "-mamx-int8", "-mamx-bf16"]}
ENV_MARCH = "BORTKIT_MARCH"  # the baseline -march (default x86-64: any 64-bit x86 CPU)
DEFAULT_MARCH = "x86-64"
_TIER_SOURCE = "tier.cc"
_BUILD_TIMEOUT_S = 600


def sources() -> List[Path]:
    """The operator sources, compiled (``*.cc``) or included (``*.h``)."""
    return sorted(SOURCE_DIR.glob("*.cc")) + sorted(SOURCE_DIR.glob("*.h"))


def _cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bortkit")
    return Path(root) / "kernels"


def march() -> str:
    """The baseline ``-march`` of the operator sources and the scalar tier: ``BORTKIT_MARCH``
    (for example ``x86-64-v3`` to build as on an AVX2 machine), else ``x86-64``."""
    return os.environ.get(ENV_MARCH, "").strip() or DEFAULT_MARCH


def _compiler() -> str:
    return os.environ.get("CXX") or "g++"


def _compiler_identity() -> str:
    """The compiler's path, the file it resolves to, and that file's size and mtime (empty
    when it is not there): a compiler upgrade changes the key. Not ``--version``: running
    it forked a process at every start, also inside Horovod ranks already connected."""
    cxx = _compiler()
    path = shutil.which(cxx) or cxx
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
    except OSError:
        return f"{path}\0"
    return f"{path}\0{real}\0{stat.st_size}\0{stat.st_mtime_ns}"


def _mxnet_dir() -> Path:
    """MXNet's package folder (its headers and lib_api.cc), found without importing it."""
    import importlib.util
    return Path(importlib.util.find_spec("mxnet").submodule_search_locations[0])


def _mxnet_version() -> str:
    from importlib import metadata
    return metadata.version("mxnet")


def _flags(march: str) -> List[str]:
    # -fno-math-errno and -fno-trapping-math let GCC vectorise sqrt, floor and comparisons.
    root = _mxnet_dir()
    return ["-O3", f"-march={march}", "-mtune=generic", "-fno-math-errno",
            "-fno-trapping-math", "-fopenmp", "-std=c++17", "-fPIC",
            f"-I{root / 'include'}", f"-I{SOURCE_DIR}"]


def _commands(workdir: Path, target: Path, march: str) -> tuple:
    """(compile commands, link command): objects in ``workdir``, the library at ``target``."""
    cxx, flags = _compiler(), _flags(march)
    unit = workdir / "bortkit_ops.cc"  # every operator source in one unit: lib_api.h once
    compiles = [[cxx, *flags, "-c", str(unit), "-o", str(workdir / "ops.o")],
                [cxx, *flags, "-c", str(_mxnet_dir() / "src" / "lib_api.cc"),
                 "-o", str(workdir / "lib_api.o")]]
    for tier in TIERS:
        compiles.append([cxx, *flags, *TIER_FLAGS[tier], f"-DBORTKIT_TIER={tier}", "-c",
                         str(SOURCE_DIR / _TIER_SOURCE), "-o", str(workdir / f"{tier}.o")])
    # The C++ runtime is linked in and bound inside the library: under Horovod, libmxnet.so
    # (which exports the old libstdc++ it was built with) is loaded RTLD_GLOBAL, and the
    # library's std::unordered_map calls would otherwise run that old code (SIGFPE).
    objects = [c[-1] for c in compiles]
    link = [cxx, "-shared", "-fopenmp", "-static-libstdc++", "-Wl,-Bsymbolic",
            "-Wl,--exclude-libs,ALL", *objects, "-o", str(target)]
    return compiles, link


def library_path() -> Path:
    """Where the library for these sources, MXNet, compiler and flags is cached."""
    key = hashlib.sha256()
    for path in sources():
        key.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    # Not the folder of the sources: a wheel's copy and the checkout share the library.
    compiles, link = _commands(Path("work"), Path("target"), march())
    commands = " ".join(" ".join(c) for c in compiles + [link]).replace(str(SOURCE_DIR), "src")
    key.update("\0".join([_mxnet_version(), commands, _compiler_identity(),
                          sysconfig.get_platform()]).encode())
    return _cache_dir() / f"bortkit_ops-{key.hexdigest()[:16]}.so"


def stamp_path(library: Path) -> Path:
    return library.with_name(library.name + ".stamp")


def failure_path(library: Path) -> Path:
    """The record of a failed build of ``library`` (JSON: ``error``, the first one)."""
    return library.with_name(library.name + ".failed")


def _fingerprint(library: Path) -> dict:
    digest = hashlib.sha256()
    with open(library, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"size": library.stat().st_size, "sha256": digest.hexdigest()}


def is_verified(library: Path) -> bool:
    """True when ``library`` exists and matches the stamp written after its build."""
    try:
        stamp = json.loads(stamp_path(library).read_text(encoding="utf-8"))
        if library.stat().st_size != stamp.get("size"):  # cheap check first
            return False
        return _fingerprint(library) == stamp
    except (OSError, ValueError, AttributeError):
        return False


_ERROR = re.compile(r"^(?P<where>[^\s:][^:]*:\d+(?::\d+)?): (?:fatal )?error: (?P<what>.*)$")


def first_error(stderr: str) -> str:
    """The compiler's first error as ``file:line:col: message`` (the file's name, not its
    folder), else its first non-empty line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    for line in lines:
        found = _ERROR.match(line.strip())
        if found:
            where = found["where"]
            name, _, rest = where.partition(":")
            return f"{Path(name).name}:{rest}: error: {found['what']}"
    return lines[0].strip() if lines else "no output"


def _write_log(path: Path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def _compile(compiles: List[List[str]], link: List[str], log: Path) -> None:
    """Run the compiles two at a time (the units are independent), then the link; raise
    RuntimeError with the first error, all output in ``log``."""
    outputs: List[str] = []
    pending = list(compiles)
    try:
        while pending:
            batch, pending = pending[:2], pending[2:]
            running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True) for c in batch]
            failed = None
            for command, proc in zip(batch, running):
                out, _ = proc.communicate(timeout=_BUILD_TIMEOUT_S)
                outputs.append(f"$ {' '.join(command)}\n{out}")
                if proc.returncode != 0 and failed is None:
                    failed = out
            if failed is not None:
                _write_log(log, "\n".join(outputs))
                raise RuntimeError(f"{_compiler()} failed: {first_error(failed)}")
        done = subprocess.run(link, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
    except FileNotFoundError:
        raise RuntimeError(f"no C++ compiler: {_compiler()} not found") from None
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{_compiler()} took more than {_BUILD_TIMEOUT_S} s") from None
    outputs.append(f"$ {' '.join(link)}\n{done.stdout}{done.stderr}")
    _write_log(log, "\n".join(outputs))
    if done.returncode != 0:
        raise RuntimeError(f"linking failed: {first_error(done.stderr)}")


def build(force: bool = False, retry: bool = False) -> Path:
    """Compile the library unless a verified one is cached; return its path.

    A cached library that fails verification is deleted and rebuilt. A build that failed
    before for the same key raises its error again without compiling, unless ``retry`` or
    ``force``. Several processes starting at once compile it once (a file lock). Raises
    RuntimeError when the compiler fails, OSError when the cache is not writable.
    """
    target = library_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_verified(target):
            return target
        failure = failure_path(target)
        if failure.exists() and not (force or retry):
            try:
                error = json.loads(failure.read_text(encoding="utf-8"))["error"]
            except (OSError, ValueError, KeyError, TypeError):
                error = "an earlier build failed"
            raise RuntimeError(f"{error} (an earlier build; `python -m bortkit.ops build` "
                               f"tries again, its output: {target.with_suffix('.log')})")
        for stale in (stamp_path(target), target, failure):  # never loaded, never kept
            stale.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            work = Path(tmp)
            (work / "bortkit_ops.cc").write_text(
                "".join(f'#include "{p.name}"\n' for p in sources()
                        if p.suffix == ".cc" and p.name != _TIER_SOURCE), encoding="utf-8")
            built = work / target.name
            compiles, link = _commands(work, built, march())
            try:
                _compile(compiles, link, target.with_suffix(".log"))
            except RuntimeError as err:
                write_json(failure, {"error": str(err)})
                raise
            stamp = _fingerprint(built)
            os.replace(built, target)
        write_json(stamp_path(target), stamp)  # after the library: a stamp vouches for it
    return target


def load(path: Optional[Path] = None) -> Path:
    """Build if needed, then load the library into MXNet (its operators appear as
    ``mx.nd.bortkit_*`` / ``F.bortkit_*``); return its path."""
    path = build() if path is None else path
    if not is_verified(path):
        raise RuntimeError(f"{path}: library does not match its stamp")
    import mxnet as mx
    mx.library.load(str(path), verbose=False)
    return path

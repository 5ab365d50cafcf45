"""Building, caching, checking and loading the fused operator library.

The sources are the ``*.cc`` and ``*.h`` files beside this module (package data). They are
compiled with the system C++ compiler (``$CXX``, default ``g++``), together with MXNet's
``lib_api.cc``, into one shared library cached under ``$BORTKIT_CACHE/kernels`` (default
``~/.cache/bortkit/kernels``), named by a hash of the sources, MXNet's version, the compile
command, the CPU flags and the platform. ``python -m bortkit.ops build`` builds it ahead of
time (``scripts/install.sh`` does); otherwise the first use builds it.

Every library is written with a *stamp* beside it (``<library>.stamp``: size and SHA-256),
written atomically after the library is in place. A library whose stamp is missing or does
not match (a build killed half-way, a truncated copy, garbage) is never loaded: loading a
damaged shared object can kill the process with SIGBUS. It is deleted and rebuilt.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sysconfig
import tempfile
from pathlib import Path
from typing import List, Optional

import mxnet as mx

from ..io import write_json

__all__ = ["ENV_CACHE", "SOURCE_DIR", "sources", "library_path", "stamp_path", "is_verified",
           "build", "load"]

ENV_CACHE = "BORTKIT_CACHE"
SOURCE_DIR = Path(__file__).resolve().parent
_BUILD_TIMEOUT_S = 600


def sources() -> List[Path]:
    """The operator sources, compiled together (``*.cc``) or included (``*.h``)."""
    return sorted(SOURCE_DIR.glob("*.cc")) + sorted(SOURCE_DIR.glob("*.h"))


def _cache_dir() -> Path:
    root = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "bortkit")
    return Path(root) / "kernels"


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for row in fh:
                if row.startswith("flags"):
                    return row
    except OSError:
        pass
    return ""


def _compile_command(files: List[Path], target: Path,
                     source_dir: Path = SOURCE_DIR) -> List[str]:
    root = Path(mx.__file__).parent
    cxx = os.environ.get("CXX") or "g++"
    # -fno-math-errno and -fno-trapping-math let GCC vectorise sqrt, floor and comparisons.
    # The C++ runtime is linked in and bound inside the library: under Horovod, libmxnet.so
    # (which exports the old libstdc++ it was built with) is loaded RTLD_GLOBAL, and the
    # library's std::unordered_map calls would otherwise run that old code (SIGFPE).
    return [cxx, "-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fopenmp",
            "-std=c++17", "-shared", "-fPIC", "-static-libstdc++", "-Wl,-Bsymbolic",
            "-Wl,--exclude-libs,ALL", f"-I{root / 'include'}", f"-I{source_dir}",
            *map(str, files), str(root / "src" / "lib_api.cc"), "-o", str(target)]


def library_path() -> Path:
    """Where the compiled library for these sources, MXNet, compiler and CPU is cached."""
    key = hashlib.sha256()
    for path in sources():
        key.update(f"{path.name}\0".encode() + path.read_bytes() + b"\0")
    # Not the folder of the sources: a wheel's copy and the checkout share the library.
    flags = " ".join(_compile_command([Path("source")], Path("target"), Path("sources")))
    key.update("\0".join([mx.__version__, flags, _cpu_flags(),
                          sysconfig.get_platform()]).encode())
    return _cache_dir() / f"bortkit_ops-{key.hexdigest()[:16]}.so"


def stamp_path(library: Path) -> Path:
    return library.with_name(library.name + ".stamp")


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


def build(force: bool = False) -> Path:
    """Compile the library unless a verified one is cached; return its path.

    A cached library that fails verification is deleted and rebuilt. Several processes
    starting at once compile it once (a file lock). Raises RuntimeError when the compiler
    fails, OSError when the cache is not writable.
    """
    target = library_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and is_verified(target):
            return target
        for stale in (stamp_path(target), target):  # unverified: never loaded, never kept
            stale.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            # One translation unit including every .cc: lib_api.h is parsed once, not once
            # a file (the build takes half the time).
            unit = Path(tmp) / "bortkit_ops.cc"
            unit.write_text("".join(f'#include "{p.name}"\n' for p in sources()
                                    if p.suffix == ".cc"), encoding="utf-8")
            built = Path(tmp) / target.name
            command = _compile_command([unit], built)
            try:
                done = subprocess.run(command, capture_output=True, text=True,
                                      timeout=_BUILD_TIMEOUT_S)
            except FileNotFoundError:
                raise RuntimeError(f"no C++ compiler: {command[0]} not found") from None
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines()
                raise RuntimeError(f"{command[0]} failed: "
                                   f"{lines[-1] if lines else done.returncode}")
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
    mx.library.load(str(path), verbose=False)
    return path

"""Build or inspect the fused operator library.

    python -m bortkit.ops build [--force]   compile it now (scripts/install.sh runs this)
    python -m bortkit.ops status            which implementation and ISA tier bortkit uses

``build`` exits with one ``bortkit: error:`` line naming the compiler's first error (file,
line, message) when the build fails; the failure is remembered, so other bortkit processes
run on MXNet's own operators (slower, same results up to float32 rounding) without trying
again, until ``build`` succeeds. Environment: CXX (the compiler), BORTKIT_MARCH (the
baseline -march, default x86-64), BORTKIT_ISA (cap the tier: scalar, avx2, avx512, amx),
BORTKIT_KERNELS=0 (off), BORTKIT_CACHE (where libraries are kept).
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

from ..errors import BortkitError, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bortkit.ops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="compile the fused operator library")
    build.add_argument("--force", action="store_true", help="rebuild even if one is cached")
    commands.add_parser("status", help="print which implementation is in use")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from . import library, status  # MXNet is imported only now: --help stays fast
    if args.command == "status":
        print(status())
        return 0
    start = time.perf_counter()
    try:
        path = library.build(force=args.force, retry=True)
    except (RuntimeError, OSError, TimeoutError) as err:
        raise BortkitError(f"cannot build the fused operators ({err}); bortkit will use "
                           f"MXNet's operators", path=library.SOURCE_DIR) from None
    print(f"{path} ({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)

"""How good a teacher does fitting the bundled all-MiniLM-L6-v2's masked-LM head make? Each
``LR:STEPS:SCOPE`` argument fits it (``bortkit.distill.fit_mlm_head``, scope ``head`` or
``all``) on the search's training shards and reports the teacher's held-out entropy and MLM
loss with the search's own ``heldout_losses``. Prints one JSON line per setting and writes
``bench/results/teacher_fit.json``::

    python bench/teacher_fit.py 2e-4:200:head 2e-3:200:head 2e-4:200:all

The shards are the ones ``bench/search_proxy.py`` prepares (``--data``, default its
``default`` recipe's folder); run that bench first.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common  # bench/common.py: the script's directory is first on sys.path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("settings", nargs="+", metavar="LR:STEPS:SCOPE")
    parser.add_argument("--data", type=Path, default=Path.home() / ".cache" / "bortkit-bench"
                        / "search_proxy" / "default" / "data")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/bench-teacher-fit"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    common.configure_threads(args.threads)
    from bortkit.distill import fit_mlm_head
    from bortkit.info import bundled_minilm
    from search_proxy import teacher_quality   # bench/search_proxy.py
    rows = []
    for setting in args.settings:
        lr, steps, scope = setting.split(":")
        out = args.work_dir / f"teacher-{scope}-{lr}-{steps}"
        fit_seconds = None                       # None: fitted by an earlier run, reused
        if not (out / "config.json").exists():
            start = time.perf_counter()
            fit_mlm_head(bundled_minilm(), args.data / "train", out, int(steps),
                         learning_rate=float(lr), scope=scope)
            fit_seconds = round(time.perf_counter() - start)
        rows.append({"learning_rate": float(lr), "steps": int(steps), "scope": scope,
                     "fit_seconds": fit_seconds,
                     **teacher_quality(out, args.data / "heldout", 8, 25)})
        print(json.dumps(rows[-1]), flush=True)
    print(f"wrote {common.write_results('teacher_fit', {'fits': rows})}")


if __name__ == "__main__":
    main()

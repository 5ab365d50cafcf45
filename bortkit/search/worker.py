"""Run a function in a fresh process that ends with it, so its memory goes with it.

MXNet keeps a memory pool per shape it has seen until its process exits; a search that
builds hundreds of model shapes (latency probes, candidates) in one process grows with every
shape. :func:`isolated` spawns a new interpreter (``spawn``: no copy of the parent's MXNet
state), runs ``fn(*args)`` there and returns its result; an exception comes back as itself.
The worker ends with its parent: a search killed mid-candidate leaves no process training on.

Each worker computes with :data:`THREADS` OpenMP threads (``BORTKIT_SEARCH_THREADS``, default
1), set before MXNet loads, whatever the number of workers running at once: a candidate's
numbers then do not depend on how many candidates train beside it (``--jobs``).
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Optional

#: OpenMP threads of one worker (the same whatever ``--jobs`` is, so results do not move).
THREADS = os.environ.get("BORTKIT_SEARCH_THREADS", "1")


def isolated(fn: Callable[..., Any], *args: Any, threads: Optional[int] = None) -> Any:
    """``fn(*args)`` in a fresh spawned process; ``fn`` must be a module-level function.
    ``threads``: its OpenMP threads (default :data:`THREADS`; a job that runs alone, such as
    fitting the teacher's head, takes every core)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_end_with,
                             initargs=(os.getpid(), str(threads or THREADS))) as pool:
        return pool.submit(fn, *args).result()


def _end_with(parent: int, threads: str) -> None:
    """In the worker, before MXNet loads: ``threads`` OpenMP threads; exit as soon as
    ``parent`` is gone (SIGKILL included). A polling thread rather than Linux's
    PR_SET_PDEATHSIG: portable, and a second is soon enough."""
    for name in ("OMP_NUM_THREADS", "MXNET_OMP_MAX_THREADS"):
        os.environ[name] = threads
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()

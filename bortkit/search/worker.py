"""Run a function in a fresh process that ends with it, so its memory goes with it.

MXNet keeps a memory pool per shape it has seen until its process exits; a search that
builds hundreds of model shapes (latency probes, candidates) in one process grows with every
shape. :func:`isolated` spawns a new interpreter (``spawn``: no copy of the parent's MXNet
state), runs ``fn(*args)`` there and returns its result; an exception comes back as itself.
The worker ends with its parent: a search killed mid-candidate leaves no process training on.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh spawned process; ``fn`` must be a module-level function."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=_end_with,
                             initargs=(os.getpid(),)) as pool:
        return pool.submit(fn, *args).result()


def _end_with(parent: int) -> None:
    """In the worker: exit as soon as ``parent`` is gone (SIGKILL included). A polling
    thread rather than Linux's PR_SET_PDEATHSIG: portable, and a second is soon enough."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)
    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()

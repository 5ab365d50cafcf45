"""Run a function in a fresh process that ends with it, so its memory goes with it.

MXNet keeps a memory pool per shape it has seen until its process exits; a search that
builds hundreds of model shapes (latency probes, candidates) in one process grows with every
shape. :func:`isolated` spawns a new interpreter (``spawn``: no copy of the parent's MXNet
state), runs ``fn(*args)`` there and returns its result; an exception comes back as itself.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable


def isolated(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a fresh spawned process; ``fn`` must be a module-level function."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()

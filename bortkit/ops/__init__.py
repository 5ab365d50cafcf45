"""Fused CPU operators for the slowest MXNet 1.9 operators of a Transformer training step.

Profiling a masked-LM training step of a small Transformer on CPU (``bench/pretrain.py
--profile``) showed four MXNet 1.9 operators far slower than the arithmetic they do:

- ``LayerNorm`` backward, a chain of generic broadcast/reduce kernels (no oneDNN);
- ``broadcast_add`` of the attention mask, whose backward reduces a gradient onto the mask;
- ``log_softmax`` backward over the vocabulary (oneDNN's reference implementation);
- ``adamw_update`` (BERTAdam), scalar code several times slower than memory bandwidth.

Profiling at two threads later found the attention's five operators (its two batched
products, mask, softmax, dropout) a third of a small model's step, and MXNet's Dropout and
the per-array norms of gradient clipping slow too.

They are C++ operators of an MXNet custom-operator library (``include/mxnet/lib_api.h``), one
source file per group beside this module: ``encoder.cc`` (LayerNorm, attention mask,
dropout, the per-head interleave of the query/key/value weights), ``attention_training.cc``
(the whole self-attention, forward and backward, in float32), ``loss.cc`` (softmax cross entropy), ``optimizer.cc`` (AdamW, the sum of squares of
all gradients), with ``common.h`` and ``library.cc``; two inference operators serve
:mod:`bortkit.quantize`: ``int8_dense.cc``, the int8 dense layer
(:mod:`~bortkit.ops.int8_dense`), and ``attention.cc``, the fused self-attention on bf16
operands. Their loops are in ``tier.cc`` (``*_kernels.h``), compiled once per ISA tier and
chosen at run time by CPUID (:mod:`bortkit.ops.isa`; ``BORTKIT_ISA`` caps it).
:mod:`bortkit.ops.library` compiles them once into a cached, verified library
(``python -m bortkit.ops build``, or on first use; a failed build is remembered, not
retried by every process) and loads it. The Python functions that
call them are in :mod:`~bortkit.ops.encoder`, :mod:`~bortkit.ops.loss` and
:mod:`~bortkit.ops.optimizer`. Without a compiler, or with ``BORTKIT_KERNELS=0``, every
function falls back to MXNet's own operators. Parameters and checkpoints are the same both
ways; results differ by float32 rounding (about 1e-6 relative), and dropout draws other
masks (a counter-based hash here, MXNet's generator there).

Library operators write their gradients (they see no request type), so a parameter read
directly by one must not accumulate (``grad_req="add"``) after the graph is traced:
:func:`~bortkit.ops.encoder.interleave_heads` falls back to MXNet's operators for
parameters that accumulate when traced, and :func:`bortkit.train.make_trainer` refuses to
make the others accumulate later (:func:`writes_gradient`).
"""
from __future__ import annotations

import os
import warnings

from . import library  # MXNet is imported inside its functions

__all__ = ["ENV_SWITCH", "available", "loaded_path", "status", "layer_norm", "mask_scores",
           "dropout", "self_attention", "interleave_heads", "writes_gradient", "softmax_nll",
           "adamw_update", "sum_squares"]

ENV_SWITCH = "BORTKIT_KERNELS"   # "0" turns the fused operators off
_state: dict = {}               # "loaded": bool, "error": str, "path": Path


def enabled() -> bool:
    """False when ``BORTKIT_KERNELS`` turns the fused operators off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def available() -> bool:
    """True when the fused operators are loaded (built on first use). Raises only
    :class:`~bortkit.errors.ConfigError`, for a ``BORTKIT_ISA`` that is not a tier here."""
    if "loaded" in _state:
        return _state["loaded"]
    _state["loaded"] = False
    if not enabled():
        _state["error"] = f"{ENV_SWITCH}=0"
        return False
    try:
        _state.update(loaded=True, path=library.load())
    except Exception as err:  # no compiler, read-only cache, ...: MXNet's operators instead
        _state.update(loaded=False, error=f"{type(err).__name__}: {err}")
        warnings.warn(f"bortkit: fused CPU kernels unavailable ({_state['error']}); using "
                      f"MXNet's operators (slower). Set {ENV_SWITCH}=0 to silence this.",
                      RuntimeWarning, stacklevel=2)
    if _state["loaded"]:
        from .isa import cap_from_env
        try:
            cap_from_env()
        except Exception:  # a bad BORTKIT_ISA: reported each time, nothing half-set
            _state.clear()
            raise
    return _state["loaded"]


def loaded_path():
    """The loaded library's path (None when the fused operators are not loaded)."""
    return _state["path"] if available() else None


def status() -> str:
    """One line for logs and benchmarks: which implementation is in use."""
    if available():
        from .isa import active, host
        capped = f", capped; the host runs {host()}" if active() != host() else ""
        return f"fused kernels, {active()} tier{capped} ({_state['path']})"
    return f"MXNet operators ({_state.get('error', 'not loaded')})"


# The wrappers import MXNet, so they load on first use: ``python -m bortkit.ops --help`` and
# the ISA helpers answer without it.
_WRAPPERS = {"layer_norm": "encoder", "mask_scores": "encoder", "dropout": "encoder",
             "self_attention": "encoder", "interleave_heads": "encoder",
             "writes_gradient": "encoder", "softmax_nll": "loss", "adamw_update": "optimizer",
             "sum_squares": "optimizer"}


def __getattr__(name: str):
    if name in _WRAPPERS:
        import importlib
        return getattr(importlib.import_module(f".{_WRAPPERS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

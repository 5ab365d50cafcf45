"""Structural parameter names of a Gluon block: the names checkpoints store weights under."""
from __future__ import annotations


def named_parameters(block) -> dict:
    """bortkit name -> Gluon Parameter of ``block``; tied parameters appear once, under the
    first (embedding) name; a wrapper's ``network.`` prefix is dropped."""
    out, seen = {}, set()
    for name, param in block._collect_params_with_prefix().items():
        if id(param) in seen:
            continue
        seen.add(id(param))
        out[name[len("network."):] if name.startswith("network.") else name] = param
    return out

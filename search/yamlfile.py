"""The one way bortkit and the search read YAML: bounded, and with YAML 1.2's numbers.

Every YAML reader (search spaces, Θ files, fine-tuning spaces, ``--set``/``--theta`` values)
goes through :func:`load_yaml`, which

- refuses a text larger than :data:`MAX_BYTES`;
- refuses a document whose aliases expand to more than :data:`MAX_NODES` nodes (a "billion
  laughs" file: a few lines whose anchors nest into 10^9 values), counted on the composed
  graph with each anchor's size computed once, so the check itself is linear;
- reads ``1e-4`` as the number YAML 1.2 says it is (PyYAML follows YAML 1.1, where a float
  needs a dot: ``1e-4`` was the string ``'1e-4'``).

Problems are one line of the caller's error type, naming the file and line.
"""
from __future__ import annotations

import os
import re
from typing import Any, Optional, Tuple, Type

import yaml

from .errors import SearchError

__all__ = ["MAX_BYTES", "MAX_NODES", "Loader", "load_yaml"]

#: Largest YAML text read (a space or settings file is a few hundred bytes).
MAX_BYTES = 1 << 20
#: Most nodes a document may hold once its aliases are expanded.
MAX_NODES = 100_000


class Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats (``1e-4``, ``-2E+3``)."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _expanded_size(root: yaml.Node) -> int:
    """Nodes of the document with every alias expanded, each node's size computed once
    (iteratively: a deep document cannot overflow the stack); a node that contains itself
    counts as too many."""
    sizes: dict = {}
    open_nodes: set = set()
    stack = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            open_nodes.discard(key)
            sizes[key] = min(MAX_NODES + 1,
                             1 + sum(sizes[id(child)] for child in _children(node)))
            continue
        if key in sizes:
            continue
        sizes[key] = 0
        open_nodes.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:  # a recursive anchor: infinite
                return MAX_NODES + 1
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_yaml(text: str, path: Optional[os.PathLike | str] = None, what: str = "YAML",
              error: Type[Exception] = SearchError) -> Tuple[Any, Optional[yaml.Node]]:
    """``(data, node)``: the parsed document and its composed node graph (for line
    numbers), or one ``error(problem, path=, line=)`` naming ``what``."""
    if len(text) > MAX_BYTES:
        raise error(f"{what} is {len(text)} characters long; at most {MAX_BYTES} are read",
                    path=path)
    try:
        node = yaml.compose(text, Loader=Loader)
        if node is not None and _expanded_size(node) > MAX_NODES:
            raise error(f"{what} expands to more than {MAX_NODES} values through its "
                        "aliases (*name); write the values out", path=path)
        data = yaml.load(text, Loader=Loader)  # noqa: S506 - Loader is a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        raise error(f"not valid YAML: {err.problem}", path=path,
                    line=None if mark is None else mark.line + 1) from None
    except yaml.YAMLError as err:
        raise error(f"not valid YAML: {err}", path=path) from None
    except RecursionError:  # deeply nested brackets
        raise error(f"not valid YAML: {what} nests too deeply", path=path) from None
    return data, node

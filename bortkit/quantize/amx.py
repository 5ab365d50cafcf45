"""The AMX int8 inference graph: the encoder's dense layers on ``bortkit_int8_dense``.

:func:`amx_symbol` rewrites the folded fp32 graph (:func:`bortkit.quantize.graph.
fold_parameters`): every ``FullyConnected`` node named in ``products`` (the query/key/value
product, the attention output and both FFN products of every layer) becomes a
``bortkit_int8_dense`` node (:mod:`bortkit.ops.int8_dense`) reading the packed int8 weight,
its per-channel scales and column sums, and the fp32 bias; the input is quantized per row
inside the operator (dynamic, so no thresholds). Embeddings, attention scores, softmax,
LayerNorm, residual adds and the task head stay fp32, as in the fp32 graph.
"""
from __future__ import annotations

import json
import warnings
from typing import Sequence

OP = "bortkit_int8_dense"


def amx_symbol(sym, params: dict, products: Sequence[str]) -> tuple:
    """``(symbol, parameters)`` with the ``FullyConnected`` nodes named in ``products``
    on the int8 operator. Raises ``KeyError`` for a name that is not such a node."""
    import mxnet as mx
    from ..ops.int8_dense import pack_weight
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    by_name = {node["name"]: i for i, node in enumerate(nodes)}
    new_params = dict(params)
    for name in products:
        node = nodes[by_name[name]]  # KeyError: not in the graph
        if node["op"] != "FullyConnected" or node.get("attrs", {}).get("flatten") != "False":
            raise KeyError(name)
        weight_name = nodes[node["inputs"][1][0]]["name"]
        weight = params[weight_name].asnumpy()
        units = weight.shape[0]
        packed, scale, colsum = pack_weight(weight)
        inputs = node["inputs"][:2]
        extra = {f"{name}_int8_scale": mx.nd.array(scale, dtype="float32"),
                 f"{name}_int8_colsum": mx.nd.array(colsum, dtype="int32")}
        if len(node["inputs"]) > 2:
            bias_name = nodes[node["inputs"][2][0]]["name"]
        else:
            bias_name = f"{name}_int8_bias"
            extra[bias_name] = mx.nd.zeros(units, dtype="float32")
        new_params[weight_name] = mx.nd.array(packed, dtype="int8")  # read by this node only
        for key in extra:
            by_name[key] = len(nodes)
            nodes.append({"op": "null", "name": key, "inputs": []})
        new_params.update(extra)
        inputs += [[by_name[f"{name}_int8_scale"], 0, 0], [by_name[f"{name}_int8_colsum"], 0, 0],
                   [by_name[bias_name], 0, 0]]
        node.update(op=OP, attrs={"units": str(units)}, inputs=inputs)
    graph["arg_nodes"] = [i for i, node in enumerate(nodes) if node["op"] == "null"]
    # appended variables come after their readers: MXNet needs a topological order
    order = _topological(nodes, graph["heads"])
    index = {old: new for new, old in enumerate(order)}
    graph["nodes"] = [{**nodes[old], "inputs": [[index[i], o, v] for i, o, v in
                                                nodes[old]["inputs"]]} for old in order]
    graph["heads"] = [[index[i], o, v] for i, o, v in graph["heads"]]
    graph["arg_nodes"] = [index[i] for i in graph["arg_nodes"] if i in index]
    graph.pop("node_row_ptr", None)
    return mx.sym.load_json(json.dumps(graph)), new_params


def _topological(nodes: list, heads: list) -> list:
    """Node indices with every input before its reader (depth first from the heads)."""
    order, seen = [], set()
    for i, _, _ in heads:
        stack = [(i, False)]
        while stack:
            j, done = stack.pop()
            if done:
                order.append(j)
                continue
            if j in seen:
                continue
            seen.add(j)
            stack.append((j, True))
            stack.extend((k, False) for k, _, _ in reversed(nodes[j]["inputs"]) if k not in seen)
    return order


def amx_block(sym, params: dict, products: Sequence[str], data_names: Sequence[str]):
    """The rewritten graph as a hybridized Gluon ``SymbolBlock`` (inputs ``data_names``)."""
    import mxnet as mx
    from mxnet.gluon import SymbolBlock
    sym, params = amx_symbol(sym, params, products)
    sym = sym.get_backend_symbol("MKLDNN")  # oneDNN's fp32 fusions (attention products)
    with warnings.catch_warnings():  # "cannot decide type" of the inputs: they are float32
        warnings.simplefilter("ignore", UserWarning)
        block = SymbolBlock(sym, [mx.sym.var(n) for n in data_names])
    block.collect_params().load_dict({k: v for k, v in params.items()
                                      if k in block.collect_params()},
                                     ctx=mx.cpu(), cast_dtype=True, dtype_source="saved")
    block.hybridize(static_alloc=True, static_shape=True)
    return block

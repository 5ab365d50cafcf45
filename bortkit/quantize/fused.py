"""The fused int8 inference graph: the encoder's dense layers on ``bortkit_int8_dense``.

:func:`fused_symbol` rewrites the folded fp32 graph (:func:`bortkit.quantize.graph.
fold_parameters`): every ``FullyConnected`` node named in ``products`` (the query/key/value
product, the attention output and both FFN products of every layer) becomes a
``bortkit_int8_dense`` node (:mod:`bortkit.ops.int8_dense`) reading the packed int8 weight
(the active tier's weight levels: 63 at avx2, else 127), its per-channel scales and column
sums, and the fp32 bias; the input is quantized per row inside the operator (dynamic, so no
thresholds). Where such a product feeds only a residual add that feeds only a LayerNorm, the
operator also does the add and the LayerNorm (one pass over the row block while it is in
cache); where it feeds only an exact GELU (the FFN's first product), the operator applies
it.

Each dot-product self-attention (scores, mask, softmax and weighted values, four operators
around a (B, H, T, T) tensor, or the fused training operator ``bortkit_attention`` the
encoder uses when the operators are loaded) becomes one ``bortkit_self_attention`` node
(``bortkit/ops/attention.cc``: both products on bf16 operands, the softmax in fp32); attention
variants with other score terms keep their operators. Embeddings and the task head stay
fp32, as in the fp32 graph. Dropouts, identities at inference, are skipped.
"""
from __future__ import annotations

import json
import warnings
from typing import Sequence

OP = "bortkit_int8_dense"
ATTENTION_OP = "bortkit_self_attention"
TRAINING_ATTENTION_OP = "bortkit_attention"  # the encoder's graph with the fused operators
DROPOUT_OPS = ("Dropout", "bortkit_dropout")    # MXNet's, and the fused operator


def fused_symbol(sym, params: dict, products: Sequence[str]) -> tuple:
    """``(symbol, parameters)`` with the ``FullyConnected`` nodes named in ``products``
    on the int8 operator. Raises ``KeyError`` for a name that is not such a node."""
    import mxnet as mx
    from ..ops.int8_dense import default_levels, pack_weight
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    by_name = {node["name"]: i for i, node in enumerate(nodes)}
    new_params = dict(params)
    levels = default_levels()
    _skip_dropouts(nodes, graph["heads"])
    for name in products:
        node = nodes[by_name[name]]  # KeyError: not in the graph
        if node["op"] != "FullyConnected" or node.get("attrs", {}).get("flatten") != "False":
            raise KeyError(name)
        weight_name = nodes[node["inputs"][1][0]]["name"]
        weight = params[weight_name].asnumpy()
        units = weight.shape[0]
        packed, scale, colsum = pack_weight(weight, levels)
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
        node.update(op=OP, attrs={"units": str(units), "weight_levels": str(levels)},
                    inputs=inputs)
        if not _fuse_gelu(nodes, by_name[name], graph["heads"]):
            _fuse_add_norm(nodes, by_name[name], graph["heads"])
    for index, node in enumerate(nodes):
        if node["op"] == "_contrib_interleaved_matmul_selfatt_valatt":
            _fuse_attention(nodes, index, graph["heads"])
        elif node["op"] == TRAINING_ATTENTION_OP:
            _attention_for_inference(nodes, index, graph["heads"])
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


def _readers(nodes: list, heads: list, index: int) -> list:
    """(reader node index or None for a graph output, output slot) of node ``index``."""
    found = [(j, o) for j, node in enumerate(nodes) for i, o, _ in node["inputs"] if i == index]
    return found + [(None, o) for i, o, _ in heads if i == index]


def _fuse_gelu(nodes: list, dense: int, heads: list) -> bool:
    """dense -> LeakyReLU(gelu), the dense read once: the activation node becomes the dense
    operator with ``activation="gelu"``; the dense is left unread. True when fused."""
    readers = _readers(nodes, heads, dense)
    if len(readers) != 1 or readers[0][0] is None:
        return False
    act = readers[0][0]
    if nodes[act]["op"] != "LeakyReLU" or nodes[act].get("attrs", {}).get("act_type") != "gelu":
        return False
    nodes[act] = {"op": OP, "name": nodes[act]["name"],
                  "attrs": {**nodes[dense]["attrs"], "activation": "gelu"},
                  "inputs": nodes[dense]["inputs"]}
    return True


def _fuse_add_norm(nodes: list, dense: int, heads: list) -> None:
    """dense -> elemwise_add(., residual) -> bortkit_layer_norm (each read
    once, the LayerNorm's output 0 only): the LayerNorm node becomes the dense operator
    with the residual, gamma and beta; the others are left unread."""
    readers = _readers(nodes, heads, dense)
    if len(readers) != 1 or readers[0][0] is None or \
            nodes[readers[0][0]]["op"] != "elemwise_add":
        return
    add = readers[0][0]
    norm_readers = _readers(nodes, heads, add)
    if len(norm_readers) != 1 or norm_readers[0][0] is None:
        return
    norm = norm_readers[0][0]
    if nodes[norm]["op"] != "bortkit_layer_norm" or nodes[norm]["inputs"][0][0] != add or \
            any(o != 0 for _, o in _readers(nodes, heads, norm)):
        return
    residual = [entry for entry in nodes[add]["inputs"] if entry[0] != dense]
    if len(residual) != 1:
        return
    attrs = {**nodes[dense]["attrs"], "norm": "1", "eps": nodes[norm]["attrs"].get("eps", "1e-5")}
    nodes[norm] = {"op": OP, "name": nodes[norm]["name"], "attrs": attrs,
                   "inputs": nodes[dense]["inputs"] + residual + nodes[norm]["inputs"][1:]}


# From valatt's probabilities back to the scores, each read once (dropouts are skipped).
ATTENTION_CHAIN = ("Reshape", "softmax", "bortkit_mask_scores", "Reshape",
                   "_contrib_interleaved_matmul_selfatt_qk")


def _fuse_attention(nodes: list, valatt: int, heads: list) -> None:
    """valatt(qkv, Reshape(softmax(bortkit_mask_scores(Reshape(qk(qkv)), mask))))
    with every intermediate read once: the valatt node becomes ``bortkit_self_attention(qkv,
    mask)``; the others are left unread. Any other graph is left as it is."""
    found, entry = {}, nodes[valatt]["inputs"][1]
    for op in ATTENTION_CHAIN:
        source = entry[0]
        if nodes[source]["op"] != op or len(_readers(nodes, heads, source)) != 1:
            return
        found[op] = source
        entry = nodes[source]["inputs"][0]
    qkv = nodes[valatt]["inputs"][0]
    qk = nodes[found["_contrib_interleaved_matmul_selfatt_qk"]]
    mask = nodes[found["bortkit_mask_scores"]]
    heads_attr = nodes[valatt].get("attrs", {}).get("heads")
    if qk["inputs"][0] != qkv or qk.get("attrs", {}).get("heads") != heads_attr or \
            nodes[found["softmax"]].get("attrs", {}) != {"axis": "-1"}:
        return
    nodes[valatt] = {"op": ATTENTION_OP, "name": nodes[valatt]["name"],
                     "attrs": {"heads": heads_attr, "fill": mask["attrs"]["fill"]},
                     "inputs": [qkv, mask["inputs"][1]]}


def _attention_for_inference(nodes: list, index: int, heads: list) -> None:
    """``bortkit_attention(qkv, mask, training)`` (the training operator the encoder uses
    when the fused operators are loaded), read for its context only, becomes
    ``bortkit_self_attention(qkv, mask)``; read for its probabilities too, it stays."""
    if any(o != 0 for _, o in _readers(nodes, heads, index)):
        return
    node = nodes[index]
    attrs = node.get("attrs", {})
    nodes[index] = {"op": ATTENTION_OP, "name": node["name"],
                    "attrs": {"heads": attrs["heads"], "fill": attrs["fill"]},
                    "inputs": node["inputs"][:2]}


def _skip_dropouts(nodes: list, heads: list) -> None:
    """Readers of a dropout (an identity at inference, but a copy) read its input instead,
    before the fusions, so that they see the products' real readers; a ``bortkit_dropout``
    whose seed is read stays."""
    for index, node in enumerate(nodes):
        if node["op"] not in DROPOUT_OPS or any(o != 0 for _, o in _readers(nodes, heads, index)):
            continue
        source = node["inputs"][0]
        for reader in nodes:
            reader["inputs"] = [source if i == index else [i, o, v]
                                for i, o, v in reader["inputs"]]
        heads[:] = [source if i == index else [i, o, v] for i, o, v in heads]
        node["inputs"] = []  # unread now: a reader of its input no more


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


def fused_block(sym, params: dict, products: Sequence[str], data_names: Sequence[str]):
    """The rewritten graph as a hybridized Gluon ``SymbolBlock`` (inputs ``data_names``)."""
    import mxnet as mx
    from mxnet.gluon import SymbolBlock
    sym, params = fused_symbol(sym, params, products)
    sym = sym.get_backend_symbol("MKLDNN")  # oneDNN's fp32 fusions (attention products)
    with warnings.catch_warnings():  # "cannot decide type" of the inputs: they are float32
        warnings.simplefilter("ignore", UserWarning)
        block = SymbolBlock(sym, [mx.sym.var(n) for n in data_names])
    block.collect_params().load_dict({k: v for k, v in params.items()
                                      if k in block.collect_params()},
                                     ctx=mx.cpu(), cast_dtype=True, dtype_source="saved")
    block.hybridize(static_alloc=True, static_shape=True)
    return block

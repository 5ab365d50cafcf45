"""The inference graph of a family model and its oneDNN int8 form, as MXNet symbols.

Three steps, each a function (:class:`bortkit.quantize.Int8Graph` strings them together):

1. :func:`fold_parameters` — every parameter-only subgraph of the fp32 symbol becomes a
   ready parameter: the training graph builds the interleaved (3U, U) query/key/value
   weight and (3U,) bias from three Dense layers on every call, and copies each
   LayerNorm's gamma/beta; the inference graph stores them once.
2. :func:`collect_thresholds` — run the fp32 graph on calibration batches and record the
   min/max of every tensor the int8 graph quantizes ("naive" calibration).
3. :func:`quantize_symbol` — MXNet's quantization pass ("smart" mode, per-channel weights)
   with those thresholds, fused by oneDNN's subgraph backend, as a Gluon ``SymbolBlock``;
   :func:`product_inputs` finds the backend nodes to keep in fp32 and the tensors they read.

Thresholds are keyed by the names of the backend graph's nodes; the names are a function of
the model's config and MXNet's passes, so :func:`quantize_symbol` refuses a record that
lacks a tensor the graph needs.
"""
from __future__ import annotations

import json
import warnings
from typing import Sequence

BACKEND = "MKLDNN_QUANTIZE"   # MXNet's oneDNN subgraph backend for quantization
QUANTIZE_OPTIONS = dict(quantized_dtype="auto", quantize_mode="smart",
                        quantize_granularity="channel-wise")


def fold_parameters(sym, params: dict, suffix: str = "_folded") -> tuple:
    """Replace every subgraph that reads parameters only (no data input) by one new
    parameter holding its value: ``NAME_weight``/``NAME_bias`` when it feeds the
    ``FullyConnected`` node NAME (the interleaved query/key/value product), else the folded
    node's name + ``suffix``. Returns ``(symbol, parameters)``; the outputs are unchanged
    (hand-written: MXNet 1.9 has no constant folding over parameters).
    """
    import mxnet as mx
    graph = json.loads(sym.tojson())
    nodes = graph["nodes"]
    constant = []
    for node in nodes:
        if node["op"] == "null":
            constant.append(node["name"] in params)
        else:
            constant.append(all(constant[i] for i, _, _ in node["inputs"]))
    # a folded node is a constant operator whose output a non-constant node (or the graph) reads
    read = {(i, o) for n, c in zip(nodes, constant) if not c for i, o, _ in n["inputs"]}
    read |= {(i, o) for i, o, _ in graph["heads"]}
    frontier = sorted({(i, o) for i, o in read if constant[i] and nodes[i]["op"] != "null"})
    if not frontier:
        return sym, dict(params)
    internals = sym.get_internals()
    outputs = {name: i for i, name in enumerate(internals.list_outputs())}
    values = {}
    for i, o in frontier:
        node = nodes[i]
        name = f"{node['name']}_output"
        part = internals[outputs[name if name in outputs else f"{name}{o}"]]
        arguments = {k: params[k] for k in part.list_arguments()}
        values[(i, o)] = part.eval(ctx=mx.cpu(), **arguments)[0]
    # rebuild the graph: folded outputs become variables, unread nodes are dropped
    new_nodes, index, new_params = [], {}, {}

    def variable(key, reader=None, slot=None):
        if key not in index:
            name = f"{nodes[key[0]]['name']}{suffix}" + (f"{key[1]}" if key[1] else "")
            if reader is not None and reader["op"] == "FullyConnected" and slot in (1, 2):
                name = f"{reader['name']}_{('weight', 'bias')[slot - 1]}"  # MXNet's names
            unique, n = name, 1  # a block called twice names its nodes twice (dropout)
            while unique in new_params:
                unique, n = f"{name}_{n}", n + 1
            name = unique
            index[key] = len(new_nodes)
            new_nodes.append({"op": "null", "name": name, "inputs": []})
            new_params[name] = values[key]
        return [index[key], 0, 0]

    remap = {}
    kept = {i for i, _ in read}  # a parameter stays when a data-dependent node reads it
    for i, (node, c) in enumerate(zip(nodes, constant)):
        if c and not (node["op"] == "null" and i in kept):
            continue
        inputs = []
        for slot, (j, o, v) in enumerate(node["inputs"]):
            if (j, o) in values:
                inputs.append(variable((j, o), node, slot))
            else:
                inputs.append([remap[j], o, v])
        remap[i] = len(new_nodes)
        new_nodes.append({**node, "inputs": inputs})
    heads = [variable((i, o)) if (i, o) in values else [remap[i], o, v]
             for i, o, v in graph["heads"]]
    for i, node in enumerate(nodes):  # the parameters still read
        if node["op"] == "null" and node["name"] in params and i in remap:
            new_params[node["name"]] = params[node["name"]]
    folded = {"nodes": new_nodes, "heads": heads,
              "arg_nodes": [k for k, n in enumerate(new_nodes) if n["op"] == "null"],
              "attrs": graph.get("attrs", {})}
    return mx.sym.load_json(json.dumps(folded)), new_params


def _quantization_pass(sym, params: dict, exclude: Sequence[str]) -> tuple:
    """(fp32 backend symbol, int8 symbol without thresholds, collector of the tensors that
    need a threshold) from MXNet's quantization pass."""
    import mxnet as mx
    from mxnet.contrib.quantization import quantize_graph
    backend = sym.get_backend_symbol(BACKEND)
    qsym, _, _, collector = quantize_graph(
        backend, params, {}, ctx=mx.cpu(), excluded_sym_names=list(exclude),
        calib_mode="naive", **QUANTIZE_OPTIONS)
    return backend, qsym, collector


def collect_thresholds(sym, params: dict, batches: Sequence[dict],
                       exclude: Sequence[str] = ()) -> dict:
    """Run the fp32 backend graph on ``batches`` (dicts of input name -> (B, T) array, one
    shape) and return ``{tensor name: (min, max)}`` over all of them ("naive" calibration)."""
    import mxnet as mx
    backend, _, collector = _quantization_pass(sym, params, exclude)
    arrays = {k: mx.nd.array(v, dtype="float32") for k, v in batches[0].items()}
    executor = backend.bind(mx.cpu(), args={**params, **arrays}, grad_req="null")
    executor.set_monitor_callback(collector.collect, monitor_all=True)
    for batch in batches:
        for name, value in batch.items():
            executor.arg_dict[name][:] = value
        executor.forward(is_train=False)
        mx.nd.waitall()
    return {name: (float(low), float(high))
            for name, (low, high) in sorted(collector.min_max_dict.items())}


def required_thresholds(sym, params: dict, exclude: Sequence[str] = ()) -> list:
    """The tensors whose thresholds :func:`quantize_symbol` needs."""
    return list(_quantization_pass(sym, params, exclude)[2].include_layer)


def quantize_symbol(sym, params: dict, thresholds: dict, data_names: Sequence[str],
                    exclude: Sequence[str] = ()):
    """The int8 graph of ``sym`` with ``thresholds`` as a hybridized Gluon ``SymbolBlock``
    (inputs ``data_names``). Raises ``KeyError`` naming a tensor without a threshold."""
    import mxnet as mx
    from mxnet.contrib.quantization import calib_graph
    from mxnet.gluon import SymbolBlock
    _, qsym, collector = _quantization_pass(sym, params, exclude)
    for name in collector.include_layer:
        if name not in thresholds:
            raise KeyError(name)
    collector.min_max_dict = {k: tuple(thresholds[k]) for k in collector.include_layer}
    qsym, qparams, _ = calib_graph(qsym, params, {}, collector, calib_mode="naive",
                                   quantized_dtype=QUANTIZE_OPTIONS["quantized_dtype"],
                                   logger=None)
    qsym = qsym.get_backend_symbol(BACKEND)
    with warnings.catch_warnings():  # "cannot decide type" of the inputs: they are float32
        warnings.simplefilter("ignore", UserWarning)
        block = SymbolBlock(qsym, [mx.sym.var(n) for n in data_names])
    block.collect_params().load_dict(qparams, ctx=mx.cpu(), cast_dtype=True,
                                     dtype_source="saved")
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def product_inputs(sym, op_names: Sequence[str]) -> dict:
    """For each operator name in ``op_names`` (a product of the fp32 graph):
    ``(backend node, threshold key of the tensor it reads first)`` in the backend graph, where
    oneDNN fuses operators into subgraph nodes. Raises ``KeyError`` for a name the graph
    does not hold."""
    backend = sym.get_backend_symbol(BACKEND)
    outputs = set(backend.get_internals().list_outputs())
    nodes = json.loads(backend.tojson())["nodes"]
    found = {}
    for node in nodes:
        inner = {m["name"] for sub in node.get("subgraphs", []) for m in sub["nodes"]}
        for name in set(op_names) & (inner | {node["name"]}):
            source, index, _ = node["inputs"][0]
            key = f"{nodes[source]['name']}_output"
            found[name] = (node["name"], key if key in outputs else f"{key}{index}")
    for name in op_names:
        if name not in found:
            raise KeyError(name)
    return found

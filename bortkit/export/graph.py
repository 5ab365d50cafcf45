"""The ONNX graph of a BERT-family checkpoint, written node by node from its weights.

The graph uses ONNX Runtime's fused transformer operators (domain ``com.microsoft``) where
they compute exactly what bortkit's blocks compute, so ORT needs no pattern matching to
run it fast and its dynamic int8 quantizer maps them to their integer forms
(``Attention`` -> ``QAttention``, ``MatMul`` -> ``DynamicQuantizeMatMul``):

- ``Attention``: the three projections as one (U, 3U) product, scaled dot-product over H
  heads with the (B, T) 0/1 mask (padded keys get :data:`~bortkit.model.blocks.MASK_FILL`);
- ``MultiHeadAttention``: the same scaled dot-product, for queries projected apart (below);
- ``SkipLayerNormalization``: LN(x + f(x) + bias) of every post-LN residual;
- ``BiasGelu`` (exact erf GELU) / ``FastGelu`` (tanh GELU) after the first FFN product.

A classifier whose head reads only the first token (pooling ``cls``: the pooler, or Bort's
tanh dense over h[:, 0]) gets the last layer for position 0 alone: its keys and values for
every token (a product each), its query, attention output, residuals and FFN for x[:, 0:1]
(``Slice``), the attention a ``MultiHeadAttention`` of one query row, so the layer's
(B, 1, U) output is all the head reads (about 15 % of Bort's multiply-adds saved, 13 % of
MiniLM-L6's). The logits are the same (to float rounding); the
encoder alone (no head) and mean pooling keep every token.

Everything else is standard ONNX (opset 17: ``LayerNormalization``, ``Gather``, ``Range``,
``Slice``). Each ``MatMul`` and ``Attention`` node is named after its weights
(``encoder.0.ffn.ffn_2``, ``encoder.0.attention.qkv``; the first-token layer's projections
``encoder.N.attention.query``/``key``/``value``; a factored matrix's first factor
``<name>.down``), so the int8 export can keep chosen products in fp32 by name. Batch and
length are dynamic. Shapes: B batch, T length, U ``units``, E ``embed_size``, F
``ffn_units``, C labels.
"""
from __future__ import annotations

import numpy as np

from ..checkpoint import State, TaskHead
from ..errors import ConfigError
from ..model.blocks import MASK_FILL

OPSET = 17
MS_DOMAIN = "com.microsoft"
ACTIVATIONS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}


class GraphBuilder:
    """Collects nodes and initializers; ``node(...)`` returns the output name(s)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors
        self.nodes: list = []
        self.initializers: dict = {}
        self._count = 0

    def weight(self, name: str, transform=None) -> str:
        """A checkpoint tensor (optionally transformed, e.g. transposed) as an initializer."""
        key = name if transform is None else f"{name}.{transform.__name__}"
        if key not in self.initializers:
            value = self.tensors[name] if transform is None else transform(self.tensors[name])
            self.initializers[key] = np.ascontiguousarray(value, dtype=np.float32)
        return key

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers[name] = np.asarray(value)
        return name

    def node(self, op: str, inputs: list, outputs: int = 1, domain: str = "",
             name: str | None = None, **attrs):
        """Append one node; ``name`` (default ``Op_N``) is how quantization refers to it."""
        from onnx import helper
        self._count += 1
        names = [f"{op.lower()}_{self._count}" + (f"_{i}" if outputs > 1 else "")
                 for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=name or f"{op}_{self._count}",
                                           domain=domain, **attrs))
        return names[0] if outputs == 1 else names

    def dense(self, x: str, prefix: str, bias: bool = True) -> str:
        """x @ W.T (+ b) for a Gluon Dense stored (out, in); the MatMul is named ``prefix``.
        A matrix stored as two factors (``low_rank``) is two MatMuls, ``prefix.down`` (r, in)
        then ``prefix`` (out, r), as :class:`~bortkit.model.blocks.LowRankDense` computes."""
        if f"{prefix}.down.weight" in self.tensors:
            x = self.node("MatMul", [x, self.weight(f"{prefix}.down.weight", transposed)],
                          name=f"{prefix}.down")
            y = self.node("MatMul", [x, self.weight(f"{prefix}.up.weight", transposed)],
                          name=prefix)
        else:
            y = self.node("MatMul", [x, self.weight(f"{prefix}.weight", transposed)],
                          name=prefix)
        return self.node("Add", [y, self.weight(f"{prefix}.bias")]) if bias else y


def transposed(w: np.ndarray) -> np.ndarray:
    return w.T


def qkv_weight(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Gluon (U, U) query/key/value weights -> ORT Attention's (U, 3U) [Q | K | V]."""
    return np.concatenate([q.T, k.T, v.T], axis=1)


def full_weight(tensors: dict, prefix: str) -> np.ndarray:
    """The (out, in) weight of a matrix, its two factors multiplied back when it has them
    (ORT's Attention takes one (U, 3U) weight)."""
    if f"{prefix}.down.weight" in tensors:
        return tensors[f"{prefix}.up.weight"] @ tensors[f"{prefix}.down.weight"]
    return tensors[f"{prefix}.weight"]


def onnx_layout_problem(config, meta: dict, include_head: bool = True):
    """Why the ONNX graph cannot hold a checkpoint faithfully (None: it can), so the export
    refuses it instead of dropping parts: per-task adapters, composite attention and the
    heads of a multi-task model have no nodes here."""
    if config.adapter != "none":
        return (f"adapter {config.adapter!r} ({config.num_tasks} task(s)) has no ONNX graph: "
                f"the export would drop the adapters and the per-task heads")
    if config.attention != "dot_product":
        return f"ONNX export supports attention 'dot_product', not {config.attention!r}"
    if "_multitask" in meta and include_head:
        tasks = ", ".join(meta["_multitask"].get("tasks", ())) or "several tasks"
        return (f"a multi-task model ({tasks}) has one head per task, which one ONNX graph "
                f"does not hold; pass --no-head to export the shared encoder alone")
    return None


def _embeddings(g: GraphBuilder, config) -> str:
    x = g.node("Gather", [g.weight("embeddings.word_embed.weight"), "input_ids"])  # (B, T, E)
    if config.position_embedding == "learned":
        length = g.node("Gather", [g.node("Shape", ["input_ids"]),
                                   g.constant("axis_one", np.array(1, np.int64))])
        offset = g.constant("position_offset", np.array(config.position_offset, np.int64))
        positions = g.node("Range", [offset, g.node("Add", [length, offset]),
                                     g.constant("one", np.array(1, np.int64))])  # (T,)
        x = g.node("Add", [x, g.node("Gather", [g.weight("embeddings.position_embed.weight"),
                                                positions])])
    if config.type_vocab_size:
        x = g.node("Add", [x, g.node("Gather", [g.weight("embeddings.token_type_embed.weight"),
                                                "token_type_ids"])])
    x = _layer_norm(g, x, "embeddings.layer_norm", config.layer_norm_eps)
    if config.factorized_embeddings:
        x = g.dense(x, "embeddings.projection")                                  # (B, T, U)
    return x


def _layer_norm(g: GraphBuilder, x: str, prefix: str, eps: float) -> str:
    return g.node("LayerNormalization", [x, g.weight(f"{prefix}.gamma"),
                                         g.weight(f"{prefix}.beta")], axis=-1, epsilon=eps)


def _attention(g: GraphBuilder, x: str, mask: str, prefix: str, config) -> str:
    """(B, T, U) -> context (B, T, U), before the output projection."""
    t = g.tensors
    name = f"{prefix}.qkv"
    g.initializers[f"{name}.weight"] = qkv_weight(
        *(full_weight(t, f"{prefix}.{p}") for p in ("query", "key", "value")))
    g.initializers[f"{name}.bias"] = np.concatenate(
        [t[f"{prefix}.{p}.bias"] for p in ("query", "key", "value")])
    return g.node("Attention", [x, f"{name}.weight", f"{name}.bias", mask], domain=MS_DOMAIN,
                  name=name, num_heads=config.num_heads, mask_filter_value=MASK_FILL)


def _ffn_inner(g: GraphBuilder, x: str, prefix: str, activation: str) -> str:
    """Dense(U->F) + activation, with the bias folded into the fused GELU ops."""
    h = g.dense(x, f"{prefix}.ffn_1", bias=False)
    bias = g.weight(f"{prefix}.ffn_1.bias")
    if activation == "gelu":
        return g.node("BiasGelu", [h, bias], domain=MS_DOMAIN)
    if activation == "gelu_tanh":
        return g.node("FastGelu", [h, bias], domain=MS_DOMAIN)
    h = g.node("Add", [h, bias])
    return h if activation == "identity" else g.node(ACTIVATIONS[activation], [h])


def _skip_layer_norm(g: GraphBuilder, x: str, skip: str, bias_of: str, norm: str,
                     eps: float) -> str:
    """LN(x + bias + skip) in one fused node (post-LN residual)."""
    return g.node("SkipLayerNormalization",
                  [x, skip, g.weight(f"{norm}.gamma"), g.weight(f"{norm}.beta"),
                   g.weight(f"{bias_of}.bias")], domain=MS_DOMAIN, epsilon=eps)


def _first_rows(g: GraphBuilder, x: str) -> str:
    """(B, T, U) -> (B, 1, U): x[:, 0:1]."""
    return g.node("Slice", [x, g.constant("slice_start", np.array([0], np.int64)),
                            g.constant("slice_end", np.array([1], np.int64)),
                            g.constant("slice_axis", np.array([1], np.int64))])


def _first_position_attention(g: GraphBuilder, x: str, mask: str, prefix: str, config) -> str:
    """(B, T, U) -> the context of position 0 (B, 1, U), before the output projection: the
    query of x[:, 0:1] against the keys and values of every token, masked as ``Attention``.
    The projections are three ``MatMul`` named ``prefix.query``/``key``/``value`` (factored
    ones as their two factors); their biases go into the attention node."""
    query = g.dense(_first_rows(g, x), f"{prefix}.query", bias=False)             # (B, 1, U)
    key = g.dense(x, f"{prefix}.key", bias=False)                                 # (B, T, U)
    value = g.dense(x, f"{prefix}.value", bias=False)
    bias = g.constant(f"{prefix}.qkv.bias", np.concatenate(
        [g.tensors[f"{prefix}.{p}.bias"] for p in ("query", "key", "value")]).astype(np.float32))
    return g.node("MultiHeadAttention", [query, key, value, bias, mask], domain=MS_DOMAIN,
                  name=f"{prefix}.first_position", num_heads=config.num_heads,
                  mask_filter_value=MASK_FILL)


def _layer(g: GraphBuilder, x: str, mask: str, i: int, config,
           first_position: bool = False) -> str:
    """Layer ``i``: (B, T, U) -> (B, T, U); with ``first_position`` -> (B, 1, U), position 0
    alone (its attention still reads every token's keys and values)."""
    p, eps = f"encoder.{i}", config.layer_norm_eps

    def attend(h: str) -> str:
        if first_position:
            return _first_position_attention(g, h, mask, f"{p}.attention", config)
        return _attention(g, h, mask, f"{p}.attention", config)

    residual = _first_rows(g, x) if first_position else x
    if config.layer_norm_position == "post":
        attended = g.dense(attend(x), f"{p}.attention.output", bias=False)
        x = _skip_layer_norm(g, attended, residual, f"{p}.attention.output",
                             f"{p}.attention_norm", eps)
        inner = _ffn_inner(g, x, f"{p}.ffn", config.activation)
        out = g.dense(inner, f"{p}.ffn.ffn_2", bias=False)
        return _skip_layer_norm(g, out, x, f"{p}.ffn.ffn_2", f"{p}.ffn_norm", eps)
    normed = _layer_norm(g, x, f"{p}.attention_norm", eps)
    x = g.node("Add", [residual, g.dense(attend(normed), f"{p}.attention.output")])
    inner = _ffn_inner(g, _layer_norm(g, x, f"{p}.ffn_norm", eps), f"{p}.ffn", config.activation)
    return g.node("Add", [x, g.dense(inner, f"{p}.ffn.ffn_2")])


def _first_token(g: GraphBuilder, sequence: str) -> str:
    """(B, T, U) -> (B, U): h[:, 0] (T may be 1: the first-token last layer's output)."""
    return g.node("Gather", [sequence, g.constant("zero", np.array(0, np.int64))], axis=1)


def _head(g: GraphBuilder, sequence: str, pooled, mask: str, pooling: str) -> str:
    """:class:`~bortkit.model.blocks.ClassificationHead` in inference mode -> (B, C)."""
    if pooling == "mean":
        weights = g.node("Unsqueeze", [g.node("Cast", [mask], to=1),
                                       g.constant("axis_two", np.array([2], np.int64))])
        total = g.node("ReduceSum", [g.node("Mul", [sequence, weights]),
                                     g.constant("axes_one", np.array([1], np.int64))],
                       keepdims=0)                                                 # (B, U)
        count = g.node("ReduceSum", [weights, "axes_one"], keepdims=0)             # (B, 1)
        features = g.node("Div", [total, count])
    elif pooled is None:  # no pooler (Bort): the head's own tanh dense over h[:, 0]
        features = g.node("Tanh", [g.dense(_first_token(g, sequence), "head.dense")])
    else:
        features = pooled
    return g.dense(features, "head.out")


def build_graph(state: State, head: TaskHead | None = None):
    """The fp32 ``onnx.ModelProto`` of ``state`` (a checkpoint read by
    :func:`bortkit.checkpoint.read_state`). ``head`` is the checkpoint's task head
    (``TaskHead.from_meta(state.meta, ...)``); without one the outputs are
    ``last_hidden_state`` and, with a pooler, ``pooler_output``; with one, ``logits`` (B, C)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    config = state.config
    problem = onnx_layout_problem(config, state.meta, include_head=head is not None)
    if problem:
        raise ConfigError(problem, path=state.weights_path)
    tensors = dict(state.tensors)
    for matrix in config.low_rank or {}:  # a factored matrix's bias is its up factor's
        tensors[f"{matrix}.bias"] = tensors[f"{matrix}.up.bias"]
    g = GraphBuilder(tensors)
    int_input = lambda name: helper.make_tensor_value_info(  # noqa: E731
        name, TensorProto.INT64, ["batch", "length"])
    inputs = [int_input("input_ids")]
    if config.type_vocab_size:
        inputs.append(int_input("token_type_ids"))
    inputs.append(int_input("attention_mask"))

    x = _embeddings(g, config)                                                 # (B, T, U)
    mask = g.node("Cast", ["attention_mask"], to=TensorProto.INT32)             # (B, T)
    # A head that reads h[:, 0] alone needs the last layer for position 0 alone: x is then
    # (B, 1, U) after it.
    reads_first = head is not None and head.pooling == "cls"
    last = config.num_layers - 1
    for i in range(config.num_layers):
        x = _layer(g, x, mask, i, config, first_position=reads_first and i == last)
    if config.layer_norm_position == "pre":
        x = _layer_norm(g, x, "final_norm", config.layer_norm_eps)
    pooled = None
    if config.use_pooler:
        pooled = g.node("Tanh", [g.dense(_first_token(g, x), "pooler.dense")])

    float_output = lambda name, dims: helper.make_tensor_value_info(  # noqa: E731
        name, TensorProto.FLOAT, dims)
    if head is not None:
        logits = _head(g, x, pooled, "attention_mask", head.pooling)
        g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))
        outputs = [float_output("logits", ["batch", head.num_labels])]
    else:
        g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
        outputs = [float_output("last_hidden_state", ["batch", "length", config.units])]
        if pooled is not None:
            g.nodes.append(helper.make_node("Identity", [pooled], ["pooler_output"]))
            outputs.append(float_output("pooler_output", ["batch", config.units]))

    initializers = [numpy_helper.from_array(v, name=k) for k, v in g.initializers.items()]
    graph = helper.make_graph(g.nodes, "bortkit", inputs, outputs, initializers)
    model = helper.make_model(graph, producer_name="bortkit",
                              opset_imports=[helper.make_opsetid("", OPSET),
                                             helper.make_opsetid(MS_DOMAIN, 1)])
    model.ir_version = 8  # readable by every ONNX Runtime that has these contrib ops
    onnx.checker.check_model(model, full_check=False)
    return model

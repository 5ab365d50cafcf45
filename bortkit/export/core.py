"""Export a checkpoint to an ONNX directory, and run such a directory with ONNX Runtime.

An exported directory holds::

    model.onnx       the graph of :mod:`bortkit.export.graph` (int8 weights with --quantize)
    config.json      the checkpoint's config and head record, plus "_onnx" (inputs, outputs,
                     quantization, products kept in fp32)
    provenance.json  bortkit version, command line, source checkpoint, time
    tokenizer files  copied from the checkpoint

It is written under a temporary name and renamed into place. An existing ``output_dir`` is
replaced only with ``--overwrite``, and only when it holds nothing but files bortkit writes;
the model's own folder (or one inside it, or holding it) is never an output.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence


from ..checkpoint import TaskHead, read_state
from ..checkpoint.card import write_card
from ..checkpoint.core import (CONFIG, PROVENANCE, TOKENIZER_FILES, card_name, check_output_dir,
                               export_max_length, provenance, set_model_max_length)
from ..errors import CheckpointError, ConfigError
from ..inference import ONNX_FILE, OnnxModel, session  # noqa: F401  (re-exported)
from ..io import atomic_directory, write_json
from ..rundir import writing
from ..resolve import resolve_model_path

FORMATS = ("huggingface", "onnx")
QUANTIZATIONS = ("int8",)


def check_options(model: os.PathLike | str, output_dir: os.PathLike | str,
                  format: str = "onnx", quantize: Optional[str] = None,
                  overwrite: bool = False) -> None:
    """Every check that needs no work: run before anything is read or built."""
    if format not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize must be one of {', '.join(QUANTIZATIONS)}, "
                          f"got {quantize!r}")
    if quantize is not None and format != "onnx":
        raise ConfigError(f"--quantize applies to --format onnx, not {format}")
    source = Path(resolve_model_path(model))
    if not source.exists():
        raise CheckpointError("checkpoint not found", path=model)
    check_output_dir(output_dir, source, overwrite)  # never the source, never foreign files
    if format != "onnx":
        return
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the 'export' extra: "
                          "pip install 'bortkit[export]'") from None


# Products the int8 export keeps in fp32, named after their weights (graph.py names each
# MatMul and Attention node so). Why this one: the first layer's FFN output product reads
# GELU outputs with one outlier neuron (up to 24 where the median neuron peaks at 1.2 in
# all-MiniLM-L6-v2), which leaves the others ~13 levels of a per-tensor dynamic uint8 scale.
# In fp32 it took three fine-tuned MiniLM SST-2 classifiers from 98.97/99.20/98.97 % to
# 99.31/99.54/99.20 % agreement with fp32 on all of dev and from 98.98/98.93/99.43 % to
# 99.38/99.40/99.50 % on 6,000 held-out training sentences, for 1.06-1.09x all-int8's time
# (0.53-0.57x fp32's) at 8 x 128; the next best single product did a third as much
# (bench/onnx_int8_agreement.py, bench/results/onnx-int8-agreement*.json).
INT8_FP32_PRODUCTS = ("encoder.0.ffn.ffn_2",)


def fp32_nodes(names: set, fp32_products: Sequence[str], source: Path) -> list:
    """The graph's node names for ``fp32_products``. A layer computed for the first token
    alone (a ``cls`` head's last layer, see :mod:`bortkit.export.graph`) has no
    ``encoder.N.attention.qkv`` node: that name there stands for the products it names in
    every other layer, the query, key and value ones (each factor of a factored matrix).
    A name the graph holds in neither form is refused."""
    nodes = []
    for product in fp32_products:
        if product in names:
            nodes.append(product)
            continue
        split = []
        if product.endswith(".attention.qkv"):
            prefix = product[:-len("qkv")]
            split = [name for matrix in ("query", "key", "value")
                     for name in (f"{prefix}{matrix}.down", f"{prefix}{matrix}") if name in names]
        if not split:
            raise ConfigError(f"no product named {product!r} in the graph to keep in fp32",
                              path=source)
        nodes.extend(split)
    return nodes


def quantize_dynamic_int8(source: Path, target: Path,
                          fp32_products: Sequence[str] = INT8_FP32_PRODUCTS,
                          **overrides) -> None:
    """ONNX Runtime's dynamic int8 quantization: int8 weights (per output channel),
    activations quantized per call. ``Attention`` becomes ``QAttention``; every product but
    ``fp32_products`` (node names, see :data:`INT8_FP32_PRODUCTS` and :func:`fp32_nodes`)
    becomes an integer one (VNNI/AMX through MLAS); ``MultiHeadAttention`` (the first-token
    layer's scores and context, activation by activation) stays fp32. ``overrides`` replace
    arguments of ORT's ``quantize_dynamic``, for benchmarks that compare settings."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    names = {node.name for node in onnx.load(str(source), load_external_data=False).graph.node}
    excluded = fp32_nodes(names, fp32_products, source)
    # ONNX shape inference knows no com.microsoft ops: their outputs are float32.
    # Per-channel weight scales: 97.4-98.6 % of predictions kept per tensor (same bench).
    # Measured and left out: reduce_range (98.97 % on one dev set, logits' error up to 1.7x),
    # QUInt8 weights (1.6-1.7x slower), Attention in fp32 (1.26-1.36x slower).
    options = {"weight_type": QuantType.QInt8, "per_channel": True,
               "op_types_to_quantize": ["MatMul", "Attention"],
               "nodes_to_exclude": excluded,
               "extra_options": {"DefaultTensorType": onnx.TensorProto.FLOAT}, **overrides}
    quantize_dynamic(str(source), str(target), **options)


def export(model: os.PathLike | str, output_dir: os.PathLike | str, format: str = "onnx",
           quantize: Optional[str] = None, overwrite: bool = False,
           include_head: bool = True, merge_low_rank: bool = False) -> Path:
    """Write ``model`` (a bortkit, Hugging Face or GluonNLP checkpoint, with its task head
    when it has one, without it when ``include_head`` is false) as an ONNX directory, or as
    a Hugging Face directory that ``transformers`` loads
    (:func:`bortkit.checkpoint.export_huggingface`; ``merge_low_rank`` multiplies factored
    matrices back); returns ``output_dir``. A model the format cannot hold whole (adapters,
    a multi-task model's heads) is refused in one line, never exported in part."""
    check_options(model, output_dir, format, quantize, overwrite)
    if format == "huggingface":
        from ..checkpoint import export_huggingface, from_pretrained
        loaded = from_pretrained(model)
        if "_multitask" in loaded.meta and include_head:
            raise ConfigError("a multi-task model has one head per task, which a Hugging Face "
                              "directory does not hold; pass --no-head to export the shared "
                              "encoder alone", path=model)
        with writing(output_dir, overwrite=overwrite):  # one writer per folder
            export_huggingface(loaded, output_dir, include_head=include_head,
                               merge_low_rank=merge_low_rank)
        return Path(output_dir)
    import onnx
    from .graph import build_graph, onnx_layout_problem
    state = read_state(model)
    problem = onnx_layout_problem(state.config, state.meta, include_head)
    if problem:
        raise ConfigError(problem, path=model)
    if not include_head:  # the encoder alone: its outputs, and no head in config.json
        state.meta = {k: v for k, v in TaskHead.strip(state.meta).items() if k != "_multitask"}
    head = TaskHead.from_meta(state.meta, state.weights_path.parent)
    graph = build_graph(state, head)
    onnx_info = {"opset": graph.opset_import[0].version, "quantize": quantize,
                 "inputs": [i.name for i in graph.graph.input],
                 "outputs": [o.name for o in graph.graph.output]}
    if quantize is not None:
        onnx_info["fp32_products"] = list(INT8_FP32_PRODUCTS)
    directory = Path(output_dir)
    with writing(directory, overwrite=overwrite), atomic_directory(directory) as tmp:
        if quantize is None:
            onnx.save(graph, str(tmp / ONNX_FILE))
        else:
            with tempfile.TemporaryDirectory(dir=tmp) as work:
                fp32 = Path(work) / "fp32.onnx"
                onnx.save(graph, str(fp32))
                quantize_dynamic_int8(fp32, tmp / ONNX_FILE)
        write_json(tmp / CONFIG, {**state.config.to_dict(), "_format": "bortkit-onnx",
                                  **state.meta, "_onnx": onnx_info})
        record = provenance(source=str(model))
        write_json(tmp / PROVENANCE, record)
        if state.tokenizer_dir is not None:
            for name in TOKENIZER_FILES:
                if (state.tokenizer_dir / name).is_file():
                    (tmp / name).write_bytes((state.tokenizer_dir / name).read_bytes())
            set_model_max_length(tmp, export_max_length(
                state.config, head.max_length if head is not None else None,
                (state.meta.get("_embedding") or {}).get("max_length")))
        write_card(tmp, state.meta, record, "onnx", card_name(directory))
    return directory

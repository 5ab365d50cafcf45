"""Export a checkpoint to an ONNX directory, and run such a directory with ONNX Runtime.

An exported directory holds::

    model.onnx       the graph of :mod:`bortkit.export.graph` (int8 weights with --quantize)
    config.json      the checkpoint's config and head record, plus "_onnx" (inputs, outputs,
                     quantization, products kept in fp32)
    provenance.json  bortkit version, command line, source checkpoint, time
    tokenizer files  copied from the checkpoint

It is written under a temporary name and renamed into place; an existing non-empty
``output_dir`` is never overwritten.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..checkpoint import read_state
from ..checkpoint.core import CONFIG, PROVENANCE, TOKENIZER_FILES, provenance
from ..errors import BortkitError, CheckpointError, ConfigError
from ..io import atomic_directory, write_json
from ..resolve import resolve_model_path

FORMATS = ("huggingface", "onnx")
QUANTIZATIONS = ("int8",)
ONNX_FILE = "model.onnx"


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
    if not Path(resolve_model_path(model)).exists():
        raise CheckpointError("checkpoint not found", path=model)
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError("output directory is a file", path=out)
    if out.exists() and not overwrite:
        raise ConfigError("output directory already exists (pass --overwrite to replace it)",
                          path=out)
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


def quantize_dynamic_int8(source: Path, target: Path,
                          fp32_products: Sequence[str] = INT8_FP32_PRODUCTS,
                          **overrides) -> None:
    """ONNX Runtime's dynamic int8 quantization: int8 weights (per output channel),
    activations quantized per call. ``Attention`` becomes ``QAttention``; every product but
    ``fp32_products`` (node names, see :data:`INT8_FP32_PRODUCTS`) becomes an integer one
    (VNNI/AMX through MLAS). ``overrides`` replace arguments of ORT's ``quantize_dynamic``,
    for benchmarks that compare settings."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    names = {node.name for node in onnx.load(str(source), load_external_data=False).graph.node}
    unknown = [name for name in fp32_products if name not in names]
    if unknown:
        raise ConfigError(f"no product named {unknown[0]!r} in the graph to keep in fp32",
                          path=source)
    # ONNX shape inference knows no com.microsoft ops: their outputs are float32.
    # Per-channel weight scales: 97.4-98.6 % of predictions kept per tensor (same bench).
    # Measured and left out: reduce_range (98.97 % on one dev set, logits' error up to 1.7x),
    # QUInt8 weights (1.6-1.7x slower), Attention in fp32 (1.26-1.36x slower).
    options = {"weight_type": QuantType.QInt8, "per_channel": True,
               "op_types_to_quantize": ["MatMul", "Attention"],
               "nodes_to_exclude": list(fp32_products),
               "extra_options": {"DefaultTensorType": onnx.TensorProto.FLOAT}, **overrides}
    quantize_dynamic(str(source), str(target), **options)


def export(model: os.PathLike | str, output_dir: os.PathLike | str, format: str = "onnx",
           quantize: Optional[str] = None, overwrite: bool = False,
           include_head: bool = True) -> Path:
    """Write ``model`` (a bortkit, Hugging Face or GluonNLP checkpoint, with its task head
    when it has one) as an ONNX directory, or as a Hugging Face directory that
    ``transformers`` loads (:func:`bortkit.checkpoint.export_huggingface`); returns
    ``output_dir``."""
    check_options(model, output_dir, format, quantize, overwrite)
    if format == "huggingface":
        from ..checkpoint import export_huggingface, from_pretrained
        export_huggingface(from_pretrained(model), output_dir, include_head=include_head)
        return Path(output_dir)
    import onnx
    from .graph import build_graph
    state = read_state(model)
    head = state.meta.get("_head")
    graph = build_graph(state, head)
    onnx_info = {"opset": graph.opset_import[0].version, "quantize": quantize,
                 "inputs": [i.name for i in graph.graph.input],
                 "outputs": [o.name for o in graph.graph.output]}
    if quantize is not None:
        onnx_info["fp32_products"] = list(INT8_FP32_PRODUCTS)
    directory = Path(output_dir)
    with atomic_directory(directory) as tmp:
        if quantize is None:
            onnx.save(graph, str(tmp / ONNX_FILE))
        else:
            with tempfile.TemporaryDirectory(dir=tmp) as work:
                fp32 = Path(work) / "fp32.onnx"
                onnx.save(graph, str(fp32))
                quantize_dynamic_int8(fp32, tmp / ONNX_FILE)
        write_json(tmp / CONFIG, {**state.config.to_dict(), "_format": "bortkit-onnx",
                                  **state.meta, "_onnx": onnx_info})
        write_json(tmp / PROVENANCE, provenance(source=str(model)))
        if state.tokenizer_dir is not None:
            for name in TOKENIZER_FILES:
                if (state.tokenizer_dir / name).is_file():
                    (tmp / name).write_bytes((state.tokenizer_dir / name).read_bytes())
    return directory


class OnnxModel:
    """An exported directory under ONNX Runtime: numpy (B, T) arrays in, outputs by name.

    ``threads`` sets the intra-op pool; its threads never spin while idle, so a session
    shares the cores fairly with other work (and benchmarks stay honest).
    """

    def __init__(self, directory: os.PathLike | str, threads: Optional[int] = None):
        import json
        directory = Path(directory)
        path = directory / ONNX_FILE
        if not path.is_file():
            raise CheckpointError(f"no {ONNX_FILE}: not an exported ONNX directory",
                                  path=directory)
        self.meta = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
        self.session = session(path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, input_ids, token_type_ids=None, attention_mask=None) -> dict:
        ids = np.asarray(input_ids, dtype=np.int64)
        feeds = {"input_ids": ids,
                 "token_type_ids": np.zeros_like(ids) if token_type_ids is None
                 else np.asarray(token_type_ids, np.int64),
                 "attention_mask": np.ones_like(ids) if attention_mask is None
                 else np.asarray(attention_mask, np.int64)}
        outputs = self.session.run(None, {k: feeds[k] for k in self.input_names})
        return dict(zip(self.output_names, outputs))


def session(path: os.PathLike | str, threads: Optional[int] = None):
    """An ONNX Runtime CPU session with all graph optimizations, ``threads`` intra-op
    threads (default: ORT's choice) and no spinning of idle threads."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types for unreadable models
        raise BortkitError(f"ONNX Runtime cannot load the model ({str(err).splitlines()[0]})",
                           path=path) from None

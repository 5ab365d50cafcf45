"""An ONNX export folder (``python -m bortkit.export --format onnx``) under ONNX Runtime.

ONNX Runtime is the ``export`` extra: it is imported when a session is made, never before.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import BortkitError, CheckpointError, ConfigError

ONNX_FILE = "model.onnx"
CONFIG = "config.json"


def is_onnx_export(path: os.PathLike | str) -> bool:
    """True when ``path`` is a folder holding an exported ``model.onnx``."""
    return (Path(path) / ONNX_FILE).is_file()


class OnnxModel:
    """An exported directory under ONNX Runtime: numpy (B, T) arrays in, outputs by name.

    ``meta`` is the export's ``config.json`` (model config, ``_head``, ``_onnx``); ``source``
    the folder (its tokenizer files). ``threads`` sets the intra-op pool; its threads never
    spin while idle, so a session shares the cores fairly with other work (and benchmarks
    stay honest).
    """

    def __init__(self, directory: os.PathLike | str, threads: Optional[int] = None):
        directory = Path(directory)
        path = directory / ONNX_FILE
        if not path.is_file():
            raise CheckpointError(f"no {ONNX_FILE}: not an exported ONNX directory",
                                  path=directory)
        try:
            self.meta = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read {CONFIG} ({err.__class__.__name__})",
                                  path=directory) from None
        self.source = directory
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
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError("running an ONNX export needs the 'export' extra: "
                          "pip install 'bortkit[export]'") from None
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

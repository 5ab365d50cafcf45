"""ONNX export of any family model (with its task head) and an ONNX Runtime runner.

``python -m bortkit.export --model PATH --format onnx [--quantize int8] --output-dir DIR``.
Needs the ``export`` extra (onnx, onnxruntime); nothing else in bortkit imports it.
"""
from .core import FORMATS, QUANTIZATIONS, OnnxModel, export, session  # noqa: F401

"""Raw text in, predictions out, over every kind of model bortkit makes.

- :func:`pipeline` (``pipeline.py``): transformers' text-classification call and return format
  over a checkpoint path, a :class:`~bortkit.model.Model`, an int8
  :class:`~bortkit.quantize.QuantizedModel` or an ONNX export folder;
- :class:`OnnxModel` (``onnx_model.py``): an ONNX export folder under ONNX Runtime (the
  ``export`` extra; imported when first used).
"""
from .onnx_model import ONNX_FILE, OnnxModel, is_onnx_export, session  # noqa: F401
from .pipeline import Pipeline, pipeline  # noqa: F401

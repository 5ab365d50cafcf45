"""int8 inference: calibrated static quantization through MXNet's oneDNN backend.

``bortkit.from_pretrained(path, quantize="int8", calibration=texts)`` returns a
:class:`QuantizedModel`. (ONNX Runtime's dynamic int8 lives with the exporter:
``python -m bortkit.export --quantize int8``.)
"""
from .core import (QUANTIZATIONS, QuantizedModel, check_calibration,  # noqa: F401
                   quantize_int8)

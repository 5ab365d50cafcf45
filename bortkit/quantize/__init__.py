"""int8 inference: calibrated static quantization through MXNet's oneDNN backend.

``bortkit.from_pretrained(path, quantize="int8", calibration=texts)`` returns a
:class:`QuantizedModel`; ``model.save(DIR)`` writes it with its calibration, and
``bortkit.from_pretrained(DIR)`` loads it again without calibration text. (ONNX Runtime's
dynamic int8 lives with the exporter: ``python -m bortkit.export --quantize int8``.)
"""
from .core import (QUANTIZATIONS, RECORD, Int8Graph, QuantizedModel,  # noqa: F401
                   check_calibration, is_quantized, load_int8, quantize_int8)

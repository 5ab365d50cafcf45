"""int8 inference: calibrated static quantization through MXNet's oneDNN backend, with the
encoder's dense layers on bortkit's fused int8 operator (AMX, AVX-512 VNNI or AVX2).

``bortkit.from_pretrained(path, quantize="int8", calibration=texts)`` returns a
:class:`QuantizedModel`; ``model.save(DIR)`` writes it with its calibration, and
``bortkit.from_pretrained(DIR)`` loads it again without calibration text. (ONNX Runtime's
dynamic int8 lives with the exporter: ``python -m bortkit.export --quantize int8``.)
"""
from .core import (DENSE_KERNELS, QUANTIZATIONS, RECORD, Int8Graph,  # noqa: F401
                   QuantizedModel, check_calibration, dense_kernel, is_quantized,
                   load_int8, quantize_int8)

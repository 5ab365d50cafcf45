"""Fine-tuning and evaluation on GLUE and SuperGLUE.

- :class:`FinetuneArgs` (``args.py``, framework-free) and :data:`FINETUNE_PARAMS`, the
  settings a sweep trial or an Agora θ may vary;
- :class:`Finetuner` / :func:`finetune` (``trainer.py``), the run on :mod:`bortkit.train`;
- :class:`CheckpointClassifier` / :func:`predict_logits` (``predict.py``), inference with a
  fine-tuned checkpoint;
- :mod:`bortkit.finetune.space`, hyperparameter spaces over :class:`FinetuneArgs`.

MXNet loads only when the trainer or the classifier is used.
"""
from .args import FINETUNE_PARAMS, FinetuneArgs  # noqa: F401

_LAZY = {"Finetuner": "trainer", "finetune": "trainer", "CheckpointClassifier": "predict",
         "predict_logits": "predict"}


def __getattr__(name):  # PEP 562
    if name not in _LAZY:
        raise AttributeError(f"module 'bortkit.finetune' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)

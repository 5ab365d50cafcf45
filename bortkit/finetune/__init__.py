"""Fine-tuning and evaluation on GLUE and SuperGLUE, or on the user's own CSV/TSV/JSONL files.

- :class:`FinetuneArgs` (``args.py``, framework-free) and :data:`FINETUNE_PARAMS`, the
  settings a sweep trial or an Agora θ may vary;
- :class:`Finetuner` / :func:`finetune` (``trainer.py``), the run on :mod:`bortkit.train`;
- :class:`CheckpointClassifier` / :func:`predict_logits` / :func:`predict_task`
  (``predict.py``), classifier inference: a fine-tuned checkpoint, and every trainer's
  evaluation (fine-tuning, pruning, multi-task);
- :mod:`bortkit.finetune.space`, hyperparameter spaces over :class:`FinetuneArgs`;
- :mod:`bortkit.finetune.task_options`, ``--task``/``--data-dir`` or ``--train``/``--dev``
  and the column options, shared by the fine-tuning, sweep and Agora command lines.

MXNet loads only when the trainer or the classifier is used.
"""
from .args import FINETUNE_PARAMS, FinetuneArgs  # noqa: F401

_LAZY = {"Finetuner": "trainer", "finetune": "trainer", "CheckpointClassifier": "predict",
         "predict_logits": "predict", "predict_task": "predict"}


def __getattr__(name):  # PEP 562
    if name not in _LAZY:
        raise AttributeError(f"module 'bortkit.finetune' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)

"""Distillation pretraining (Bort's recipe on any teacher/student pair of the family).

- :func:`train` / :class:`PretrainingArguments` — the trainer, also ``python -m bortkit.distill``
  (one process, or many under ``horovodrun``). Files: ``plan.py`` (arguments and their
  checking), ``weights.py`` (loss weights and layer maps), ``models.py`` (the masked-LM
  models), ``trainer.py`` (the run on :mod:`bortkit.train`), ``teacher.py``
  (:func:`fit_mlm_head`: give a teacher the masked-LM head it lacks).
- :mod:`bortkit.distill.losses` — masked-LM, knowledge-distillation (``correct`` and Bort's
  ``bort`` formula), hidden-state and attention transfer losses.

MXNet loads only when a model, loss or the trainer is used.
"""
from .plan import PretrainingArguments, plan_run, resolve_student_config  # noqa: F401
from .weights import KD_MODES, LossWeights, parse_layer_map, uniform_layer_map  # noqa: F401

_LAZY = {
    "losses": ("DistillationObjective", "attention_kl", "distillation_loss", "hidden_state_mse",
               "masked_lm_loss"),
    "models": ("MaskedLMWithInternals", "build_masked_lm"),
    "teacher": ("fit_mlm_head", "train_masked_lm"),
    "trainer": ("PretrainingRun", "train"),
}
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name):  # PEP 562
    if name == "Workers":  # the runtime's, kept importable here
        from ..train import Workers
        return Workers
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'bortkit.distill' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)

"""Distillation pretraining (Bort's recipe on any teacher/student pair of the family).

- :func:`train` / :class:`PretrainingArguments` — the trainer, also ``python -m bortkit.distill``
  (one process, or many under ``horovodrun``). Files: ``plan.py`` (arguments and their
  checking), ``models.py`` (the masked-LM models), ``trainer.py`` (the run on
  :mod:`bortkit.train`), ``teacher.py`` (:func:`fit_mlm_head`: give a teacher the masked-LM
  head it lacks).
- :mod:`bortkit.distill.losses` — masked-LM, knowledge-distillation (``correct`` and Bort's
  ``bort`` formula), hidden-state and attention transfer losses, layer maps.
"""
from ..train.workers import Workers  # noqa: F401  (the runtime's; kept importable here)
from .losses import (KD_MODES, DistillationObjective, LossWeights, attention_kl,  # noqa: F401
                     distillation_loss, hidden_state_mse, masked_lm_loss, parse_layer_map,
                     uniform_layer_map)
from .models import MaskedLMWithInternals, build_masked_lm  # noqa: F401
from .plan import PretrainingArguments, plan_run, resolve_student_config  # noqa: F401
from .teacher import fit_mlm_head, train_masked_lm  # noqa: F401
from .trainer import PretrainingRun, train  # noqa: F401

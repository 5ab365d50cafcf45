"""The training runtime under every bortkit trainer (fine-tuning, distillation, Agora, the
sweep, the search): a trainer supplies batches, a loss and hooks; this package does the rest.

- :class:`Workers` — rank, size and collectives (one process, or Horovod ranks under
  ``horovodrun``: :func:`launched_by_horovod`).
- :class:`ParamGroup` + :func:`make_trainer` — parameters, their optimizer (``OPTIMIZERS``),
  learning-rate schedule (:class:`LinearSchedule`) and clip norm; one group per optimizer.
- :class:`TrainStep` — one optimizer step: forward/backward over micro-batches, allreduce,
  device-side global-norm clipping, update; returns a :class:`StepResult` (loss terms).
- :class:`Loop` — steps with hooks given at construction (``on_step``, ``evaluate``,
  ``checkpoint``, ``stop``: early stopping, sweep reports and pruning).
- :class:`Progress`, :class:`JsonlLog`, :func:`plot_curves` — bar/messages, JSONL, PNG.
- :class:`Run` — a run's life in its output folder (``run.py``): the claim, lock and
  staging cleanup, the resume check over declared keys and input files, the state of every
  ``ParamGroup`` (``checkpoint/``), ``best/``, ``result.json``, the JSONL log and curves.
  Every trainer goes through it; :func:`claim` / :class:`RunDir` (folder claims) and
  :func:`save_training_state` / :func:`load_training_state` are the pieces below it.
- :func:`seed_everything` — bit-for-bit reproducible runs.

A new trainer in ten lines (two optimizers, any batch iterator)::

    workers = Workers()                                   # horovodrun is detected
    groups = [ParamGroup(weights, make_trainer(weights, "bertadam", 1e-4),
                         LinearSchedule(1e-4, total), max_grad_norm=1.0, name="weights"),
              ParamGroup(masks, make_trainer(masks, "adamw", 1e-2), name="masks")]
    def loss_fn(batch):                                   # runs under autograd.record()
        logits = model(*batch.inputs)
        return [loss(logits, batch.labels), penalty()]    # [differentiated, more terms...]
    result = Loop(TrainStep(groups, workers, seed=0), loss_fn, ([b] for b in batches),
                  total, evaluate=lambda step: {"main": score(model)}, eval_every=100,
                  checkpoint=save, stop=[lambda step, scores: scores["main"] > 0.99],
                  on_step=lambda r: log.write("train", step=r.step, loss=r.loss)).run()

Every group descends the one differentiated loss (``loss_fn``'s first term); a maximising
group (Lagrange multipliers) gets a schedule of negative learning rates and weight decay 0.
``StepResult.terms`` holds every returned term (summed over micro-batches, on the device),
``grad_norms`` one norm per group. Nothing here imports a trainer.
Heavy modules (MXNet) load on first use, so ``from bortkit.train import OPTIMIZERS`` is light.
"""
from __future__ import annotations

from ..rundir import RunDir, check_resume, claim, differences, lock_path  # noqa: F401
from .names import OPTIMIZERS  # noqa: F401
from .run import (Run, RunState, checkpoint_step, has_training_state,  # noqa: F401
                  read_run_state, run_started, this_run)

_EXPORTS = {
    "log": ("JsonlLog", "Messages", "Progress", "plot_curves", "read_jsonl", "say"),
    "loop": ("Loop", "LoopResult"),
    "optim": ("LinearSchedule", "make_trainer"),
    "state": ("load_training_state", "save_training_state", "seed_everything"),
    "step": ("ParamGroup", "StepResult", "TrainStep"),
    "workers": ("Workers", "launched_by_horovod"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = ["OPTIMIZERS", "Run", "RunDir", "RunState", "check_resume", "checkpoint_step",
           "claim", "differences", "has_training_state", "lock_path", "read_run_state",
           "run_started", "this_run", *_MODULE_OF]


def __getattr__(name):  # PEP 562: MXNet loads only when a piece that needs it is used
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'bortkit.train' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{module}", __name__), name)

"""Resumable training state: weights, optimizer state, step, data position, RNG.

One directory per run holds ``checkpoint/`` (the latest state, swapped in atomically)::

    checkpoint/model.safetensors, config.json ...   a bortkit checkpoint of the trained block
    checkpoint/optimizer.states                      Gluon Trainer states
    checkpoint/state.json                            step, epoch, data position, RNG, metrics

Dropout randomness is made a function of (seed, step) by reseeding MXNet before every step
(:func:`seed_step`), so a run resumed at step k draws the same masks as an uninterrupted
one: resuming on CPU is bit-for-bit.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np

from ..checkpoint import read_state, save_pretrained
from ..checkpoint.core import assign
from ..errors import CheckpointError
from ..io import write_json
from .names import OPTIMIZER_STATES as OPTIMIZER, TRAINING_STATE as STATE


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    mx.random.seed(seed)


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Deterministic per-step randomness (dropout) independent of where a run resumed."""
    mx.random.seed((seed * 1_000_003 + step * 7919 + rank) % (2 ** 31))


def save_training_state(directory: Path, block, config, trainer, state: dict,
                        tokenizer=None, source=None, meta: Optional[dict] = None,
                        extra_blocks: Optional[dict] = None) -> Path:
    """Atomically replace ``directory`` with the weights, optimizer and ``state`` dict.

    ``extra_blocks`` (name -> Gluon block) are trained blocks outside the model, e.g. the
    projections of a distillation loss; each is saved as ``<name>.params``.
    """
    directory = Path(directory)
    staging = directory.with_name(directory.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    save_pretrained(block, staging, config=config, tokenizer=tokenizer, source=source,
                    meta=meta, seed=state.get("seed"))
    trainer.save_states(str(staging / OPTIMIZER))
    for name, extra in (extra_blocks or {}).items():
        extra.save_parameters(str(staging / f"{name}.params"))
    write_json(staging / STATE, state)
    # save_pretrained wrote `staging` atomically; one rename makes it the checkpoint.
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def load_training_state(directory: Path, block, trainer,
                        extra_blocks: Optional[dict] = None) -> dict:
    """Restore weights and optimizer state into ``block``/``trainer`` (and the
    ``extra_blocks`` saved with :func:`save_training_state`); return the state dict."""
    directory = Path(directory)
    if not (directory / STATE).exists():
        old = directory.with_name(directory.name + ".old")
        if (old / STATE).exists():  # killed between the two renames
            directory = old
        else:
            raise CheckpointError("no training state to resume from (state.json missing)",
                                  path=directory)
    assign(block, read_state(directory), required_prefixes=())
    for name, extra in (extra_blocks or {}).items():
        path = directory / f"{name}.params"
        if not path.exists():
            raise CheckpointError(f"training state has no {path.name}", path=directory)
        extra.load_parameters(str(path))
    trainer.load_states(str(directory / OPTIMIZER))
    try:
        return json.loads((directory / STATE).read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"corrupt state.json ({err})", path=directory / STATE) from None

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

import random
import shutil
from pathlib import Path
from typing import Optional

import mxnet as mx
import numpy as np

from ..checkpoint import read_state, save_pretrained
from ..checkpoint.core import assign
from ..errors import CheckpointError
from ..io import STAGING, output_errors, write_json
from .names import OPTIMIZER_STATES as OPTIMIZER, TRAINING_STATE as STATE


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    mx.random.seed(seed)


def seed_step(seed: int, step: int, rank: int = 0) -> None:
    """Deterministic per-step randomness (dropout) independent of where a run resumed."""
    mx.random.seed((seed * 1_000_003 + step * 7919 + rank) % (2 ** 31))


def optimizer_files(groups) -> dict:
    """File name of each group's optimizer state: ``optimizer.states`` for a run with one
    group, ``optimizer-NAME.states`` for each of several (e.g. pruning's three)."""
    if len(groups) == 1:
        return {groups[0].name: OPTIMIZER}
    return {group.name: f"optimizer-{group.name}.states" for group in groups}


def _groups(trainers) -> list:
    """``trainers``: a Gluon Trainer, a ParamGroup or a sequence of ParamGroups."""
    from .step import ParamGroup
    if isinstance(trainers, ParamGroup):
        return [trainers]
    if isinstance(trainers, (list, tuple)):
        return list(trainers)
    return [ParamGroup({}, trainers, name="optimizer")]


def _outside(block, groups) -> dict:
    """Per group, its parameters that are not ``block``'s (e.g. Lagrange multipliers): they
    are saved beside the model as ``NAME.params``."""
    inside = {id(p) for p in block.collect_params().values()}
    out = {}
    for group in groups:
        extra = {k: p for k, p in group.params.items() if id(p) not in inside}
        if extra:
            out[group.name] = extra
    return out


def save_training_state(directory: Path, block, config, trainers, state: dict,
                        tokenizer=None, source=None, meta: Optional[dict] = None,
                        extra_blocks: Optional[dict] = None) -> Path:
    """Atomically replace ``directory`` with the weights, every group's optimizer state
    (``trainers``: a Gluon Trainer or the run's ParamGroups) and the ``state`` dict.

    A group's parameters outside ``block`` (e.g. Lagrange multipliers) are saved as
    ``GROUP.params``; ``extra_blocks`` (name -> Gluon block) are trained blocks outside the
    model, e.g. the projections of a distillation loss, each saved as ``<name>.params``.
    """
    directory = Path(directory)
    groups = _groups(trainers)
    staging = directory.with_name(f".{directory.name}{STAGING}save")  # clean_staging removes it
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with output_errors(directory, staging):  # a full disk names the checkpoint
            save_pretrained(block, staging, config=config, tokenizer=tokenizer, source=source,
                            meta=meta, seed=state.get("seed"))
            for group in groups:
                group.trainer.save_states(str(staging / optimizer_files(groups)[group.name]))
            for name, params in _outside(block, groups).items():
                mx.nd.save(str(staging / f"{name}.params"),
                           {k: p.data() for k, p in params.items()})
            for name, extra in (extra_blocks or {}).items():
                extra.save_parameters(str(staging / f"{name}.params"))
            write_json(staging / STATE, state)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # the previous checkpoint stays whole
        raise
    # save_pretrained wrote `staging` atomically; one rename makes it the checkpoint.
    old = directory.with_name(directory.name + ".old")  # kept if killed: load falls back to it
    with output_errors(directory):
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            directory.rename(old)
        staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def state_directory(directory: Path) -> Optional[Path]:
    """``directory``, or its ``.old`` copy when a save was killed between its two renames;
    None when neither holds a training state."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / STATE).is_file():
            return candidate
    return None


def load_training_state(directory: Path, block, trainers,
                        extra_blocks: Optional[dict] = None) -> dict:
    """Restore weights and every group's optimizer state into ``block``/``trainers`` (and
    the ``extra_blocks`` saved with :func:`save_training_state`); return the state dict."""
    found = state_directory(directory)
    if found is None:
        raise CheckpointError("no training state to resume from (state.json missing)",
                              path=directory)
    directory = found
    groups = _groups(trainers)
    assign(block, read_state(directory), required_prefixes=())
    for name, params in _outside(block, groups).items():
        path = directory / f"{name}.params"
        if not path.exists():
            raise CheckpointError(f"training state has no {path.name}", path=directory)
        saved = mx.nd.load(str(path))
        for key, param in params.items():
            if key not in saved:
                raise CheckpointError(f"{path.name} has no {key}", path=directory)
            param.set_data(saved[key])
    for name, extra in (extra_blocks or {}).items():
        path = directory / f"{name}.params"
        if not path.exists():
            raise CheckpointError(f"training state has no {path.name}", path=directory)
        extra.load_parameters(str(path))
    for group in groups:
        path = directory / optimizer_files(groups)[group.name]
        if not path.exists():
            raise CheckpointError(f"training state has no {path.name}", path=directory)
        group.trainer.load_states(str(path))
    from .run import read_run_state
    return read_run_state(directory)

"""What a sweep keeps on disk: what running trials resume from, and the best trial.

A MiniLM trial leaves ~350 MB: ``checkpoint/`` (weights and ~180 MB of optimizer state, for
``--resume``) and ``best/`` (weights). Once a trial is finished (complete or pruned; a
failed trial's retry reuses its directory, so those are left alone) nothing resumes from its
training state, and only the best trial's ``best/`` is exported (``best_model/``). So after
each finished trial: every training-state directory of every finished trial is deleted, and
every ``best/`` but the best complete trial's own. Logs, ``result.json`` and curves stay.
The best value only rises, so a trial that is not the best never becomes it again.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ..train import has_training_state


def _training_states(run_dir: Path) -> list[Path]:
    """Directories under ``run_dir`` holding a training state (weights + optimizer + step)."""
    return [p for p in run_dir.rglob("*") if p.is_dir() and has_training_state(p)]


def tidy_trial(run_dir: Path, is_best: bool) -> list[Path]:
    """Delete a finished trial's training states, and its ``best/`` directories unless it is
    the best trial (then all but ``run_dir/best``). Returns what was deleted."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    doomed = _training_states(run_dir)
    doomed += [p for p in run_dir.rglob("best")
               if p.is_dir() and not (is_best and p == run_dir / "best")]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def tidy_finished_trials(study) -> list[Path]:
    """:func:`tidy_trial` over every finished trial of ``study`` that has a run directory here."""
    import optuna
    states = optuna.trial.TrialState
    finished = study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))
    complete = [t for t in finished if t.state == states.COMPLETE]
    best = study.best_trial.number if complete else None
    deleted = []
    for trial in finished:
        run_dir = trial.user_attrs.get("run_dir")
        if run_dir:
            deleted += tidy_trial(Path(run_dir), trial.number == best)
    return deleted

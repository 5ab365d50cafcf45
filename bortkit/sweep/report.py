"""What a sweep leaves behind, in its output directory::

    best_model/           the best trial's best checkpoint (task head included): ready to use
    best_params.json      its parameters, score, trial number and run directory
    report.json           trial counts, best trial, which plots were drawn (or why not)
    plots/optimization_history.png, plots/param_importances.png,
    plots/parallel_coordinate.png   Optuna's matplotlib visualizations

Plots need complete trials (importances at least two that differ in a parameter); when
there are too few, the plot is skipped and ``report.json`` says why.
"""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from ..io import atomic_directory, save_png, write_json
from ..train.retention import link_or_copy

PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


def _save_axes(axes, path: Path) -> None:
    figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
    figure.set_size_inches(9, 5)
    figure.tight_layout()
    save_png(figure, path, dpi=100)


def write_plots(study, directory: Path) -> dict:
    """Draw each plot of :data:`PLOTS`; returns name -> file, or the reason it was skipped."""
    import matplotlib
    matplotlib.use("Agg")
    import optuna
    from optuna.visualization import matplotlib as vis
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    outcome = {}
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        for name in PLOTS:
            if not complete:
                outcome[name] = "skipped: no complete trial yet"
            elif name == "param_importances" and len(complete) < 2:
                outcome[name] = "skipped: importances need at least 2 complete trials"
            else:
                outcome[name] = _plot(vis, name, study, directory / f"{name}.png")
    finally:
        optuna.logging.set_verbosity(verbosity)
    return outcome


def _plot(vis, name: str, study, path: Path) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            axes = getattr(vis, f"plot_{name}")(study)
        _save_axes(axes, path)
        return str(path)
    except (ValueError, RuntimeError, ZeroDivisionError) as err:
        return f"skipped: {err}".splitlines()[0]


def export_best(study, directory: Path) -> dict:
    """Copy the best trial's ``best/`` checkpoint to ``best_model/`` and write
    ``best_params.json``; returns what was written."""
    best = study.best_trial
    run_dir = Path(best.user_attrs.get("run_dir", ""))
    info = {"study": study.study_name, "task": study.user_attrs.get("task"),
            "trial": best.number, "value": best.value, "params": best.params,
            "scores": best.user_attrs.get("best"), "run_dir": str(run_dir)}
    source = run_dir / "best"
    if (source / "config.json").exists():
        with atomic_directory(directory / "best_model") as tmp:
            # hard links: no second copy of the weights on disk (files are replaced whole)
            shutil.copytree(source, tmp, dirs_exist_ok=True, copy_function=link_or_copy)
        info["checkpoint"] = str((directory / "best_model").resolve())
    else:
        info["checkpoint"] = None
        info["note"] = f"no best/ checkpoint at {source} (trial ran on another machine?)"
    write_json(directory / "best_params.json", info)
    return info


def write_report(study, directory: Path) -> dict:
    """Best checkpoint, its parameters, plots and ``report.json`` for ``study``."""
    import optuna
    directory = Path(directory)
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials)
              for state in optuna.trial.TrialState}
    counts["skipped"] = sum("skipped" in t.user_attrs for t in trials)
    report = {"study": study.study_name, "task": study.user_attrs.get("task"),
              "trials": counts}
    if any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
        report["best"] = export_best(study, directory)
    report["plots"] = write_plots(study, directory / "plots")
    write_json(directory / "report.json", report)
    return report

"""Optuna hyperparameter sweeps over fine-tuning (or Agora) runs, shared by many workers,
safe against crashes, and aware of Horovod. ``python -m bortkit.sweep --help``."""
from .report import write_report  # noqa: F401
from .runner import Sweep, SweepArgs  # noqa: F401
from .space import BORT_README_SPACE, HyperparameterSpace, load_space, parse_space  # noqa: F401

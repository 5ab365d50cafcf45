"""Agora (de Wynter 2020, arXiv 2010.07990), reconstructed: fine-tune a small model on scarce
data with a fine-tuned teacher, a data-generating function, replay, and search-and-prune
over hyperparameter settings. ``python -m bortkit.agora --help``; ALGORITHM.md for details."""
from .generate import GENERATORS, Perturbation, make_generator  # noqa: F401
from .loop import AGORA_PARAMS, Agora, AgoraArgs  # noqa: F401
from .student import truncate_layers  # noqa: F401
from .teacher import CheckpointClassifier  # noqa: F401

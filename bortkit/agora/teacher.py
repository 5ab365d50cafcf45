"""Agora's teacher S labels generated data: any object with ``label(examples) ->
np.ndarray`` of class ids; by default a fine-tuned checkpoint,
:class:`~bortkit.finetune.CheckpointClassifier`."""
from __future__ import annotations

from ..finetune.predict import CheckpointClassifier  # noqa: F401  (the default teacher)

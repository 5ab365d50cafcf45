"""Checkpoint formats: bortkit directories, Hugging Face directories, GluonNLP .params."""
from .core import (State, assign, classifier_from_state, export_huggingface,  # noqa: F401
                   huggingface_layout_problem,
                   from_pretrained, named_parameters, read_state, save_pretrained)
from .heads import EmbeddingSpec, TaskHead  # noqa: F401
from ..resolve import bundled_minilm, resolve_model_path  # noqa: F401

"""Multi-task training (Stickland and Murray, "BERT and PALs", ICML 2019): one encoder with
per-task adapters and heads for several GLUE tasks, tasks sampled per step
(:mod:`.sampler`: proportional, square-root, annealed, round-robin), on :mod:`bortkit.train`.

    python -m bortkit.multitask --tasks CoLA,MRPC,RTE,STS-B,SST-2 --adapter pals \\
        --sample anneal --model minilm --data-dir ../shared/data/glue --output-dir runs/mt
"""
from .sampler import SCHEDULES, TaskSampler, anneal_alpha  # noqa: F401


def __getattr__(name):  # MXNet loads only when the trainer is used
    if name == "MultitaskArgs":
        from .args import MultitaskArgs
        return MultitaskArgs
    if name in ("MultitaskTrainer", "train_multitask"):
        from . import trainer
        return getattr(trainer, name)
    raise AttributeError(f"module 'bortkit.multitask' has no attribute {name!r}")

"""The settings of one fine-tuning run, and which of them a sweep or Agora may vary.

Framework-free: the sweep's search spaces and the command line read these without MXNet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..options import check, check_choice, check_range
from ..train.names import OPTIMIZERS

POOLINGS = ("cls", "mean")


@dataclass
class FinetuneArgs:
    """Knobs of one fine-tuning run. Defaults follow BERT's GLUE recipe."""

    task: str
    model: str
    data_dir: str
    output_dir: str
    learning_rate: float = 5e-5
    batch_size: int = 32
    epochs: float = 3.0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    seed: int = 0
    accumulate: int = 1
    optimizer: str = "bertadam"
    max_grad_norm: float = 1.0        # 0 = no clipping
    eval_every: int = 0               # optimizer steps between evaluations; 0 = every epoch
    early_stopping: int = 0           # evaluations without improvement before stopping; 0 = off
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = None
    eval_batch_size: int = 64
    predict: bool = False
    resume: bool = False
    tokenizer: Optional[str] = None
    progress: bool = True
    max_steps: Optional[int] = None   # optimizer steps of the run; overrides epochs when set
    distributed: bool = False         # Horovod data parallelism (launch with horovodrun)
    pooling: str = "cls"              # sentence vector: "cls" ([CLS]/pooler) or "mean" of tokens

    def validate(self) -> None:
        check_range("learning_rate", self.learning_rate, 0, low_open=True)
        check_range("batch_size", self.batch_size, 1, integer=True)
        check_range("epochs", self.epochs, 0, low_open=True)
        check_range("max_length", self.max_length, 8, integer=True)
        check_range("accumulate", self.accumulate, 1, integer=True)
        check_range("eval_every", self.eval_every, 0, integer=True)
        check_range("early_stopping", self.early_stopping, 0, integer=True)
        check_range("warmup_ratio", self.warmup_ratio, 0, 1)
        check_range("weight_decay", self.weight_decay, 0)
        check_range("max_grad_norm", self.max_grad_norm, 0)
        check_range("max_steps", self.max_steps, 1, integer=True, optional=True)
        check_range("eval_batch_size", self.eval_batch_size, 1, integer=True)
        check_range("seed", self.seed, 0, integer=True)
        for name in ("max_train_examples", "max_eval_examples"):
            check_range(name, getattr(self, name), 1, integer=True, optional=True)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("pooling", self.pooling, POOLINGS)
        check("task", self.task, isinstance(self.task, str), "a task name")


# The settings a trial of a sweep, or a setting θ of Agora, may vary or fix, with their
# types. The rest (task, model, paths, resume...) belongs to whoever runs the trial.
FINETUNE_PARAMS: dict[str, type] = {
    "learning_rate": float, "batch_size": int, "epochs": float, "max_steps": int,
    "warmup_ratio": float, "weight_decay": float, "max_length": int, "seed": int,
    "accumulate": int, "optimizer": str, "max_grad_norm": float, "eval_every": int,
    "early_stopping": int, "max_train_examples": int, "max_eval_examples": int,
    "eval_batch_size": int,
}

"""The settings of one fine-tuning run, and which of them a sweep or Agora may vary.

Framework-free: the sweep's search spaces and the command line read these without MXNet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError
from ..options import (Interval, OneOf, arg, check, check_fields, check_report_to,
                       resume_keys, sweep_params)
from ..train.names import OPTIMIZERS

POOLINGS = ("cls", "mean")


POSITIVE_INT, COUNT = Interval(1, integer=True), Interval(0, integer=True)
LIMIT = Interval(1, integer=True, optional=True)  # None: no limit


@dataclass
class FinetuneArgs:
    """Knobs of one fine-tuning run. Defaults follow BERT's GLUE recipe. Each field declares
    its check (:func:`bortkit.options.check_fields`) and whether a resumed run must keep it
    (:data:`RESUME_KEYS`: the run's length, evaluation points and bookkeeping may change)."""

    task: str = arg()                 # a GLUE/SuperGLUE name, or the name of the files' task
    model: str = arg()
    data_dir: Optional[str] = arg(resume=False)  # None for a task read from the user's files
    output_dir: str = arg(resume=False)
    learning_rate: float = arg(5e-5, Interval(0, low_open=True), sweep=True)
    batch_size: int = arg(32, POSITIVE_INT, sweep=True)
    epochs: float = arg(3.0, Interval(0, low_open=True), resume=False, sweep=True)
    warmup_ratio: float = arg(0.1, Interval(0, 1), sweep=True)
    weight_decay: float = arg(0.01, Interval(0), sweep=True)
    max_length: int = arg(128, Interval(8, integer=True), sweep=True)
    seed: int = arg(0, COUNT, sweep=True)
    accumulate: int = arg(1, POSITIVE_INT, sweep=True)
    optimizer: str = arg("bertadam", OneOf(OPTIMIZERS), sweep=True)
    max_grad_norm: float = arg(1.0, Interval(0), sweep=True)  # 0 = no clipping
    # optimizer steps between evaluations; 0 = every epoch
    eval_every: int = arg(0, COUNT, resume=False, sweep=True)
    # evaluations without improvement before stopping; 0 = off
    early_stopping: int = arg(0, COUNT, resume=False, sweep=True)
    max_train_examples: Optional[int] = arg(None, LIMIT, sweep=True)
    max_eval_examples: Optional[int] = arg(None, LIMIT, sweep=True)
    eval_batch_size: int = arg(64, POSITIVE_INT, resume=False, sweep=True)
    predict: bool = arg(False, resume=False)
    resume: bool = arg(False, resume=False)
    overwrite: bool = arg(False, resume=False)  # replace a finished run in output_dir
    tokenizer: Optional[str] = arg(None)
    progress: bool = arg(True, resume=False)
    # optimizer steps of the run; overrides epochs when set
    max_steps: Optional[int] = arg(None, LIMIT, resume=False, sweep=True)
    # Horovod data parallelism (launch with horovodrun)
    distributed: bool = arg(False, resume=False)
    # sentence vector: "cls" ([CLS]/pooler) or "mean" of tokens
    pooling: str = arg("cls", OneOf(POOLINGS))
    # the user's files (bortkit.tasks.files.file_task kwargs): compared on resume by their
    # content and columns (bortkit.finetune.trainer.run_settings), not by their paths
    files: Optional[dict] = arg(None, resume=False)
    # training checkpoints kept (checkpoint-STEP/ when > 1; 0: none, the run cannot
    # resume); best/ is always kept
    save_total_limit: int = arg(1, COUNT, resume=False)
    # "tensorboard": the log's numbers in OUT/tensorboard/
    report_to: str = arg("none", resume=False)

    def validate(self) -> None:
        check("task", self.task, isinstance(self.task, str), "a task name")
        check_fields(self)
        check_report_to(self.report_to)
        if self.resume and self.save_total_limit == 0:
            raise ConfigError("--resume needs a training checkpoint, and --save-total-limit 0 "
                              "keeps none; give --save-total-limit 1 or more")
        if self.files is None and self.data_dir is None:
            raise ConfigError("a GLUE/SuperGLUE --task needs --data-dir")


# The settings a resumed run must share with the run that wrote its checkpoint; "columns"
# are the user's files' columns (the files themselves are compared by content).
RESUME_KEYS = (*resume_keys(FinetuneArgs), "columns")


# The settings a trial of a sweep, or a setting θ of Agora, may vary or fix, with their
# types. The rest (task, model, paths, resume...) belongs to whoever runs the trial.
FINETUNE_PARAMS: dict[str, type] = sweep_params(FinetuneArgs)

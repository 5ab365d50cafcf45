"""The settings of one multi-task run and their checks, made before anything is read or
written (framework-free: the command line reads them without MXNet)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..config import ADAPTERS
from ..errors import BortkitError, ConfigError
from ..options import (Interval, OneOf, arg, check_fields, check_report_to,
                       resume_keys)
from ..train.names import OPTIMIZERS
from ..tasks import get_task
from .sampler import schedule_name

POSITIVE_INT = Interval(1, integer=True)
LIMIT = Interval(1, integer=True, optional=True)  # None: no limit


@dataclass
class MultitaskArgs:
    """Knobs of one multi-task run. Defaults follow the paper (BERTAdam 2e-5, warmup 0.1,
    batch 32, length 128) at a smaller step count. Each field declares its check
    (:func:`bortkit.options.check_fields`) and whether a resumed run must keep it
    (:data:`RESUME_KEYS`; the train/dev files are compared by content besides)."""

    tasks: list = arg()
    model: str = arg()
    data_dir: str = arg(resume=False)
    output_dir: str = arg(resume=False)
    adapter: str = arg("pals", OneOf(ADAPTERS))
    sample: str = arg("anneal")
    max_steps: int = arg(1000, POSITIVE_INT)
    # sampling epochs (anneal's E); evaluation once per epoch
    epochs: int = arg(5, POSITIVE_INT)
    # steps between evaluations; 0 = once per epoch
    eval_every: int = arg(0, Interval(0, integer=True), resume=False)
    learning_rate: float = arg(2e-5, Interval(0, low_open=True))
    batch_size: int = arg(32, POSITIVE_INT)
    warmup_ratio: float = arg(0.1, Interval(0, 1))
    weight_decay: float = arg(0.01, Interval(0))
    max_length: int = arg(128, Interval(8, integer=True))
    max_grad_norm: float = arg(1.0, Interval(0))
    seed: int = arg(0, Interval(0, integer=True))
    freeze_base: bool = arg(False)
    pooling: str = arg("cls", OneOf(("cls", "mean")))
    optimizer: str = arg("bertadam", OneOf(OPTIMIZERS))
    max_train_examples: Optional[int] = arg(None, LIMIT)
    max_eval_examples: Optional[int] = arg(None, LIMIT)
    eval_batch_size: int = arg(64, POSITIVE_INT, resume=False)
    tokenizer: Optional[str] = arg(None)
    resume: bool = arg(False, resume=False)
    # replace a finished or started run in output_dir
    overwrite: bool = arg(False, resume=False)
    progress: bool = arg(True, resume=False)
    # "tensorboard": the log's numbers also in OUT/tensorboard/
    report_to: str = arg("none", resume=False)

    def validate(self) -> None:
        check_fields(self)
        check_report_to(self.report_to)
        if self.epochs > self.max_steps:
            raise ConfigError(f"--epochs must be in [1, --max-steps {self.max_steps}], got "
                              f"{self.epochs!r}")
        self.sample = schedule_name(self.sample)
        if not self.tasks:
            raise ConfigError("--tasks: name at least one task, e.g. RTE,MRPC")
        names = []
        for name in self.tasks:
            try:
                names.append(get_task(name).name)
            except BortkitError as err:
                raise ConfigError(f"--tasks: {err.problem}") from None
        if len(set(names)) != len(names):
            raise ConfigError(f"--tasks: a task is listed twice: {','.join(self.tasks)}")
        self.tasks = names
        if self.freeze_base and self.adapter == "none":
            raise ConfigError("--freeze-base trains only adapters, LayerNorms and heads; with "
                              "--adapter none there are no adapters to train")


#: The fields a resumed run must share with the checkpoint it continues.
RESUME_KEYS = resume_keys(MultitaskArgs)

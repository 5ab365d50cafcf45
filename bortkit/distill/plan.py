"""Arguments of a pretraining run and their checking: data, student, teacher, resume."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..checkpoint import read_state
from ..config import ModelConfig, configs_dir, load_config
from ..errors import BortkitError, CheckpointError, ConfigError, DataError
from ..options import (Interval, OneOf, arg, check_fields, check_range, check_report_to,
                       resume_keys)
from ..train import OPTIMIZERS, Run, Workers
from .weights import KD_MODES, LossWeights, parse_layer_map, uniform_layer_map

EVAL_SEED = 0            # held-out masks are the same whatever the training seed
CHECKPOINT = "checkpoint"
FINAL = "final"
TEACHER = "teacher"
LOG = "log.jsonl"
OBJECTIVE = "objective"  # file stem of the loss block's learned projections in checkpoints
TEACHER_MLM_SCOPES = ("all", "head")
# The tensors of a masked-LM head (its decoder weight is the tied word embedding).
HEAD_TENSORS = ("mlm_head.transform.weight", "mlm_head.transform.bias",
                "mlm_head.layer_norm.gamma", "mlm_head.layer_norm.beta", "mlm_head.decoder.bias")
POSITIVE_INT, COUNT = Interval(1, integer=True), Interval(0, integer=True)
POSITIVE, NON_NEGATIVE = Interval(0, low_open=True), Interval(0)


@dataclass
class PretrainingArguments:
    """Everything a pretraining run needs; the CLI flags have the same names (dashed). Each
    field declares its check (:func:`bortkit.options.check_fields`) and whether a resumed run
    must keep it (:data:`RESUME_KEYS`)."""

    train: str = arg()                         # shard directory (create_pretraining_data)
    output_dir: str = arg(resume=False)
    test: Optional[str] = arg(None, resume=False)  # held-out shard directory
    # preset, configs/distill/<name>.json, or path (compared as the resolved "student")
    student_config: str = arg("bort-mini", resume=False)
    teacher: Optional[str] = arg(None)         # bortkit / Hugging Face / GluonNLP checkpoint
    teacher_mlm_steps: int = arg(0, COUNT)     # first train the teacher as a masked LM
    # ... all its weights, or only the MLM "head"
    teacher_mlm_train: str = arg("all", OneOf(TEACHER_MLM_SCOPES))
    teacher_mlm_lr: float = arg(2e-4, POSITIVE, resume=False)
    # overrides the student's dropout rates (compared as the resolved "student")
    dropout: Optional[float] = arg(None, Interval(0, 1, high_open=True, optional=True),
                                   resume=False)
    # loss (defaults: Bort's run_pretraining_distillation.sh)
    mlm_weight: float = arg(0.1, NON_NEGATIVE)
    kd_weight: float = arg(0.5, NON_NEGATIVE)
    temperature: float = arg(2.0, POSITIVE)
    kd_mode: str = arg("correct", OneOf(KD_MODES))
    hidden_weight: float = arg(0.0, NON_NEGATIVE)
    attention_weight: float = arg(0.0, NON_NEGATIVE)
    layer_map: Optional[str] = arg(None)       # "0:1,1:3,..."; default uniform
    # optimisation (defaults: Bort's pretraining)
    optimizer: str = arg("bertadam", OneOf(OPTIMIZERS))
    learning_rate: float = arg(1e-4, POSITIVE)
    weight_decay: float = arg(0.01, NON_NEGATIVE)
    adam_epsilon: float = arg(1e-6, POSITIVE, resume=False)
    warmup_ratio: float = arg(0.01, Interval(0, 1))
    max_grad_norm: float = arg(1.0, NON_NEGATIVE)  # 0 = no clipping
    # sequences per worker and micro-batch (compared as "global_batch_size")
    batch_size: int = arg(8, POSITIVE_INT, resume=False)
    accumulate: int = arg(1, POSITIVE_INT)
    max_steps: int = arg(1000, POSITIVE_INT)
    # masking
    max_predictions: int = arg(20, POSITIVE_INT)
    mlm_probability: float = arg(0.15, Interval(0, 1, low_open=True))
    whole_word: bool = arg(False)
    # bookkeeping
    eval_every: int = arg(100, COUNT, resume=False)        # 0 = only before and after training
    eval_batches: int = arg(0, COUNT, resume=False)        # 0 = the whole held-out set
    checkpoint_every: int = arg(100, COUNT, resume=False)  # 0 = only at the end
    log_every: int = arg(10, POSITIVE_INT, resume=False)
    # held-out loss of teacher and untrained student
    baseline_eval: bool = arg(True, resume=False)
    # False: no checkpoint or final weights (scoring)
    save_weights: bool = arg(True, resume=False)
    seed: int = arg(0, COUNT)
    resume: bool = arg(False, resume=False)
    overwrite: bool = arg(False, resume=False)  # replace a finished or started run
    progress: bool = arg(True, resume=False)
    # "tensorboard": the log's numbers in OUT/tensorboard/
    report_to: str = arg("none", resume=False)
    # validate everything, write nothing, exit
    check_only: bool = arg(False, resume=False)
    # debug: SIGKILL itself during this step
    stop_at_step: Optional[int] = arg(None, Interval(1, integer=True, optional=True),
                                      resume=False)

    def check(self) -> None:
        """Raise :class:`ConfigError` for values no run can use: every field's declared
        constraint (NaN and infinity included), then the checks between fields."""
        check_report_to(self.report_to)
        check_fields(self)
        if self.teacher is None and (self.hidden_weight > 0 or self.attention_weight > 0
                                     or self.layer_map or self.teacher_mlm_steps):
            raise ConfigError("--hidden-weight, --attention-weight, --layer-map and "
                              "--teacher-mlm-steps need a --teacher")
        self.loss_weights()  # validates the loss settings

    def loss_weights(self) -> LossWeights:
        return LossWeights(mlm=self.mlm_weight, kd=self.kd_weight, temperature=self.temperature,
                           kd_mode=self.kd_mode, hidden=self.hidden_weight,
                           attention=self.attention_weight)


# Arguments a resumed run must share with the run that wrote the checkpoint: the declared
# ones, the batch over all workers and the resolved student config (run_settings).
RESUME_KEYS = (*resume_keys(PretrainingArguments), "global_batch_size", "student")


def resolve_student_config(name_or_path: str, dropout: Optional[float] = None) -> ModelConfig:
    """A preset (``bort``), a name from ``configs/distill/`` (``bort-mini``), a config.json
    or a checkpoint directory; ``dropout`` overrides both dropout rates."""
    candidate = configs_dir() / "distill" / f"{name_or_path}.json"
    if not Path(name_or_path).exists() and candidate.exists():
        config = load_config(candidate)
    else:
        try:
            config = load_config(name_or_path)
        except ConfigError as err:
            if "unknown architecture" in err.problem:
                extra = sorted(p.stem for p in (configs_dir() / "distill").glob("*.json"))
                raise ConfigError(f"{err.problem}; configs/distill: {', '.join(extra)}") from None
            raise
    if dropout is not None:
        config = config.replace(dropout=dropout, attention_dropout=dropout)
    return config


@dataclass
class Plan:
    """What a run will do, fully checked before anything is written."""

    args: PretrainingArguments
    train_data: object                 # PretrainingDataset
    eval_data: Optional[object]
    student_config: ModelConfig
    teacher_state: Optional[object]    # checkpoint State of the teacher
    adapt_teacher: bool                # train the teacher as a masked LM before distilling
    layer_map: list
    output_dir: Path
    run: Run                           # the run's life in output_dir (entered when work starts)


def _open_dataset(path: Optional[str], flag: str, args: PretrainingArguments, workers: Workers,
                  seed: int, shuffle: bool, drop_last: bool):
    from ..data import PretrainingDataset
    if Path(path).is_file():
        raise DataError(f"{flag} must be a shard directory made by python -m "
                        "bortkit.data.create_pretraining_data (scripts/"
                        "run_pretraining_distillation.sh converts raw text)", path=path)
    from ..data import read_meta
    length = read_meta(path)["max_seq_length"]
    check_range("max_predictions", args.max_predictions, 1, length, integer=True)
    data = PretrainingDataset(path, args.batch_size, seed=seed, rank=workers.rank,
                              world_size=workers.size, mlm_probability=args.mlm_probability,
                              max_predictions=args.max_predictions, whole_word=args.whole_word,
                              shuffle=shuffle, drop_last=drop_last)
    data.verify()  # every shard's arrays, before any worker starts
    return data


def _vocabulary(tokenizer_dir: Path) -> Optional[list]:
    from ..tokenizers import load_tokenizer
    try:
        tokenizer = load_tokenizer(tokenizer_dir)
    except BortkitError:
        return None
    return tokenizer.convert_ids_to_tokens(list(range(tokenizer.vocab_size)))


def check_teacher_tokenizer(teacher_dir: Optional[Path], data) -> None:
    """The data must be tokenized with the teacher's vocabulary (same tokens, same ids)."""
    if teacher_dir is None:
        return
    from ..data import tokenizer_fingerprint
    try:
        if tokenizer_fingerprint(teacher_dir) == data.tokenizer_fingerprint:
            return
    except BortkitError:
        return
    theirs = _vocabulary(teacher_dir)
    if theirs is None:  # the checkpoint ships no tokenizer: only sizes can be compared
        return
    ours = _vocabulary(data.tokenizer_dir)
    if ours == theirs:
        return
    if ours is None or len(ours) != len(theirs):
        size = "?" if ours is None else len(ours)
        raise DataError(f"the data was tokenized with a {size}-token vocabulary but the "
                        f"teacher's tokenizer ({teacher_dir}) has {len(theirs)} tokens; "
                        "recreate the data with --tokenizer pointing at the teacher",
                        path=data.directory)
    first = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
    raise DataError(f"the data's tokenizer does not match the teacher's vocabulary ({teacher_dir}):"
                    f" id {first} is {ours[first]!r} in the data, {theirs[first]!r} for the "
                    "teacher; recreate the data with --tokenizer pointing at the teacher",
                    path=data.directory)


def _check_lengths(config: ModelConfig, length: int, who: str, path) -> None:
    learned = config.position_embedding == "learned"
    if learned and length + config.position_offset > config.max_length:
        raise ConfigError(f"the data's sequences have {length} tokens but the {who} takes at "
                          f"most {config.max_length - config.position_offset}", path=path)


def run_settings(args: PretrainingArguments, workers: Workers, config: ModelConfig) -> dict:
    """What a run records: its arguments, the global batch and the student's config."""
    return {**dataclasses.asdict(args), "global_batch_size": args.batch_size * workers.size,
            "student": config.to_dict()}


def plan_run(args: PretrainingArguments, workers: Workers) -> Plan:
    """Check data, models, teacher and output directory; write nothing."""
    args.check()
    train = _open_dataset(args.train, "--train", args, workers, args.seed, True, True)
    evaluation = None
    if args.test:
        evaluation = _open_dataset(args.test, "--test", args, workers, EVAL_SEED, False, False)
        if evaluation.tokenizer_fingerprint != train.tokenizer_fingerprint:
            raise DataError("the held-out data was made with a different tokenizer than the "
                            f"training data ({args.train})", path=args.test)
    vocab = train.tokenizer_meta["vocab_size"]
    config = resolve_student_config(args.student_config, args.dropout)
    if config.vocab_size != vocab:
        raise ConfigError(f"the student's vocab_size ({config.vocab_size}) differs from the "
                          f"data tokenizer's ({vocab}); set vocab_size in the student config",
                          path=args.student_config)
    _check_lengths(config, train.max_seq_length, "student", args.student_config)
    if config.adapter != "none":
        raise ConfigError(f"the student has {config.adapter} adapters (per-task, picked by a "
                          f"task id); distillation pretrains one encoder for every task: set "
                          f"adapter to 'none' and add adapters in python -m bortkit.multitask",
                          path=args.student_config)

    teacher_state, adapt, layer_map = None, False, []
    if args.teacher:
        teacher_state = read_state(args.teacher)
        tconfig = teacher_state.config
        if tconfig.vocab_size != config.vocab_size:
            raise ConfigError(f"the teacher's vocab_size ({tconfig.vocab_size}) differs from "
                              f"the student's ({config.vocab_size}); distillation needs one "
                              "vocabulary", path=args.teacher)
        check_teacher_tokenizer(teacher_state.tokenizer_dir, train)
        _check_lengths(tconfig, train.max_seq_length, "teacher", args.teacher)
        if not args.teacher_mlm_steps and any(n not in teacher_state.tensors
                                               for n in HEAD_TENSORS):
            raise CheckpointError("the teacher has no masked-LM head weights (e.g. a "
                                  "sentence-transformers export); pass --teacher-mlm-steps N "
                                  "to train it as a masked LM on the training data first",
                                  path=args.teacher)
        adapt = args.teacher_mlm_steps > 0
        if args.hidden_weight > 0 or args.attention_weight > 0:
            layer_map = (parse_layer_map(args.layer_map, config.num_layers, tconfig.num_layers)
                         if args.layer_map else
                         uniform_layer_map(config.num_layers, tconfig.num_layers))

    output = Path(args.output_dir)
    run = Run(output, run_settings(args, workers, config), RESUME_KEYS, resume=args.resume,
              overwrite=args.overwrite, enabled=workers.is_root, finished=(FINAL,),
              started=(CHECKPOINT, TEACHER))
    return Plan(args=args, train_data=train, eval_data=evaluation, student_config=config,
                teacher_state=teacher_state, adapt_teacher=adapt,
                layer_map=layer_map, output_dir=output, run=run)



"""Distillation pretraining: a masked-LM student trained against a frozen teacher.

One process, or many data-parallel workers started by ``horovodrun`` (Gloo on CPU, NCCL on
GPUs). Everything a run writes lives in ``output_dir`` and only rank 0 writes::

    log.jsonl          one JSON record per event (train steps, evaluations, checkpoints)
    checkpoint/        latest training state: student weights (+ MLM head), optimizer state,
                       step, data position and seed (swapped in atomically)
    teacher/           the teacher with the MLM head fitted by --teacher-head-steps, if any
    final/             the trained student as a bortkit checkpoint (+ MLM head, tokenizer)
    loss_curve.png     train loss and held-out MLM loss against the step
    results.json       final held-out MLM loss/accuracy (student and teacher), throughput

Determinism: batches are a pure function of (seed, step) (see
:class:`~bortkit.data.PretrainingDataset`) and dropout is reseeded from (seed, step, rank)
before every micro-batch, so a run resumed from a checkpoint reaches bit-for-bit the weights
of an uninterrupted one on CPU. Losses are sums divided by the *global* number of masked
tokens, so 2 workers x b sequences and 1 worker x 2b give the same losses and gradients.
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd

from ..checkpoint import named_parameters, read_state, save_pretrained
from ..checkpoint.core import assign
from ..config import ModelConfig, configs_dir, load_config
from ..errors import BortkitError, CheckpointError, ConfigError, DataError
from .. import ops as kernels
from ..model import BertNetwork, MaskedLMModel
from ..train import (JsonlLog, LinearSchedule, global_grad_norm, global_grad_norm_nd,
                     load_training_state,
                     make_trainer, plot_curves, read_jsonl, save_training_state,
                     seed_everything, seed_step, zero_grad)
from ..train.optim import OPTIMIZERS
from .losses import (DistillationObjective, LossWeights, describe, masked_lm_loss,
                     parse_layer_map, uniform_layer_map)

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
# Arguments a resumed run must share with the run that wrote the checkpoint.
RESUME_KEYS = ("train", "teacher", "teacher_mlm_steps", "teacher_mlm_train", "seed",
               "global_batch_size", "accumulate", "max_steps",
               "max_predictions", "mlm_probability", "whole_word", "optimizer",
               "learning_rate", "weight_decay", "warmup_ratio", "max_grad_norm", "mlm_weight",
               "kd_weight", "temperature", "kd_mode", "hidden_weight", "attention_weight",
               "layer_map", "student")


# =============================================================================== arguments
@dataclass
class PretrainingArguments:
    """Everything a pretraining run needs; the CLI flags have the same names (dashed)."""

    train: str                                 # shard directory (create_pretraining_data)
    output_dir: str
    test: Optional[str] = None                 # held-out shard directory
    student_config: str = "bort-mini"          # preset, configs/distill/<name>.json, or path
    teacher: Optional[str] = None              # bortkit / Hugging Face / GluonNLP checkpoint
    teacher_mlm_steps: int = 0                 # first train the teacher as a masked LM
    teacher_mlm_train: str = "all"             # ... all its weights, or only the MLM "head"
    teacher_mlm_lr: float = 2e-4
    dropout: Optional[float] = None            # overrides the student's dropout rates
    # loss (defaults: Bort's run_pretraining_distillation.sh)
    mlm_weight: float = 0.1
    kd_weight: float = 0.5
    temperature: float = 2.0
    kd_mode: str = "correct"
    hidden_weight: float = 0.0
    attention_weight: float = 0.0
    layer_map: Optional[str] = None            # "0:1,1:3,..."; default uniform
    # optimisation (defaults: Bort's pretraining)
    optimizer: str = "bertadam"
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    adam_epsilon: float = 1e-6
    warmup_ratio: float = 0.01
    max_grad_norm: float = 1.0                 # 0 = no clipping
    batch_size: int = 8                        # sequences per worker and micro-batch
    accumulate: int = 1
    max_steps: int = 1000
    # masking
    max_predictions: int = 20
    mlm_probability: float = 0.15
    whole_word: bool = False
    # bookkeeping
    eval_every: int = 100                      # 0 = only before and after training
    eval_batches: int = 0                      # 0 = the whole held-out set
    checkpoint_every: int = 100                # 0 = only at the end
    log_every: int = 10
    baseline_eval: bool = True                 # held-out loss of teacher and untrained student
    save_weights: bool = True                  # False: no checkpoint or final weights (scoring)
    seed: int = 0
    resume: bool = False
    progress: bool = True
    check_only: bool = False                   # validate everything, write nothing, exit
    stop_at_step: Optional[int] = None         # debug: SIGKILL itself during this step

    def check(self) -> None:
        """Raise :class:`ConfigError` for values no run can use."""
        positive = ("batch_size", "accumulate", "max_steps", "max_predictions", "log_every")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"--{_flag(name)} must be a positive integer, got {value!r}")
        for name in ("eval_every", "eval_batches", "checkpoint_every", "teacher_mlm_steps",
                     "seed"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, "
                              f"got {self.optimizer!r}")
        if self.teacher_mlm_train not in TEACHER_MLM_SCOPES:
            raise ConfigError(f"--teacher-mlm-train must be one of "
                              f"{', '.join(TEACHER_MLM_SCOPES)}, got {self.teacher_mlm_train!r}")
        for name in ("learning_rate", "teacher_mlm_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{_flag(name)} must be positive, got {getattr(self, name)}")
        if self.max_grad_norm < 0 or self.weight_decay < 0:
            raise ConfigError("--max-grad-norm and --weight-decay must be >= 0")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.teacher is None and (self.hidden_weight > 0 or self.attention_weight > 0
                                     or self.layer_map or self.teacher_mlm_steps):
            raise ConfigError("--hidden-weight, --attention-weight, --layer-map and "
                              "--teacher-mlm-steps need a --teacher")
        self.loss_weights()  # validates the loss settings

    def loss_weights(self) -> LossWeights:
        return LossWeights(mlm=self.mlm_weight, kd=self.kd_weight, temperature=self.temperature,
                           kd_mode=self.kd_mode, hidden=self.hidden_weight,
                           attention=self.attention_weight)


def _flag(name: str) -> str:
    return name.replace("_", "-")


# ============================================================================== workers
def launched_by_horovod() -> bool:
    """True inside a process started by ``horovodrun`` (Gloo or MPI)."""
    return any(key in os.environ for key in
               ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"))


class Workers:
    """The data-parallel workers this process belongs to (Horovod, or just itself)."""

    def __init__(self, distributed: Optional[bool] = None):
        self.hvd = None
        self.rank, self.size = 0, 1
        if distributed if distributed is not None else launched_by_horovod():
            try:
                import horovod.mxnet as hvd
            except ImportError:
                raise ConfigError("launched by horovodrun but horovod.mxnet is not importable "
                                  "(install the 'distributed' extra)") from None
            hvd.init()
            self.hvd, self.rank, self.size = hvd, hvd.rank(), hvd.size()

    @property
    def distributed(self) -> bool:
        return self.hvd is not None

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def sum(self, values: Sequence[float], name: str) -> np.ndarray:
        """Element-wise sum over the workers (float64)."""
        array = np.asarray(values, dtype=np.float64)
        if not self.distributed:
            return array
        total = self.hvd.allreduce(mx.nd.array(array, dtype="float64"), average=False,
                                   name=name)
        return total.asnumpy()

    def broadcast(self, params: dict) -> None:
        """Copy rank 0's parameter values to every worker."""
        if self.distributed:
            self.hvd.broadcast_parameters(params, root_rank=0)


# =============================================================================== models
class MaskedLMWithInternals(MaskedLMModel):
    """:class:`~bortkit.model.MaskedLMModel` that can also return every layer's hidden
    states (L+1, B, T, U) and attention probabilities (L, B, H, T, T), for layer transfer.

    Returns ``logits`` alone, or a tuple ``(logits[, hidden][, attentions])``.
    """

    def __init__(self, network: BertNetwork, collect_hidden: bool = False,
                 collect_attentions: bool = False, **kwargs):
        super().__init__(network, **kwargs)
        self._collect = (collect_hidden, collect_attentions)

    def hybrid_forward(self, F, input_ids, token_type_ids, attention_mask, masked_positions):
        sequence, _, hidden, attentions = self.network.run(
            F, input_ids, token_type_ids, attention_mask, *self._collect)
        logits = self.mlm_head(F.take(sequence.reshape((-3, 0)), masked_positions))
        outputs = [logits]
        if hidden:
            outputs.append(F.stack(*hidden, axis=0))
        if attentions:
            outputs.append(F.stack(*attentions, axis=0))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def build_masked_lm(config: ModelConfig, collect_hidden: bool = False,
                    collect_attentions: bool = False, ctx=None) -> MaskedLMWithInternals:
    """A freshly initialised (Normal(0.02)) masked-LM model of ``config``."""
    model = MaskedLMWithInternals(BertNetwork(config, prefix="bert_"), collect_hidden,
                                  collect_attentions)
    model.initialize(mx.init.Normal(0.02), ctx=ctx or mx.cpu())
    return model


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


def _token_types(config: ModelConfig, types: mx.nd.NDArray) -> mx.nd.NDArray:
    """Token types as the model can take them: a model with one type sees zeros."""
    return types if config.type_vocab_size >= 2 else mx.nd.zeros_like(types)


# ========================================================================== validation
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
    resume_state: Optional[dict]
    output_dir: Path


def _open_dataset(path: Optional[str], flag: str, args: PretrainingArguments, workers: Workers,
                  seed: int, shuffle: bool, drop_last: bool):
    from ..data import PretrainingDataset
    if Path(path).is_file():
        raise DataError(f"{flag} must be a shard directory made by python -m "
                        "bortkit.data.create_pretraining_data (scripts/"
                        "run_pretraining_distillation.sh converts raw text)", path=path)
    return PretrainingDataset(path, args.batch_size, seed=seed, rank=workers.rank,
                              world_size=workers.size, mlm_probability=args.mlm_probability,
                              max_predictions=args.max_predictions, whole_word=args.whole_word,
                              shuffle=shuffle, drop_last=drop_last)


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


def _resume_record(args: PretrainingArguments, workers: Workers, config: ModelConfig) -> dict:
    record = {key: getattr(args, key) for key in RESUME_KEYS if hasattr(args, key)}
    record["global_batch_size"] = args.batch_size * workers.size
    record["student"] = config.to_dict()
    return record


def _check_resume(stored: dict, current: dict, path: Path) -> None:
    for key in RESUME_KEYS:
        if key in stored and stored[key] != current.get(key):
            shown = "student config" if key == "student" else f"--{_flag(key)}"
            if key == "global_batch_size":
                shown = "global batch (--batch-size x workers)"
            raise ConfigError(f"cannot resume: {shown} was {stored[key]!r} in the checkpoint, "
                              f"now {current.get(key)!r}", path=path)


def _stored_state(checkpoint: Path) -> Optional[dict]:
    for directory in (checkpoint, checkpoint.with_name(checkpoint.name + ".old")):
        if (directory / "state.json").is_file():
            try:
                return json.loads((directory / "state.json").read_text())
            except json.JSONDecodeError as err:
                raise CheckpointError(f"corrupt state.json ({err})", path=directory) from None
    return None


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
    if output.exists() and not output.is_dir():
        raise ConfigError("--output-dir exists and is not a directory", path=output)
    stored = _stored_state(output / CHECKPOINT)
    previous = [name for name in (CHECKPOINT, FINAL, TEACHER) if (output / name).exists()]
    if previous and not args.resume:
        raise ConfigError(f"already holds a run ({previous[0]}/); pass --resume to continue "
                          "it or choose another --output-dir", path=output)
    if args.resume and stored is not None:
        _check_resume(stored.get("resume", {}), _resume_record(args, workers, config),
                      output / CHECKPOINT)
    return Plan(args=args, train_data=train, eval_data=evaluation, student_config=config,
                teacher_state=teacher_state, adapt_teacher=adapt,
                layer_map=layer_map, resume_state=stored if args.resume else None,
                output_dir=output)


# ============================================================================== training
def _arrays(batch, ctx) -> dict:
    as_nd = lambda a: mx.nd.array(a, ctx=ctx, dtype="float32")  # noqa: E731
    return {"input_ids": as_nd(batch.input_ids), "token_type_ids": as_nd(batch.token_type_ids),
            "attention_mask": as_nd(batch.attention_mask),
            "masked_positions": as_nd(batch.masked_positions),
            "masked_labels": as_nd(batch.masked_labels),
            "masked_weights": as_nd(batch.masked_weights)}


def _outputs(result) -> list:
    return [result] if isinstance(result, mx.nd.NDArray) else list(result)


class PretrainingRun:
    """One run: build the models from a :class:`Plan`, train, evaluate, save."""

    def __init__(self, plan: Plan, workers: Workers, ctx=None):
        self.plan, self.args, self.workers = plan, plan.args, workers
        self.ctx = ctx or mx.cpu()
        self.out = plan.output_dir
        self.log = JsonlLog(self.out / LOG, enabled=workers.is_root)
        self.weights = self.args.loss_weights()
        teacher = plan.teacher_state is not None
        self.use_hidden = teacher and self.weights.hidden > 0
        self.use_attention = teacher and self.weights.attention > 0
        seed_everything(self.args.seed)
        self.student = build_masked_lm(plan.student_config, self.use_hidden,
                                       self.use_attention, self.ctx)
        self.teacher = self._build_teacher() if teacher else None
        tconfig = plan.teacher_state.config if teacher else plan.student_config
        self.objective = DistillationObjective(
            self.weights, teacher, plan.layer_map, plan.student_config.units, tconfig.units,
            plan.student_config.num_heads, tconfig.num_heads, prefix="objective_")
        self.objective.initialize(mx.init.Normal(0.02), ctx=self.ctx)
        for block in (self.student, self.objective):
            block.hybridize(static_alloc=True, static_shape=True)
        self.params = self._trainable_params()
        workers.broadcast(self.params)
        self.trainer = make_trainer(self.params, self.args.optimizer, self.args.learning_rate,
                                    self.args.weight_decay, self.args.adam_epsilon,
                                    distributed=workers.distributed,
                                    accumulate=self.args.accumulate, prefix="student.")
        self.schedule = LinearSchedule(self.args.learning_rate, self.args.max_steps,
                                       self.args.warmup_ratio)

    # ------------------------------------------------------------------ construction
    def _build_teacher(self) -> MaskedLMWithInternals:
        state = self.plan.teacher_state
        saved = self.out / TEACHER
        if self.plan.adapt_teacher and (saved / "config.json").exists():
            state = read_state(saved)  # adapted by the run being resumed
            self.plan.adapt_teacher = False
        teacher = build_masked_lm(state.config, self.use_hidden, self.use_attention, self.ctx)
        assign(teacher, state)
        for param in teacher.collect_params().values():
            param.grad_req = "null"
        teacher.hybridize(static_alloc=True, static_shape=True)
        self.teacher_source = state.tokenizer_dir
        return teacher

    def _trainable_params(self) -> dict:
        """Student (the pooler is not part of masked-LM training) and loss projections."""
        params = {}
        for name, param in named_parameters(self.student).items():
            if name.startswith("pooler."):
                param.grad_req = "null"
                continue
            params[f"student.{name}"] = param
        for name, param in self.objective._collect_params_with_prefix().items():
            params[f"objective.{name}"] = param
        return params

    # ------------------------------------------------------------------ forward passes
    def _teacher_outputs(self, nd: dict) -> list:
        config = self.teacher.network.config
        return _outputs(self.teacher(nd["input_ids"], _token_types(config, nd["token_type_ids"]),
                                     nd["attention_mask"], nd["masked_positions"]))

    def _loss_inputs(self, student_out: list, teacher_out: Optional[list], nd: dict,
                     inv_masked, inv_tokens) -> list:
        inputs = [student_out[0], nd["masked_labels"], nd["masked_weights"], inv_masked]
        if teacher_out is None:
            return inputs
        inputs.append(teacher_out[0])
        k = 1
        if self.use_hidden:
            inputs += [student_out[k], teacher_out[k]]
            k += 1
        if self.use_attention:
            inputs += [student_out[k], teacher_out[k]]
        if self.use_hidden or self.use_attention:
            inputs += [nd["attention_mask"], inv_tokens]
        return inputs

    def _forward_backward(self, batch, inv_masked, inv_tokens) -> mx.nd.NDArray:
        """Accumulate the gradients of one micro-batch; return its 5 loss terms."""
        nd = _arrays(batch, self.ctx)
        teacher_out = self._teacher_outputs(nd) if self.teacher is not None else None
        config = self.plan.student_config
        with autograd.record():
            student_out = _outputs(self.student(
                nd["input_ids"], _token_types(config, nd["token_type_ids"]),
                nd["attention_mask"], nd["masked_positions"]))
            terms = self.objective(*self._loss_inputs(student_out, teacher_out, nd,
                                                      inv_masked, inv_tokens))
        terms[0].backward()
        return mx.nd.concat(*terms, dim=0)

    def _inverse_counts(self, batches: list) -> tuple:
        """world / global masked tokens and world / global real tokens, as (1,) arrays:
        Horovod averages the workers' gradients, so each worker's loss is its share of the
        global sum times the number of workers."""
        local = [sum(float(b.masked_weights.sum()) for b in batches),
                 sum(float(b.num_tokens) for b in batches)]
        masked, tokens = self.workers.sum(local, "counts")
        size = self.workers.size
        return (mx.nd.array([size / max(masked, 1.0)], ctx=self.ctx),
                mx.nd.array([size / max(tokens, 1.0)], ctx=self.ctx), tokens)

    def _apply_gradients(self, trainer, params: dict, max_norm: float):
        """Allreduce, clip to ``max_norm`` (global norm of the averaged gradient), update;
        return that norm (a float, or a (1,) NDArray to read only when it is logged)."""
        trainer.allreduce_grads()
        # update(b) multiplies the gradients by trainer._scale / b, where _scale is 1, or
        # 1/workers when Horovod sums instead of averaging. Clipping rides on the same
        # rescaling instead of another pass over the gradients.
        scale = float(trainer._scale)
        optimizer = trainer._optimizer
        if getattr(optimizer, "supports_device_scale", False) and kernels.available():
            # The clip factor stays on the device: no wait for the backward pass here, so
            # the host queues the update while the gradients are still being computed.
            norm = global_grad_norm_nd(params) * scale
            if max_norm > 0:
                optimizer.device_scale = mx.nd.where(
                    norm > max_norm, max_norm / (norm + 1e-8), mx.nd.ones_like(norm))
            trainer.update(1.0)
            optimizer.device_scale = None
        else:
            norm = global_grad_norm(params) * scale
            clip = max_norm / (norm + 1e-8) if 0 < max_norm < norm else 1.0
            trainer.update(1.0 / clip)
        if self.args.accumulate > 1:
            zero_grad(params)
        return norm

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: MaskedLMWithInternals) -> dict:
        """Masked-LM loss and accuracy on the held-out data (all workers, summed)."""
        data = self.plan.eval_data
        steps = len(data) if not self.args.eval_batches else min(len(data), self.args.eval_batches)
        config = model.network.config
        sums = np.zeros(3)
        ones = mx.nd.ones((1,), ctx=self.ctx)
        for step in range(steps):
            batch = data.batch(step)
            # drop_last=False wraps the last batch round: rows past the end weigh nothing
            first = step * data.global_batch_size + data.rank * data.batch_size
            real = (first + np.arange(data.batch_size)) < data.num_examples
            batch.masked_weights = batch.masked_weights * np.repeat(real, data.max_predictions)
            nd = _arrays(batch, self.ctx)
            logits = _outputs(model(nd["input_ids"], _token_types(config, nd["token_type_ids"]),
                                    nd["attention_mask"], nd["masked_positions"]))[0]
            loss = masked_lm_loss(mx.nd, logits, nd["masked_labels"], nd["masked_weights"], ones)
            correct = ((logits.argmax(axis=-1) == nd["masked_labels"]) * nd["masked_weights"]).sum()
            sums += [float(loss.asscalar()), float(correct.asscalar()),
                     float(batch.masked_weights.sum())]
        loss, correct, count = self.workers.sum(sums, "eval")
        return {"mlm_loss": loss / max(count, 1.0), "mlm_accuracy": correct / max(count, 1.0),
                "masked_tokens": int(count), "batches": steps}

    # ------------------------------------------------------------------ teacher
    def adapt_teacher(self) -> None:
        """Train the teacher as a masked LM on the training data (all its weights, or only
        its MLM head), e.g. to give a sentence-embedding model the MLM head it lacks.
        Saved to ``output_dir/teacher`` so a resumed run does not repeat it."""
        args, steps = self.args, self.args.teacher_mlm_steps
        head_only = args.teacher_mlm_train == "head"
        params = {name: p for name, p in named_parameters(self.teacher).items()
                  if name.startswith("mlm_head.") or not (head_only or name.startswith("pooler."))}
        for param in params.values():
            param.grad_req = "write"
        self.workers.broadcast(params)
        trainer = make_trainer(params, "bertadam", args.teacher_mlm_lr, args.weight_decay,
                               args.adam_epsilon, distributed=self.workers.distributed,
                               prefix="teacher.")
        schedule = LinearSchedule(args.teacher_mlm_lr, steps, warmup_ratio=0.1)
        config = self.teacher.network.config
        bar = self._bar(steps, 0, "teacher MLM")
        for step in range(1, steps + 1):
            trainer.set_learning_rate(schedule(step))
            batch = self.plan.train_data.batch(step - 1)
            inv_masked, _, _ = self._inverse_counts([batch])
            nd = _arrays(batch, self.ctx)
            seed_step(args.seed + 1, step, self.workers.rank)
            with autograd.record(train_mode=not head_only):  # a frozen encoder: no dropout
                logits = _outputs(self.teacher(
                    nd["input_ids"], _token_types(config, nd["token_type_ids"]),
                    nd["attention_mask"], nd["masked_positions"]))[0]
                loss = masked_lm_loss(mx.nd, logits, nd["masked_labels"], nd["masked_weights"],
                                      inv_masked)
            loss.backward()
            self._apply_gradients(trainer, params, args.max_grad_norm)
            if step % args.log_every == 0 or step == steps:
                value = self.workers.sum([float(loss.asscalar())], "teacher_loss")[0] \
                    / self.workers.size
                self.log.write("teacher_mlm", step=step, loss=value, lr=schedule(step))
                self._say(f"teacher MLM step {step}/{steps}: loss {value:.4f}")
                bar.set_postfix(loss=f"{value:.3f}")
            bar.update(1)
        bar.close()
        for param in params.values():
            param.grad_req = "null"
        if self.workers.is_root:
            save_pretrained(self.teacher, self.out / TEACHER, config=config,
                            source=self.teacher_source,
                            meta={"_mlm_adapted": {"steps": steps, "train": args.teacher_mlm_train,
                                                   "data": args.train, "base": args.teacher}})
        self.plan.adapt_teacher = False

    # ------------------------------------------------------------------ main loop
    def _say(self, message: str, always: bool = False) -> None:
        """A line on rank 0's stderr: evaluations always, steps when there is no bar."""
        if self.workers.is_root and (always or not self.args.progress):
            from tqdm import tqdm
            tqdm.write(message, file=sys.stderr)

    def _bar(self, total: int, initial: int, desc: str):
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True,
                    disable=not (self.args.progress and self.workers.is_root))

    def _resume(self) -> int:
        if self.plan.resume_state is None:
            return 0
        extras = self._extra_blocks()
        state = load_training_state(self.out / CHECKPOINT, self.student, self.trainer,
                                    extra_blocks=extras)
        self.log.write("resume", step=state["step"], data_position=state["data_position"])
        return int(state["step"])

    def _extra_blocks(self) -> Optional[dict]:
        """The loss block goes into checkpoints when it has learned projections."""
        return {OBJECTIVE: self.objective} if list(self.objective.collect_params().keys()) else None

    def _save_checkpoint(self, step: int) -> None:
        if not self.workers.is_root:
            return
        state = {"step": step, "data_position": step * self.args.accumulate,
                 "seed": self.args.seed, "world_size": self.workers.size,
                 "resume": _resume_record(self.args, self.workers, self.plan.student_config)}
        extras = self._extra_blocks()
        save_training_state(self.out / CHECKPOINT, self.student,
                            self.plan.student_config, self.trainer, state,
                            source=self.plan.train_data.tokenizer_dir, extra_blocks=extras)
        self.log.write("checkpoint", step=step)

    def eval_results(self, step: int) -> dict:
        if self.plan.eval_data is None:
            return {}
        result = self.evaluate(self.student)
        self.log.write("eval", step=step, **result)
        self._say(f"held-out at step {step}: MLM loss {result['mlm_loss']:.4f}, accuracy "
                  f"{result['mlm_accuracy']:.4f}", always=True)
        return result

    def run(self) -> dict:
        args, workers = self.args, self.workers
        start = self._resume()
        self.log.write("start", step=start, workers=workers.size, objective=describe(
            self.weights, self.teacher is not None, self.plan.layer_map),
            student=self.plan.student_config.to_dict(), args=dataclasses.asdict(args))
        teacher_eval = None
        if self.teacher is not None and self.plan.adapt_teacher:
            self.adapt_teacher()
        if self.teacher is not None and self.plan.eval_data is not None and args.baseline_eval:
            teacher_eval = self.evaluate(self.teacher)
            self.log.write("teacher_eval", step=start, **teacher_eval)
            self._say(f"teacher held-out: MLM loss {teacher_eval['mlm_loss']:.4f}, accuracy "
                      f"{teacher_eval['mlm_accuracy']:.4f}", always=True)
        if start == 0 and args.baseline_eval:
            self.eval_results(0)
        step = start
        tokens_seen, clock = 0.0, time.perf_counter()
        sums = None
        bar = self._bar(args.max_steps, start, "pretraining")
        data = self.plan.train_data
        while step < args.max_steps:
            step += 1
            lr = self.schedule(step)
            self.trainer.set_learning_rate(lr)
            positions = range((step - 1) * args.accumulate, step * args.accumulate)
            batches = [data.batch(p) for p in positions]
            inv_masked, inv_tokens, tokens = self._inverse_counts(batches)
            terms = None
            for position, batch in zip(positions, batches):
                seed_step(args.seed, position, workers.rank)
                part = self._forward_backward(batch, inv_masked, inv_tokens)
                terms = part if terms is None else terms + part
            if args.stop_at_step == step:  # debug: die mid-step, as a killed job would
                mx.nd.waitall()
                os.kill(os.getpid(), signal.SIGKILL)
            norm = self._apply_gradients(self.trainer, self.params, args.max_grad_norm)
            tokens_seen += tokens
            sums = terms if sums is None else sums + terms
            if step % args.log_every == 0 or step == args.max_steps:
                elapsed = time.perf_counter() - clock
                window = (step - 1) % args.log_every + 1
                mean = workers.sum(sums.asnumpy(), "terms") / (workers.size * window)
                record = dict(zip(("loss", "mlm", "kd", "hidden", "attention"),
                                  map(float, mean)))
                if isinstance(norm, mx.nd.NDArray):
                    norm = float(norm.asscalar())
                self.log.write("train", step=step, lr=lr, grad_norm=norm,
                               tokens_per_second=tokens_seen / max(elapsed, 1e-9), **record)
                bar.set_postfix(loss=f"{record['loss']:.3f}")
                self._say(f"step {step}/{args.max_steps}: loss {record['loss']:.4f} "
                          f"(mlm {record['mlm']:.4f}, kd {record['kd']:.4f}), lr {lr:.2e}, "
                          f"{tokens_seen / max(elapsed, 1e-9):,.0f} tokens/s")
                sums, tokens_seen, clock = None, 0.0, time.perf_counter()
            bar.update(1)
            if step < args.max_steps:  # the last step is checkpointed and evaluated below
                if args.checkpoint_every and step % args.checkpoint_every == 0:
                    self._save_checkpoint(step)
                if args.eval_every and step % args.eval_every == 0:
                    self.eval_results(step)
        bar.close()
        return self._finish(step, teacher_eval)

    def _finish(self, step: int, teacher_eval: Optional[dict]) -> dict:
        final_eval = self.eval_results(step)
        if self.args.save_weights:
            self._save_checkpoint(step)
        results = {"steps": step, "workers": self.workers.size, "eval": final_eval,
                   "teacher_eval": teacher_eval}
        if self.workers.is_root and self.args.save_weights:
            save_pretrained(self.student, self.out / FINAL, config=self.plan.student_config,
                            source=self.plan.train_data.tokenizer_dir, seed=self.args.seed,
                            meta={"_pretraining": {"steps": step, "teacher": self.args.teacher,
                                                   "objective": describe(
                                                       self.weights, self.teacher is not None,
                                                       self.plan.layer_map)}})
        if self.workers.is_root:
            records = _latest_per_step(read_jsonl(self.out / LOG))
            plot_curves(records, self.out / "loss_curve.png",
                        series=(("train", "loss"), ("train", "mlm"), ("eval", "mlm_loss")),
                        title="pretraining: train loss and held-out MLM loss")
            from ..io import write_json
            write_json(self.out / "results.json", results)
            self.log.write("done", **results)
            where = f"; the student is in {self.out / FINAL}" if self.args.save_weights else ""
            self._say(f"done: {step} steps{where}", always=True)
        return results


def _latest_per_step(records: list) -> list:
    """Keep the last record of each (event, step): a resumed run repeats some steps."""
    latest = {}
    for record in records:
        latest[(record.get("event"), record.get("step"))] = record
    return list(latest.values())


def train(args: PretrainingArguments, workers: Optional[Workers] = None) -> dict:
    """Run pretraining as described by ``args``; return the final metrics.

    Everything is validated first (:func:`plan_run`); with ``check_only`` nothing else
    happens. Under ``horovodrun`` every process calls this; only rank 0 writes.
    """
    workers = workers or Workers()
    plan = plan_run(args, workers)
    if args.check_only:
        return {"checked": True}
    if workers.is_root:
        plan.output_dir.mkdir(parents=True, exist_ok=True)
    return PretrainingRun(plan, workers).run()

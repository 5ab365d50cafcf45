"""A teacher's masked-LM head: train it (or the whole teacher) as a masked LM on the data.

Sentence-embedding checkpoints such as all-MiniLM-L6-v2 ship without the MLM head that
distillation takes its targets from. :func:`fit_mlm_head` gives them one and saves the
result as a bortkit checkpoint; :func:`train_masked_lm` is the same training on a model in
memory (what ``python -m bortkit.distill --teacher-mlm-steps N`` runs).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import mxnet as mx

from ..checkpoint import named_parameters, read_state, save_pretrained
from ..checkpoint.core import assign
from ..train import (JsonlLog, LinearSchedule, Loop, ParamGroup, Progress, TrainStep, Workers,
                     make_trainer, seed_everything)
from .losses import masked_lm_loss
from .models import MaskedLMWithInternals, as_outputs, batch_arrays, build_masked_lm, token_types
from .plan import TEACHER_MLM_SCOPES, check_teacher_tokenizer


def inverse_counts(batches: list, workers: Workers, ctx=None) -> tuple:
    """world / global masked tokens and world / global real tokens of ``batches`` (all
    workers), as (1,) NDArrays, and the global real tokens: gradients are averaged over the
    workers, so each worker's loss is its share of the global sum times the workers."""
    local = [sum(float(b.masked_weights.sum()) for b in batches),
             sum(float(b.num_tokens) for b in batches)]
    masked, tokens = workers.sum(local, "counts")
    ctx = ctx or mx.cpu()
    return (mx.nd.array([workers.size / max(masked, 1.0)], ctx=ctx),
            mx.nd.array([workers.size / max(tokens, 1.0)], ctx=ctx), tokens)


def train_masked_lm(model: MaskedLMWithInternals, data, steps: int, learning_rate: float = 2e-4,
                    scope: str = "head", weight_decay: float = 0.01, epsilon: float = 1e-6,
                    max_grad_norm: float = 1.0, seed: int = 0,
                    workers: Optional[Workers] = None, log: Optional[JsonlLog] = None,
                    log_every: int = 10, progress: bool = False, ctx=None) -> float:
    """Train ``model`` as a masked LM on the first ``steps`` batches of ``data`` (a
    :class:`~bortkit.data.PretrainingDataset`): all its weights but the pooler
    (``scope="all"``), or only its MLM head (``"head"``: the encoder is frozen and runs
    without dropout). BERTAdam, warmup over 10% of the steps then linear decay. Returns the
    last logged loss (mean over the workers); the weights are trained in place and frozen
    again afterwards."""
    if scope not in TEACHER_MLM_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(TEACHER_MLM_SCOPES)}, got {scope!r}")
    workers = workers or Workers(distributed=False)
    ctx = ctx or mx.cpu()
    head_only = scope == "head"
    params = {name: p for name, p in named_parameters(model).items()
              if name.startswith("mlm_head.") or not (head_only or name.startswith("pooler."))}
    for param in params.values():
        param.grad_req = "write"
    workers.broadcast(params)
    trainer = make_trainer(params, "bertadam", learning_rate, weight_decay, epsilon)
    group = ParamGroup(params, trainer, LinearSchedule(learning_rate, steps, warmup_ratio=0.1),
                       max_grad_norm=max_grad_norm, name="teacher")
    config = model.network.config

    def loss(micro_batch):
        batch, inv_masked = micro_batch
        nd = batch_arrays(batch, ctx)
        logits = as_outputs(model(nd["input_ids"], token_types(config, nd["token_type_ids"]),
                                  nd["attention_mask"], nd["masked_positions"]))[0]
        return masked_lm_loss(mx.nd, logits, nd["masked_labels"], nd["masked_weights"],
                              inv_masked)

    def batches():
        for position in range(steps):
            batch = data.batch(position)
            yield [(batch, inverse_counts([batch], workers, ctx)[0])]

    last = {"loss": float("nan")}

    def on_step(result) -> Optional[dict]:
        if result.step % log_every and result.step != steps:
            return None
        last["loss"] = workers.sum([result.loss], "teacher_loss")[0] / workers.size
        if log is not None:
            log.write("teacher_mlm", step=result.step, loss=last["loss"],
                      lr=result.learning_rates[0])
        bar.say(f"teacher MLM step {result.step}/{steps}: loss {last['loss']:.4f}")
        return {"loss": f"{last['loss']:.3f}"}

    with Progress(steps, 0, "teacher MLM", enabled=progress, writer=workers.is_root) as bar:
        Loop(TrainStep([group], workers, seed=seed, train_mode=not head_only), loss, batches(),
             steps, on_step=on_step, progress=bar).run()
    for param in params.values():
        param.grad_req = "null"
    return last["loss"]


def fit_mlm_head(teacher: os.PathLike | str, train: os.PathLike | str,
                 output_dir: os.PathLike | str, steps: int, learning_rate: float = 2e-4,
                 scope: str = "head", batch_size: int = 8, seed: int = 0,
                 progress: bool = False) -> Path:
    """Train the checkpoint ``teacher`` as a masked LM for ``steps`` steps on the shard
    directory ``train`` (:func:`train_masked_lm`) and save it, with its tokenizer, to
    ``output_dir``; returns ``output_dir``. A missing head starts from Normal(0.02)."""
    from ..data import PretrainingDataset
    state = read_state(teacher)
    data = PretrainingDataset(train, batch_size, seed=seed)
    check_teacher_tokenizer(state.tokenizer_dir, data)
    seed_everything(seed)
    model = build_masked_lm(state.config)
    assign(model, state)
    for param in model.collect_params().values():
        param.grad_req = "null"
    model.hybridize(static_alloc=True, static_shape=True)
    train_masked_lm(model, data, steps, learning_rate, scope, seed=seed + 1, progress=progress)
    return save_pretrained(model, output_dir, config=state.config, source=state.tokenizer_dir,
                           meta={"_mlm_adapted": {"steps": steps, "train": scope,
                                                  "data": str(train), "base": str(teacher)}})

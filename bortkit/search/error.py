"""ê for the search: a candidate's held-out loss after a short distillation from the teacher.

de Wynter & Perry train each candidate for a fixed budget against the maximum point's
outputs; here the teacher plays that role. Each candidate is built with its searched shape
and the *teacher's* vocabulary (the distillation targets are the teacher's token
distributions), trained for ``steps`` steps with Bort's loss (0.1 MLM + 0.5 T² KD, T = 2)
under one setting θ of the hyperparameter set, and scored on held-out masked positions:

- ``kl`` (the default): the KL divergence from the teacher's distribution to the
  candidate's, Σ_v p_teacher(v) (log p_teacher(v) - log p_candidate(v)), averaged over the
  masked positions: the cross-entropy minus the teacher's own entropy, which is the same for
  every candidate (5.86 of about 7 nats for the bundled teacher) and so only flattens the
  differences W divides by;
- ``teacher-ce`` (the paper's reading): cross-entropy of the candidate's distribution
  against the teacher's, -Σ_v p_teacher(v) log p_candidate(v) (= kl + the teacher's entropy);
- ``mlm``: masked-LM cross-entropy against the true tokens.

The default recipe trains on the quantity it is scored on (KD only, T = 1, no MLM term), so
that a sub-network extracted from the teacher is not scored on the damage of its first
steps (Bort's 0.1 MLM + 0.5 T² KD at T = 2 pulls a candidate away from the teacher's
distribution at T = 1); the scores before training are kept beside (``before``).

All are computed and written to ``candidates/<shape>/<θ>/error.json``; ``mode`` says which
one is ê. p̂ still counts the space's own fixed fields (e.g. Bort's 50,265-token
vocabulary); only the training uses the teacher's.

Every candidate trains in a fresh worker process (``isolate=True``, the default), so the
search's memory is that of one candidate whatever the number trained: MXNet keeps the
memory pool of every shape it has seen until its process ends.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from ..checkpoint import read_state
from ..errors import BortkitError, ConfigError
from ..io import write_json
from .costs import arch_config
from .teacher import fingerprint, head_key, teacher_with_head, user_cache_dir
from .worker import isolated

RESOURCES = Path(__file__).resolve().parents[1] / "resources" / "corpus"
ERROR_MODES = ("kl", "teacher-ce", "mlm")
DEFAULT_ERROR = "kl"
INITS = ("random", "teacher")
# How a teacher shipped without an MLM head gets one: every weight trained as a masked LM
# (fitting the head alone leaves a unigram-level teacher, held-out MLM 7.35 on the bundled
# text; all weights at 2e-4 are unstable, 7.13; at 1e-4 they reach 5.93: bench/teacher_fit.py).
TEACHER_MLM_STEPS = 400
TEACHER_MLM_TRAIN = "all"
TEACHER_MLM_LR = 1e-4


def _number(low: float, high: Optional[float] = None, low_open: bool = False,
            integer: bool = False):
    """A Θ value check: a number (an integer with ``integer``) in [low, high) or (low, high)."""
    def check(value: Any) -> Optional[str]:
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            return "must be an integer" if integer else "must be a number"
        if value != value or value in (float("inf"), float("-inf")):
            return "must be a finite number"
        if value < low or (low_open and value == low) or (high is not None and value >= high):
            opening = "(" if low_open else "["
            closing = f"{high})" if high is not None else "inf)"
            return f"must be in {opening}{low}, {closing}"
        return None
    return check


#: The hyperparameters a θ may set (``--theta FILE.yaml``) and their allowed values.
THETA_CHECKS = {
    "learning_rate": _number(0.0, low_open=True),
    "warmup_ratio": _number(0.0, 1.0),
    "weight_decay": _number(0.0),
    "max_grad_norm": _number(0.0),
    "batch_size": _number(1, integer=True),
    "temperature": _number(0.0, low_open=True),
    "mlm_weight": _number(0.0),
    "kd_weight": _number(0.0),
    "seed": _number(0, integer=True),
}


@dataclass
class Training:
    """One candidate's training and scoring recipe (θ's values override these)."""

    # 0 steps: a candidate is scored as extracted from the teacher, with the teacher's
    # weights (a sub-network of a super-network, as whittle and AutoTinyBERT score theirs),
    # so ê measures what it keeps, not how fast it recovers in a few steps (10 steps of KD
    # lower a 2-layer sub-network's KL from 3.44 to 1.87 nats and a 5-layer one's from 1.50
    # to 1.32: the short recipe rewards the smallest for healing fastest). With steps > 0
    # the loss is the KL at T = 1 that ê measures (Bort's mix: temperature 2, mlm 0.1,
    # kd 0.5); 10 steps rank as 100 do (bench/search_proxy.py).
    steps: int = 0
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    batch_size: int = 8
    temperature: float = 1.0
    mlm_weight: float = 0.0
    kd_weight: float = 1.0
    seed: int = 0
    init: str = "teacher"              # sub-network extraction, or "random"
    eval_batches: int = 25

    def with_theta(self, theta: Optional[Mapping[str, Any]]) -> "Training":
        return Training(**{**asdict(self), **dict(theta or {})})


def text_files(corpus: Optional[Sequence[str]], heldout: Optional[Sequence[str]]
               ) -> tuple[list[Path], list[Path]]:
    """The training and held-out text files (default: the bundled sample), each checked to
    exist: what ``--corpus`` and ``--heldout`` name."""
    corpus = [Path(p) for p in (corpus or [RESOURCES / "train.txt"])]
    heldout = [Path(p) for p in (heldout or [RESOURCES / "heldout.txt"])]
    for path in (*corpus, *heldout):
        if not path.is_file():
            raise BortkitError("corpus file not found", path=path)
    return corpus, heldout


@dataclass
class DistillationError:
    """Callable ``error(arch[, theta]) -> float`` over prepared data and teacher."""

    out: Path
    teacher_dir: Path
    train_dir: Path
    heldout_dir: Path
    vocab: dict
    training: Training
    mode: str
    teacher_id: str
    corpus_id: str
    isolate: bool = True
    keep_weights: bool = False   # keep each trained candidate in <run_dir>/train/final
    last: dict = field(default_factory=dict, repr=False)   # the latest candidate's scores

    @classmethod
    def prepare(cls, out: Path, teacher: Optional[str], corpus: Optional[Sequence[str]],
                heldout: Optional[Sequence[str]], training: Training, seq_length: int,
                mode: str = DEFAULT_ERROR, teacher_mlm_steps: int = TEACHER_MLM_STEPS,
                teacher_mlm_train: str = TEACHER_MLM_TRAIN,
                teacher_mlm_lr: float = TEACHER_MLM_LR,
                cache: Optional[Path] = user_cache_dir(), progress: bool = True,
                isolate: bool = True) -> "DistillationError":
        """Tokenise the corpus with the teacher's tokenizer into shards; give a teacher
        without an MLM head one (fitted once per teacher, corpus and settings, then read from
        ``cache``; ``cache=None`` refits it inside ``out``)."""
        if mode not in ERROR_MODES:
            raise ConfigError(f"--error must be one of {', '.join(ERROR_MODES)}, got {mode!r}")
        if training.init not in INITS:
            raise ConfigError(f"--init must be one of {', '.join(INITS)}, got {training.init!r}")
        if training.steps == 0 and training.init != "teacher":
            raise ConfigError("--steps-per-candidate 0 scores each candidate as extracted from "
                              f"the teacher and needs --init teacher, got --init "
                              f"{training.init}")
        out = Path(out)
        corpus, heldout = text_files(corpus, heldout)
        base = teacher_path(teacher)
        state = read_state(base)
        if state.tokenizer_dir is None:
            raise BortkitError("teacher checkpoint has no tokenizer files", path=base)
        state.config.check_sequence_length(seq_length, path=base)  # before any tokenising
        data = out / "data"
        train_dir = _shards(corpus, state.tokenizer_dir, data / "train", seq_length, progress)
        heldout_dir = _shards(heldout, state.tokenizer_dir, data / "heldout", seq_length,
                              progress)
        _check_vocabulary(state, train_dir, base)
        corpus_id = fingerprint(corpus + heldout)
        teacher_dir = base
        if "mlm_head.decoder.bias" not in state.tensors:
            key = head_key(base, corpus_id, teacher_mlm_steps, training.batch_size, seq_length,
                           training.seed, teacher_mlm_train, teacher_mlm_lr)
            teacher_dir = isolated(teacher_with_head, base, train_dir, key, teacher_mlm_steps,
                                   training.batch_size, training.seed, cache, out / "teacher",
                                   progress, teacher_mlm_train, teacher_mlm_lr,
                                   threads=os.cpu_count())
        config = state.config
        vocab = {"vocab_size": config.vocab_size, "pad_token_id": config.pad_token_id,
                 "type_vocab_size": config.type_vocab_size,
                 "max_length": max(config.max_length, seq_length)}
        return cls(out, teacher_dir, train_dir, heldout_dir, vocab, training, mode,
                   teacher_id=f"{base}:{fingerprint(sorted(Path(base).glob('*.json')))}",
                   corpus_id=corpus_id, isolate=isolate)

    def student_config(self, arch: Mapping):
        return arch_config(arch).replace(**self.vocab)

    def run_dir(self, arch: Mapping, theta: Optional[Mapping] = None) -> Path:
        shape = "-".join(f"{arch[k]}" for k in ("num_layers", "num_heads", "units", "ffn_units"))
        if arch.get("attention", "dot_product") != "dot_product":  # one folder per variant
            shape += f"-{arch['attention']}"
        name = "default" if not theta else hashlib.sha256(
            json.dumps(dict(theta), sort_keys=True).encode()).hexdigest()[:10]
        return self.out / "candidates" / shape / name

    def __call__(self, arch: Mapping, theta: Optional[Mapping] = None) -> float:
        run_dir = self.run_dir(arch, theta)
        shutil.rmtree(run_dir, ignore_errors=True)  # a killed candidate starts over
        run_dir.mkdir(parents=True)
        job = {"run_dir": str(run_dir), "student": self.student_config(arch).to_dict(),
               "teacher": str(self.teacher_dir), "train": str(self.train_dir),
               "heldout": str(self.heldout_dir),
               "training": asdict(self.training.with_theta(theta)),
               "keep_weights": self.keep_weights}
        scores = isolated(score_candidate, job) if self.isolate else score_candidate(job)
        write_json(run_dir / "error.json", {"arch": dict(arch), "theta": theta, **scores})
        self.last = scores
        return float(scores[self.mode])


def score_candidate(job: dict) -> dict:
    """Train one candidate (``job`` as :meth:`DistillationError.__call__` builds it) and
    return its held-out ``kl``, ``teacher-ce`` and ``mlm`` losses (and, from the teacher's
    weights, the same ``before`` training), its training seconds and the process's peak
    resident memory."""
    import time

    from ..checkpoint import named_parameters
    from ..distill import PretrainingArguments, PretrainingRun, plan_run
    from ..train import Workers
    from .extract import init_from_teacher
    training = Training(**job["training"])
    run_dir = Path(job["run_dir"])
    write_json(run_dir / "student.json", job["student"])
    args = PretrainingArguments(
        train=job["train"], test=None, output_dir=str(run_dir / "train"),
        student_config=str(run_dir / "student.json"), teacher=job["teacher"],
        # 0 steps: the run is built for its student and teacher and never run
        max_steps=max(training.steps, 1), batch_size=training.batch_size,
        learning_rate=training.learning_rate, warmup_ratio=training.warmup_ratio,
        weight_decay=training.weight_decay, max_grad_norm=training.max_grad_norm,
        temperature=training.temperature, mlm_weight=training.mlm_weight,
        kd_weight=training.kd_weight, eval_every=0, checkpoint_every=0, seed=training.seed,
        log_every=max(training.steps, 1),  # one line per candidate: the search reports its own progress
        progress=False, baseline_eval=False, save_weights=job.get("keep_weights", False))
    workers = Workers(distributed=False)
    run = PretrainingRun(plan_run(args, workers), workers)
    initialised = None
    if training.init == "teacher":
        teacher = read_state(job["teacher"])
        initialised = init_from_teacher(named_parameters(run.student), teacher.tensors,
                                        heads=(job["student"]["num_heads"],
                                               teacher.config.num_heads))
        del teacher   # its tensors are in the student now; the worker's peak is lower without
    before = None
    if training.init == "teacher":
        before = heldout_losses(run.student, run.teacher, job["heldout"], training.batch_size,
                                training.eval_batches)
    seconds, scores = 0.0, before      # 0 steps: the sub-network as extracted
    if training.steps:
        start = time.perf_counter()
        with run.plan.run:  # the candidate's run folder: claimed, locked, staging cleaned
            run.run()
        seconds = time.perf_counter() - start
        scores = heldout_losses(run.student, run.teacher, job["heldout"], training.batch_size,
                                training.eval_batches)
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {**scores, "before": before, "train_seconds": seconds, "initialised": initialised,
            "worker_peak_rss_mb": round(peak, 1)}


def heldout_losses(student, teacher, heldout_dir: str, batch_size: int, batches: int) -> dict:
    """Mean over the held-out masked positions of the KL divergence from the teacher's
    distribution (``kl``), the cross-entropy against it (``teacher-ce``) and against the
    true token (``mlm``)."""
    import mxnet as mx
    import numpy as np

    from ..data import PretrainingDataset
    from ..distill.plan import EVAL_SEED
    data = PretrainingDataset(heldout_dir, batch_size, seed=EVAL_SEED, shuffle=False,
                              drop_last=False)
    steps = min(len(data), batches) if batches else len(data)
    sums = np.zeros(4)
    for step in range(steps):
        batch = data.batch(step)
        real = (step * batch_size + np.arange(batch_size)) < data.num_examples
        weights = batch.masked_weights * np.repeat(real, data.max_predictions)  # (B*N,)
        inputs = [mx.nd.array(a, dtype="float32") for a in (
            batch.input_ids, batch.token_type_ids, batch.attention_mask,
            batch.masked_positions)]
        log_p = [mx.nd.log_softmax(_logits(model, inputs), axis=-1).asnumpy()   # (B, N, V)
                 .reshape(len(weights), -1) for model in (student, teacher)]
        p_teacher = np.exp(log_p[1])
        teacher_ce = -(p_teacher * log_p[0]).sum(axis=-1)                       # (B*N,)
        kl = (p_teacher * (log_p[1] - log_p[0])).sum(axis=-1)                   # (B*N,)
        mlm = -log_p[0][np.arange(len(weights)), batch.masked_labels.reshape(-1).astype(int)]
        sums += [(kl * weights).sum(), (teacher_ce * weights).sum(), (mlm * weights).sum(),
                 weights.sum()]
    count = max(sums[3], 1.0)
    return {"kl": float(sums[0] / count), "teacher-ce": float(sums[1] / count),
            "mlm": float(sums[2] / count), "masked_tokens": int(sums[3]), "batches": steps}


def _logits(model, inputs):
    """Masked-position logits (B, N, V) of a masked-LM model in inference mode."""
    ids, types, mask, positions = inputs
    if model.network.config.type_vocab_size < 2:
        types = types.zeros_like()
    out = model(ids, types, mask, positions)
    return out if not isinstance(out, tuple) else out[0]


def teacher_path(teacher: Optional[str]) -> Path:
    """``--teacher``, or the bundled MiniLM."""
    if teacher:
        return Path(teacher)
    from ..info import bundled_minilm
    return bundled_minilm()


def _shards(inputs: Sequence[Path], tokenizer_dir: Path, out: Path, seq_length: int,
            progress: bool) -> Path:
    from ..data.pretraining import create_pretraining_data
    from ..tokenizers import load_tokenizer
    if not (out / "meta.json").exists():
        create_pretraining_data([str(p) for p in inputs], load_tokenizer(tokenizer_dir), out,
                                max_seq_length=seq_length, overwrite=True, progress=progress)
    return out


def _check_vocabulary(teacher_state, train_dir: Path, teacher_path: Path) -> None:
    meta = json.loads((train_dir / "meta.json").read_text())
    size = meta["tokenizer"]["vocab_size"]
    if size > teacher_state.config.vocab_size:
        raise ConfigError(f"the teacher's tokenizer has {size} tokens but its embedding only "
                          f"{teacher_state.config.vocab_size}: tokenizer and teacher do not "
                          "match", path=teacher_path)

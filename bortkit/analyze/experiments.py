"""The experiments of Zhao et al. (IJCNN 2021) on a checkpoint: each returns table rows.

- :func:`measure_nonlinearity`: fit linear (and MLP) approximators of each part of each layer
  on training tokens, report ``1 - cos`` on dev tokens;
- :func:`replace_parts`, :func:`remove_parts`: dev score with parts replaced by an
  approximator or removed, one layer at a time or cumulatively, evaluation only and, with
  a :class:`~bortkit.analyze.retrain.Retrainer`, after fine-tuning (the reference's way);
- :func:`swap_layers`, :func:`shuffle_layers`: dev score with layer orders changed, with or
  without skip connections (evaluation only);
- :func:`freeze_parts`: fine-tuning with parts frozen (``bortkit.finetune``).
"""
from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import mxnet as mx
import numpy as np
from tqdm import tqdm

from ..checkpoint import TaskHead, classifier_from_state, read_state
from ..errors import CheckpointError
from ..finetune.data import (Features, epoch_batches, eval_batches, featurize, make_batch,
                             subsample)
from ..metrics import task_scores
from ..tasks import Task, get_task
from ..tokenizers import load_tokenizer
from .approximators import (CosineFit, LinearApproximator, fit_mlp, one_minus_cosine,
                            real_tokens)
from .taps import PARTS, Edits, run_network


@dataclass
class Subject:
    """A checkpoint loaded for analysis: the classifier (network + task head), its task and
    tokenizer. Without a task head (``head`` False) only the encoder is meaningful."""

    classifier: object
    task: Task
    tokenizer: object
    max_length: int
    head: bool

    @property
    def network(self):
        return self.classifier.network

    @property
    def num_layers(self) -> int:
        return self.network.config.num_layers


def load_subject(path: os.PathLike | str, task: str, max_length: Optional[int] = None,
                 need_head: bool = True) -> Subject:
    state = read_state(path)
    head = TaskHead.from_meta(state.meta, Path(path))
    if need_head and head is None:
        raise CheckpointError("no task head in this checkpoint (config.json has no _head); "
                              "fine-tune it first with python -m bortkit.finetune", path=path)
    task_ = get_task(task)
    if head is not None and head.task != task_.name:
        raise CheckpointError(f"checkpoint was fine-tuned on {head.task}, not {task_.name}",
                              path=path)
    if state.tokenizer_dir is None:
        raise CheckpointError("checkpoint has no tokenizer files", path=path)
    length = max_length or (head.max_length if head is not None else 128)
    state.config.check_sequence_length(length, path=path)  # before any work
    pooling = head.pooling if head is not None else "cls"
    classifier, _ = classifier_from_state(state, task_.num_labels, pooling)
    return Subject(classifier, task_, load_tokenizer(state.tokenizer_dir), length,
                   head is not None)


@dataclass
class Split:
    examples: list
    features: Features


def load_split(subject: Subject, data_dir, split: str, limit: Optional[int] = None,
               seed: int = 0) -> Split:
    examples = subsample(subject.task.read(data_dir, split), limit, seed)
    return Split(examples, featurize(subject.task, examples, subject.tokenizer,
                                     subject.max_length))


def _batches(split: Split, batch_size: int, progress: bool, desc: str):
    indices = list(eval_batches(split.features, batch_size))
    for index in tqdm(indices, desc=desc, disable=not progress, leave=False):
        batch = make_batch(split.features, index)
        yield index, batch, [mx.nd.array(a) for a in (batch.input_ids, batch.token_type_ids,
                                                     batch.attention_mask)]


def evaluate(subject: Subject, split: Split, edits: Optional[Edits] = None,
             batch_size: int = 64, progress: bool = False) -> float:
    """The task's main dev metric of the classifier run with ``edits``."""
    rows = np.zeros((len(split.features), subject.task.num_labels), np.float32)
    for index, _, (ids, types, mask) in _batches(split, batch_size, progress, "evaluate"):
        sequence, pooled, _ = run_network(subject.network, ids, types, mask, edits)
        if pooled is None:
            pooled = mx.nd.zeros((1, 1))  # ignored by heads without a pooler
        rows[index] = subject.classifier.head(sequence, pooled, mask).reshape(
            (len(index), -1)).asnumpy()
    predictions = rows[:, 0] if subject.task.kind == "regression" else rows
    return float(task_scores(subject.task, predictions, split.examples)["main"])


# --------------------------------------------------------------------------- non-linearity
APPROXIMATORS = {  # name -> what it is (a column of the non-linearity table)
    "linear": "least squares, closed form",
    "mlp": "least squares + a ReLU correction trained on 1 - cos (Adam)",
    "linear_cosine": "the reference's Dense, trained from scratch on 1 - cos (Adam)",
    "mlp_cosine": "the reference's Dense + ReLU, trained from scratch on 1 - cos (Adam)",
}


def fit_approximators(subject: Subject, train: Split, parts: Sequence[str],
                      layers: Sequence[int], mlp_hidden: int = 0, mlp_tokens: int = 4000,
                      mlp_epochs: int = 10, batch_size: int = 64, seed: int = 0,
                      progress: bool = False, cosine_epochs: int = 0,
                      cosine_learning_rate: float = 1e-3, kinds: Sequence[str] = ()) -> dict:
    """{(layer, part): {name: approximator or None for each of APPROXIMATORS}} fitted on the
    real tokens of ``train``: the least-squares map in one pass, the MLP correction on the
    first ``mlp_tokens`` tokens (when ``mlp_hidden``), and, for ``cosine_epochs`` epochs of
    ``batch_size``-sequence batches, the reference's approximators named in ``kinds``
    (``linear_cosine``, ``mlp_cosine``) with one Adam step per batch."""
    units = subject.network.config.units
    keys = [(l, p) for l in layers for p in parts]
    linear = {key: LinearApproximator(units, units) for key in keys}
    cosine = {(key, kind): CosineFit(units, units, relu=kind == "mlp_cosine",
                                     learning_rate=cosine_learning_rate, seed=seed)
              for key in keys for kind in kinds if cosine_epochs}
    kept = {key: ([], []) for key in keys}
    stored = 0
    for epoch in range(max(1, cosine_epochs)):
        order = epoch_batches(train.features, batch_size, seed, epoch)
        for index in tqdm(order, desc=f"fit, epoch {epoch + 1}", disable=not progress,
                          leave=False):
            batch = make_batch(train.features, index)
            ids, types, mask = (mx.nd.array(a) for a in (batch.input_ids, batch.token_type_ids,
                                                        batch.attention_mask))
            _, _, taps = run_network(subject.network, ids, types, mask, collect_taps=True)
            for key in keys:
                layer, part = key
                x = real_tokens(taps[layer][PARTS[part][0]], batch.attention_mask)
                y = real_tokens(taps[layer][PARTS[part][1]], batch.attention_mask)
                for kind in kinds:
                    if (key, kind) in cosine:
                        cosine[(key, kind)].step(x, y)
                if epoch:
                    continue
                linear[key].update(x, y)
                if mlp_hidden and stored < mlp_tokens:
                    room = mlp_tokens - stored
                    kept[key][0].append(x[:room])
                    kept[key][1].append(y[:room])
            if not epoch and mlp_hidden and stored < mlp_tokens:
                stored += int(batch.attention_mask.sum())
    fitted = {}
    for key, approximator in tqdm(linear.items(), desc="solve", disable=not progress,
                                  leave=False):
        approximator.solve()
        mlp = None
        if mlp_hidden:
            x, y = (np.concatenate(rows) for rows in kept.pop(key))
            mlp = fit_mlp(x, y, mlp_hidden, approximator, epochs=mlp_epochs, seed=seed)
        fitted[key] = {"linear": approximator, "mlp": mlp,
                       **{kind: cosine[(key, kind)].model if (key, kind) in cosine else None
                          for kind in ("linear_cosine", "mlp_cosine")}}
    return fitted


def measure_nonlinearity(subject: Subject, dev: Split, fitted: dict, batch_size: int = 64,
                         progress: bool = False) -> list[dict]:
    """Rows per (layer, part): for each approximator of APPROXIMATORS (None where not
    fitted), the mean 1 - cos(y, f(x)) over dev's real tokens (``linear``: the degree of
    non-linearity with the closed form; ``linear_cosine``: with the reference's Adam fit);
    ``change`` = mean 1 - cos(y, x) (how far the part moves its input)."""
    names = list(APPROXIMATORS)
    sums = {key: np.zeros(len(names) + 1) for key in fitted}
    tokens = 0
    for _, batch, (ids, types, mask) in _batches(dev, batch_size, progress, "measure"):
        _, _, taps = run_network(subject.network, ids, types, mask, collect_taps=True)
        for (layer, part), fit in fitted.items():
            source, target = PARTS[part]
            x = real_tokens(taps[layer][source], batch.attention_mask)
            y = real_tokens(taps[layer][target], batch.attention_mask)
            sums[(layer, part)] += [
                one_minus_cosine(y, fit[n].predict(x)).sum() if fit.get(n) is not None
                else np.nan for n in names] + [one_minus_cosine(y, x).sum()]
        tokens += int(batch.attention_mask.sum())
    return [{"layer": layer, "part": part,
             **{n: None if np.isnan(v) else v / tokens for n, v in zip(names, s)},
             "change": s[-1] / tokens,
             "train_tokens": fitted[(layer, part)]["linear"].tokens, "dev_tokens": tokens}
            for (layer, part), s in sums.items()]


# --------------------------------------------------------------------------- edits
def layer_sets(layers: Sequence[int], cumulative: Optional[str]) -> list[list[int]]:
    """One set per layer, or growing prefixes (``forward``) / suffixes (``backward``)."""
    if cumulative is None:
        return [[layer] for layer in layers]
    ordered = sorted(layers) if cumulative == "forward" else sorted(layers, reverse=True)
    return [ordered[:n] for n in range(1, len(ordered) + 1)]


def replace_parts(subject: Subject, dev: Split, fitted: dict, part: str,
                  sets: Sequence[Sequence[int]], kind: str = "linear", batch_size: int = 64,
                  progress: bool = False, retrainer=None) -> list[dict]:
    """Dev score with ``part`` of each layer in a set replaced by its approximator
    (``score``: evaluation only), and with a :class:`~bortkit.analyze.retrain.Retrainer`
    also after fine-tuning the edited model with its approximators (``finetuned``; the
    first row fine-tunes the unedited model for the same steps)."""
    def row(layers, edits, blocks):
        if retrainer is not None:
            retrainer.restore()
        out = {"layers": _join(layers), "part": part, "approximator": kind,
               "score": evaluate(subject, dev, edits, batch_size)}
        if retrainer is not None:
            saved = {id(b): {k: p.data().copy() for k, p in b.collect_params().items()}
                     for b in blocks.values()}
            out["finetune_steps"] = retrainer.run(edits or Edits(),
                                                  {(l, part) for l in layers}, blocks)
            out["finetuned"] = evaluate(subject, dev, edits, batch_size)
            for b in blocks.values():  # the next set starts from the fitted approximator
                for k, p in b.collect_params().items():
                    p.set_data(saved[id(b)][k])
        return out

    rows = [row([], None, {})]
    for layers in tqdm(sets, desc="replace", disable=not progress, leave=False):
        blocks = {f"approximator.{l}.{part}": _trainable(fitted[(l, part)][kind])
                  for l in layers} if retrainer is not None else {}
        edits = Edits(replace={(l, part): blocks.get(f"approximator.{l}.{part}",
                                                     fitted[(l, part)][kind])
                               for l in layers})
        rows.append(row(layers, edits, blocks))
    return rows


def _trainable(approximator):
    """A Gluon block computing what ``approximator`` computes (the closed form as a Dense)."""
    return approximator.as_block() if isinstance(approximator, LinearApproximator) \
        else approximator


def remove_parts(subject: Subject, dev: Split, part: str, sets: Sequence[Sequence[int]],
                 batch_size: int = 64, progress: bool = False, retrainer=None) -> list[dict]:
    """Dev score with ``part`` of each layer in a set removed (``score``: evaluation only),
    and with a :class:`~bortkit.analyze.retrain.Retrainer` also after fine-tuning what is
    left (``finetuned``; the first row fine-tunes the unedited model for the same steps)."""
    def row(layers):
        edits = Edits(remove=frozenset((l, part) for l in layers))
        if retrainer is not None:
            retrainer.restore()
        out = {"layers": _join(layers), "part": part,
               "score": evaluate(subject, dev, edits, batch_size)}
        if retrainer is not None:
            out["finetune_steps"] = retrainer.run(edits, set(edits.remove), {})
            out["finetuned"] = evaluate(subject, dev, edits, batch_size)
        return out

    return [row([])] + [row(layers) for layers in tqdm(sets, desc="remove",
                                                        disable=not progress, leave=False)]


# --------------------------------------------------------------------------- commutativity
def swapped(num_layers: int, i: int, j: int) -> list[int]:
    order = list(range(num_layers))
    order[i], order[j] = order[j], order[i]
    return order


def swap_layers(subject: Subject, dev: Split, pairs: Sequence[tuple], cancel_skip=(),
                batch_size: int = 64, progress: bool = False) -> list[dict]:
    """Dev score for each swapped pair (i, j); (i, i) is the unswapped model."""
    n = subject.num_layers
    rows, unswapped = [], None
    for i, j in tqdm(pairs, desc="swap", disable=not progress, leave=False):
        edits = Edits(order=swapped(n, i, j), cancel_skip=frozenset(cancel_skip))
        if i == j and unswapped is not None:  # every (i, i) is the same model
            score = unswapped
        else:
            score = evaluate(subject, dev, edits, batch_size)
            unswapped = score if i == j else unswapped
        rows.append({"i": i, "j": j, "order": _join(edits.order),
                     "skip": not cancel_skip, "score": score})
    return rows


def all_pairs(num_layers: int) -> list[tuple]:
    return [(i, j) for i in range(num_layers) for j in range(i, num_layers)]


def random_orders(num_layers: int, count: int, seed: int) -> list[list[int]]:
    """``count`` distinct random permutations (fewer if there are not that many)."""
    rng = np.random.RandomState(seed)
    seen, orders = set(), []
    limit = min(count, int(np.prod(range(1, num_layers + 1))))
    while len(orders) < limit:
        order = tuple(int(i) for i in rng.permutation(num_layers))
        if order not in seen:
            seen.add(order)
            orders.append(list(order))
    return orders


def kendall_distance(order: Sequence[int]) -> int:
    """Pairs of layers out of their original relative order (adjacent swaps needed)."""
    return sum(a > b for a, b in itertools.combinations(order, 2))


def shuffle_layers(subject: Subject, dev: Split, orders: Sequence[Sequence[int]],
                   cancel_skip=(), batch_size: int = 64, progress: bool = False) -> list[dict]:
    """Dev score for each layer order, with how far it is from the original."""
    rows = []
    for order in tqdm(orders, desc="shuffle", disable=not progress, leave=False):
        edits = Edits(order=list(order), cancel_skip=frozenset(cancel_skip))
        rows.append({"order": _join(order), "skip": not cancel_skip,
                     "displaced": sum(int(a != b) for a, b in enumerate(order)),
                     "kendall": kendall_distance(order),
                     "score": evaluate(subject, dev, edits, batch_size)})
    return rows


def _join(values: Sequence[int]) -> str:
    return ",".join(str(v) for v in values)


# --------------------------------------------------------------------------- freezing
FREEZE_PARTS = {  # part -> parameter-name prefixes inside encoder.{layer}.
    "attention": ("attention.",),
    "attention_block": ("attention.", "attention_norm."),
    "ffn": ("ffn.",),
    "ffn_block": ("ffn.", "ffn_norm."),
    "layer": ("",),
}


def frozen_names(names: Sequence[str], part: str, layers: Sequence[int]) -> list[str]:
    """Parameter names of ``part`` in ``layers`` (``embeddings`` ignores ``layers``)."""
    if part == "embeddings":
        return [n for n in names if n.startswith("embeddings.")]
    prefixes = tuple(f"encoder.{l}.{p}" for l in layers for p in FREEZE_PARTS[part])
    return [n for n in names if n.startswith(prefixes)]


def freeze_parts(settings: Sequence[tuple], output_dir, on_run: Optional[Callable] = None,
                 **finetune_args) -> list[dict]:
    """Fine-tune once per (label, part or None, layers) setting with those parameters frozen
    (``grad_req = "null"``: no gradient, the optimizer skips them), through
    :class:`bortkit.finetune.trainer.Finetuner`; rows of the best dev score per setting."""
    from pathlib import Path
    from ..finetune.trainer import FinetuneArgs, Finetuner
    rows = []
    for label, part, layers in settings:
        finetune_args["model"] = str(finetune_args["model"])
        run = Finetuner(FinetuneArgs(output_dir=str(Path(output_dir) / "runs" / label),
                                     **finetune_args))
        names = frozen_names(list(run.params), part, layers) if part else []
        for name in names:
            run.params[name].grad_req = "null"
        total = sum(int(np.prod(p.shape)) for p in run.params.values())
        frozen = sum(int(np.prod(run.params[n].shape)) for n in names)
        result = run.run()
        rows.append({"setting": label, "part": part or "", "layers": _join(layers),
                     "frozen_params": frozen, "trainable_params": total - frozen,
                     "score": result["best"]["main"], "best_step": result["best_step"]})
        if on_run is not None:
            on_run(rows[-1])
    return rows

"""GLUE / SuperGLUE metrics and leaderboard averages.

All scores are fractions in ``[0, 1]`` (correlations in ``[-1, 1]``); leaderboards print them
times 100. Metric functions take plain sequences or numpy arrays. Accuracy, F1, MCC and the
correlations are scikit-learn's and scipy's; MultiRC, ReCoRD, AX-g and the leaderboard
averages are ours (neither library has them).

Conventions where the textbook definition is undefined:

- :func:`matthews_corr` is 0 when a row or column of the confusion matrix is all zero (e.g.
  constant predictions), as in scikit-learn.
- :func:`pearson` and :func:`spearman` are 0 when either side is constant: a correlation with a
  constant is undefined, and a collapsed regressor should score "no relation", not NaN.
- :func:`binary_f1` is 0 when there are no positive predictions and no positive labels.
- :func:`macro_f1` averages over the classes present in the labels or the predictions.

Leaderboard averages (checked against published numbers: BERT-large GLUE 80.5 and Bort 83.6
from their per-task test scores, BERT-large SuperGLUE 69.0):

- each task's score is the mean of its leaderboard metrics (MRPC/QQP F1 and accuracy, STS-B
  Pearson and Spearman, CB macro-F1 and accuracy, MultiRC F1a and EM, ReCoRD F1 and EM);
- :func:`glue_score` averages 9 tasks: CoLA, SST-2, MRPC, STS-B, QQP, MNLI, QNLI, RTE, WNLI,
  where MNLI is the mean of MNLI-m and MNLI-mm (giving them 10 separate entries reproduces
  neither published average); the diagnostic AX is excluded;
- :func:`superglue_score` averages BoolQ, CB, COPA, MultiRC, ReCoRD, RTE, WiC, WSC; AX-b and
  AX-g are excluded.
"""
from __future__ import annotations

import re
import string
import warnings
from collections import Counter
from numbers import Real
from typing import Dict, Mapping, Sequence, Union

import numpy as np
from scipy import stats
from sklearn import metrics as skm

from .errors import BortkitError
from .tasks.base import (Example, Task, best_candidates, candidate_scores, check_predictions,
                         get_task, group_members)

__all__ = ["accuracy", "binary_f1", "macro_f1", "matthews_corr", "pearson", "spearman",
           "multirc_em", "normalize_answer", "token_f1", "record_scores", "gender_parity",
           "task_scores", "glue_score", "superglue_score", "GLUE_TASKS", "SUPERGLUE_TASKS"]

GLUE_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")
SUPERGLUE_TASKS = ("BoolQ", "CB", "COPA", "MultiRC", "ReCoRD", "SuperGLUE-RTE", "WiC", "WSC")
DIAGNOSTICS = ("AX", "AX-b", "AX-g")


# --------------------------------------------------------------------------- classification

def _pair_arrays(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise BortkitError(f"labels and predictions must be 1-D of equal length, "
                           f"got shapes {y_true.shape} and {y_pred.shape}")
    if len(y_true) == 0:
        raise BortkitError("cannot score zero examples")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Fraction of predictions equal to the label."""
    y_true, y_pred = _pair_arrays(y_true, y_pred)
    return float(skm.accuracy_score(y_true, y_pred))


def binary_f1(y_true, y_pred, positive: int = 1) -> float:
    """F1 of the ``positive`` class (MRPC, QQP: 1 = paraphrase / duplicate)."""
    y_true, y_pred = _pair_arrays(y_true, y_pred)
    return float(skm.f1_score(y_true, y_pred, labels=[positive], average=None,
                              zero_division=0.0)[0])


def macro_f1(y_true, y_pred) -> float:
    """Unweighted mean of per-class F1 over the classes in the labels or predictions (CB)."""
    y_true, y_pred = _pair_arrays(y_true, y_pred)
    return float(skm.f1_score(y_true, y_pred, labels=np.union1d(y_true, y_pred),
                              average="macro", zero_division=0.0))


def matthews_corr(y_true, y_pred) -> float:
    """Matthews correlation coefficient, multi-class (Gorodkin's R_K) for AX's three classes."""
    y_true, y_pred = _pair_arrays(y_true, y_pred)
    with warnings.catch_warnings():  # one class on both sides is legitimate here: MCC 0
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return float(skm.matthews_corrcoef(y_true, y_pred))


# --------------------------------------------------------------------------- regression

def _real_pair(x, y):
    """Float arrays, or None when either side is constant (a correlation is undefined)."""
    x, y = _pair_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return None if np.ptp(x) == 0 or np.ptp(y) == 0 else (x, y)


def pearson(x, y) -> float:
    """Pearson correlation; 0 if either side is constant."""
    pair = _real_pair(x, y)
    # linregress's r is Pearson's from the centred sums, so an exact line gives exactly 1.0
    # (pearsonr normalises first and gives 0.9999999999999999 for [1, 2, 3] vs [2, 4, 6]).
    return 0.0 if pair is None else float(stats.linregress(*pair).rvalue)


def spearman(x, y) -> float:
    """Spearman rank correlation (ties get their average rank); 0 if either side is constant."""
    pair = _real_pair(x, y)
    return 0.0 if pair is None else float(stats.spearmanr(*pair).statistic)


# --------------------------------------------------------------------------- MultiRC, ReCoRD, AX-g

def multirc_em(y_true, y_pred, groups: Sequence) -> float:
    """Fraction of questions (``groups``) whose answer options are all labeled correctly."""
    y_true, y_pred = _pair_arrays(y_true, y_pred)
    groups = np.asarray(groups)
    if groups.shape != y_true.shape:
        raise BortkitError("need one group per answer option")
    right = y_true == y_pred
    _, codes = np.unique(groups, return_inverse=True)
    all_right = np.ones(codes.max() + 1, dtype=bool)
    np.logical_and.at(all_right, codes, right)
    return float(np.mean(all_right))


_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 between two normalised answers (SQuAD / ReCoRD)."""
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    shared = sum((Counter(predicted) & Counter(expected)).values())
    if shared == 0:
        return 0.0
    precision, recall = shared / len(predicted), shared / len(expected)
    return 2 * precision * recall / (precision + recall)


def record_scores(predictions: Sequence[str], gold: Sequence[Sequence[str]]) -> Dict[str, float]:
    """ReCoRD ``{"f1", "em"}``: per query the best match over its gold answers, then the mean.

    A query without gold answers scores 0.
    """
    if len(predictions) != len(gold) or not predictions:
        raise BortkitError(f"need one prediction per query, got {len(predictions)} predictions "
                           f"for {len(gold)} queries")
    f1s, ems = [], []
    for prediction, answers in zip(predictions, gold):
        f1s.append(max((token_f1(prediction, answer) for answer in answers), default=0.0))
        ems.append(max((float(normalize_answer(prediction) == normalize_answer(answer))
                        for answer in answers), default=0.0))
    return {"f1": float(np.mean(f1s)), "em": float(np.mean(ems))}


def gender_parity(y_pred, groups: Sequence) -> float:
    """AX-g: fraction of gender-swapped pairs (``groups``) that get the same prediction."""
    y_pred = np.asarray(y_pred)
    members: Dict = {}
    for position, group in enumerate(groups):
        members.setdefault(group, []).append(position)
    if not members:
        raise BortkitError("cannot score zero examples")
    return float(np.mean([len(set(y_pred[positions].tolist())) == 1
                          for positions in members.values()]))


# --------------------------------------------------------------------------- per task

def task_scores(task: Union[str, Task], predictions,
                examples: Sequence[Example]) -> Dict[str, float]:
    """The leaderboard metrics of ``task`` for ``predictions`` on labeled ``examples``.

    ``predictions`` are label ids, scores or per-class scores (see :mod:`bortkit.tasks.base`).
    Returns ``{metric: value for metric in task.metrics}`` plus ``"main"``: the mean of the
    metrics, the number the leaderboard averages (for the diagnostics AX, AX-b and AX-g, which
    are not averaged, ``main`` is the headline metric).
    """
    task = get_task(task)
    if not examples:
        raise BortkitError("cannot score zero examples")
    unlabeled = sum(example.label is None for example in examples)
    if unlabeled:
        raise BortkitError(f"{unlabeled} of {len(examples)} {task.name} examples have no "
                           f"label (test data?); scores need labeled examples")
    if task.pick_best:
        scores = _pick_best_scores(task, predictions, examples)
    else:
        scores = _per_example_scores(task, predictions, examples)
    scores["main"] = _main_from_metrics(task, scores)
    return scores


def _per_example_scores(task: Task, predictions, examples: Sequence[Example]) -> Dict[str, float]:
    y_pred = check_predictions(task, predictions, len(examples))
    y_true = np.array([example.label for example in examples])
    groups = [example.group for example in examples]
    metric_functions = {
        "accuracy": lambda: accuracy(y_true, y_pred),
        "f1": lambda: binary_f1(y_true, y_pred),
        "f1a": lambda: binary_f1(y_true, y_pred),
        "macro_f1": lambda: macro_f1(y_true, y_pred),
        "mcc": lambda: matthews_corr(y_true, y_pred),
        "pearson": lambda: pearson(y_true, y_pred),
        "spearman": lambda: spearman(y_true, y_pred),
        "em": lambda: multirc_em(y_true, y_pred, groups),
        "gender_parity": lambda: gender_parity(y_pred, groups),
    }
    return {metric: metric_functions[metric]() for metric in task.metrics}


def _pick_best_scores(task: Task, predictions, examples: Sequence[Example]) -> Dict[str, float]:
    best = best_candidates(examples, candidate_scores(task, predictions, len(examples)))
    if task.name == "COPA":
        return {"accuracy": float(np.mean([examples[pos].label == 1 for pos in best.values()]))}
    members = group_members(examples)
    predicted = [examples[best[group]].candidate for group in members]
    gold = [[examples[pos].candidate for pos in positions if examples[pos].label == 1]
            for positions in members.values()]
    return record_scores(predicted, gold)


def _main_from_metrics(task: Task, scores: Mapping[str, float]) -> float:
    if task.name in DIAGNOSTICS:
        return float(scores[task.main_metric])
    return float(np.mean([scores[metric] for metric in task.metrics]))


# --------------------------------------------------------------------------- leaderboards

Scores = Mapping[str, Union[Mapping[str, float], float]]


def glue_score(per_task: Scores) -> float:
    """The GLUE leaderboard average of per-task scores (see the module notes).

    ``per_task`` maps task names (``"CoLA"``, ..., ``"MNLI-m"``, ``"MNLI-mm"``, ...) to the dict
    :func:`task_scores` returns, a dict of the task's metrics, or a single number (its main
    score). An ``"AX"`` entry is ignored. All ten entries are required. Inputs may be fractions
    or percentages; the result is on the same scale.
    """
    mains = _main_scores(per_task, "glue")
    if "MNLI" in mains:
        raise BortkitError("give MNLI-m and MNLI-mm separately, not MNLI: the leaderboard "
                           "averages the two accuracies")
    _require(mains, [name for name in GLUE_TASKS if name != "MNLI"] + ["MNLI-m", "MNLI-mm"],
             "GLUE")
    mains["MNLI"] = (mains["MNLI-m"] + mains["MNLI-mm"]) / 2
    return float(np.mean([mains[name] for name in GLUE_TASKS]))


def superglue_score(per_task: Scores) -> float:
    """The SuperGLUE leaderboard average; ``"RTE"`` here means ``SuperGLUE-RTE``.

    Same input forms as :func:`glue_score`; AX-b and AX-g entries are ignored.
    """
    mains = _main_scores(per_task, "superglue")
    _require(mains, SUPERGLUE_TASKS, "SuperGLUE")
    return float(np.mean([mains[name] for name in SUPERGLUE_TASKS]))


def _main_scores(per_task: Scores, benchmark: str) -> Dict[str, float]:
    mains: Dict[str, float] = {}
    for name, scores in per_task.items():
        task = get_task(name)
        if benchmark == "superglue" and task.name == "RTE":
            task = get_task("SuperGLUE-RTE")
        if task.benchmark != benchmark:
            raise BortkitError(f"{task.name} is not a {benchmark.upper()} task")
        if task.name in DIAGNOSTICS:
            continue
        if task.name in mains:
            raise BortkitError(f"two entries for {task.name}")
        mains[task.name] = _main_of(task, scores)
    return mains


def _main_of(task: Task, scores) -> float:
    if isinstance(scores, Real):
        value = float(scores)
    elif isinstance(scores, Mapping):
        if "main" in scores:
            value = float(scores["main"])
        else:
            missing = [metric for metric in task.metrics if metric not in scores]
            if missing:
                raise BortkitError(f"{task.name} scores lack {', '.join(missing)} "
                                   f"(and 'main')")
            value = _main_from_metrics(task, scores)
    else:
        raise BortkitError(f"{task.name} score must be a number or a dict of metrics")
    if not np.isfinite(value):
        raise BortkitError(f"{task.name} score is {value}")
    return value


def _require(mains: Mapping[str, float], names: Sequence[str], benchmark: str) -> None:
    missing = [name for name in names if name not in mains]
    if missing:
        raise BortkitError(f"{benchmark} score needs every task; missing: {', '.join(missing)}")

"""Losses of distillation pretraining, written once for NDArray and Symbol (``F``).

Every loss returns a **sum** over the batch multiplied by an inverse count (a (1,) array), so
that the caller decides what the loss is averaged over: with several workers the count is
the *global* number of masked tokens (or real tokens), and the sum of the workers' losses is
the loss of the whole batch, whatever way it is split.

- :func:`masked_lm_loss` — cross entropy of the masked tokens' labels.
- :func:`distillation_loss` — the teacher's MLM distribution at temperature T against the
  student's, in two modes:

  ``correct`` (default)
      ``T² · KL(softmax(t/T) ‖ softmax(s/T))`` summed over the vocabulary (Hinton et al.).
  ``bort``
      the released Bort code: MXNet 1.5's ``KLDivLoss(from_logits=False)`` given
      *probabilities*, so the student side goes through a second softmax, and the result
      is averaged over the vocabulary instead of summed:
      ``T² · mean_v p_t · (log(p_t + 1e-12) − log_softmax(softmax(s/T)))``.

- :func:`hidden_state_mse` and :func:`attention_kl` — intermediate-layer transfer between
  mapped layers (:func:`uniform_layer_map`, :func:`parse_layer_map`).
- :class:`DistillationObjective` — the weighted sum of all of these as one hybridizable
  block; it owns the learned projections used when student and teacher widths differ.
"""
from __future__ import annotations

from typing import Sequence

from mxnet.gluon import HybridBlock, nn

from ..errors import ConfigError
from .. import ops as kernels
from .weights import (KD_MODES, LossWeights, describe, parse_layer_map,  # noqa: F401
                      uniform_layer_map)

LOG_EPS = 1e-12  # inside log() of probabilities, as MXNet's KLDivLoss


def masked_lm_loss(F, logits, labels, weights, inv_count):
    """Σ_i w_i · CE(logits_i, labels_i) · inv_count.

    ``logits`` (M, V), ``labels`` (M,), ``weights`` (M,) with 0 for padding entries,
    ``inv_count`` (1,): 1 / the number of masked tokens the loss is averaged over.
    """
    nll = kernels.softmax_nll(F, logits, labels)                           # (M,)
    return F.broadcast_mul(F.sum(nll * weights), inv_count)


def distillation_loss(F, student_logits, teacher_logits, weights, inv_count,
                      temperature: float = 2.0, mode: str = "correct"):
    """Soft-target loss against the teacher's MLM distribution, see the module docstring.

    Both logits (M, V); the teacher's carry no gradient. Returns a (1,) array.
    """
    t = float(temperature)
    if mode == "correct":
        log_p_teacher = F.log_softmax(teacher_logits / t, axis=-1)
        log_p_student = F.log_softmax(student_logits / t, axis=-1)
        per_token = F.sum(F.exp(log_p_teacher) * (log_p_teacher - log_p_student), axis=-1)
    elif mode == "bort":
        p_teacher = F.softmax(teacher_logits / t, axis=-1)
        p_student = F.softmax(student_logits / t, axis=-1)
        per_token = F.mean(p_teacher * (F.log(p_teacher + LOG_EPS)
                                         - F.log_softmax(p_student, axis=-1)), axis=-1)
    else:
        raise ConfigError(f"--kd-mode must be one of {', '.join(KD_MODES)}, got {mode!r}")
    return F.broadcast_mul(F.sum(per_token * weights), inv_count) * (t * t)


def hidden_state_mse(F, student_hidden, teacher_hidden, token_mask, inv_tokens):
    """Σ over real tokens of the mean squared difference over the width, times inv_tokens.

    ``student_hidden`` (already projected) and ``teacher_hidden`` (B, T, U); ``token_mask``
    (B, T) is 1 for real tokens.
    """
    per_token = F.mean(F.square(student_hidden - teacher_hidden), axis=-1)   # (B, T)
    return F.broadcast_mul(F.sum(per_token * token_mask), inv_tokens)


def attention_kl(F, student_probs, teacher_probs, token_mask, inv_tokens):
    """KL(teacher ‖ student) of each query's attention distribution, averaged over heads,
    summed over real query tokens, times inv_tokens. Probabilities (B, H, T, T)."""
    kl = F.sum(teacher_probs * (F.log(teacher_probs + LOG_EPS)
                                - F.log(student_probs + LOG_EPS)), axis=-1)  # (B, H, T)
    return F.broadcast_mul(F.sum(F.mean(kl, axis=1) * token_mask), inv_tokens)


class DistillationObjective(HybridBlock):
    """The pretraining loss as one block.

    Inputs: student logits (M, V), labels (M,), weights (M,), inv_masked (1,); then, with a
    teacher, teacher logits (M, V); then for hidden-state transfer the student's and the
    teacher's stacked hidden states (Ls+1, B, T, Us) / (Lt+1, B, T, Ut); for attention
    transfer the stacked attention probabilities (Ls, B, Hs, T, T) / (Lt, B, Ht, T, T); and
    whenever either transfer is on, the token mask (B, T) and inv_tokens (1,).

    Returns ``(total, mlm, kd, hidden, attention)``, each (1,); terms that are off are 0.
    Without a teacher the total is the plain MLM loss (weight 1).
    """

    def __init__(self, weights: LossWeights, teacher: bool,
                 layer_map: Sequence[tuple[int, int]] = (),
                 student_units: int = 0, teacher_units: int = 0,
                 student_heads: int = 0, teacher_heads: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.weights = weights
        self.teacher = teacher
        self.use_hidden = teacher and weights.hidden > 0
        self.use_attention = teacher and weights.attention > 0
        self.layer_map = list(layer_map)
        if (self.use_hidden or self.use_attention) and not self.layer_map:
            raise ConfigError("intermediate-layer transfer needs a layer map")
        self._average_heads = student_heads != teacher_heads
        self._project = self.use_hidden and student_units != teacher_units
        with self.name_scope():
            self.projections = nn.HybridSequential(prefix="projections_")
            if self._project:  # one learned map per student layer, as TinyBERT
                with self.projections.name_scope():
                    for s, _ in self.layer_map:
                        self.projections.add(nn.Dense(teacher_units, flatten=False,
                                                      in_units=student_units,
                                                      prefix=f"layer{s}_"))

    def hybrid_forward(self, F, student_logits, labels, weights, inv_masked, *rest):
        rest = list(rest)
        w = self.weights
        zero = F.zeros_like(inv_masked)
        mlm = masked_lm_loss(F, student_logits, labels, weights, inv_masked)
        if not self.teacher:
            return mlm, mlm, zero, zero, zero
        teacher_logits = rest.pop(0)
        kd = distillation_loss(F, student_logits, teacher_logits, weights, inv_masked,
                               w.temperature, w.kd_mode)
        total = w.mlm * mlm + w.kd * kd
        hidden = attention = zero
        if self.use_hidden or self.use_attention:
            token_mask, inv_tokens = rest[-2], rest[-1]
        if self.use_hidden:
            s_hidden, t_hidden = rest.pop(0), rest.pop(0)
            hidden = self._hidden_term(F, s_hidden, t_hidden, token_mask, inv_tokens)
            total = total + w.hidden * hidden
        if self.use_attention:
            s_probs, t_probs = rest.pop(0), rest.pop(0)
            attention = self._attention_term(F, s_probs, t_probs, token_mask, inv_tokens)
            total = total + w.attention * attention
        return total, mlm, kd, hidden, attention

    def _hidden_term(self, F, s_hidden, t_hidden, token_mask, inv_tokens):
        """Mean over mapped layers; index 0 of the stacks is the embedding output."""
        terms = []
        for k, (s, t) in enumerate(self.layer_map):
            student = F.squeeze(F.slice_axis(s_hidden, axis=0, begin=s + 1, end=s + 2), axis=0)
            teacher = F.squeeze(F.slice_axis(t_hidden, axis=0, begin=t + 1, end=t + 2), axis=0)
            if self._project:
                student = self.projections[k](student)
            terms.append(hidden_state_mse(F, student, teacher, token_mask, inv_tokens))
        return F.add_n(*terms) / len(terms)

    def _attention_term(self, F, s_probs, t_probs, token_mask, inv_tokens):
        """Mean over mapped layers; with different head counts the head-averaged
        distributions are compared."""
        terms = []
        for s, t in self.layer_map:
            student = F.squeeze(F.slice_axis(s_probs, axis=0, begin=s, end=s + 1), axis=0)
            teacher = F.squeeze(F.slice_axis(t_probs, axis=0, begin=t, end=t + 1), axis=0)
            if self._average_heads:
                student = F.mean(student, axis=1, keepdims=True)
                teacher = F.mean(teacher, axis=1, keepdims=True)
            terms.append(attention_kl(F, student, teacher, token_mask, inv_tokens))
        return F.add_n(*terms) / len(terms)

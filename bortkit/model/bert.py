"""The BERT-family network and the numpy-facing :class:`Model` around it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Union

import mxnet as mx
import numpy as np
from mxnet.gluon import HybridBlock, nn

from ..config import ModelConfig
from ..errors import BortkitError
from .adapters import AdapterEncoderLayer, TaskProjections, TopLayer, TopProjectedAttention
from .blocks import (ClassificationHead, Embeddings, EncoderLayer, LayerNorm, MaskedLMHead,
                     MultiHeadSelfAttention, Pooler)


class BertNetwork(HybridBlock):
    """Embeddings -> N encoder layers [-> final LayerNorm when pre-LN] [-> pooler].

    Inputs (B, T): ``input_ids``, ``token_type_ids``, ``attention_mask`` (1 keep, 0 pad).
    ``hybrid_forward`` returns the sequence output (B, T, U) and, with a pooler, the pooled
    output (B, U). :meth:`run` also collects every layer's output and attention
    probabilities; wrappers (MLM, classifiers, :class:`_FullOutputs`) call it so that one
    set of parameters serves several cached graphs.
    """

    def __init__(self, config: ModelConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        with self.name_scope():
            self.embeddings = Embeddings(config, prefix="embeddings_")
            shared = None
            if config.adapter == "pals":  # per-task V_E/V_D that every layer's PAL uses
                self.task_projections = TaskProjections(config, prefix="task_projections_")
                shared = self.task_projections.collect_params()
            self.encoder = nn.HybridSequential(prefix="encoder_")
            with self.encoder.name_scope():
                for i in range(config.num_layers):
                    if config.adapter in ("none", "top", "top_layer"):
                        self.encoder.add(EncoderLayer(config, ranks=config.layer_ranks(i),
                                                      prefix=f"layer{i}_"))
                    else:
                        self.encoder.add(AdapterEncoderLayer(config, shared,
                                                             prefix=f"layer{i}_"))
            if config.adapter == "top":
                self.top = TopProjectedAttention(config, prefix="top_")
            if config.adapter == "top_layer":   # a per-task BERT layer on top
                self.top_layer = TopLayer(config, prefix="top_layer_")
            if config.layer_norm_position == "pre":
                self.final_norm = LayerNorm(epsilon=config.layer_norm_eps,
                                            in_channels=config.units, prefix="final_norm_")
            if config.use_pooler:
                self.pooler = Pooler(config.units, prefix="pooler_")

    def first_position_suffices(self) -> bool:
        """Whether :meth:`run` can compute the last layer for position 0 alone: a plain
        encoder (no adapters) whose last layer is BERT's, with dot-product attention."""
        last = self.encoder[len(self.encoder) - 1]
        return self.config.adapter == "none" and type(last) is EncoderLayer and \
            type(last.attention) is MultiHeadSelfAttention

    def run(self, F, input_ids, token_type_ids, attention_mask,
            collect_hidden: bool = False, collect_attentions: bool = False, task_id=None,
            first_position: bool = False):
        """-> (sequence (B,T,U), pooled (B,U) or None, [hidden (B,T,U)], [probs (B,H,T,T)]).

        ``task_id`` (1,) picks the task's adapters; models with adapters need it.
        ``first_position``: the caller reads position 0 alone (a [CLS] head), so the last
        layer computes only it where :meth:`first_position_suffices` (the sequence is then
        (B, 1, U)); it takes no effect with ``collect_hidden`` or ``collect_attentions``."""
        if (task_id is None) != (self.config.adapter == "none"):
            raise BortkitError(
                f"this model has {self.config.adapter} adapters for {self.config.num_tasks} "
                f"tasks: pass the task id" if task_id is None else
                "a task id was given but this model has no adapters (config.adapter is "
                "'none'); build it with adapter='pals', 'low_rank', 'houlsby', 'lhuc', 'top' or "
                "'top_layer'")
        adapters = task_id is not None and self.config.adapter not in ("top", "top_layer")
        x = self.embeddings(input_ids, token_type_ids)                  # (B, T, U)
        hidden = [x] if collect_hidden else []
        attentions = []
        x = F.transpose(x, axes=(1, 0, 2))                              # (T, B, U)
        layers = list(self.encoder)
        if first_position and not (collect_hidden or collect_attentions) and \
                self.first_position_suffices():
            last = layers.pop()
        else:
            last = None
        for layer in layers:
            x, probs = layer(x, attention_mask, task_id) if adapters else \
                layer(x, attention_mask)
            if collect_hidden:
                hidden.append(F.transpose(x, axes=(1, 0, 2)))
            if collect_attentions:
                attentions.append(probs)
        if last is not None:
            x = last.first_position(F, x, attention_mask)                # (1, B, U)
        if self.config.adapter in ("top", "top_layer"):  # replaces the last layer's output
            top = self.top if self.config.adapter == "top" else self.top_layer
            x = top(x, attention_mask, task_id)
            if collect_hidden:
                hidden[-1] = F.transpose(x, axes=(1, 0, 2))
        if self.config.layer_norm_position == "pre":
            x = self.final_norm(x)
            if collect_hidden:  # the last entry is the normalised output, as returned
                hidden[-1] = F.transpose(x, axes=(1, 0, 2))
        sequence = F.transpose(x, axes=(1, 0, 2))                       # (B, T, U)
        pooled = self.pooler(sequence) if self.config.use_pooler else None
        return sequence, pooled, hidden, attentions

    def hybrid_forward(self, F, input_ids, token_type_ids, attention_mask):
        sequence, pooled, _, _ = self.run(F, input_ids, token_type_ids, attention_mask)
        return sequence if pooled is None else (sequence, pooled)


class _FullOutputs(HybridBlock):
    """A second cached graph over the same network that also returns every layer."""

    def __init__(self, network: BertNetwork, collect_hidden: bool, collect_attentions: bool):
        super().__init__(prefix=network.prefix, params=network.collect_params())
        self.network = network
        self._collect = (collect_hidden, collect_attentions)  # not `_flags`: Gluon uses that name

    def hybrid_forward(self, F, input_ids, token_type_ids, attention_mask):
        sequence, pooled, hidden, attentions = self.network.run(
            F, input_ids, token_type_ids, attention_mask, *self._collect)
        outputs = [sequence] + ([pooled] if pooled is not None else [])
        if hidden:
            outputs.append(F.stack(*hidden, axis=0))        # (L+1, B, T, U)
        if attentions:
            outputs.append(F.stack(*attentions, axis=0))    # (L, B, H, T, T)
        return tuple(outputs)


class MaskedLMModel(HybridBlock):
    """Network + tied masked-LM head, scoring only the masked positions.

    Extra input ``masked_positions`` (M,): flat indices ``b * T + t`` of the M masked tokens
    in the batch (the data pipeline computes them) -> logits (M, V), plus the sequence
    output (B, T, U) for hidden-state distillation.
    """

    def __init__(self, network: BertNetwork, **kwargs):
        super().__init__(**kwargs)
        with self.name_scope():
            self.network = network
            self.mlm_head = MaskedLMHead(network.config, network.embeddings.word_embed,
                                         prefix="mlm_head_")

    def hybrid_forward(self, F, input_ids, token_type_ids, attention_mask, masked_positions):
        sequence, _, _, _ = self.network.run(F, input_ids, token_type_ids, attention_mask)
        picked = F.take(sequence.reshape((-3, 0)), masked_positions)  # (M, U)
        return self.mlm_head(picked), sequence


class SequenceClassifier(HybridBlock):
    """Network + :class:`ClassificationHead`: (B, T) inputs -> (B, C) logits or scores."""

    def __init__(self, network: BertNetwork, num_labels: int, pooling: str = "cls",
                 first_position: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_labels = num_labels
        # A [CLS] head reads position 0 alone: the last layer then computes only it. False
        # keeps every position (the oneDNN int8 graph, whose saved thresholds name them).
        self.first_position = first_position and pooling == "cls"
        with self.name_scope():
            self.network = network
            self.head = ClassificationHead(network.config, num_labels, pooling=pooling,
                                           prefix="head_")

    def hybrid_forward(self, F, input_ids, token_type_ids, attention_mask):
        sequence, pooled, _, _ = self.network.run(F, input_ids, token_type_ids, attention_mask,
                                                  first_position=self.first_position)
        if pooled is None:
            pooled = F.zeros((1, 1))  # a placeholder the head ignores without a pooler
        return self.head(sequence, pooled, attention_mask)


@dataclass
class EncoderOutput:
    """What :meth:`Model.encode` returns; all numpy float32 arrays."""

    last_hidden_state: np.ndarray                 # (B, T, U)
    pooler_output: Optional[np.ndarray] = None    # (B, U), None without a pooler
    hidden_states: Optional[list] = None          # L+1 arrays (B, T, U): embeddings, layers
    attentions: Optional[list] = None             # L arrays (B, H, T, T)


def classifier_logits(classifier: SequenceClassifier, input_ids, token_type_ids,
                      attention_mask, ctx: Optional[mx.Context] = None) -> np.ndarray:
    """Logits (B, C) of ``classifier`` on one padded (B, T) batch, inference mode (no
    dropout); C = 1 for a regression head. The one place a task head is run for predictions."""
    args = [mx.nd.array(a, ctx=ctx or mx.cpu(), dtype="float32")
            for a in (input_ids, token_type_ids, attention_mask)]
    return classifier(*args).reshape((len(args[0]), -1)).asnumpy()


def pool_tokens(sequence: np.ndarray, mask: np.ndarray, pooling: str) -> np.ndarray:
    """(B, T, U) token states and (B, T) mask (1 real) -> (B, U) sentence vectors: the mean
    over real tokens (sentence-transformers' mean pooling), the first token, or the max."""
    if pooling == "cls":
        return sequence[:, 0]
    weights = mask[:, :, None].astype(np.float32)                           # (B, T, 1)
    if pooling == "max":
        return np.where(weights > 0, sequence, -1e9).max(axis=1)
    if pooling != "mean":
        raise BortkitError(f"pooling must be one of mean, cls, max; got {pooling!r}")
    return (sequence * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _check_values(name: str, array: np.ndarray, high: int) -> None:
    """Every value of ``array`` in [0, high): an embedding lookup would clamp the rest."""
    if array.min() < 0 or array.max() >= high:
        raise BortkitError(f"encode: {name} must be in [0, {high - 1}] (the model's table), "
                           f"got values in [{array.min()}, {array.max()}]")


def _as_batch(name: str, array, like: Optional[np.ndarray] = None) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise BortkitError(f"encode: {name} must be (batch, length), got shape {array.shape}")
    if like is not None and array.shape != like.shape:
        raise BortkitError(f"encode: {name} has shape {array.shape}, input_ids {like.shape}")
    integral = array.dtype.kind in "iub" or (array.dtype.kind == "f" and array.size and
                                              np.isfinite(array).all() and
                                              (array == np.round(array)).all())
    if array.size and not integral:
        raise BortkitError(f"encode: {name} must hold integers, got dtype {array.dtype}")
    return array


class Model:
    """A BERT-family model with its config: numpy in, numpy out.

    ``model.network`` is the hybridized :class:`BertNetwork` for training code; ``encode``
    serves inference with cached static graphs (one per output selection). A model loaded
    from a fine-tuned checkpoint also holds its task head (``classifier``, a
    :class:`SequenceClassifier` over the same network, and ``head``, the checkpoint's
    :class:`~bortkit.checkpoint.heads.TaskHead`) for :meth:`logits`. ``embedding`` (an
    :class:`~bortkit.checkpoint.heads.EmbeddingSpec`: pooling, normalisation, length) and
    the tokenizer of the checkpoint (``source``) serve :meth:`embed`.
    """

    def __init__(self, config: ModelConfig, network: Optional[BertNetwork] = None,
                 ctx: Optional[mx.Context] = None, classifier: Optional[SequenceClassifier] = None,
                 head=None, embedding=None, source=None, meta: Optional[dict] = None):
        self.config = config
        self.ctx = ctx or mx.cpu()
        if network is None:
            network = BertNetwork(config, prefix="bert_")
            network.initialize(mx.init.Normal(0.02), ctx=self.ctx)
        self.network = network
        self.network.hybridize(static_alloc=True, static_shape=True)
        self.classifier, self.head = classifier, head
        if classifier is not None:
            if classifier.network is not network:
                raise BortkitError("Model: the classifier must wrap the model's network")
            classifier.hybridize(static_alloc=True, static_shape=True)
        self.embedding = embedding
        self.source = source
        self.meta = dict(meta or {})
        self._tokenizer = None
        self._views: dict = {}

    @property
    def tokenizer(self):
        """The tokenizer of the checkpoint the model came from (loaded on first use)."""
        if self._tokenizer is None:
            if self.source is None:
                raise BortkitError("this model has no tokenizer files beside it; set "
                                   "model.tokenizer = bortkit.load_tokenizer(PATH)")
            from ..tokenizers import load_tokenizer
            self._tokenizer = load_tokenizer(self.source)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer) -> None:
        self._tokenizer = tokenizer

    def _view(self, hidden: bool, attentions: bool) -> HybridBlock:
        if not (hidden or attentions):
            return self.network
        key = (hidden, attentions)
        if key not in self._views:
            view = _FullOutputs(self.network, hidden, attentions)
            view.hybridize(static_alloc=True, static_shape=True)
            self._views[key] = view
        return self._views[key]

    def encode(self, input_ids, token_type_ids=None, attention_mask=None,
               output_hidden_states: bool = False,
               output_attentions: bool = False) -> EncoderOutput:
        """Run the encoder in inference mode on (B, T) integer arrays (1-D = one sequence)."""
        args = self._inputs(input_ids, token_type_ids, attention_mask)
        outputs = self._view(output_hidden_states, output_attentions)(*args)
        outputs = [outputs] if isinstance(outputs, mx.nd.NDArray) else list(outputs)
        arrays = [o.asnumpy() for o in outputs]
        result = EncoderOutput(last_hidden_state=arrays.pop(0))
        if self.config.use_pooler:
            result.pooler_output = arrays.pop(0)
        if output_hidden_states:
            result.hidden_states = list(arrays.pop(0))
        if output_attentions:
            result.attentions = list(arrays.pop(0))
        return result

    def logits(self, input_ids, token_type_ids=None, attention_mask=None) -> np.ndarray:
        """The task head's outputs (B, C) on (B, T) integer arrays: class logits, or one
        column of predicted values for a regression head."""
        if self.classifier is None:
            raise BortkitError("this model has no task head (fine-tune it first: python -m "
                               "bortkit.finetune); for sentence vectors use model.embed(texts)")
        ids, types, mask = self._inputs(input_ids, token_type_ids, attention_mask)
        return classifier_logits(self.classifier, ids, types, mask, self.ctx)

    def embed(self, texts: Union[str, Sequence[str]], batch_size: int = 32,
              show_progress_bar: Optional[bool] = None, convert_to_numpy: bool = True,
              normalize_embeddings: bool = False):
        """Sentence vectors of a list of strings, as sentence-transformers' ``encode``:
        (N, U) float32, or (U,) for one string; ``convert_to_numpy=False`` gives a list of
        (U,) arrays instead. The pooling, normalisation and length are those the checkpoint
        declares (``model.embedding``; mean pooling over real tokens when it declares none);
        ``normalize_embeddings=True`` L2-normalises as well. ``show_progress_bar``: None
        shows a bar on a terminal only."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        spec = self.embedding
        pooling = getattr(spec, "pooling", "mean")
        max_length = getattr(spec, "max_length", None) or \
            self.config.max_length - self.config.position_offset
        out = np.zeros((len(texts), self.config.units), np.float32)
        from tqdm import tqdm
        with tqdm(total=len(texts), unit="text", desc="embed",
                  disable=None if show_progress_bar is None else not show_progress_bar) as bar:
            for index, batch in self.tokenizer.sorted_batches(texts, max_length=max_length,
                                                              batch_size=batch_size):
                states = self.encode(batch["input_ids"], batch["token_type_ids"],
                                     batch["attention_mask"]).last_hidden_state
                out[index] = pool_tokens(states, batch["attention_mask"], pooling)
                bar.update(len(index))
        if getattr(spec, "normalize", False) or normalize_embeddings:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        if single:
            return out[0]
        return out if convert_to_numpy else list(out)

    def _inputs(self, input_ids, token_type_ids, attention_mask) -> list:
        """Checked (B, T) model inputs as float32 NDArrays on the model's context."""
        ids = _as_batch("input_ids", input_ids)
        if ids.size == 0:
            raise BortkitError(f"encode: input_ids must hold at least one sequence of at least "
                               f"one token, got shape {ids.shape}")
        _check_values("input_ids", ids, self.config.vocab_size)
        longest = self.config.longest_sequence
        if longest is not None and ids.shape[1] > longest:
            raise BortkitError(f"encode: sequence length must be in [1, {longest}] (the model's "
                               f"position table), got {ids.shape[1]}")
        types = np.zeros_like(ids) if token_type_ids is None else \
            _as_batch("token_type_ids", token_type_ids, ids)
        _check_values("token_type_ids", types, max(self.config.type_vocab_size, 1))  # no clamping
        mask = np.ones_like(ids) if attention_mask is None else \
            _as_batch("attention_mask", attention_mask, ids)
        _check_values("attention_mask", mask, 2)
        return [mx.nd.array(a, ctx=self.ctx, dtype="float32") for a in (ids, types, mask)]

    def num_params(self) -> int:
        """Scalars in the built network (tied parameters counted once)."""
        seen = {id(p): p for p in self.network.collect_params().values()}
        return int(sum(np.prod(p.shape) for p in seen.values()))

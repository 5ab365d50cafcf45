"""Calibrated static int8 quantization of a family model through MXNet's oneDNN backend.

``quantize_int8(state, texts)`` turns the encoder (or the encoder with its task head) into a
oneDNN int8 graph (:mod:`bortkit.quantize.graph`): the fully connected layers
(query/key/value as one product on a stored (3U, U) weight, the output projection, both
FFN products) and the two attention products run in int8 with activation ranges calibrated
on real text; embeddings, LayerNorm, the mask and softmax stay in fp32 (MXNet's "smart"
mode quantizes an operator only where its neighbours let the int8 data flow without extra
conversions). Weights are quantized per output channel; activations take the min/max of
the calibration batches ("naive" calibration), with two exceptions that keep >= 99 % of a
fine-tuned MiniLM's SST-2 predictions (README, "Inference: ONNX export and int8"):

- :data:`FP32_PRODUCTS`: the first layer's FFN output product stays in fp32;
- :data:`FFN_ACTIVATION_RANGE`: the FFN activation (what ``ffn_2`` reads) is quantized over
  that share of its calibrated range, because a few outliers stretch it.

:meth:`QuantizedModel.save` writes a checkpoint that ``bortkit.from_pretrained`` loads
without calibration text: the fp32 checkpoint files plus ``int8.json`` (settings and
thresholds).

Dense kernel (``record["dense"]``, :data:`DENSE_KERNELS`): where bortkit's operator
library is loaded at the avx2 tier or above (:mod:`bortkit.ops.isa`), the encoder's dense
layers run instead on bortkit's own int8 operator and each dot-product attention on its fused
attention (:mod:`bortkit.quantize.fused`: per-row dynamic int8 activations, AMX, AVX-512 VNNI
or AVX2 products, the rest of the graph fp32), measured faster than oneDNN 2.4's int8
products (bench/README.md); elsewhere, or with ``BORTKIT_KERNELS=0``, on oneDNN as above. The
record says which one a saved model was made with (``amx``, the name before the other tiers,
reads as ``fused``); both use the same stored thresholds, so a model saved with ``fused``
loads on oneDNN where the operators are missing (with a warning).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ..errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    from ..checkpoint.heads import TaskHead

QUANTIZATIONS = ("int8",)
CALIBRATION_BATCH = 16       # sentences per calibration batch
CALIBRATION_MAX_LENGTH = 128  # calibration sentences are cut to this many tokens
RECORD = "int8.json"          # beside the checkpoint files: what makes a directory int8
RECORD_FORMAT = "bortkit-int8-onednn"
FP32_PRODUCTS = ("encoder.0.ffn.ffn_2",)
FFN_ACTIVATION_RANGE = 0.5
DENSE_KERNELS = ("fused", "onednn")
FUSED_TIERS = ("avx2", "avx512", "amx")  # below avx2 oneDNN is faster
DENSE_PRODUCTS = ("attention.qkv", "attention.output", "ffn.ffn_1", "ffn.ffn_2")
FIRST_POSITION_PRODUCTS = ("attention.query", "attention.key", "attention.value",
                           "attention.output", "ffn.ffn_1", "ffn.ffn_2")


def dense_kernel() -> str:
    """The fastest dense kernel here: ``fused`` when bortkit's operators run at a tier of
    :data:`FUSED_TIERS`, else ``onednn``."""
    from .. import ops
    if not ops.available():
        return "onednn"
    from ..ops.isa import active
    return "fused" if active() in FUSED_TIERS else "onednn"


def check_calibration(quantize: Optional[str], calibration) -> list:
    """Validate ``quantize=`` / ``calibration=`` before any work; returns the texts."""
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize must be one of {', '.join(QUANTIZATIONS)}, "
                          f"got {quantize!r}")
    if calibration is None or isinstance(calibration, str):
        raise ConfigError("calibration must be a list of sentences of real text (a few "
                          f"hundred), got {type(calibration).__name__}")
    texts = list(calibration)
    if not all(isinstance(t, str) for t in texts):
        raise ConfigError("calibration must hold strings only")
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ConfigError("calibration text is empty: give a few hundred sentences of real "
                          "text")
    return texts


def calibration_batches(tokenizer, texts: Sequence[str], max_length: int) -> list:
    """Tokenized (input_ids, token_type_ids, attention_mask) batches, all padded to one
    length (the calibration graph has one shape)."""
    rows = [tokenizer(t, max_length=max_length) for t in texts]
    padded = tokenizer.pad(rows)
    batches = []
    for start in range(0, len(texts), CALIBRATION_BATCH):
        part = slice(start, start + CALIBRATION_BATCH)
        batches.append(tuple(padded[k][part] for k in
                             ("input_ids", "token_type_ids", "attention_mask")))
    if len(batches) > 1 and len(batches[-1][0]) < CALIBRATION_BATCH:
        batches.pop()  # one shape for every batch; the dropped tail is < 16 sentences
    return batches


class _Inputs:
    """Which (B, T) inputs the graph reads: the token types only when the model has them."""

    def __init__(self, config):
        self.use_types = bool(config.type_vocab_size)

    def select(self, ids, types, mask) -> list:
        return [ids, types, mask] if self.use_types else [ids, mask]


def _graph_block(network, inputs: _Inputs):
    """A HybridBlock over ``network`` (+ head) whose inputs are exactly the graph's inputs
    (MXNet's quantizer binds every declared input)."""
    from mxnet.gluon import HybridBlock

    class InferenceGraph(HybridBlock):
        def __init__(self):
            super().__init__(prefix=network.prefix, params=network.collect_params())
            self.network = network

        def hybrid_forward(self, F, ids, *rest):
            types, mask = rest if inputs.use_types else (F.zeros_like(ids), rest[0])
            return self.network(ids, types, mask)

    return InferenceGraph()


class QuantizedModel:
    """An int8 oneDNN graph of a family model: numpy (B, T) in, numpy out.

    Without a task head ``encode`` returns an :class:`~bortkit.model.EncoderOutput`
    (last hidden state and pooler); with one (``head``, a
    :class:`~bortkit.checkpoint.TaskHead`), ``predict`` returns the logits (B, C).
    ``record`` holds the settings and calibration thresholds that :meth:`save` writes;
    ``dense`` names the kernel the dense layers run on here (:data:`DENSE_KERNELS`).
    """

    def __init__(self, config, block, head: Optional[TaskHead], network=None,
                 record: Optional[dict] = None, meta: Optional[dict] = None, source=None,
                 dense: str = "onednn"):
        self.config = config
        self.dense = dense
        self.head = head
        self.record = record
        self.meta = dict(meta or {})
        self._block = block
        self._network = network   # the fp32 Gluon block: what save() writes
        self._source = source     # the tokenizer files' folder
        self.source = source
        self._inputs = _Inputs(config)
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The tokenizer of the checkpoint the model came from (loaded on first use)."""
        if self._tokenizer is None:
            if self._source is None:
                raise ConfigError("this model has no tokenizer files beside it")
            from ..tokenizers import load_tokenizer
            self._tokenizer = load_tokenizer(self._source)
        return self._tokenizer

    def _run(self, input_ids, token_type_ids=None, attention_mask=None) -> list:
        import mxnet as mx
        ids = np.atleast_2d(np.asarray(input_ids))
        types = np.zeros_like(ids) if token_type_ids is None else np.atleast_2d(token_type_ids)
        mask = np.ones_like(ids) if attention_mask is None else np.atleast_2d(attention_mask)
        args = [mx.nd.array(a, dtype="float32") for a in self._inputs.select(ids, types, mask)]
        out = self._block(*args)
        return [o.asnumpy() for o in (out if isinstance(out, (list, tuple)) else [out])]

    def predict(self, input_ids, token_type_ids=None, attention_mask=None) -> np.ndarray:
        if self.head is None:
            raise ConfigError("predict needs a checkpoint with a task head; use encode")
        return self._run(input_ids, token_type_ids, attention_mask)[0]

    def encode(self, input_ids, token_type_ids=None, attention_mask=None):
        from ..model import EncoderOutput
        if self.head is not None:
            raise ConfigError("this checkpoint has a task head; use predict")
        outputs = self._run(input_ids, token_type_ids, attention_mask)
        return EncoderOutput(last_hidden_state=outputs[0],
                             pooler_output=outputs[1] if len(outputs) > 1 else None)

    def save(self, directory: os.PathLike | str) -> Path:
        """Write the quantized model as a directory that ``bortkit.from_pretrained`` loads
        without calibration: the fp32 checkpoint (config, weights, tokenizer) plus
        ``int8.json``. An existing non-empty ``directory`` is refused, never overwritten."""
        from ..checkpoint import save_pretrained
        from ..io import atomic_directory, write_json
        directory = Path(directory)
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise ConfigError("output directory already exists and is not empty; choose "
                              "another", path=directory)
        meta = {k: v for k, v in self.meta.items() if k not in ("_format", "_bortkit_version")}
        from ..rundir import writing
        with writing(directory), atomic_directory(directory) as tmp:
            save_pretrained(self._network, tmp, config=self.config, source=self._source,
                            meta=meta)
            write_json(tmp / RECORD, self.record)
        return directory


def _network(state, head: Optional[TaskHead]):
    """The fp32 Gluon network of ``state`` (with ``head``, the task head ``state.meta``
    declares, when it has one), every position through every layer: the graph the oneDNN
    thresholds name."""
    import mxnet as mx
    from ..checkpoint import assign, classifier_from_state
    from ..model import BertNetwork
    if head is None:
        network = BertNetwork(state.config, prefix="bert_")
        network.initialize(mx.init.Normal(0.02))
        assign(network, state)
        return network
    network, _ = classifier_from_state(state, head.num_labels, head.pooling,
                                       first_position=False)
    return network


def _first_position_twin(network):
    """The same classifier (shared parameters) with its last layer computed for position 0
    alone (:class:`~bortkit.model.SequenceClassifier`), or None where that changes nothing
    (no [CLS] head, or a network that cannot)."""
    from ..model import SequenceClassifier
    if not isinstance(network, SequenceClassifier) or \
            not network.network.first_position_suffices():
        return None
    twin = SequenceClassifier(network.network, network.num_labels, network.head.pooling,
                              first_position=True, prefix=network.prefix,
                              params=network.collect_params())
    return twin if twin.first_position else None  # the classifier's rule: a [CLS] head


def _operators(network, name: str) -> list:
    """The fp32 graph's operators of the product ``name``: a family matrix
    (``encoder.0.ffn.ffn_2``; of a factored matrix, the product that reads its input),
    ``encoder.N.attention.qkv`` (the one interleaved projection) or
    ``encoder.N.attention.products`` (the two attention products)."""
    from ..model.names import named_parameters
    params = named_parameters(network)
    block, _, part = name.rpartition(".")
    if block.endswith("attention") and part in ("qkv", "products") and \
            f"{block}.query.weight" in params:
        prefix = params[f"{block}.query.weight"].name[:-len("query_weight")]
        return [prefix + "fullyconnected0"] if part == "qkv" else \
            [prefix + "interleaved_matmul_selfatt_qk0",
             prefix + "interleaved_matmul_selfatt_valatt0"]
    for weight in (f"{name}.weight", f"{name}.down.weight"):
        if weight in params:
            return [params[weight].name[:-len("weight")] + "fwd"]
    raise ConfigError(f"int8: the model has no product {name}")


class Int8Graph:
    """The folded fp32 inference graph of one checkpoint: calibrate it, then quantize it
    with given settings (``quantize_int8`` and the saved-model loader use the defaults;
    ``bench/int8_agreement.py`` compares others)."""

    def __init__(self, state):
        from ..checkpoint.heads import TaskHead
        from ..model.names import named_parameters
        #: the task head the checkpoint declares (None: the encoder alone)
        self.head = TaskHead.from_meta(state.meta, state.weights_path.parent)
        self.network = _network(state, self.head)
        self.inputs = _Inputs(state.config)
        self.num_layers = state.config.num_layers
        self.parameter_names = set(named_parameters(self.network))  # family names
        self.names = [f"data{i}" for i in range(3 if self.inputs.use_types else 2)]
        self.sym, self.params = self._folded(self.network)

    def _folded(self, network) -> tuple:
        """(symbol, parameters) of ``network``'s inference graph, parameters folded."""
        import mxnet as mx
        from .graph import fold_parameters
        block = _graph_block(network, self.inputs)
        block.hybridize()
        sym = block(*[mx.sym.var(n) for n in self.names])
        sym = mx.sym.Group(list(sym)) if isinstance(sym, (list, tuple)) else sym
        params = {name: p.data() for name, p in block.collect_params().items()}
        return fold_parameters(sym, params)

    def calibrate(self, batches: Sequence[tuple]) -> dict:
        """``{tensor: (min, max)}`` over (input_ids, token_type_ids, attention_mask)
        batches of one shape."""
        from .graph import collect_thresholds
        return collect_thresholds(self.sym, self.params,
                                  [dict(zip(self.names, self.inputs.select(*b)))
                                   for b in batches])

    def _fp32_nodes(self, fp32_products: Sequence[str]) -> list:
        """The backend nodes that stay fp32 for the products named in ``fp32_products``."""
        from .graph import product_inputs
        kept = [op for name in fp32_products for op in _operators(self.network, name)]
        found = product_inputs(self.sym, kept)
        return sorted({found[op][0] for op in kept})

    def quantize(self, thresholds: dict, fp32_products: Sequence[str] = FP32_PRODUCTS,
                 ffn_activation_range: float = FFN_ACTIVATION_RANGE, path=None):
        """The int8 ``SymbolBlock``: the products named in ``fp32_products`` (see
        :func:`_operators`) stay fp32; the FFN activation is quantized over
        ``ffn_activation_range`` times its calibrated range."""
        from .graph import product_inputs, quantize_symbol
        ffn_out = [op for i in range(self.num_layers)
                   for op in _operators(self.network, f"encoder.{i}.ffn.ffn_2")]
        found = product_inputs(self.sym, ffn_out)
        scaled = {key: [v * ffn_activation_range for v in thresholds[key]]
                  for key in {found[op][1] for op in ffn_out} if key in thresholds}
        try:
            return quantize_symbol(self.sym, self.params, {**thresholds, **scaled},
                                   self.names, self._fp32_nodes(fp32_products))
        except KeyError as err:
            raise _missing(err.args[0], path) from None

    def check_thresholds(self, thresholds: dict, path=None) -> None:
        """Raise :class:`CheckpointError` unless ``thresholds`` has every tensor
        :meth:`quantize` needs (with the default settings)."""
        from .graph import required_thresholds
        for name in required_thresholds(self.sym, self.params,
                                        self._fp32_nodes(FP32_PRODUCTS)):
            if name not in thresholds:
                raise _missing(name, path)

    def dense_products(self, first_position: bool = False) -> list:
        """The graph's operators of the encoder's dense layers (:data:`DENSE_PRODUCTS` of
        every layer; with ``first_position``, the last layer's query, key and value are
        three products, :data:`FIRST_POSITION_PRODUCTS`)."""
        last = self.num_layers - 1
        return [op for i in range(self.num_layers)
                for part in (FIRST_POSITION_PRODUCTS if first_position and i == last
                             else DENSE_PRODUCTS)
                for op in _operators(self.network, f"encoder.{i}.{part}")]

    def fused_graph(self) -> tuple:
        """``(symbol, parameters, products)`` for the fused graph: under a [CLS] head the
        last layer computes position 0 alone (the thresholds, which the fused graph does not
        read, name the oneDNN graph's every position)."""
        twin = _first_position_twin(self.network)
        sym, params = (self.sym, self.params) if twin is None else self._folded(twin)
        return sym, params, self.dense_products(twin is not None)

    def fused(self):
        """The graph with the encoder's dense layers on bortkit's int8 operator
        (:mod:`bortkit.quantize.fused`): needs no thresholds."""
        from .fused import fused_block
        return fused_block(*self.fused_graph(), self.names)

    def build(self, dense: str, thresholds: dict, path=None):
        """The int8 block on ``dense`` (:data:`DENSE_KERNELS`); ``thresholds`` must fit
        this graph either way (a record that falls back to oneDNN elsewhere)."""
        if dense == "fused":
            self.check_thresholds(thresholds, path)
            return self.fused()
        return self.quantize(thresholds, path=path)


def _missing(name: str, path) -> CheckpointError:
    return CheckpointError(f"{RECORD} has no threshold for {name}: it was calibrated for "
                           "another model or MXNet version; quantize again with calibration "
                           "text", path=path)


def _settings(texts: int, length: int) -> dict:
    import mxnet as mx
    return {"format": RECORD_FORMAT, "mxnet": mx.__version__, "calibration": "naive",
            "calibration_sentences": texts, "calibration_length": length,
            "granularity": "channel-wise", "fp32_products": list(FP32_PRODUCTS),
            "ffn_activation_range": FFN_ACTIVATION_RANGE}


def quantize_int8(state, calibration: Sequence[str], tokenizer=None,
                  dense: Optional[str] = None) -> QuantizedModel:
    """Calibrate and quantize the model in ``state`` (from
    :func:`bortkit.checkpoint.read_state`), with its task head when ``state.meta`` has one.
    ``tokenizer`` defaults to the checkpoint's own; ``dense`` (:data:`DENSE_KERNELS`)
    defaults to :func:`dense_kernel`. The thresholds are calibrated either way (the record
    of a ``fused`` model loads on oneDNN where the operators are missing)."""
    from ..tokenizers import load_tokenizer
    if dense is not None and dense not in DENSE_KERNELS:
        raise ConfigError(f"dense must be one of {', '.join(DENSE_KERNELS)}, got {dense!r}")
    if dense == "fused" and not _fused_runs():
        raise ConfigError(f"dense='fused' needs bortkit's operator library ({_fused_status()})")
    dense = dense or dense_kernel()
    texts = check_calibration("int8", calibration)
    if tokenizer is None:
        if state.tokenizer_dir is None:
            raise ConfigError("calibration text needs a tokenizer: the checkpoint has no "
                              "tokenizer files", path=state.weights_path)
        tokenizer = load_tokenizer(state.tokenizer_dir)
    config = state.config
    graph = Int8Graph(state)
    length = min(CALIBRATION_MAX_LENGTH, config.max_length - config.position_offset)
    batches = calibration_batches(tokenizer, texts, length)
    thresholds = graph.calibrate(batches)

    def degenerate(problem: str):  # what load_int8 would refuse is never saved
        raise ConfigError(f"calibration text gave no usable range: {problem}; give more, and "
                          "more varied, sentences")

    checked_thresholds(thresholds, degenerate)
    record = {**_settings(len(batches) * len(batches[0][0]), batches[0][0].shape[1]),
              "dense": dense, "thresholds": thresholds}
    return QuantizedModel(config, graph.build(dense, record["thresholds"]),
                          graph.head, graph.network, record, state.meta,
                          state.tokenizer_dir, dense)


def _fused_runs() -> bool:
    from .. import ops
    return ops.available()


def _fused_status() -> str:
    from .. import ops
    if not ops.available():
        return ops.status()
    from ..ops.isa import active
    return f"the kernels run at the {active()} tier"


#: The keys of ``int8.json``.
RECORD_KEYS = ("format", "mxnet", "calibration", "calibration_sentences",
               "calibration_length", "granularity", "fp32_products", "ffn_activation_range",
               "dense", "thresholds")
#: The widest calibrated range a record may give: over a wider one, int8's 127 levels are
#: each wider than 787, so every activation of a LayerNorm-ed encoder rounds to zero.
THRESHOLD_LIMIT = 1e5


def check_record(record, where) -> tuple:
    """Validate an ``int8.json`` record read from ``where`` (the one schema of what
    :meth:`QuantizedModel.save` writes); returns ``(dense kernel, {tensor: (min, max)})``.
    Refused, each in one line naming the file: another format, another MXNet version (its
    thresholds name another graph), settings this bortkit does not build, and thresholds that
    are not two finite, ordered (min < max) numbers within +/-:data:`THRESHOLD_LIMIT`."""
    import mxnet as mx

    def fail(problem: str):
        raise CheckpointError(problem + "; quantize again with calibration text", path=where)

    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        raise CheckpointError(f"not an int8 record (expected format {RECORD_FORMAT} with "
                              "thresholds)", path=where)
    unknown = sorted(str(k) for k in set(record) - set(RECORD_KEYS))
    if unknown:
        fail(f"unknown key(s) {', '.join(unknown)} (known: {', '.join(RECORD_KEYS)})")
    if record.get("mxnet") != mx.__version__:
        fail(f"calibrated with MXNet {record.get('mxnet')!r}, this is MXNet {mx.__version__} "
             f"(its graph and threshold names may differ)")
    for key in ("fp32_products", "ffn_activation_range", "calibration", "granularity"):
        expected = _settings(0, 0)[key]
        if record.get(key) != expected:
            raise CheckpointError(f"{key} is {record.get(key)!r}; this bortkit builds "
                                  f"{expected!r}; quantize again with calibration text",
                                  path=where)
    for key in ("calibration_sentences", "calibration_length"):
        value = record.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < 1):
            fail(f"{key} must be a positive integer, got {value!r}")
    dense = record.get("dense", "onednn")  # records before the fused kernel: oneDNN
    dense = "fused" if dense == "amx" else dense  # its name while it ran on AMX only
    if dense not in DENSE_KERNELS:
        raise CheckpointError(f"dense is {dense!r}; expected one of "
                              f"{', '.join(DENSE_KERNELS)}", path=where)
    if not isinstance(record.get("thresholds"), dict) or not record["thresholds"]:
        raise CheckpointError(f"not an int8 record (expected format {RECORD_FORMAT} with "
                              "thresholds)", path=where)
    return dense, checked_thresholds(record["thresholds"], fail)


def checked_thresholds(thresholds: dict, fail) -> dict:
    """``{tensor: (min, max)}`` of ``thresholds`` if each is a pair of finite numbers with
    min < max within +/-:data:`THRESHOLD_LIMIT`; else ``fail(problem)``."""
    import math
    checked = {}
    for name, pair in thresholds.items():
        numbers = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            and abs(v) <= THRESHOLD_LIMIT for v in pair)
        if not numbers or not pair[0] < pair[1]:
            fail(f"threshold of {name} must be [min, max], two finite numbers with min < max "
                 f"within +/-{THRESHOLD_LIMIT:g}, got {list(pair) if numbers else pair!r}")
        checked[name] = (float(pair[0]), float(pair[1]))
    return checked


def is_quantized(path) -> bool:
    """True when ``path`` is a directory written by :meth:`QuantizedModel.save`."""
    from ..resolve import resolve_model_path
    return (resolve_model_path(path) / RECORD).is_file()


def load_int8(path, config=None) -> QuantizedModel:
    """A saved int8 directory as a :class:`QuantizedModel`, with its stored thresholds (no
    calibration)."""
    from ..checkpoint import read_state
    from ..checkpoint.heads import read_json
    state = read_state(path, config)
    where = state.weights_path.parent / RECORD
    record = read_json(where)
    dense, thresholds = check_record(record, where)
    if dense == "fused" and not _fused_runs():
        warnings.warn(f"bortkit: {where} was made with dense='fused', which does not run here "
                      f"({_fused_status()}); using oneDNN int8 with its stored thresholds",
                      RuntimeWarning, stacklevel=2)
        dense = "onednn"
    graph = Int8Graph(state)
    return QuantizedModel(state.config, graph.build(dense, thresholds, path=where),
                          graph.head, graph.network, record, state.meta,
                          state.tokenizer_dir, dense)

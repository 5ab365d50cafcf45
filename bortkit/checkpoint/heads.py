"""What a checkpoint declares about its use: the task head and the sentence embedding.

bortkit keeps both in ``config.json``: ``"_head"`` (written by ``python -m bortkit.finetune``:
task, kind, labels, the ``max_length`` and ``pooling`` it was trained with) and
``"_embedding"`` (pooling, L2 normalisation, length). Hugging Face directories declare a head
through a ``...ForSequenceClassification`` layout with ``id2label`` and ``problem_type``, and
a sentence-transformers directory its embedding through ``modules.json``,
``1_Pooling/config.json`` and ``sentence_bert_config.json``.

The ``"_head"`` record is read and written here only (:meth:`TaskHead.from_meta`,
:meth:`TaskHead.to_meta`, :meth:`TaskHead.strip`); every other module handles a
:class:`TaskHead` (``tests/test_architecture.py`` checks it).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from ..errors import CheckpointError

KINDS = ("classification", "regression")
HEAD_POOLINGS = ("cls", "mean")
EMBED_POOLINGS = ("mean", "cls", "max")
#: sentence-transformers' Pooling config key -> our pooling name.
_ST_POOLING_KEYS = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
                    "pooling_mode_max_tokens": "max"}
#: The task head's entry in a bortkit ``config.json`` (private: go through TaskHead).
_HEAD_KEY = "_head"


@dataclass(frozen=True)
class TaskHead:
    """A sentence-level classification (C labels) or regression (one value) head."""

    kind: str                         # "classification" or "regression"
    labels: tuple = ()                # label names in id order; empty for regression
    pooling: str = "cls"              # "cls" ([CLS]/pooler) or "mean" over real tokens
    max_length: int = 128             # tokens per input (specials included), as trained
    task: Optional[str] = None        # e.g. "SST-2"

    @property
    def num_labels(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    @classmethod
    def from_meta(cls, meta: dict, path: Optional[Path] = None) -> Optional["TaskHead"]:
        """The ``"_head"`` entry of a bortkit ``config.json`` (None when there is none),
        checked; ``path`` (the checkpoint folder or its ``config.json``) names it in errors."""
        head = meta.get(_HEAD_KEY)
        if not head:
            return None
        where = None if path is None else path / "config.json" if path.is_dir() else path
        try:
            made = cls(kind=head["kind"], labels=tuple(str(x) for x in head.get("labels", ())),
                       pooling=head.get("pooling", "cls"),
                       max_length=int(head.get("max_length", 128)), task=head.get("task"))
        except (KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"invalid _head entry ({err.__class__.__name__}: {err})",
                                  path=where) from None
        made.check(where)
        if "num_labels" in head and head["num_labels"] != made.num_labels:
            raise CheckpointError(f"_head has num_labels {head['num_labels']} but "
                                  f"{made.num_labels} label names", path=where)
        return made

    @staticmethod
    def strip(meta: dict) -> dict:
        """``meta`` without its ``"_head"`` entry (what the encoder alone declares)."""
        return {k: v for k, v in meta.items() if k != _HEAD_KEY}

    def check(self, where: Optional[Path]) -> None:
        if self.kind not in KINDS:
            raise CheckpointError(f"head kind must be one of {', '.join(KINDS)}, got "
                                  f"{self.kind!r}", path=where)
        if self.pooling not in HEAD_POOLINGS:
            raise CheckpointError(f"head pooling must be one of {', '.join(HEAD_POOLINGS)}, "
                                  f"got {self.pooling!r}", path=where)
        if self.kind == "classification" and len(self.labels) < 2:
            raise CheckpointError(f"a classification head needs at least 2 label names, got "
                                  f"{list(self.labels)}", path=where)
        if self.max_length < 3:
            raise CheckpointError(f"head max_length must be at least 3, got {self.max_length}",
                                  path=where)

    def to_meta(self) -> dict:
        """The ``"_head"`` entry, in the form ``python -m bortkit.finetune`` writes it."""
        return {_HEAD_KEY: {"task": self.task, "kind": self.kind, "num_labels": self.num_labels,
                          "labels": list(self.labels), "max_length": self.max_length,
                          "pooling": self.pooling}}

    # ------------------------------------------------------------- Hugging Face config
    def to_huggingface(self) -> dict:
        """``id2label``, ``label2id``, ``problem_type`` (+ our own keys) for a config.json."""
        names = list(self.labels) if self.kind == "classification" else ["LABEL_0"]
        return {"id2label": {str(i): name for i, name in enumerate(names)},
                "label2id": {name: i for i, name in enumerate(names)},
                "problem_type": "regression" if self.kind == "regression"
                else "single_label_classification",
                "bortkit_head": {"task": self.task, "max_length": self.max_length,
                                 "pooling": self.pooling}}

    @classmethod
    def from_huggingface(cls, hf: dict, num_labels: int, max_positions: int,
                         path: Path) -> "TaskHead":
        """The head of a ``...ForSequenceClassification`` config with ``num_labels`` outputs."""
        ours = hf.get("bortkit_head") or {}
        problem = hf.get("problem_type")
        if problem not in (None, "regression", "single_label_classification"):
            raise CheckpointError(f"problem_type {problem!r} is not supported (regression, "
                                  "single_label_classification)", path=path)
        regression = problem == "regression" or (problem is None and num_labels == 1)
        id2label = {str(k): str(v) for k, v in (hf.get("id2label") or {}).items()}
        labels = () if regression else tuple(id2label.get(str(i), f"LABEL_{i}")
                                             for i in range(num_labels))
        made = cls(kind="regression" if regression else "classification", labels=labels,
                   pooling=ours.get("pooling", "cls"),
                   max_length=int(ours.get("max_length", min(512, max_positions))),
                   task=ours.get("task"))
        made.check(path)
        return made


@dataclass(frozen=True)
class EmbeddingSpec:
    """How token states become one sentence vector for :meth:`~bortkit.model.Model.embed`."""

    pooling: str = "mean"             # "mean" over real tokens, "cls" (first token) or "max"
    normalize: bool = False           # L2-normalise each vector
    max_length: Optional[int] = None  # truncation (specials included); None: the model's

    @classmethod
    def from_meta(cls, meta: dict, path: Path) -> "EmbeddingSpec":
        """``"_embedding"`` if declared; else the pooling of a task head; else mean pooling."""
        if meta.get("_embedding"):
            entry = meta["_embedding"]
            made = cls(pooling=entry.get("pooling", "mean"),
                       normalize=bool(entry.get("normalize", False)),
                       max_length=entry.get("max_length"))
        elif meta.get(_HEAD_KEY):
            made = cls(pooling=meta[_HEAD_KEY].get("pooling", "cls"))
        else:
            made = cls()
        if made.pooling not in EMBED_POOLINGS:
            raise CheckpointError(f"embedding pooling must be one of "
                                  f"{', '.join(EMBED_POOLINGS)}, got {made.pooling!r}",
                                  path=path / "config.json" if path.is_dir() else path)
        return made

    def to_meta(self) -> dict:
        return {"_embedding": asdict(self)}


def sentence_transformers_files(spec: EmbeddingSpec, units: int) -> dict:
    """Relative path -> JSON content of the files that make a Hugging Face directory a
    sentence-transformers model with ``spec``'s pooling and normalisation."""
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"}]
    if spec.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
    pooling = {"word_embedding_dimension": units}
    pooling.update({key: spec.pooling == ours for key, ours in _ST_POOLING_KEYS.items()})
    pooling["pooling_mode_mean_sqrt_len_tokens"] = False
    files = {"modules.json": modules, "1_Pooling/config.json": pooling}
    if spec.max_length is not None:
        files["sentence_bert_config.json"] = {"max_seq_length": spec.max_length,
                                              "do_lower_case": False}
    return files


def read_json(path: Path):
    """Any JSON value from ``path``; unreadable or invalid JSON is a CheckpointError."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: bad JSON, UTF-8, a 5,000-digit int
        raise CheckpointError(f"cannot read JSON ({err.__class__.__name__}: {err})",
                              path=path) from None


def sentence_transformers_embedding(directory: Path) -> Optional[EmbeddingSpec]:
    """The embedding a sentence-transformers directory declares (None without
    ``modules.json``): its Pooling module's mode, Normalize present or not, and
    ``max_seq_length``. Modules that change the vector otherwise (Dense, ...) are refused."""
    modules_path = directory / "modules.json"
    if not modules_path.is_file():
        return None
    modules = read_json(modules_path)
    if not isinstance(modules, list):
        raise CheckpointError("expected a list of modules", path=modules_path)
    pooling, normalize = None, False
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            config_path = directory / module.get("path", "") / "config.json"
            config = read_json(config_path)
            modes = [ours for key, ours in _ST_POOLING_KEYS.items() if config.get(key)]
            others = [k for k, v in config.items()
                      if k.startswith("pooling_mode_") and v and k not in _ST_POOLING_KEYS]
            if len(modes) != 1 or others:
                raise CheckpointError("exactly one of mean, cls or max pooling is supported, "
                                      f"got {modes + others}", path=config_path)
            pooling = modes[0]
        elif kind == "Normalize":
            normalize = True
        elif kind != "Transformer":
            raise CheckpointError(f"sentence-transformers module {kind!r} is not supported "
                                  "(Transformer, Pooling, Normalize)", path=modules_path)
    if pooling is None:
        raise CheckpointError("no Pooling module", path=modules_path)
    max_length = None
    if (directory / "sentence_bert_config.json").is_file():
        max_length = read_json(directory / "sentence_bert_config.json").get("max_seq_length")
    return EmbeddingSpec(pooling=pooling, normalize=normalize, max_length=max_length)

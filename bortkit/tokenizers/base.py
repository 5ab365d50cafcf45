"""The interface shared by every bortkit tokenizer.

A tokenizer turns text into the three model inputs BERT expects::

    tok = load_tokenizer("path/to/dir")
    tok("A sentence.", "Its pair.", max_length=128)
    # {'input_ids': [...], 'token_type_ids': [...], 'attention_mask': [...]}
    tok.batch(["one", "two words"])   # numpy int64 arrays, right-padded to the longest row

Subclasses supply the vocabulary and the text → token step (:meth:`Tokenizer._encode_text`,
:meth:`Tokenizer._decode_ids`, ...); this module owns what is common: special tokens found
literally in the text, the ``[CLS] A [SEP] B [SEP]`` layouts, longest-first truncation,
dynamic padding, decoding, whole-word boundaries and saving.
"""
from __future__ import annotations

import abc
import json
import os
from pathlib import Path
from typing import (Any, ClassVar, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Sequence, Tuple)

import numpy as np
import regex

from ..errors import BortkitError, ConfigError, DataError
from ..io import write_json

CONFIG_NAME = "tokenizer_config.json"

#: The five roles every tokenizer fills, in the order used for fixed-id layouts.
SPECIAL_ROLES: Tuple[str, ...] = ("pad", "unk", "cls", "sep", "mask")

#: How a pair of segments is laid out: name -> (separators between A and B, type id of B).
#: ``bert``: ``[CLS] A [SEP] B [SEP]`` with B typed 1; ``roberta``: ``<s> A </s></s> B </s>``;
#: ``bort``: ``<s> A </s> B </s>`` (what Bort's fine-tuning used). Single texts are always
#: ``CLS A SEP`` with type 0.
PAIR_FORMATS: Dict[str, Tuple[int, int]] = {"bert": (1, 1), "roberta": (2, 0), "bort": (1, 0)}

Encoding = Dict[str, List[int]]


class Tokenizer(abc.ABC):
    """Base class: callable on text, batchable, decodable and savable.

    Attributes set by every tokenizer: ``kind`` ("wordpiece", "bpe" or "sentencepiece"),
    ``vocab_size``, ``pad_id``, ``unk_id``, ``cls_id``, ``sep_id``, ``mask_id``,
    ``special_ids`` (frozenset of those ids), ``special_tokens`` (role -> token string)
    and ``pair_format`` (a key of :data:`PAIR_FORMATS`).
    """

    kind: ClassVar[str]
    default_special_tokens: ClassVar[Mapping[str, str]]
    default_pair_format: ClassVar[str] = "bert"
    #: How decoded runs of ordinary tokens and kept special tokens are joined.
    _decode_separator: ClassVar[str] = " "

    pad_id: int
    unk_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    special_ids: frozenset
    special_tokens: Dict[str, str]

    # ----------------------------------------------------------------- subclass hooks
    @property
    @abc.abstractmethod
    def vocab_size(self) -> int:
        """Number of ids in the vocabulary."""

    @abc.abstractmethod
    def _token_to_id(self, token: str) -> Optional[int]:
        """The id of ``token``, or None when it is not in the vocabulary."""

    @abc.abstractmethod
    def _id_to_token(self, index: int) -> str:
        """The token string of a valid id."""

    @abc.abstractmethod
    def _tokenize_text(self, text: str) -> List[str]:
        """Tokens of text that contains no special token."""

    @abc.abstractmethod
    def _decode_ids(self, ids: List[int]) -> str:
        """Text of a run of ordinary (non-special) ids."""

    @abc.abstractmethod
    def _starts_word(self, token: str, previous: str) -> bool:
        """Whether ``token`` begins a new word, given the ordinary token before it."""

    @abc.abstractmethod
    def _options(self) -> Dict[str, Any]:
        """Options written to ``tokenizer_config.json`` (besides specials and layout)."""

    @abc.abstractmethod
    def _save_vocabulary(self, directory: Path) -> List[str]:
        """Write the vocabulary files into ``directory``; return their names."""

    def _encode_text(self, text: str) -> List[int]:
        """Ids of text that contains no special token (override to cache ids)."""
        unk = self.unk_id
        return [self._lookup(token, unk) for token in self._tokenize_text(text)]

    # ------------------------------------------------------------------ construction
    def _setup_specials(self, special_tokens: Optional[Mapping[str, str]],
                        pair_format: Optional[str], source: Optional[os.PathLike | str]) -> None:
        """Resolve the special tokens to ids; call at the end of a subclass ``__init__``.

        ``source`` is the vocabulary file named in errors when a special token is missing.
        """
        tokens = dict(self.default_special_tokens)
        for role, token in (special_tokens or {}).items():
            if role not in SPECIAL_ROLES:
                raise ConfigError(f"unknown special token role {role!r}; "
                                  f"expected one of {', '.join(SPECIAL_ROLES)}")
            if not isinstance(token, str) or not token:
                raise ConfigError(f"special token for {role!r} must be a non-empty string, "
                                  f"got {token!r}")
            tokens[role] = token
        self.pair_format = self.default_pair_format if pair_format is None else pair_format
        for role in SPECIAL_ROLES:
            index = self._token_to_id(tokens[role])
            if index is None:
                raise DataError(f"vocabulary has no {role} token {tokens[role]!r}", path=source)
            setattr(self, f"{role}_id", index)
        self.special_tokens = tokens
        self.special_ids = frozenset(getattr(self, f"{role}_id") for role in SPECIAL_ROLES)
        by_length = sorted(set(tokens.values()), key=len, reverse=True)
        self._special_pattern = regex.compile("(" + "|".join(map(regex.escape, by_length)) + ")")

    @property
    def pair_format(self) -> str:
        """How pairs are laid out: a key of :data:`PAIR_FORMATS`."""
        return self._pair_format

    @pair_format.setter
    def pair_format(self, value: str) -> None:
        if value not in PAIR_FORMATS:
            raise ConfigError(f"unknown pair_format {value!r}; "
                              f"expected one of {', '.join(PAIR_FORMATS)}")
        self._pair_format = value

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(vocab_size={self.vocab_size}, "
                f"pair_format={self.pair_format!r})")

    # ---------------------------------------------------------------- tokens and ids
    def tokenize(self, text: str) -> List[str]:
        """Split ``text`` into tokens (no [CLS]/[SEP] added; special tokens in it are kept)."""
        _check_text(text, "text")
        tokens: List[str] = []
        for segment, is_special in self._segments(text):
            tokens.extend([segment] if is_special else self._tokenize_text(segment))
        return tokens

    def encode(self, text: str) -> List[int]:
        """Ids of ``text`` without the [CLS]/[SEP] layout (special tokens in it are kept)."""
        _check_text(text, "text")
        ids: List[int] = []
        for segment, is_special in self._segments(text):
            if is_special:
                ids.append(self._token_to_id(segment))
            else:
                ids.extend(self._encode_text(segment))
        return ids

    def convert_tokens_to_ids(self, tokens: str | Iterable[str]) -> int | List[int]:
        """Id of a token, or ids of a list of tokens; unknown tokens map to ``unk_id``."""
        if isinstance(tokens, str):
            return self._lookup(tokens, self.unk_id)
        return [self._lookup(token, self.unk_id) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | Iterable[int]) -> str | List[str]:
        """Token of an id, or tokens of a sequence of ids."""
        if _is_integer(ids):
            return self._id_to_token(self._check_id(ids))
        return [self._id_to_token(self._check_id(index)) for index in ids]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        """Text of ``ids``; special tokens (padding included) are dropped unless asked for."""
        parts: List[str] = []
        run: List[int] = []
        for index in ids:
            index = self._check_id(index)
            if index in self.special_ids:
                if run:
                    parts.append(self._decode_ids(run))
                    run = []
                if not skip_special_tokens:
                    parts.append(self._id_to_token(index))
            else:
                run.append(index)
        if run:
            parts.append(self._decode_ids(run))
        return self._decode_separator.join(part for part in parts if part)

    def word_start_mask(self, ids: Iterable[int]) -> List[bool]:
        """True where a token begins a new word (for whole-word masking).

        Special tokens are words of their own, and the token after one always starts a word.
        """
        mask: List[bool] = []
        previous: Optional[str] = None  # None: start of input or after a special token
        for index in ids:
            index = self._check_id(index)
            if index in self.special_ids:
                mask.append(True)
                previous = None
                continue
            token = self._id_to_token(index)
            mask.append(previous is None or self._starts_word(token, previous))
            previous = token
        return mask

    # ----------------------------------------------------------- model-ready inputs
    def num_special_tokens(self, pair: bool = False) -> int:
        """How many special tokens the layout adds to one text (or to a pair)."""
        separators, _ = PAIR_FORMATS[self.pair_format]
        return 2 + (separators if pair else 0)

    def __call__(self, text: str, text_pair: Optional[str] = None,
                 max_length: Optional[int] = None) -> Encoding:
        """Encode one text or pair: ``input_ids``, ``token_type_ids``, ``attention_mask`` lists.

        With ``max_length`` the result (specials included) is at most that long: a single
        text is cut at the end, a pair loses tokens longest-first (see :meth:`truncate`).
        """
        ids_a = self.encode(text)
        ids_b = None
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
            ids_b = self.encode(text_pair)
        return self.format_ids(ids_a, ids_b, max_length)

    def format_ids(self, ids_a: Sequence[int], ids_b: Optional[Sequence[int]] = None,
                   max_length: Optional[int] = None) -> Encoding:
        """Truncate already-encoded ids and lay them out with the special tokens."""
        ids_a, ids_b = self.truncate(ids_a, ids_b, max_length)
        input_ids = [self.cls_id, *ids_a, self.sep_id]
        token_type_ids = [0] * len(input_ids)
        if ids_b is not None:
            separators, type_b = PAIR_FORMATS[self.pair_format]
            part_b = [self.sep_id] * (separators - 1) + [*ids_b, self.sep_id]
            input_ids += part_b
            token_type_ids += [type_b] * len(part_b)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids,
                "attention_mask": [1] * len(input_ids)}

    def truncate(self, ids_a: Sequence[int], ids_b: Optional[Sequence[int]] = None,
                 max_length: Optional[int] = None
                 ) -> Tuple[List[int], Optional[List[int]]]:
        """Shorten segments so that they fit ``max_length`` together with the specials.

        Pairs are cut "longest first" like Hugging Face's ``longest_first``: one token at a
        time is removed from the end of the longer segment (from B when they are equal).
        """
        ids_a = list(ids_a)
        ids_b = None if ids_b is None else list(ids_b)
        if max_length is None:
            return ids_a, ids_b
        if not _is_integer(max_length) or max_length < 1:
            raise ConfigError(f"max_length must be a positive integer, got {max_length!r}")
        specials = self.num_special_tokens(pair=ids_b is not None)
        budget = max_length - specials
        if budget < 0:
            raise ConfigError(f"max_length={max_length} leaves no room for the {specials} "
                              f"special tokens of a {'pair' if ids_b is not None else 'text'}")
        if ids_b is None:
            return ids_a[:budget], None
        len_a, len_b = _longest_first_lengths(len(ids_a), len(ids_b), budget)
        return ids_a[:len_a], ids_b[:len_b]

    def batch(self, texts: Iterable[str], text_pairs: Optional[Iterable[Optional[str]]] = None,
              max_length: Optional[int] = None) -> Dict[str, np.ndarray]:
        """Encode many texts (or pairs) into right-padded ``(B, T)`` int64 arrays.

        ``T`` is the longest row of this batch. ``text_pairs`` may hold None for rows that
        are single texts.
        """
        texts, text_pairs = _texts_and_pairs(texts, text_pairs)
        if not texts:
            raise DataError("texts is empty; a batch needs at least one text")
        return self.pad([self(text, pair, max_length) for text, pair in zip(texts, text_pairs)])

    def sorted_batches(self, texts: Iterable[str],
                       text_pairs: Optional[Iterable[Optional[str]]] = None,
                       max_length: Optional[int] = None, batch_size: int = 32,
                       pad_multiple: int = 8) -> Iterator[Tuple[np.ndarray, Dict[str, np.ndarray]]]:
        """Encode every text (or pair) and yield ``(index, arrays)`` batches for inference.

        Rows are sorted by length and cut into batches of ``batch_size``, so a batch pads
        little; each is padded to a multiple of ``pad_multiple`` (fewer distinct shapes for
        a hybridized graph), never beyond ``max_length``. ``index`` holds the rows'
        positions in ``texts``, to put results back in order. No texts, no batches.
        """
        texts, text_pairs = _texts_and_pairs(texts, text_pairs)
        if not _is_integer(batch_size) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
        rows = [self(text, pair, max_length) for text, pair in zip(texts, text_pairs)]
        order = np.argsort([len(row["input_ids"]) for row in rows], kind="stable")
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            arrays = self.pad([rows[i] for i in index])
            width = arrays["input_ids"].shape[1]
            target = -(-width // pad_multiple) * pad_multiple
            if max_length is not None:
                target = max(width, min(target, max_length))
            if target > width:
                arrays = {name: np.pad(array, ((0, 0), (0, target - width)),
                                       constant_values=self.pad_id if name == "input_ids" else 0)
                          for name, array in arrays.items()}
            yield index, arrays

    def pad(self, rows: Sequence[Encoding]) -> Dict[str, np.ndarray]:
        """Right-pad encoded rows (from ``__call__``) to the longest into int64 arrays.

        Padding is ``pad_id`` in ``input_ids`` and 0 in ``token_type_ids`` and
        ``attention_mask``.
        """
        if len(rows) == 0:
            raise DataError("cannot pad an empty list of rows")
        width = max(len(row["input_ids"]) for row in rows)
        arrays = {"input_ids": np.full((len(rows), width), self.pad_id, dtype=np.int64),
                  "token_type_ids": np.zeros((len(rows), width), dtype=np.int64),
                  "attention_mask": np.zeros((len(rows), width), dtype=np.int64)}
        for i, row in enumerate(rows):
            for name, array in arrays.items():
                array[i, :len(row[name])] = row[name]
        return arrays

    # ------------------------------------------------------------------------ saving
    def save(self, directory: os.PathLike | str) -> List[str]:
        """Write the files :func:`bortkit.tokenizers.load_tokenizer` reads back.

        Returns the names of the files written (vocabulary first, then the config).
        """
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise BortkitError("cannot save a tokenizer here: not a directory", path=directory)
        directory.mkdir(parents=True, exist_ok=True)
        names = self._save_vocabulary(directory)
        config: Dict[str, Any] = {"bortkit_tokenizer": self.kind, **self._options(),
                                  "pair_format": self.pair_format}
        config.update({f"{role}_token": token for role, token in self.special_tokens.items()})
        write_json(directory / CONFIG_NAME, config)
        return names + [CONFIG_NAME]

    # ----------------------------------------------------------------------- helpers
    def _segments(self, text: str) -> Iterable[Tuple[str, bool]]:
        """Split text into (segment, is_special) pieces; specials match case-sensitively."""
        for position, segment in enumerate(self._special_pattern.split(text)):
            if segment:
                yield segment, position % 2 == 1

    def _lookup(self, token: str, default: int) -> int:
        index = self._token_to_id(token)
        return default if index is None else index

    def _check_id(self, index: Any) -> int:
        if not _is_integer(index) or not 0 <= index < self.vocab_size:
            raise DataError(f"token id {index!r} is not in the vocabulary "
                            f"(0 <= id < {self.vocab_size})")
        return int(index)


def _longest_first_lengths(len_a: int, len_b: int, budget: int) -> Tuple[int, int]:
    """Segment lengths after removing tokens one at a time from the longer (B on ties)."""
    excess = len_a + len_b - budget
    if excess <= 0:
        return len_a, len_b
    gap = min(abs(len_a - len_b), excess)
    if len_a > len_b:
        len_a -= gap
    else:
        len_b -= gap
    excess -= gap  # now the segments are equal; B goes first, then they alternate
    return len_a - excess // 2, len_b - (excess + 1) // 2


def _texts_and_pairs(texts: Iterable[str], text_pairs: Optional[Iterable[Optional[str]]]
                     ) -> Tuple[List[str], List[Optional[str]]]:
    """Lists of texts and of their pairs (None where a row is a single text), checked."""
    if isinstance(texts, str):
        raise DataError("texts must be a list of strings, got a single string")
    texts = list(texts)
    if text_pairs is None:
        return texts, [None] * len(texts)
    if isinstance(text_pairs, str):
        raise DataError(f"text_pairs must be a list as long as texts ({len(texts)})")
    text_pairs = list(text_pairs)
    if len(text_pairs) != len(texts):
        raise DataError(f"text_pairs must be a list as long as texts ({len(texts)})")
    return texts, text_pairs


def _check_text(text: Any, name: str) -> None:
    if not isinstance(text, str):
        raise DataError(f"{name} must be a string, got {type(text).__name__}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


# ------------------------------------------------------------------ reading the files
def read_config(directory: Path) -> Dict[str, Any]:
    """The ``tokenizer_config.json`` in ``directory`` as a dict ({} when there is none)."""
    path = directory / CONFIG_NAME
    if not path.is_file():
        return {}
    text = read_text(path)
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"invalid JSON: {err.msg} (column {err.colno})",
                        path=path, line=err.lineno) from None
    if not isinstance(config, dict):
        raise DataError(f"expected a JSON object, got {type(config).__name__}", path=path)
    return config


def read_text(path: Path) -> str:
    """The UTF-8 text of a file, with errors that name the file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BortkitError("file does not exist", path=path) from None
    except OSError as err:
        raise BortkitError(f"cannot read file: {err.strerror or err}", path=path) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"not valid UTF-8 (byte {err.start})", path=path) from None


def config_option(config: Mapping[str, Any], key: str, types: type | Tuple[type, ...],
                  default: Any, path: Path) -> Any:
    """``config[key]`` checked against ``types`` (``default`` when absent)."""
    if key not in config:
        return default
    value = config[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in _as_tuple(types))
        raise ConfigError(f"{key!r} must be {names}, got {value!r}", path=path)
    return value


def _as_tuple(types: type | Tuple[type, ...]) -> Tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


def special_tokens_from_config(config: Mapping[str, Any], path: Path) -> Dict[str, str]:
    """Role -> token for the ``<role>_token`` keys of a Hugging Face tokenizer config.

    Values may be strings or serialized ``AddedToken`` objects (``{"content": ...}``).
    """
    tokens: Dict[str, str] = {}
    for role in SPECIAL_ROLES:
        value = config.get(f"{role}_token")
        if value is None:
            continue
        if isinstance(value, dict):
            value = value.get("content")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"'{role}_token' must be a non-empty string, got {value!r}",
                              path=path)
        tokens[role] = value
    return tokens


def pair_format_from_config(config: Mapping[str, Any], path: Path) -> Optional[str]:
    """The ``pair_format`` key, validated (None when absent)."""
    value = config_option(config, "pair_format", (str, type(None)), None, path)
    if value is not None and value not in PAIR_FORMATS:
        raise ConfigError(f"'pair_format' must be one of {', '.join(PAIR_FORMATS)}, "
                          f"got {value!r}", path=path)
    return value

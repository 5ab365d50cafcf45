"""Tokenizers for BERT-family models, from local files only.

- :class:`WordPieceTokenizer` — BERT's ``vocab.txt`` (cased or uncased).
- :class:`ByteLevelBPETokenizer` — GPT-2/RoBERTa ``vocab.json`` + ``merges.txt``.
- :class:`SentencePieceTokenizer` — a ``.model`` file; :func:`train_sentencepiece` makes one.

:func:`load_tokenizer` picks the right one from a directory. All share the interface of
:class:`Tokenizer`: ``tok(text, pair, max_length)``, ``tok.batch(...)``, ``tokenize``,
``decode``, ``word_start_mask`` and ``save``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Mapping

from ..resolve import resolve_model_path
from ..errors import BortkitError, ConfigError
from .base import CONFIG_NAME, PAIR_FORMATS, SPECIAL_ROLES, Tokenizer, read_config
from .bpe import MERGES_NAME, ByteLevelBPETokenizer
from .bpe import VOCAB_NAME as BPE_VOCAB_NAME
from .sentencepiece import MODEL_NAME, SentencePieceTokenizer, train_sentencepiece
from .wordpiece import VOCAB_NAME as WORDPIECE_VOCAB_NAME
from .wordpiece import WordPieceTokenizer

__all__ = ["Tokenizer", "WordPieceTokenizer", "ByteLevelBPETokenizer",
           "SentencePieceTokenizer", "load_tokenizer", "train_sentencepiece",
           "PAIR_FORMATS", "SPECIAL_ROLES"]

KINDS = ("wordpiece", "bpe", "sentencepiece")


def load_tokenizer(path: os.PathLike | str) -> Tokenizer:
    """Load a tokenizer from a directory or from its vocabulary file.

    A directory holds one of ``vocab.txt`` (WordPiece), ``vocab.json`` + ``merges.txt``
    (byte-level BPE) or a ``*.model`` file (SentencePiece; ``spm.model`` is preferred), and
    optionally a Hugging Face style ``tokenizer_config.json`` whose keys refine the options
    (``do_lower_case``, ``strip_accents``, ``tokenize_chinese_chars``, ``add_prefix_space``,
    ``*_token``, ``pair_format``) and whose ``"bortkit_tokenizer"`` key names the kind when
    the directory holds files of several kinds. A file path (``vocab.txt``, ``vocab.json``,
    ``*.model`` or ``tokenizer_config.json``) loads from its directory, that file first.
    ``minilm`` or an installed model package's name loads that model's tokenizer.
    """
    path = resolve_model_path(path)
    if not path.exists():
        raise BortkitError("tokenizer path does not exist", path=path)
    if path.is_dir():
        return _load_directory(path)
    directory = path.parent
    config = read_config(directory)
    if path.name == CONFIG_NAME:
        return _load_directory(directory)
    if path.suffix == ".model":
        return SentencePieceTokenizer.from_directory(directory, config, path)
    if path.name == BPE_VOCAB_NAME:
        return _load_bpe(directory, config)
    if path.suffix == ".txt" and path.name != MERGES_NAME:
        return WordPieceTokenizer.from_directory(directory, config, vocab_path=path)
    raise BortkitError("not a tokenizer file (expected vocab.txt, vocab.json, *.model or "
                       "tokenizer_config.json)", path=path)


def _load_directory(directory: Path) -> Tokenizer:
    config = read_config(directory)
    found = _kinds_present(directory)
    kind = config.get("bortkit_tokenizer")
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"'bortkit_tokenizer' must be one of {', '.join(KINDS)}, "
                          f"got {kind!r}", path=directory / CONFIG_NAME)
    if kind is None:
        if not found:
            hint = (" (vocab.json without merges.txt)"
                    if (directory / BPE_VOCAB_NAME).is_file() else "")
            raise BortkitError("no tokenizer files: expected vocab.txt, vocab.json + "
                               f"merges.txt or a *.model file{hint}", path=directory)
        if len(found) > 1:
            raise BortkitError(f"holds files of several tokenizers ({', '.join(found)}); "
                               f"set \"bortkit_tokenizer\" in {CONFIG_NAME}", path=directory)
        kind = next(iter(found))
    if kind == "wordpiece":
        return WordPieceTokenizer.from_directory(directory, config)
    if kind == "bpe":
        return _load_bpe(directory, config)
    model = found.get("sentencepiece") or directory / MODEL_NAME
    return SentencePieceTokenizer.from_directory(directory, config, model)


def _kinds_present(directory: Path) -> Dict[str, Any]:
    """Kind -> evidence for each kind of tokenizer whose files are in ``directory``."""
    found: Dict[str, Any] = {}
    if (directory / WORDPIECE_VOCAB_NAME).is_file():
        found["wordpiece"] = directory / WORDPIECE_VOCAB_NAME
    if (directory / BPE_VOCAB_NAME).is_file() and (directory / MERGES_NAME).is_file():
        found["bpe"] = directory / BPE_VOCAB_NAME
    models = sorted(p for p in directory.glob("*.model") if p.is_file())
    if (directory / MODEL_NAME).is_file():
        found["sentencepiece"] = directory / MODEL_NAME
    elif len(models) == 1:
        found["sentencepiece"] = models[0]
    elif len(models) > 1:
        names = ", ".join(p.name for p in models)
        raise BortkitError(f"several SentencePiece models ({names}); keep one or name it "
                           f"{MODEL_NAME}", path=directory)
    return found


def _load_bpe(directory: Path, config: Mapping[str, Any]) -> ByteLevelBPETokenizer:
    if not (directory / MERGES_NAME).is_file():
        raise BortkitError("file does not exist (byte-level BPE needs it beside vocab.json)",
                           path=directory / MERGES_NAME)
    return ByteLevelBPETokenizer.from_directory(directory, config)


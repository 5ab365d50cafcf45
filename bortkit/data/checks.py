"""Argument checks shared by the corpus packer, the shard writer and the dataset."""
from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

from ..errors import ConfigError
from ..tokenizers import Tokenizer, load_tokenizer
from .corpus import PathLike

__all__ = ["as_tokenizer", "check_int", "check_length"]


def as_tokenizer(tokenizer: Union[Tokenizer, PathLike]) -> Tokenizer:
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        return load_tokenizer(tokenizer)
    raise ConfigError(f"tokenizer must be a Tokenizer or a path, got {type(tokenizer).__name__}")


def check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def check_length(tokenizer: Tokenizer, max_seq_length: int, sentence_pairs: bool) -> None:
    """An example must hold the specials and at least one token (two for a pair)."""
    specials = tokenizer.num_special_tokens(pair=sentence_pairs)
    check_int("max_seq_length", max_seq_length, specials + 1 + int(sentence_pairs))

"""Packing: tokenized lines of a corpus -> examples of at most ``max_seq_length`` tokens.

Units are packed greedily, in order, into examples of at most ``max_seq_length`` tokens
(specials included): a unit that no longer fits starts the next example, and a unit too long
for an example of its own fills examples to the brim, cut at word boundaries. No token is
lost or repeated. With ``sentence_pairs`` each example is split in two, ``A`` and its
continuation ``B``, at a randomly chosen unit boundary (else word boundary) and laid out
with the tokenizer's pair format (``[CLS] A [SEP] B [SEP]`` with B typed 1 for BERT;
``<s> A </s></s> B </s>`` typed 0 for RoBERTa-style BPE).
"""
from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import random
import sys
from typing import Deque, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

from tqdm import tqdm

from ..tokenizers import Tokenizer
from .checks import as_tokenizer, check_int, check_length
from .corpus import PathLike, input_files, read_chunks

__all__ = ["PretrainingExample", "tokenize_corpus"]


Encoded = Tuple[List[int], List[bool]]


class _LineEncoder:
    """Ids and word starts of lines of text.

    Special tokens written literally in the text (other than the unknown token) are dropped:
    they would break the example layout. Whether a WordPiece or SentencePiece token starts a
    word depends on the token alone (``##`` / ``▁``) and on whether a special token precedes
    it, so for those kinds ``Tokenizer.word_start_mask`` is asked once for the whole
    vocabulary and its answers tabulated; byte-level BPE also looks at the previous ordinary
    token, so it is asked line by line.
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.layout_ids = {tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id,
                           tokenizer.mask_id}
        self.starts_word: Optional[List[bool]] = None
        if tokenizer.kind in ("wordpiece", "sentencepiece"):
            ordinary = [i for i in range(tokenizer.vocab_size) if i not in tokenizer.special_ids]
            answers = tokenizer.word_start_mask(ordinary[:1] + ordinary)[1:]
            self.starts_word = [True] * tokenizer.vocab_size
            for index, starts in zip(ordinary, answers):
                self.starts_word[index] = starts

    def __call__(self, texts: Sequence[str]) -> List[Encoded]:
        encoded = []
        for text in texts:
            ids = [index for index in self.tokenizer.encode(text) if index not in self.layout_ids]
            encoded.append((ids, self._word_starts(ids)))
        return encoded

    def _word_starts(self, ids: List[int]) -> List[bool]:
        if self.starts_word is None:
            return self.tokenizer.word_start_mask(ids)
        starts = [self.starts_word[index] for index in ids]
        starts[:1] = [True]
        unk = self.tokenizer.unk_id  # the only special token left in the text
        if unk in ids:
            for position in range(1, len(ids)):
                if ids[position - 1] == unk:
                    starts[position] = True
        return starts


_worker_encoder: Optional[_LineEncoder] = None


def _set_worker_encoder(encoder: _LineEncoder) -> None:
    global _worker_encoder
    _worker_encoder = encoder


def _encode_in_worker(texts: Sequence[str]) -> List[Encoded]:
    return _worker_encoder(texts)


def _encoded_chunks(chunks: Iterator[List[Optional[str]]], encoder: _LineEncoder,
                    workers: int) -> Iterator[Tuple[List[Optional[str]], List[Encoded]]]:
    """(chunk, encodings of its texts) in corpus order; ``workers`` > 1 tokenizes in forked
    processes with at most ``2 * workers`` chunks in flight (so memory stays bounded)."""
    if workers == 1:
        for chunk in chunks:
            yield chunk, encoder([text for text in chunk if text is not None])
        return
    context = multiprocessing.get_context("fork")  # the encoder is inherited, not pickled
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                initializer=_set_worker_encoder,
                                                initargs=(encoder,)) as pool:
        pending: Deque[Tuple[List[Optional[str]], concurrent.futures.Future]] = \
            collections.deque()
        for chunk in chunks:
            texts = [text for text in chunk if text is not None]
            pending.append((chunk, pool.submit(_encode_in_worker, texts)))
            if len(pending) >= 2 * workers:
                done_chunk, future = pending.popleft()
                yield done_chunk, future.result()
        while pending:
            done_chunk, future = pending.popleft()
            yield done_chunk, future.result()


# ================================================================================= packing
class PretrainingExample(NamedTuple):
    """One packed sequence, specials included."""

    input_ids: List[int]
    token_type_ids: List[int]
    word_starts: List[bool]


class _Packer:
    """Packs a stream of units (each fed as one or more lines of ids) into examples.

    The buffer holds the tokens of the next example(s); ``_unit_start`` is where the current
    unit begins in it and ``_boundaries`` every unit start after position 0 (the candidate
    A/B split points of sentence pairs).
    """

    def __init__(self, tokenizer: Tokenizer, max_seq_length: int, sentence_pairs: bool,
                 seed: int):
        self.tokenizer = tokenizer
        self.sentence_pairs = sentence_pairs
        self.capacity = max_seq_length - tokenizer.num_special_tokens(pair=sentence_pairs)
        self._rng = random.Random(seed)
        self._ids: List[int] = []
        self._starts: List[bool] = []
        self._boundaries: List[int] = []
        self._unit_start = 0
        self._in_unit = False
        self.ready: List[PretrainingExample] = []

    def add(self, ids: List[int], starts: List[bool]) -> None:
        """Append a line of the current unit (starting a unit if none is open)."""
        if not ids:
            return
        if not self._in_unit:
            self._in_unit = True
            self._unit_start = len(self._ids)
            if self._unit_start > 0:
                self._boundaries.append(self._unit_start)
        self._ids.extend(ids)
        self._starts.extend(starts)
        while len(self._ids) > self.capacity:
            unit_length = len(self._ids) - self._unit_start
            if 0 < self._unit_start and unit_length <= self.capacity:
                self._emit(self._unit_start)  # the unit fits in the next example whole
            else:
                self._emit(self._last_word_start())

    def end_unit(self) -> None:
        self._in_unit = False

    def finish(self) -> None:
        """Emit what is left in the buffer."""
        while self._ids:
            self._emit(min(len(self._ids), self.capacity))
        self._in_unit = False

    def _last_word_start(self) -> int:
        """The cut that fills an example most while keeping words whole (if possible)."""
        for position in range(self.capacity, 0, -1):
            if self._starts[position]:
                return position
        return self.capacity

    def _emit(self, length: int) -> None:
        ids, starts = self._ids[:length], self._starts[:length]
        split = self._split_point(length) if self.sentence_pairs else length
        self.ready.append(self._layout(ids[:split], starts[:split],
                                       ids[split:], starts[split:]))
        del self._ids[:length], self._starts[:length]
        self._boundaries = [b - length for b in self._boundaries if b > length]
        self._unit_start = max(self._unit_start - length, 0)

    def _split_point(self, length: int) -> int:
        """Where B begins: a random unit boundary, else a random word start, else anywhere."""
        if length < 2:
            return length
        candidates = [b for b in self._boundaries if b < length]
        if not candidates:
            candidates = [i for i in range(1, length) if self._starts[i]]
        if not candidates:
            return self._rng.randrange(1, length)
        return self._rng.choice(candidates)

    def _layout(self, ids_a: List[int], starts_a: List[bool], ids_b: List[int],
                starts_b: List[bool]) -> PretrainingExample:
        """The example with the tokenizer's specials; word starts follow the ids (specials
        and the token after one start a word)."""
        encoding = self.tokenizer.format_ids(ids_a, ids_b or None)
        input_ids = encoding["input_ids"]
        word_starts = [True] * len(input_ids)
        word_starts[2:1 + len(ids_a)] = starts_a[1:]
        if ids_b:
            end = len(input_ids) - 1
            word_starts[end - len(ids_b) + 1:end] = starts_b[1:]
        return PretrainingExample(input_ids, encoding["token_type_ids"], word_starts)


def tokenize_corpus(inputs: Union[PathLike, Sequence[PathLike]],
                    tokenizer: Union[Tokenizer, PathLike], *, max_seq_length: int = 128,
                    sentence_pairs: bool = False, one_sentence_per_line: bool = False,
                    seed: int = 0, workers: int = 1, progress: bool = False
                    ) -> Iterator[PretrainingExample]:
    """Stream the packed examples of a text corpus (files or folders), in corpus order.

    ``seed`` only drives where sentence pairs are split. ``workers`` > 1 tokenizes in that
    many processes. ``progress`` shows a tqdm bar of bytes read on stderr.
    """
    tokenizer = as_tokenizer(tokenizer)
    check_length(tokenizer, max_seq_length, sentence_pairs)
    check_int("workers", workers, 1)
    check_int("seed", seed, 0)
    files = input_files(inputs)
    packer = _Packer(tokenizer, max_seq_length, sentence_pairs, seed)
    total = sum(path.stat().st_size for path in files)
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="tokenizing",
              disable=None if progress else True,
              file=sys.stderr) as bar:
        chunks = _encoded_chunks(read_chunks(files, bar), _LineEncoder(tokenizer), workers)
        for chunk, encoded in chunks:
            pieces = iter(encoded)
            for text in chunk:
                if text is None:
                    packer.end_unit()
                    continue
                packer.add(*next(pieces))
                if one_sentence_per_line:
                    packer.end_unit()
                if packer.ready:
                    yield from packer.ready
                    packer.ready.clear()
        packer.finish()
        yield from packer.ready

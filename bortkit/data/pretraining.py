"""Creating a pretraining data directory: raw text -> packed token shards.

:func:`create_pretraining_data` (behind ``python -m bortkit.data.create_pretraining_data``)
streams the corpus: lines are read one at a time (:mod:`bortkit.data.corpus`), tokenized in
chunks and packed (:mod:`bortkit.data.packing`), and written out a shard at a time
(:mod:`bortkit.data.shards`, which describes the layout), so memory stays flat however large
the corpus is. Everything is built in a temporary directory beside the output and renamed
into place at the end, so a failed run leaves nothing behind. Training reads the directory
through :class:`bortkit.data.PretrainingDataset`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

from ..errors import BortkitError, ConfigError, DataError
from ..io import atomic_directory, write_json
from ..tokenizers import Tokenizer, train_sentencepiece
from .checks import as_tokenizer, check_int, check_length
from .corpus import PathLike, describe_inputs, input_files, write_line_sample
from .packing import tokenize_corpus
from .shards import (FORMAT, META_NAME, TOKENIZER_DIR, ShardWriter, tokenizer_fingerprint,
                     tokenizer_meta)

__all__ = ["create_pretraining_data", "SPM_SAMPLE_LINES"]

#: Lines sampled (reservoir sampling) to train a SentencePiece tokenizer on.
SPM_SAMPLE_LINES = 300_000


def create_pretraining_data(inputs: Union[PathLike, Sequence[PathLike]],
                            tokenizer: Union[Tokenizer, PathLike, None],
                            output_dir: PathLike, *, max_seq_length: int = 128,
                            sentence_pairs: bool = False, one_sentence_per_line: bool = False,
                            shard_size: int = 10_000,
                            train_sentencepiece_vocab: Optional[int] = None,
                            spm_sample_lines: int = SPM_SAMPLE_LINES, seed: int = 0,
                            workers: int = 1, overwrite: bool = False,
                            progress: bool = False) -> Dict[str, Any]:
    """Tokenize and pack a corpus into a shard directory; return its ``meta.json`` content.

    Args:
        inputs: text files or folders of them (UTF-8, one paragraph or sentence a line).
        tokenizer: a :class:`~bortkit.tokenizers.Tokenizer` or a path for
            :func:`~bortkit.tokenizers.load_tokenizer`; None with ``train_sentencepiece_vocab``.
        output_dir: the directory to create (it must not exist unless ``overwrite``).
        max_seq_length: L, tokens per example including the specials.
        sentence_pairs: lay examples out as ``A`` + its continuation ``B``.
        one_sentence_per_line: every line is a unit (default: blank-line separated blocks).
        shard_size: examples per shard file.
        train_sentencepiece_vocab: train a SentencePiece tokenizer of this vocabulary size
            on (a sample of at most ``spm_sample_lines`` lines of) the inputs first.
        seed: seed of the pair split points and of the SentencePiece sample.
        workers: tokenizer processes.
        overwrite: replace an existing ``output_dir``.
        progress: show tqdm progress bars on stderr.
    """
    if (tokenizer is None) == (train_sentencepiece_vocab is None):
        raise ConfigError("give exactly one of a tokenizer and train_sentencepiece_vocab")
    for name, value, minimum in (("shard_size", shard_size, 1), ("workers", workers, 1),
                                 ("seed", seed, 0)):
        check_int(name, value, minimum)
    if train_sentencepiece_vocab is not None:
        check_int("train_sentencepiece_vocab", train_sentencepiece_vocab, 6)
        check_int("spm_sample_lines", spm_sample_lines, 1)
        check_int("max_seq_length", max_seq_length, 5 if sentence_pairs else 3)
    else:
        tokenizer = as_tokenizer(tokenizer)
        check_length(tokenizer, max_seq_length, sentence_pairs)
    files = input_files(inputs)
    output_dir = Path(output_dir)
    _check_output(output_dir, overwrite)

    with atomic_directory(output_dir) as tmp:
        if train_sentencepiece_vocab is not None:
            tokenizer = _train_sentencepiece(files, tmp, train_sentencepiece_vocab,
                                             spm_sample_lines, seed, progress)
            check_length(tokenizer, max_seq_length, sentence_pairs)
        else:
            tokenizer.save(tmp / TOKENIZER_DIR)
        writer = ShardWriter(tmp, max_seq_length, shard_size, tokenizer.pad_id)
        for example in tokenize_corpus(files, tokenizer, max_seq_length=max_seq_length,
                                       sentence_pairs=sentence_pairs,
                                       one_sentence_per_line=one_sentence_per_line,
                                       seed=seed, workers=workers, progress=progress):
            writer.add(example)
        shards = writer.close()
        if not shards:
            raise DataError("the corpus has no tokens (empty or blank lines only)",
                            path=describe_inputs(inputs))
        meta = {
            "format": FORMAT,
            "max_seq_length": max_seq_length,
            "num_examples": sum(shard["num_examples"] for shard in shards),
            "num_tokens": writer.num_tokens,
            "shards": shards,
            "tokenizer": tokenizer_meta(tokenizer),
            "tokenizer_fingerprint": tokenizer_fingerprint(tmp / TOKENIZER_DIR),
            "sentence_pairs": sentence_pairs,
            "one_sentence_per_line": one_sentence_per_line,
            "seed": seed,
            "sources": [str(path.resolve()) for path in files],
        }
        write_json(tmp / META_NAME, meta)
    return meta


def _check_output(output_dir: Path, overwrite: bool) -> None:
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise BortkitError("output exists and is not a directory", path=output_dir)
    if not overwrite and any(output_dir.iterdir()):
        raise BortkitError("output directory exists and is not empty (use overwrite / "
                           "--overwrite to replace it)", path=output_dir)


def _train_sentencepiece(files: Sequence[Path], directory: Path, vocab_size: int,
                         sample_lines: int, seed: int, progress: bool) -> Tokenizer:
    """Train a SentencePiece tokenizer on a reservoir sample of the corpus lines and save it
    in ``directory/tokenizer``."""
    sample = directory / "spm-sample.txt"
    write_line_sample(files, sample, sample_lines, seed, progress)
    try:
        return train_sentencepiece([sample], directory / TOKENIZER_DIR, vocab_size=vocab_size,
                                   seed=seed)
    finally:
        sample.unlink()

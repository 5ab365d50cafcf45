"""Pretraining data: packing corpus text into shards, and dynamically masked batches."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bortkit.data import PretrainingDataset, tokenize_corpus, tokenizer_fingerprint
from bortkit.data.create_pretraining_data import main as cli_main
from bortkit.data import corpus as corpus_reading
from bortkit.data.convert_shards import main as convert_main
from bortkit.data.pretraining import create_pretraining_data
from bortkit.errors import ConfigError, DataError, run_cli
from bortkit.tokenizers import ByteLevelBPETokenizer, load_tokenizer
from bortkit.tokenizers.bpe import byte_to_unicode

REPO = Path(__file__).resolve().parents[1]
L = 64


# ------------------------------------------------------------------------------ fixtures
def _wiki_lines(shared_dir, name: str, count: int):
    path = shared_dir / "data/corpus/wikitext-2-raw" / name
    with open(path, encoding="utf-8") as fh:
        return [next(fh) for _ in range(count)]


@pytest.fixture(scope="module")
def corpus(shared_dir, tmp_path_factory) -> Path:
    """The first 1,200 lines of wikitext-2 valid (paragraphs, headings, blank lines)."""
    path = tmp_path_factory.mktemp("corpus") / "wiki.txt"
    path.write_text("".join(_wiki_lines(shared_dir, "wiki.valid.raw", 1200)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def wordpiece(minilm_dir):
    return load_tokenizer(minilm_dir)


@pytest.fixture(scope="module")
def data_dir(corpus, minilm_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "wiki"
    create_pretraining_data([corpus], minilm_dir, out, max_seq_length=L, shard_size=300)
    return out


@pytest.fixture(scope="module")
def bpe(tmp_path_factory) -> Path:
    """A byte-level BPE without merges (every byte a token), saved as a directory."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    vocab = {token: i for i, token in enumerate(specials + sorted(byte_to_unicode().values()))}
    directory = tmp_path_factory.mktemp("bpe")
    ByteLevelBPETokenizer(vocab, []).save(directory)
    return directory


def _corpus_ids(tokenizer, path: Path):
    """Every token of the corpus, in order (lines tokenized one by one)."""
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            ids.extend(tokenizer.encode(line.strip()))
    return ids


def _shard_arrays(directory: Path):
    """The arrays of a shard directory (one .npy file per array)."""
    return {path.stem: np.load(path) for path in sorted(directory.glob("*.npy"))}


def _stored_rows(directory: Path):
    """(input_ids, token_type_ids, word_starts) of every stored example, unpadded."""
    meta = json.loads((directory / "meta.json").read_text())
    for shard in meta["shards"]:
        data = _shard_arrays(directory / shard["directory"])
        for i, n in enumerate(data["lengths"]):
            assert (data["input_ids"][i, n:] == meta["tokenizer"]["pad_id"]).all()
            yield (data["input_ids"][i, :n].tolist(), data["token_type_ids"][i, :n].tolist(),
                   data["word_starts"][i, :n].tolist())


def _run_cli(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(cli_main, argv)
    return exit_info.value.code, capsys.readouterr().err


# ------------------------------------------------------------------------------ shards
def test_shards_hold_the_whole_corpus_in_order(data_dir, corpus, wordpiece, minilm_dir):
    meta = json.loads((data_dir / "meta.json").read_text())
    assert meta["format"] == "bortkit-pretraining-v2" and meta["max_seq_length"] == L
    assert [s["num_examples"] for s in meta["shards"]][:-1] == [300] * (len(meta["shards"]) - 1)
    assert sum(s["num_examples"] for s in meta["shards"]) == meta["num_examples"] > 300
    for shard in meta["shards"]:
        data = _shard_arrays(data_dir / shard["directory"])
        assert sorted(data) == ["input_ids", "lengths", "token_type_ids", "word_starts"]
        assert data["input_ids"].dtype == np.int32 and data["lengths"].dtype == np.int32
        assert data["token_type_ids"].dtype == np.int8 and data["word_starts"].dtype == bool
        assert data["input_ids"].shape == (shard["num_examples"], L)
    assert meta["tokenizer"]["mask_id"] == wordpiece.mask_id == 103
    assert sorted(meta["tokenizer"]["special_ids"]) == sorted(wordpiece.special_ids)
    assert meta["tokenizer_fingerprint"] == tokenizer_fingerprint(data_dir / "tokenizer")
    assert load_tokenizer(data_dir / "tokenizer").encode("Lobsters moult.") == \
        wordpiece.encode("Lobsters moult.")

    content, lengths = [], []
    for ids, types, starts in _stored_rows(data_dir):
        assert len(ids) <= L and ids[0] == wordpiece.cls_id and ids[-1] == wordpiece.sep_id
        assert wordpiece.cls_id not in ids[1:-1] and wordpiece.sep_id not in ids[1:-1]
        assert set(types) == {0}
        assert starts == wordpiece.word_start_mask(ids)
        content.extend(ids[1:-1])
        lengths.append(len(ids))
    expected = _corpus_ids(wordpiece, corpus)
    assert content == expected  # nothing lost, duplicated or reordered by packing
    assert wordpiece.decode(content) == wordpiece.decode(expected)
    assert meta["num_tokens"] == sum(lengths)
    assert np.mean(lengths) > 0.9 * L  # greedy packing fills the examples


def test_packing_is_greedy_over_units(tmp_path, wordpiece):
    # Every word below is one WordPiece token. L=8 leaves 6 tokens per example.
    text = "a b c\n\nd e\nf g\n\n" + " ".join(["the"] * 12) + "\n"
    corpus = tmp_path / "c.txt"
    corpus.write_text(text)

    def contents(**options):
        return [wordpiece.decode(ex.input_ids) for ex in
                tokenize_corpus(corpus, wordpiece, max_seq_length=8, **options)]

    # documents: [a b c] [d e f g] [the x12]; a document that fits is never cut, a longer
    # one fills examples to the brim.
    assert contents() == ["a b c", "d e f g the the", "the the the the the the",
                          "the the the the"]
    # one unit per line: [a b c] [d e] [f g] [the x12]
    assert contents(one_sentence_per_line=True) == [
        "a b c d e", "f g the the the the", "the the the the the the", "the the"]


def test_long_words_are_not_cut_when_avoidable(tmp_path, wordpiece):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b c d unbelievably e\n")  # un ##bel ##ie ##va ##bly
    pieces = wordpiece.tokenize("unbelievably")
    assert len(pieces) > 2
    examples = list(tokenize_corpus(corpus, wordpiece, max_seq_length=8))
    assert [wordpiece.decode(ex.input_ids) for ex in examples] == ["a b c d", "unbelievably e"]


def test_literal_layout_tokens_in_the_text_are_dropped(tmp_path, wordpiece):
    corpus = tmp_path / "c.txt"
    corpus.write_text("a [MASK] b [SEP] c [CLS][PAD] d [UNK]ing e\n")
    (example,) = tokenize_corpus(corpus, wordpiece, max_seq_length=32)
    assert example.input_ids == wordpiece.encode("[CLS] a b c d [UNK]ing e [SEP]")
    assert example.word_starts == wordpiece.word_start_mask(example.input_ids)


def test_sentence_pairs_wordpiece(corpus, wordpiece, tmp_path):
    out = tmp_path / "pairs"
    create_pretraining_data(corpus, wordpiece, out, max_seq_length=L, sentence_pairs=True,
                            seed=3)
    content, split_points = [], set()
    for ids, types, starts in _stored_rows(out):
        seps = [i for i, t in enumerate(ids) if t == wordpiece.sep_id]
        assert ids[0] == wordpiece.cls_id and len(seps) == 2 and seps[1] == len(ids) - 1
        assert types == [0] * (seps[0] + 1) + [1] * (len(ids) - seps[0] - 1)
        assert starts == wordpiece.word_start_mask(ids)
        content.extend(ids[1:seps[0]] + ids[seps[0] + 1:-1])
        split_points.add(seps[0])
    assert content == _corpus_ids(wordpiece, corpus)
    assert len(split_points) > 10  # the A/B boundary moves around


def test_sentence_pairs_bpe_follow_the_pair_format(corpus, bpe, tmp_path):
    tok = load_tokenizer(bpe)
    assert tok.pair_format == "roberta"
    out = tmp_path / "bpe"
    lines = corpus.read_text(encoding="utf-8").splitlines()[:60]
    small = tmp_path / "small.txt"
    small.write_text("\n".join(lines) + "\n", encoding="utf-8")
    meta = create_pretraining_data(small, bpe, out, max_seq_length=L, sentence_pairs=True)
    assert meta["tokenizer"]["kind"] == "bpe"
    content = []
    for ids, types, _ in _stored_rows(out):
        assert ids[0] == tok.cls_id and ids[-1] == tok.sep_id and set(types) == {0}
        middle = ids.index(tok.sep_id)
        assert ids[middle + 1] == tok.sep_id  # <s> A </s></s> B </s>
        content.extend(ids[1:middle] + ids[middle + 2:-1])
    assert content == _corpus_ids(tok, small)


def test_workers_give_identical_shards(corpus, minilm_dir, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_reading, "CHUNK_BYTES", 20_000)  # many chunks in flight
    out = tmp_path / "parallel"
    create_pretraining_data(corpus, minilm_dir, out, max_seq_length=L, shard_size=300,
                            workers=2)
    assert list(_stored_rows(out)) == list(_stored_rows(data_dir))


# ----------------------------------------------------------------------------- masking
def _original(ds: PretrainingDataset, index: int):
    return ds.example(int(index))["input_ids"]


def test_masking_statistics(data_dir):
    ds = PretrainingDataset(data_dir, 32, seed=5, max_predictions=8)
    meta = ds.tokenizer_meta
    special = set(meta["special_ids"])
    P = ds.max_predictions
    kinds = {"mask": 0, "same": 0, "random": 0}
    masked_total = maskable_total = 0
    for step, batch in ds.batches(0, 30):
        B = len(batch.example_indices)
        assert batch.input_ids.shape == (B, L) and batch.masked_positions.shape == (B * P,)
        assert batch.masked_positions.dtype == np.int32 and batch.masked_labels.dtype == np.int32
        assert batch.masked_weights.dtype == np.float32
        assert batch.attention_mask.dtype == np.float32
        for b, index in enumerate(batch.example_indices):
            original = _original(ds, index)
            n = len(original)
            assert batch.attention_mask[b].tolist() == [1.0] * n + [0.0] * (L - n)
            slots = slice(b * P, (b + 1) * P)
            weights = batch.masked_weights[slots]
            real = weights == 1
            positions = batch.masked_positions[slots][real] - b * L
            labels = batch.masked_labels[slots][real]
            assert (batch.masked_positions[slots][~real] == b * L).all()
            assert (batch.masked_labels[slots][~real] == 0).all()
            maskable = sum(token not in special for token in original)
            assert real.sum() == min(max(1, round(0.15 * maskable)), P, maskable)
            assert (positions < n).all() and np.all(np.diff(positions) > 0)
            assert not special & set(original[positions].tolist())
            assert (labels == original[positions]).all()
            row = batch.input_ids[b]
            unmasked = np.ones(L, bool)
            unmasked[positions] = False
            assert (row[:n][unmasked[:n]] == original[unmasked[:n]]).all()
            assert (row[n:] == meta["pad_id"]).all()
            for t in positions:
                if row[t] == meta["mask_id"]:
                    kinds["mask"] += 1
                elif row[t] == original[t]:
                    kinds["same"] += 1
                else:
                    assert row[t] not in special
                    kinds["random"] += 1
            masked_total += len(positions)
            maskable_total += maskable
        assert batch.num_tokens == sum(len(_original(ds, i)) for i in batch.example_indices)
    # P=8 caps rows of more than 56 maskable tokens: 15% of maskable tokens, capped.
    assert 0.10 < masked_total / maskable_total < 0.16
    assert masked_total > 5000
    shares = {kind: count / masked_total for kind, count in kinds.items()}
    assert abs(shares["mask"] - 0.8) < 0.025
    assert abs(shares["same"] - 0.1) < 0.02
    assert abs(shares["random"] - 0.1) < 0.02


def test_fifteen_percent_without_the_cap(data_dir):
    ds = PretrainingDataset(data_dir, 64, seed=1, max_predictions=L)
    masked = maskable = 0
    special = set(ds.tokenizer_meta["special_ids"])
    for _, batch in ds.batches(0, 10):
        masked += batch.masked_weights.sum()
        maskable += sum(sum(t not in special for t in _original(ds, i))
                        for i in batch.example_indices)
    assert 0.145 < masked / maskable < 0.16


def test_whole_word_masking_covers_whole_words(data_dir, wordpiece):
    ds = PretrainingDataset(data_dir, 32, seed=2, whole_word=True)
    P = ds.max_predictions
    multi_piece_words = 0
    masked = maskable = 0
    for _, batch in ds.batches(0, 20):
        for b, index in enumerate(batch.example_indices):
            stored = ds.example(int(index))
            starts = stored["word_starts"]
            n = len(starts)
            chosen = np.zeros(n, bool)
            slots = slice(b * P, (b + 1) * P)
            chosen[batch.masked_positions[slots][batch.masked_weights[slots] == 1] - b * L] = True
            word_ids = np.cumsum(starts)
            for word in np.unique(word_ids[chosen]):
                members = word_ids == word
                assert chosen[members].all()  # all pieces of a chosen word are masked
                multi_piece_words += members.sum() > 1
            count = sum(t not in wordpiece.special_ids for t in stored["input_ids"])
            assert 1 <= chosen.sum() <= P
            masked += chosen.sum()
            maskable += count
    assert multi_piece_words > 20
    assert 0.12 < masked / maskable < 0.16


def test_masks_change_with_the_epoch_and_seed(data_dir):
    ds = PretrainingDataset(data_dir, 16, seed=0, shuffle=False)
    first, second = ds.batch(0), ds.batch(len(ds))
    assert (first.example_indices == second.example_indices).all()
    assert not np.array_equal(first.masked_positions, second.masked_positions)
    other_seed = PretrainingDataset(data_dir, 16, seed=1, shuffle=False).batch(0)
    assert not np.array_equal(first.masked_positions, other_seed.masked_positions)


# ------------------------------------------------------------------------- determinism
def _assert_same(a, b):
    for name in ("input_ids", "token_type_ids", "attention_mask", "masked_positions",
                 "masked_labels", "masked_weights", "example_indices"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.num_tokens == b.num_tokens and a.epoch == b.epoch


def test_same_seed_and_step_give_the_same_batch(data_dir):
    one = PretrainingDataset(data_dir, 8, seed=7)
    two = PretrainingDataset(data_dir, 8, seed=7)
    for step in (0, 3, len(one) + 2):
        _assert_same(one.batch(step), two.batch(step))


def test_two_ranks_equal_one_rank_with_twice_the_batch(data_dir):
    b = 6
    whole = PretrainingDataset(data_dir, 2 * b, seed=4, whole_word=True)
    ranks = [PretrainingDataset(data_dir, b, seed=4, rank=r, world_size=2, whole_word=True)
             for r in range(2)]
    assert len(whole) == len(ranks[0]) == len(ranks[1])
    P = whole.max_predictions
    for step in (0, 1, len(whole) + 1):
        full = whole.batch(step)
        parts = [ds.batch(step) for ds in ranks]
        for name in ("input_ids", "token_type_ids", "attention_mask", "masked_labels",
                     "masked_weights", "example_indices"):
            np.testing.assert_array_equal(
                np.concatenate([getattr(p, name) for p in parts]), getattr(full, name))
        # flat positions are per rank: rank 1's rows start at row b of the full batch
        np.testing.assert_array_equal(
            np.concatenate([parts[0].masked_positions, parts[1].masked_positions + b * L]),
            full.masked_positions)
        assert full.masked_positions.shape == (2 * b * P,)
        assert parts[0].num_tokens + parts[1].num_tokens == full.num_tokens


def test_resuming_continues_the_same_stream(data_dir):
    ds = PretrainingDataset(data_dir, 16, seed=9)
    k = len(ds) - 2  # the resumed run crosses an epoch boundary
    uninterrupted = [batch for _, batch in ds.batches(0, k + 5)]
    resumed = PretrainingDataset(data_dir, 16, seed=9).batches(start_step=k)
    for expected_step in range(k, k + 5):
        step, batch = next(resumed)
        assert step == expected_step
        _assert_same(batch, uninterrupted[expected_step])
    assert uninterrupted[k + 4].epoch == 1


def test_an_epoch_visits_each_example_once(data_dir):
    ds = PretrainingDataset(data_dir, 10, seed=3, world_size=1)
    epoch0 = np.concatenate([ds.batch(s).example_indices for s in range(len(ds))])
    epoch1 = np.concatenate([ds.batch(len(ds) + s).example_indices for s in range(len(ds))])
    assert len(np.unique(epoch0)) == len(epoch0) == len(ds) * 10
    assert not np.array_equal(epoch0, epoch1)
    last = PretrainingDataset(data_dir, 10, seed=3, drop_last=False)
    assert len(last) == -(-ds.num_examples // 10)
    everything = np.concatenate([last.batch(s).example_indices for s in range(len(last))])
    assert set(everything.tolist()) == set(range(ds.num_examples))


def _write_v1_copy(data_dir: Path, copy: Path, compressed: bool) -> None:
    """The same data as the previous version (bortkit-pretraining-v1) wrote it: one
    ``np.savez`` archive per shard (``np.savez_compressed`` also read) and the same meta."""
    copy.mkdir()
    meta = json.loads((data_dir / "meta.json").read_text())
    save = np.savez_compressed if compressed else np.savez
    for index, shard in enumerate(meta["shards"]):
        save(copy / f"shard-{index:05d}.npz", **_shard_arrays(data_dir / shard.pop("directory")))
        shard["file"] = f"shard-{index:05d}.npz"
    meta["format"] = "bortkit-pretraining-v1"
    (copy / "meta.json").write_text(json.dumps(meta))
    for path in (data_dir / "tokenizer").iterdir():
        (copy / "tokenizer").mkdir(exist_ok=True)
        (copy / "tokenizer" / path.name).write_bytes(path.read_bytes())


@pytest.mark.parametrize("compressed", [False, True])
def test_old_npz_shards_are_refused_then_converted(data_dir, tmp_path, capsys, compressed):
    """Shards of the previous format are refused with the command that converts them; after
    the conversion (in place) the batches are the very same."""
    copy = tmp_path / "old"
    _write_v1_copy(data_dir, copy, compressed)
    with pytest.raises(DataError) as refused:
        PretrainingDataset(copy, 16, seed=3)
    assert str(refused.value) == (
        f"{copy / 'meta.json'}: shards in the old format 'bortkit-pretraining-v1' (one .npz "
        f"per shard); convert them in place with: python -m bortkit.data.convert_shards {copy}")
    with pytest.raises(SystemExit) as exit_info:
        run_cli(convert_main, [str(copy)])
    assert exit_info.value.code == 0
    assert capsys.readouterr().err == f"{copy}: converted to bortkit-pretraining-v2\n"
    assert not list(copy.glob("*.npz"))
    assert list(_stored_rows(copy)) == list(_stored_rows(data_dir))
    original, converted = PretrainingDataset(data_dir, 16, seed=3), PretrainingDataset(copy, 16,
                                                                                       seed=3)
    for step in range(3):
        _assert_same(original.batch(step), converted.batch(step))
    with pytest.raises(SystemExit):  # a second run has nothing to do
        run_cli(convert_main, [str(copy)])
    assert capsys.readouterr().err == f"{copy}: already in bortkit-pretraining-v2\n"


def test_missing_and_damaged_shards(data_dir, tmp_path):
    """Shards are memory-mapped .npy files; a missing or damaged one is a one-line error."""
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    shutil.rmtree(copy / "shard-00001")
    incomplete = PretrainingDataset(copy, 16, seed=3)
    with pytest.raises(DataError, match="shard-00001/input_ids.npy: shard file does not exist"):
        for step in range(len(incomplete)):
            incomplete.batch(step)
    shutil.copytree(data_dir / "shard-00001", copy / "shard-00001")
    (copy / "shard-00001" / "lengths.npy").write_bytes(b"garbage")
    damaged = PretrainingDataset(copy, 16, seed=3)
    with pytest.raises(DataError, match="shard-00001/lengths.npy: not a valid .npy array file"):
        for step in range(len(damaged)):
            damaged.batch(step)


def test_dataset_argument_errors(data_dir, tmp_path):
    with pytest.raises(DataError, match="no meta.json"):
        PretrainingDataset(tmp_path, 4)
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        PretrainingDataset(data_dir, 10_000)
    with pytest.raises(ConfigError, match=r"rank must be an integer in \[0, 2\)"):
        PretrainingDataset(data_dir, 4, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="mlm_probability"):
        PretrainingDataset(data_dir, 4, mlm_probability=1.5)


# -------------------------------------------------------------------------- bad input
def _assert_clean_failure(code, err, out: Path, expected: str):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("bortkit: error: ")
    assert expected in err, err
    assert not out.exists()
    if out.parent.exists():  # no temporary directory left behind either
        assert [p.name for p in out.parent.iterdir()] == []


@pytest.mark.parametrize("case", ["empty", "nul", "latin1", "missing", "tokenizer", "folder"])
def test_bad_input_fails_in_one_line_and_writes_nothing(case, tmp_path, minilm_dir, capsys,
                                                        corpus):
    bad = tmp_path / "bad.txt"
    tokenizer = str(minilm_dir)
    good_text = corpus.read_text(encoding="utf-8")
    if case == "empty":
        bad.write_text("\n   \n\n")
        expected = f"{bad}: the corpus has no tokens"
    elif case == "nul":  # after enough text to have flushed shards already
        bad.write_bytes(good_text.encode() + b"fine\nbin\x00ary\n")
        line = good_text.count("\n") + 2
        expected = f"{bad}:{line}: binary data, not text: NUL byte at column 4"
    elif case == "latin1":
        bad.write_bytes(b"caf\xc3\xa9 ok\nna\xefve\n")
        expected = f"{bad}:2: not valid UTF-8 text (byte 3 of the line)"
    elif case == "missing":
        bad = tmp_path / "nowhere.txt"
        expected = f"{bad}: input does not exist"
    elif case == "tokenizer":
        bad.write_text("some text\n")
        tokenizer = str(tmp_path / "no-tokenizer")
        expected = f"{tokenizer}: tokenizer path does not exist"
    else:
        bad = tmp_path / "empty-folder"
        bad.mkdir()
        expected = f"{bad}: input folder has no files"
    out = tmp_path / "out" / "data"
    code, err = _run_cli(["--input", str(bad), "--tokenizer", tokenizer, "--output", str(out),
                          "--shard-size", "10", "--max-seq-length", "32", "--quiet"], capsys)
    _assert_clean_failure(code, err, out, expected)


def test_existing_output_is_kept_unless_overwrite(tmp_path, minilm_dir, capsys):
    text = tmp_path / "t.txt"
    text.write_text("one two three\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["--input", str(text), "--tokenizer", str(minilm_dir), "--output", str(out), "--quiet"]
    code, err = _run_cli(args, capsys)
    assert code == 2 and "output directory exists and is not empty" in err
    assert (out / "keep.txt").read_text() == "mine"
    code, err = _run_cli(args + ["--overwrite"], capsys)
    assert code == 0 and "wrote 1 examples" in err
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "shard-00000", "tokenizer"]


def test_argument_errors():
    with pytest.raises(ConfigError, match="max_seq_length must be an integer >= 3"):
        create_pretraining_data("x", None, "y", train_sentencepiece_vocab=100,
                                max_seq_length=2)
    with pytest.raises(ConfigError, match="exactly one of a tokenizer"):
        create_pretraining_data("x", None, "y")


def test_folders_are_read_in_sorted_order(tmp_path, wordpiece):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("two\n")
    (folder / "a.txt").write_text("one\n")
    (folder / "sub" / "c.txt").write_text("three\n")
    (folder / ".hidden").write_text("secret\n")
    examples = list(tokenize_corpus(folder, wordpiece, max_seq_length=16))
    assert [wordpiece.decode(ex.input_ids) for ex in examples] == ["one two three"]


# ------------------------------------------------------------------------ SentencePiece
def test_one_command_sentencepiece(shared_dir, tmp_path, capsys):
    corpus = tmp_path / "wiki.txt"
    corpus.write_text("".join(_wiki_lines(shared_dir, "wiki.test.raw", 800)), encoding="utf-8")
    out = tmp_path / "spm-data"
    code, err = _run_cli(["--input", str(corpus), "--train-sentencepiece", "600",
                          "--output", str(out), "--max-seq-length", str(L),
                          "--sentence-pairs", "--quiet"], capsys)
    assert code == 0, err
    meta = json.loads((out / "meta.json").read_text())
    tok = load_tokenizer(out / "tokenizer")
    assert tok.kind == "sentencepiece" == meta["tokenizer"]["kind"] and tok.vocab_size == 600
    assert meta["tokenizer_fingerprint"] == tokenizer_fingerprint(out / "tokenizer")
    assert not (out / "spm-sample.txt").exists()
    content = []
    for ids, types, starts in _stored_rows(out):
        seps = [i for i, t in enumerate(ids) if t == tok.sep_id]
        assert ids[0] == tok.cls_id and seps[-1] == len(ids) - 1 and len(seps) == 2
        assert starts == tok.word_start_mask(ids)
        assert types == [0] * (seps[0] + 1) + [1] * (len(ids) - seps[0] - 1)
        content.extend(ids[1:seps[0]] + ids[seps[0] + 1:-1])
    assert content == _corpus_ids(tok, corpus)
    assert content.count(tok.unk_id) < 0.01 * len(content)  # the vocabulary fits the corpus
    batch = PretrainingDataset(out, 4).batch(0)
    assert batch.masked_weights.sum() >= 4


# ----------------------------------------------------------------------------- memory
def test_peak_memory_stays_flat_as_the_corpus_grows(tmp_path):
    """The benchmark script on a 2 MB and an 8 MB corpus (about 8 s)."""
    result = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(REPO / "bench" / "pretraining_data.py"),
                    "--sizes-mb", "2", "8", "--output", str(result)], check=True,
                   capture_output=True, text=True)
    small, large = json.loads(result.read_text())["runs"]
    assert large["examples"] > 3 * small["examples"]
    assert large["peak_rss_mb"] < 1.5 * small["peak_rss_mb"]


@pytest.mark.parametrize("name, problem", [
    ("../victim/shard-00000.npz", "shards[0].file must be a name inside the data folder, got "
                                  "'../victim/shard-00000.npz'"),
    ("/abs/shard-00000.npz", "shards[0].file must be a name inside the data folder"),
    (None, "shards[0] must be an object with 'file' and 'num_examples'"),
])
def test_convert_shards_never_leaves_its_folder(data_dir, tmp_path, name, problem):
    """Issue 26: a meta.json naming a shard outside its folder was followed and the file
    there deleted after the conversion; a meta.json without "file" was a KeyError."""
    copy = tmp_path / "old"
    _write_v1_copy(data_dir, copy, compressed=False)
    victim = tmp_path / "victim"
    victim.mkdir()
    shutil.copy(copy / "shard-00000.npz", victim / "shard-00000.npz")
    meta = json.loads((copy / "meta.json").read_text())
    if name is None:
        del meta["shards"][0]["file"]
    else:
        meta["shards"][0]["file"] = name
    (copy / "meta.json").write_text(json.dumps(meta))
    before = sorted(p.name for p in copy.iterdir())
    with pytest.raises(DataError) as err:
        convert_main([str(copy)])
    assert str(err.value).startswith(f"{copy / 'meta.json'}: {problem}")
    assert (victim / "shard-00000.npz").exists() and sorted(p.name for p in copy.iterdir()) \
        == before

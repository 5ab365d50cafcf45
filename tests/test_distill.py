"""Distillation pretraining: losses against NumPy, the trainer end to end (resume after
SIGKILL, 2 Horovod workers = 1 worker with twice the batch), and bad inputs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

from bortkit.checkpoint import read_state, save_pretrained
from bortkit.config import ModelConfig
from bortkit.distill import (DistillationObjective, LossWeights, PretrainingArguments,
                             attention_kl, distillation_loss, hidden_state_mse, masked_lm_loss,
                             parse_layer_map, uniform_layer_map)
from bortkit.distill.__main__ import main as distill_main
from bortkit.distill.trainer import build_masked_lm
from bortkit.errors import ConfigError, run_cli
from bortkit.train import read_jsonl

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
HOROVODRUN = Path(sys.executable).with_name("horovodrun")


# ================================================================== NumPy references
def np_log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def np_softmax(x):
    return np.exp(np_log_softmax(x))


@pytest.fixture
def logits():
    rng = np.random.default_rng(0)
    student = rng.normal(size=(6, 11)).astype(np.float32) * 3
    teacher = rng.normal(size=(6, 11)).astype(np.float32) * 3
    labels = rng.integers(0, 11, size=6)
    weights = np.array([1, 1, 0, 1, 1, 0], np.float32)
    return student, teacher, labels, weights


def nd(array):
    return mx.nd.array(array, dtype="float32")


def test_masked_lm_loss_matches_numpy(logits):
    student, _, labels, weights = logits
    expected = -(np_log_softmax(student)[np.arange(6), labels] * weights).sum() / weights.sum()
    got = masked_lm_loss(mx.nd, nd(student), nd(labels), nd(weights), nd([1 / weights.sum()]))
    assert got.shape == (1,)
    np.testing.assert_allclose(got.asscalar(), expected, rtol=1e-5)


def test_kd_loss_correct_mode_is_t2_kl(logits):
    student, teacher, _, weights = logits
    t = 2.0
    p_t = np_softmax(teacher / t)
    kl = (p_t * (np.log(p_t) - np_log_softmax(student / t))).sum(-1)
    expected = t * t * (kl * weights).sum() / weights.sum()
    got = distillation_loss(mx.nd, nd(student), nd(teacher), nd(weights),
                            nd([1 / weights.sum()]), temperature=t, mode="correct")
    np.testing.assert_allclose(got.asscalar(), expected, rtol=1e-5)
    # KL vanishes when the student matches the teacher
    same = distillation_loss(mx.nd, nd(teacher), nd(teacher), nd(weights), nd([1.0]), t)
    assert abs(same.asscalar()) < 1e-6


def test_kd_loss_bort_mode_double_softmax_and_vocabulary_mean(logits):
    student, teacher, _, weights = logits
    t = 2.0
    p_t, p_s = np_softmax(teacher / t), np_softmax(student / t)
    # MXNet 1.5 KLDivLoss(from_logits=False)(pred=p_s, label=p_t): log_softmax of the
    # probabilities, averaged over the vocabulary
    per = (p_t * (np.log(p_t + 1e-12) - np_log_softmax(p_s))).mean(-1)
    expected = t * t * (per * weights).sum() / (weights.sum())
    got = distillation_loss(mx.nd, nd(student), nd(teacher), nd(weights),
                            nd([1 / weights.sum()]), temperature=t, mode="bort")
    np.testing.assert_allclose(got.asscalar(), expected, rtol=1e-5)
    correct = distillation_loss(mx.nd, nd(student), nd(teacher), nd(weights),
                                nd([1 / weights.sum()]), temperature=t, mode="correct")
    assert got.asscalar() < correct.asscalar() / 5  # the quirk shrinks the signal a lot


def test_hidden_and_attention_losses_match_numpy():
    rng = np.random.default_rng(1)
    s, t = rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 4))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.float32)
    expected = (((s - t) ** 2).mean(-1) * mask).sum() / mask.sum()
    got = hidden_state_mse(mx.nd, nd(s), nd(t), nd(mask), nd([1 / mask.sum()]))
    np.testing.assert_allclose(got.asscalar(), expected, rtol=1e-5)

    ps = np_softmax(rng.normal(size=(2, 3, 5, 5)))
    pt = np_softmax(rng.normal(size=(2, 3, 5, 5)))
    kl = (pt * (np.log(pt + 1e-12) - np.log(ps + 1e-12))).sum(-1).mean(1)   # (B, T)
    expected = (kl * mask).sum() / mask.sum()
    got = attention_kl(mx.nd, nd(ps), nd(pt), nd(mask), nd([1 / mask.sum()]))
    np.testing.assert_allclose(got.asscalar(), expected, rtol=1e-5)


def test_objective_mixes_terms_and_projects_hidden_states(logits):
    student, teacher, labels, weights = logits
    rng = np.random.default_rng(2)
    ls, lt, b, t, us, ut = 2, 4, 2, 3, 4, 6
    s_hidden = rng.normal(size=(ls + 1, b, t, us)).astype(np.float32)
    t_hidden = rng.normal(size=(lt + 1, b, t, ut)).astype(np.float32)
    s_probs = np_softmax(rng.normal(size=(ls, b, 2, t, t))).astype(np.float32)
    t_probs = np_softmax(rng.normal(size=(lt, b, 3, t, t))).astype(np.float32)
    mask = np.ones((b, t), np.float32)
    weights_cfg = LossWeights(mlm=0.1, kd=0.5, temperature=2.0, hidden=2.0, attention=3.0)
    layer_map = uniform_layer_map(ls, lt)
    assert layer_map == [(0, 1), (1, 3)]
    objective = DistillationObjective(weights_cfg, True, layer_map, us, ut, 2, 3)
    objective.initialize(mx.init.Normal(0.5))
    objective.hybridize()
    inv = 1 / weights.sum()
    total, mlm, kd, hidden, attention = [o.asscalar() for o in objective(
        nd(student), nd(labels), nd(weights), nd([inv]), nd(teacher), nd(s_hidden),
        nd(t_hidden), nd(s_probs), nd(t_probs), nd(mask), nd([1 / mask.sum()]))]

    projections = [objective.projections[k] for k in range(ls)]
    mse = []
    for k, (si, ti) in enumerate(layer_map):
        w = projections[k].weight.data().asnumpy()
        bias = projections[k].bias.data().asnumpy()
        projected = s_hidden[si + 1] @ w.T + bias
        mse.append(((projected - t_hidden[ti + 1]) ** 2).mean(-1).sum() / mask.sum())
    np.testing.assert_allclose(hidden, np.mean(mse), rtol=1e-4)
    kls = []
    for si, ti in layer_map:  # head counts differ: head-averaged distributions
        ps, pt = s_probs[si].mean(1), t_probs[ti].mean(1)
        kls.append((pt * (np.log(pt + 1e-12) - np.log(ps + 1e-12))).sum(-1).sum() / mask.sum())
    np.testing.assert_allclose(attention, np.mean(kls), rtol=1e-4)
    np.testing.assert_allclose(total, 0.1 * mlm + 0.5 * kd + 2.0 * hidden + 3.0 * attention,
                               rtol=1e-5)


def test_objective_without_teacher_is_plain_mlm(logits):
    student, _, labels, weights = logits
    objective = DistillationObjective(LossWeights(), teacher=False)
    total, mlm, kd, _, _ = objective(nd(student), nd(labels), nd(weights), nd([0.25]))
    assert total.asscalar() == mlm.asscalar() and kd.asscalar() == 0


def test_layer_maps():
    assert uniform_layer_map(4, 24) == [(0, 5), (1, 11), (2, 17), (3, 23)]
    assert uniform_layer_map(4, 6) == [(0, 1), (1, 2), (2, 4), (3, 5)]
    assert uniform_layer_map(3, 3) == [(0, 0), (1, 1), (2, 2)]
    assert parse_layer_map("0:1, 1:3", 2, 4) == [(0, 1), (1, 3)]
    with pytest.raises(ConfigError, match="teacher layer 4 does not exist"):
        parse_layer_map("0:4", 2, 4)
    with pytest.raises(ConfigError, match="STUDENT:TEACHER"):
        parse_layer_map("0-1", 2, 4)
    with pytest.raises(ConfigError, match="maps a student layer twice"):
        parse_layer_map("0:1,0:2", 2, 4)


def test_loss_weights_are_validated():
    with pytest.raises(ConfigError, match="--kd-mode must be one of correct, bort"):
        LossWeights(kd_mode="faithful")
    with pytest.raises(ConfigError, match="--temperature must be positive"):
        LossWeights(temperature=0)


# ====================================================================== tiny run set-up
TINY_STUDENT = dict(num_layers=2, num_heads=2, units=32, ffn_units=24, max_length=64,
                    type_vocab_size=0, use_pooler=False, layer_norm_eps=1e-5)
TINY_TEACHER = dict(num_layers=3, num_heads=4, units=48, ffn_units=64, max_length=64,
                    type_vocab_size=2, use_pooler=True)


@pytest.fixture(scope="session")
def corpus(shared_dir, tmp_path_factory) -> dict:
    """Small train/held-out shard directories with a 300-piece SentencePiece vocabulary, a
    tiny student config and a tiny random teacher with an MLM head."""
    from bortkit.data.pretraining import create_pretraining_data
    root = tmp_path_factory.mktemp("distill")
    lines = (shared_dir / "data/corpus/wikitext-2-raw/wiki.valid.raw").read_text(
        encoding="utf-8").splitlines()
    (root / "train.txt").write_text("\n".join(lines[:400]) + "\n", encoding="utf-8")
    (root / "test.txt").write_text("\n".join(lines[400:600]) + "\n", encoding="utf-8")
    create_pretraining_data(root / "train.txt", None, root / "train", max_seq_length=32,
                            train_sentencepiece_vocab=300, progress=False)
    create_pretraining_data(root / "test.txt", root / "train" / "tokenizer", root / "test",
                            max_seq_length=32, progress=False)
    vocab = json.loads((root / "train" / "meta.json").read_text())["tokenizer"]["vocab_size"]
    student = ModelConfig(vocab_size=vocab, **TINY_STUDENT)
    (root / "student.json").write_text(json.dumps(student.to_dict()))
    teacher_config = ModelConfig(vocab_size=vocab, **TINY_TEACHER)
    mx.random.seed(5)
    teacher = build_masked_lm(teacher_config)
    save_pretrained(teacher, root / "teacher",
                    config=teacher_config, source=root / "train" / "tokenizer")
    return {"root": root, "train": root / "train", "test": root / "test",
            "student": root / "student.json", "teacher": root / "teacher", "vocab": vocab}


def cli_args(corpus, output: Path, *extra: str) -> list[str]:
    return ["--train", str(corpus["train"]), "--test", str(corpus["test"]),
            "--student-config", str(corpus["student"]), "--output-dir", str(output),
            "--no-progress", "--learning-rate", "1e-3", "--warmup-ratio", "0.1", *extra]


def run_trainer(args: list[str], env_extra: dict | None = None, launcher: list | None = None,
                timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    command = (launcher or []) + [PYTHON, "-m", "bortkit.distill", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def train_losses(output: Path) -> dict:
    return {r["step"]: r["loss"] for r in read_jsonl(output / "log.jsonl")
            if r["event"] == "train"}


def weights(directory: Path) -> dict:
    return read_state(directory).tensors


# ============================================================================ end to end
@pytest.mark.slow
def test_resume_after_sigkill_is_bit_for_bit(corpus, tmp_path):
    """Killed with SIGKILL in the middle of step 5 (checkpoints every 2 steps), resumed:
    the same weights at step 8 as an uninterrupted run, with dropout and accumulation."""
    flags = ["--teacher", str(corpus["teacher"]), "--max-steps", "8", "--batch-size", "4",
             "--accumulate", "2", "--checkpoint-every", "2", "--eval-every", "0",
             "--log-every", "1", "--hidden-weight", "1.0", "--attention-weight", "1.0"]
    whole = run_trainer(cli_args(corpus, tmp_path / "whole", *flags))
    assert whole.returncode == 0, whole.stderr[-3000:]

    killed = run_trainer(cli_args(corpus, tmp_path / "killed", *flags, "--stop-at-step", "5"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    state = json.loads((tmp_path / "killed/checkpoint/state.json").read_text())
    assert state["run"]["step"] == 4 and not (tmp_path / "killed/final").exists()

    resumed = run_trainer(cli_args(corpus, tmp_path / "killed", *flags, "--resume"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = weights(tmp_path / "whole/final"), weights(tmp_path / "killed/final")
    assert a.keys() == b.keys() and "mlm_head.decoder.bias" in a
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert train_losses(tmp_path / "whole") == train_losses(tmp_path / "killed")
    events = [r["event"] for r in read_jsonl(tmp_path / "killed/log.jsonl")]
    assert "resume" in events and (tmp_path / "killed/loss_curve.png").stat().st_size > 0


@pytest.mark.slow
def test_two_horovod_workers_match_one_worker_with_twice_the_batch(corpus, tmp_path):
    """2 real horovodrun workers x 4 sequences vs 1 process x 8: same losses for 20 steps.
    Dropout is off: with it, the two layouts draw different masks by construction."""
    flags = ["--teacher", str(corpus["teacher"]), "--max-steps", "20", "--dropout", "0",
             "--eval-every", "10", "--log-every", "1", "--checkpoint-every", "0",
             "--hidden-weight", "0.5", "--attention-weight", "0.5"]
    one = run_trainer(cli_args(corpus, tmp_path / "one", *flags, "--batch-size", "8"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = run_trainer(cli_args(corpus, tmp_path / "two", *flags, "--batch-size", "4"),
                      launcher=[str(HOROVODRUN), "-np", "2", "-H", "localhost:2", "--gloo"])
    assert two.returncode == 0, two.stdout[-3000:] + two.stderr[-3000:]

    log_one = read_jsonl(tmp_path / "one/log.jsonl")
    log_two = read_jsonl(tmp_path / "two/log.jsonl")
    assert [r["workers"] for r in log_two if r["event"] == "start"] == [2]
    losses_one, losses_two = train_losses(tmp_path / "one"), train_losses(tmp_path / "two")
    assert sorted(losses_one) == sorted(losses_two) == list(range(1, 21))
    np.testing.assert_allclose([losses_two[s] for s in range(1, 21)],
                               [losses_one[s] for s in range(1, 21)], rtol=2e-4)
    assert losses_one[20] < losses_one[1]  # it trains
    evals = lambda log: [(r["step"], r["mlm_loss"], r["masked_tokens"])  # noqa: E731
                         for r in log if r["event"] == "eval"]
    for (s1, l1, n1), (s2, l2, n2) in zip(evals(log_one), evals(log_two)):
        assert (s1, n1) == (s2, n2)
        assert l1 == pytest.approx(l2, rel=2e-4)


def in_process(corpus, output: Path, *extra: str) -> dict:
    from bortkit.distill.__main__ import parse_arguments
    from bortkit.distill.trainer import train
    return train(parse_arguments(cli_args(corpus, output, *extra)))


def test_accumulation_matches_a_larger_batch(corpus, tmp_path):
    """4 sequences x 2 micro-batches = one batch of 8: the loss is normalised by the masked
    tokens of the whole step, not of each micro-batch."""
    flags = ["--max-steps", "4", "--dropout", "0", "--eval-every", "0", "--log-every", "1",
             "--checkpoint-every", "0", "--teacher", str(corpus["teacher"])]
    in_process(corpus, tmp_path / "big", *flags, "--batch-size", "8")
    in_process(corpus, tmp_path / "acc", *flags, "--batch-size", "4", "--accumulate", "2")
    big, acc = train_losses(tmp_path / "big"), train_losses(tmp_path / "acc")
    np.testing.assert_allclose([acc[s] for s in range(1, 5)], [big[s] for s in range(1, 5)],
                               rtol=1e-5)


@pytest.mark.parametrize("optimizer", ["adamw", "lamb"])
def test_other_optimizers_train(corpus, tmp_path, optimizer):
    results = in_process(corpus, tmp_path / optimizer, "--optimizer", optimizer,
                         "--max-steps", "6", "--eval-every", "0", "--eval-batches", "2",
                         "--learning-rate", "5e-3", "--log-every", "1")
    held_out = [r["mlm_loss"] for r in read_jsonl(tmp_path / optimizer / "log.jsonl")
                if r["event"] == "eval"]
    assert len(held_out) == 2 and held_out[1] < held_out[0]  # same batches, lower loss
    assert results["eval"]["mlm_loss"] == held_out[1]


@pytest.mark.parametrize("scope", ["head", "all"])
def test_headless_teacher_is_trained_as_masked_lm_first(corpus, tmp_path, scope):
    config = ModelConfig(vocab_size=corpus["vocab"], **TINY_TEACHER)
    headless = build_masked_lm(config)
    save_pretrained(headless.network, tmp_path / "headless", config=config,
                    source=corpus["train"] / "tokenizer")
    before = read_state(tmp_path / "headless").tensors
    out = tmp_path / "out"
    results = in_process(corpus, out, "--teacher", str(tmp_path / "headless"),
                         "--teacher-mlm-steps", "4", "--teacher-mlm-train", scope,
                         "--teacher-mlm-lr", "1e-2", "--max-steps", "2", "--eval-batches", "2",
                         "--log-every", "1")
    adapted = read_state(out / "teacher").tensors
    assert "mlm_head.decoder.bias" in adapted  # the head now exists and is saved
    encoder_moved = not np.array_equal(adapted["encoder.0.ffn.ffn_1.weight"],
                                       before["encoder.0.ffn.ffn_1.weight"])
    assert encoder_moved == (scope == "all")
    log = read_jsonl(out / "log.jsonl")
    assert [r["step"] for r in log if r["event"] == "teacher_mlm"] == [1, 2, 3, 4]
    assert results["teacher_eval"]["masked_tokens"] == results["eval"]["masked_tokens"] > 0


# ============================================================================ bad inputs
def cli_error(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(distill_main, argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_teacher_with_another_vocab_size_is_one_line(corpus, tmp_path, capsys):
    config = ModelConfig(vocab_size=corpus["vocab"] + 7, **TINY_TEACHER)
    save_pretrained(build_masked_lm(config), tmp_path / "big", config=config)
    out = tmp_path / "out"
    line = cli_error(capsys, cli_args(corpus, out, "--teacher", str(tmp_path / "big")))
    assert line == (f"bortkit: error: {tmp_path / 'big'}: the teacher's vocab_size "
                    f"({corpus['vocab'] + 7}) differs from the student's ({corpus['vocab']}); "
                    "distillation needs one vocabulary")
    assert not out.exists()


def test_data_tokenized_with_another_vocabulary_is_one_line(corpus, tmp_path, capsys):
    """A teacher of the right size whose tokenizer has other tokens."""
    teacher = tmp_path / "teacher"
    shutil.copytree(corpus["teacher"], teacher)
    for name in ("spm.model", "tokenizer_config.json"):
        (teacher / name).unlink(missing_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + \
        [f"tok{i}" for i in range(corpus["vocab"] - 5)]
    (teacher / "vocab.txt").write_text("\n".join(tokens) + "\n")
    out = tmp_path / "out"
    line = cli_error(capsys, cli_args(corpus, out, "--teacher", str(teacher)))
    # the specials agree; the first ordinary piece differs
    assert line.startswith(f"bortkit: error: {corpus['train']}: the data's tokenizer does not "
                           f"match the teacher's vocabulary ({teacher}): id 5 is ")
    assert "'tok0' for the teacher" in line
    assert "recreate the data with --tokenizer pointing at the teacher" in line
    assert not out.exists()


def test_student_vocab_must_match_data_and_output_is_not_clobbered(corpus, tmp_path, capsys):
    config = ModelConfig(vocab_size=999, **TINY_STUDENT)
    (tmp_path / "s.json").write_text(json.dumps(config.to_dict()))
    args = cli_args(corpus, tmp_path / "out")
    args[args.index("--student-config") + 1] = str(tmp_path / "s.json")
    line = cli_error(capsys, args)
    assert line == (f"bortkit: error: {tmp_path / 's.json'}: the student's vocab_size (999) "
                    f"differs from the data tokenizer's ({corpus['vocab']}); set vocab_size "
                    "in the student config")
    (tmp_path / "used" / "checkpoint").mkdir(parents=True)
    line = cli_error(capsys, cli_args(corpus, tmp_path / "used"))
    assert line.endswith("holds a started run (checkpoint); pass --resume to continue it, "
                         "--overwrite to replace it, or choose another --output-dir")


def test_teacher_without_mlm_head_needs_teacher_mlm_steps(corpus, tmp_path, capsys, minilm_dir):
    """The real all-MiniLM-L6-v2 has no MLM head; its vocabulary is not the data's either."""
    out = tmp_path / "out"
    line = cli_error(capsys, cli_args(corpus, out, "--teacher", str(minilm_dir)))
    assert "vocab_size (30522) differs from the student's" in line
    teacher = tmp_path / "headless"
    config = ModelConfig(vocab_size=corpus["vocab"], **TINY_TEACHER)
    save_pretrained(build_masked_lm(config).network, teacher, config=config,
                    source=corpus["train"] / "tokenizer")
    line = cli_error(capsys, cli_args(corpus, out, "--teacher", str(teacher)))
    assert line == (f"bortkit: error: {teacher}: the teacher has no masked-LM head weights "
                    "(e.g. a sentence-transformers export); pass --teacher-mlm-steps N to train "
                    "it as a masked LM on the training data first")
    assert not out.exists()


def test_raw_text_given_to_the_trainer_is_one_line(corpus, tmp_path, capsys):
    args = cli_args(corpus, tmp_path / "out")
    args[args.index("--train") + 1] = str(corpus["root"] / "train.txt")
    line = cli_error(capsys, args)
    assert "--train must be a shard directory made by python -m " \
           "bortkit.data.create_pretraining_data" in line


def test_arguments_are_checked():
    with pytest.raises(ConfigError, match="--batch-size must be a positive integer"):
        PretrainingArguments(train="x", output_dir="y", batch_size=0).check()
    with pytest.raises(ConfigError, match="need a --teacher"):
        PretrainingArguments(train="x", output_dir="y", hidden_weight=1.0).check()


# ======================================================================== the run script
SCRIPT = REPO / "scripts" / "run_pretraining_distillation.sh"


def run_script(*args: str, env_extra: dict | None = None,
               timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": PYTHON, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_script_rejects_empty_and_binary_corpora(corpus, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "binary.txt").write_bytes(b"text\x00\x01\x02 more" * 50)
    for bad, problem in (("empty.txt", "the corpus has no tokens"),
                         ("binary.txt", "binary data, not text")):
        out = tmp_path / f"out-{bad}"
        result = run_script(1, tmp_path / bad, corpus["root"] / "test.txt", "none", "--",
                            "--output-dir", out)
        assert result.returncode == 2
        line = only_line(result.stderr)
        assert line.startswith(f"bortkit: error: {tmp_path / bad}") and problem in line
        assert not out.exists()  # nothing half-written


def test_script_checks_before_launching_workers(corpus, tmp_path):
    """Shards made with another vocabulary than the teacher's: one line from the up-front
    check (not one per worker), and the output directory it created is gone."""
    config = ModelConfig(vocab_size=corpus["vocab"] + 7, **TINY_TEACHER)
    save_pretrained(build_masked_lm(config), tmp_path / "big", config=config)
    out = tmp_path / "out"
    result = run_script(2, corpus["train"], corpus["test"], tmp_path / "big", "--",
                        "--output-dir", out, "--student-config", corpus["student"])
    assert result.returncode == 2
    assert "the teacher's vocab_size" in only_line(result.stderr)
    assert not out.exists()


@pytest.mark.slow
def test_script_converts_raw_text_and_trains_on_two_workers(corpus, tmp_path):
    """Raw text in, two Horovod workers, no teacher (plain MLM with MiniLM's vocabulary)."""
    student = tmp_path / "student.json"
    student.write_text(json.dumps(ModelConfig(vocab_size=30522, **TINY_STUDENT).to_dict()))
    out = tmp_path / "run"
    result = run_script(2, corpus["root"] / "train.txt", corpus["root"] / "test.txt", "none",
                        "--", "--output-dir", out, "--student-config", student,
                        "--max-steps", "4", "--eval-every", "2", "--eval-batches", "2",
                        "--batch-size", "4", env_extra={"MAX_SEQ_LENGTH": "32"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    meta = json.loads((out / "data/train/meta.json").read_text())
    assert meta["tokenizer"]["vocab_size"] == 30522 and meta["max_seq_length"] == 32
    log = read_jsonl(out / "log.jsonl")
    assert [r["workers"] for r in log if r["event"] == "start"] == [2]
    assert [r["step"] for r in log if r["event"] == "eval"] == [0, 2, 4]
    assert read_state(out / "final").config.vocab_size == 30522


def test_composite_student_distils_and_adapter_student_is_refused(corpus, tmp_path):
    """The new ModelConfig fields reach distillation: a composite-attention student without
    positions trains two steps and keeps its fields; a student with adapters is refused."""
    base = json.loads(corpus["student"].read_text())
    composite = tmp_path / "composite.json"
    composite.write_text(json.dumps({**base, "attention": "qk_convfixed_convk",
                                     "position_embedding": "none",
                                     "value_projection": "convolution"}))
    proc = run_trainer(cli_args({**corpus, "student": composite}, tmp_path / "c",
                                "--max-steps", "2", "--batch-size", "4", "--eval-every", "0"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    saved = read_state(tmp_path / "c" / "final").config
    assert (saved.attention, saved.position_embedding, saved.value_projection) == \
        ("qk_convfixed_convk", "none", "convolution")
    adapters = tmp_path / "adapters.json"
    adapters.write_text(json.dumps({**base, "adapter": "pals", "num_tasks": 2,
                                    "adapter_units": 8, "adapter_heads": 2}))
    proc = run_trainer(cli_args({**corpus, "student": adapters}, tmp_path / "a",
                                "--max-steps", "2"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"bortkit: error: {adapters}: the student has pals adapters")
    assert not (tmp_path / "a").exists()


def test_release_kd_term_is_about_1e5_of_the_correct_one_at_borts_vocabulary():
    """The reason --kd-mode and --loss-preset exist: at V = 50,265 the release's term
    (double softmax, vocabulary mean) is ~1e-5 of T^2 KL, so Bort's 0.1 MLM + 0.5 KD
    trained on MLM in effect."""
    from bortkit.distill.losses import distillation_loss
    rng = np.random.RandomState(0)
    teacher, student = (mx.nd.array(rng.normal(0, 3, (4, 50265))) for _ in range(2))
    weights, inv = mx.nd.ones((4,)), mx.nd.array([0.25])
    correct, release = (float(distillation_loss(mx.nd, student, teacher, weights, inv, 2.0,
                                                mode).asscalar())
                        for mode in ("correct", "bort"))
    assert 0.5e-5 < release / correct < 2e-5


def test_loss_preset_sets_the_release_loss_and_refuses_a_quiet_mix(capsys):
    from bortkit.distill.weights import LossWeights, apply_loss_preset, describe
    none = {"mlm_weight": None, "kd_weight": None, "temperature": None, "kd_mode": None}
    assert apply_loss_preset(None, none) == {"mlm_weight": 0.1, "kd_weight": 0.5,
                                             "temperature": 2.0, "kd_mode": "correct"}
    assert apply_loss_preset("bort-release", none)["kd_mode"] == "bort"
    assert apply_loss_preset(None, {**none, "kd_mode": "bort"})["kd_mode"] == "bort"
    assert apply_loss_preset("bort-release", {**none, "kd_mode": "bort"})["kd_mode"] == "bort"
    with pytest.raises(ConfigError, match=r"^--kd-mode correct contradicts --loss-preset "
                                          r"bort-release \(kd-mode bort\); give one or the "
                                          r"other$"):
        apply_loss_preset("bort-release", {**none, "kd_mode": "correct"})
    text = describe(LossWeights(kd_mode="bort"), teacher=True)
    assert text.startswith("0.1·MLM + 0.5·KD[bort, T=2]; KD mode bort: the released Bort")
    assert "in effect 0.1 MLM alone" in text
    assert "--loss-preset bort-release" in describe(LossWeights(), teacher=True)
    from bortkit.distill.__main__ import build_parser
    help_text = " ".join(build_parser().format_help().split())
    assert "--loss-preset {bort,bort-release}" in help_text
    assert "about 1e-5 of the correct term" in help_text

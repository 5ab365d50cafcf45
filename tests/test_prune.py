"""FLOP structured pruning: hard-concrete statistics against closed forms, SVD
factorisation, the Lagrangian's ascent, and compaction that keeps the gated model's outputs."""
import json
import math

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd
from scipy import integrate
from scipy.special import expit, logit

from bortkit import count_params
from bortkit.checkpoint import classifier_from_state, read_state, save_pretrained
from bortkit.checkpoint.core import State, export_huggingface, from_pretrained, named_parameters
from bortkit.config import ModelConfig
from bortkit.errors import ConfigError
from bortkit.model import BertNetwork
from bortkit.prune.compact import compact, merges
from bortkit.prune.factorize import attach_gates, factorize_state, svd_factors
from bortkit.prune.hard_concrete import HardConcreteMask
from bortkit.prune.args import LAMBDA_TRAVEL, MASK_TRAVEL, PruneArgs
from bortkit.prune.lagrangian import (Ascent, LagrangianSparsity, NoamSchedule,
                                      dense_sparsity, expected_sparsity, factorised_target,
                                      gate_sparsity)
from bortkit.prune.trainer import target_miss

L, R = -0.1, 1.1


# ----------------------------------------------------------------------- hard concrete
def _mask(log_alpha, beta=1.0):
    mask = HardConcreteMask(len(log_alpha), beta=beta)
    mask.initialize()
    mask.log_alpha.set_data(mx.nd.array(log_alpha))
    return mask


def _samples(log_alpha, beta, draws):
    """``draws`` independent gates per log_alpha: one call of a gate holding every copy."""
    mask = _mask(np.tile(log_alpha, draws), beta)
    with autograd.train_mode():
        z = mask(mx.nd.ones((1, mask.n))).asnumpy()[0]
    return z.reshape(draws, len(log_alpha))


@pytest.mark.parametrize("beta", [1.0, 2.0 / 3.0])
def test_hard_concrete_statistics_match_closed_forms(beta):
    mx.random.seed(0)
    log_alpha = np.array([-3.0, -1.0, 0.0, 0.7, 2.5], np.float32)
    mask = _mask(log_alpha, beta)
    z = _samples(log_alpha, beta, 20000)
    # P(z != 0) = sigmoid(log_alpha - beta log(-l/r)); P(z = 1) = sigmoid(log_alpha - beta
    # logit((1 - l) / (r - l))), from the binary-concrete CDF P(s < t) = sigmoid(beta logit t
    # - log_alpha).
    p_on = expit(log_alpha - beta * math.log(-L / R))
    p_one = expit(log_alpha - beta * logit((1 - L) / (R - L)))
    # E[z] = integral over v in (0, 1) of P(z > v) = P(s > (v - l) / (r - l)).
    mean = [integrate.quad(lambda v: expit(a - beta * logit((v - L) / (R - L))), 0, 1)[0]
            for a in log_alpha]
    n = len(z)
    for observed, expected in (((z > 0).mean(0), p_on), ((z == 1).mean(0), p_one)):
        assert np.all(np.abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / n)
                      + 1e-3)
    assert np.all(np.abs(z.mean(0) - mean) < 4 * z.std(0) / np.sqrt(n) + 1e-3)
    assert float(mask.expected_l0().asscalar()) == pytest.approx(p_on.sum(), rel=1e-5)


def test_eval_gate_is_deterministic_and_zero_below_threshold():
    log_alpha = np.array([-5.0, -2.5, -2.3, 0.0, 3.0], np.float32)
    mask = _mask(log_alpha)
    z = mask.eval_gate()
    np.testing.assert_allclose(z, np.clip(expit(log_alpha) * (R - L) + L, 0, 1), atol=1e-6)
    assert list(z > 0) == [False, False, True, True, True]   # log(-l/r) = -2.398
    with autograd.predict_mode():
        np.testing.assert_allclose(mask(mx.nd.ones((2, 5))).asnumpy(), np.stack([z, z]))


def test_expected_l0_gradient_is_sigmoid_derivative():
    log_alpha = np.array([-1.0, 0.5], np.float32)
    mask = _mask(log_alpha)
    with autograd.record():
        value = mask.expected_l0()
    value.backward()
    p = expit(log_alpha + math.log(11))
    np.testing.assert_allclose(mask.log_alpha.grad().asnumpy(), p * (1 - p), rtol=1e-5)


# ----------------------------------------------------------------------- lagrangian
def test_lagrangian_value_and_gradient_ascent():
    lag = LagrangianSparsity(target=0.8, warmup_steps=100)
    assert lag.target_at(0) == 0 and lag.target_at(50) == pytest.approx(0.4)
    assert lag.target_at(500) == pytest.approx(0.8)
    lag.lambda_1.set_data(mx.nd.array([0.3]))
    lag.lambda_2.set_data(mx.nd.array([2.0]))
    s = mx.nd.array([0.1])
    with autograd.record():
        value = lag(s, step=50)
    value.backward()
    assert float(value.asscalar()) == pytest.approx(0.3 * -0.3 + 2.0 * 0.09, rel=1e-5)
    trainer = mx.gluon.Trainer(lag.named_params(), "sgd", {"learning_rate": 1.0})
    trainer.set_learning_rate(Ascent(lambda step: 1.0)(1))
    trainer.step(1)
    # dL/dlambda_1 = s - t = -0.3: ascent lowers lambda_1; dL/dlambda_2 = 0.09 raises it.
    l1, l2 = lag.values()
    assert l1 == pytest.approx(0.0, abs=1e-7) and l2 == pytest.approx(2.09)
    with pytest.raises(ValueError, match=r"target sparsity must be in \(0, 1\), got 1.0"):
        LagrangianSparsity(target=1.0, warmup_steps=10)


def test_noam_schedule_peaks_at_warmup():
    schedule = NoamSchedule(peak=0.1, warmup_steps=100)
    assert schedule(50) == pytest.approx(0.05) and schedule(100) == pytest.approx(0.1)
    assert schedule(400) == pytest.approx(0.05)


# ----------------------------------------------------------------------- factorise, compact
CONFIG = ModelConfig(num_layers=2, num_heads=2, units=16, ffn_units=40, vocab_size=50,
                     max_length=16, dropout=0.0, attention_dropout=0.0, use_pooler=True)


def _dense_state(seed=0):
    """A random dense classifier (encoder + pooler + head) as a State."""
    mx.random.seed(seed)
    network = BertNetwork(CONFIG, prefix="bert_")
    network.initialize(mx.init.Normal(0.3))
    encoder = State(CONFIG, {k: p.data().asnumpy() for k, p in
                             named_parameters(network).items()}, "bortkit", weights_path=None)
    classifier, _ = classifier_from_state(encoder, 2)
    return State(CONFIG, {k: p.data().asnumpy() for k, p in
                          named_parameters(classifier).items()}, "bortkit", weights_path=None)


def _batch(seed=1):
    rng = np.random.RandomState(seed)
    ids = rng.randint(0, 50, (3, 9))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    return [mx.nd.array(a) for a in (ids, np.zeros_like(ids), mask)]


def _eval(classifier, batch):
    with autograd.predict_mode():
        return classifier(*batch).asnumpy()


def test_svd_factors_reproduce_the_matrix():
    w = np.random.RandomState(0).normal(size=(40, 16)).astype(np.float32)
    down, up = svd_factors(w)
    assert down.shape == (16, 16) and up.shape == (40, 16)
    np.testing.assert_allclose(up @ down, w, atol=1e-5)


def _gated(state, seed=3, spread=True):
    factorized = factorize_state(state)
    classifier, _ = classifier_from_state(factorized, 2)
    gated = attach_gates(classifier.network, init_mean=0.05)
    if spread:  # some components off (z = 0), some partly on, most on
        rng = np.random.RandomState(seed)
        for block in gated.values():
            block.mask.log_alpha.set_data(mx.nd.array(rng.uniform(-6, 4, block.rank)))
    return factorized, classifier, gated


def test_factorised_model_with_gates_on_equals_the_dense_model():
    state = _dense_state()
    dense, _ = classifier_from_state(state, 2)
    _, classifier, gated = _gated(state, spread=False)   # log_alpha 2.94: eval gate 1
    assert len(gated) == 12 and all(b.mask.eval_gate().min() == 1.0 for b in gated.values())
    batch = _batch()
    np.testing.assert_allclose(_eval(classifier, batch), _eval(dense, batch), atol=2e-5)


@pytest.mark.parametrize("multiple", [1, 4])
def test_compact_gives_the_gated_models_eval_outputs(multiple):
    state = _dense_state()
    factorized, classifier, gated = _gated(state)
    batch = _batch()
    expected = _eval(classifier, batch)
    compacted, plans = compact(classifier, factorized, rank_multiple=multiple)
    assert {p.merged for p in plans} == {True, False}          # both forms occur
    for plan in plans:
        z = gated[plan.name].mask.eval_gate()
        assert plan.kept == int((z > 0).sum())
        assert plan.stored % multiple == 0 and plan.stored >= max(plan.kept, 1)
        assert plan.merged == merges(plan.stored, plan.in_units, plan.out_units)
        if not plan.merged:
            assert compacted.config.low_rank[plan.name] == plan.stored
    small, _ = classifier_from_state(compacted, 2)
    np.testing.assert_allclose(_eval(small, batch), expected, atol=2e-5)


def test_compacted_checkpoint_loads_everywhere(tmp_path):
    state = _dense_state()
    factorized, classifier, _ = _gated(state)
    batch = _batch()
    expected = _eval(classifier, batch)
    compacted, _ = compact(classifier, factorized, rank_multiple=1)
    small, _ = classifier_from_state(compacted, 2)
    # An ordinary family checkpoint: saved, read back, counted exactly.
    save_pretrained(small, tmp_path / "c", config=compacted.config,
                    meta={"_head": {"task": "SST-2", "kind": "classification",
                                    "labels": ["0", "1"], "num_labels": 2}})
    again = read_state(tmp_path / "c")
    assert again.config == compacted.config and again.config.low_rank
    reloaded, missing = classifier_from_state(again, 2)
    assert not missing
    np.testing.assert_allclose(_eval(reloaded, batch), expected, atol=2e-5)
    model = from_pretrained(tmp_path / "c")
    assert model.num_params() == count_params(again.config) < count_params(CONFIG)
    with pytest.raises(ConfigError, match="low_rank: .* matrices are stored as two factors"):
        export_huggingface(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_merged_huggingface_export_keeps_outputs(tmp_path):
    state = _dense_state()
    factorized, classifier, _ = _gated(state)
    compacted, _ = compact(classifier, factorized, rank_multiple=1)
    small, _ = classifier_from_state(compacted, 2)
    save_pretrained(small, tmp_path / "c", config=compacted.config)
    model = from_pretrained(tmp_path / "c")
    export_huggingface(model, tmp_path / "hf", merge_low_rank=True)
    hf = from_pretrained(tmp_path / "hf")
    assert not hf.config.low_rank
    ids = np.random.RandomState(2).randint(0, 50, (2, 7))
    np.testing.assert_allclose(hf.encode(ids).last_hidden_state,
                               model.encode(ids).last_hidden_state, atol=2e-5)


def test_expected_and_gate_sparsity_against_numpy():
    _, _, gated = _gated(_dense_state())
    kept = total = realised = 0
    for block in gated.values():
        la = block.mask.log_alpha.data().asnumpy()
        width = block.in_units + block.units
        kept += expit(la + math.log(11)).sum() * width
        realised += (la > -math.log(11)).sum() * width
        total += block.rank * width
    assert float(expected_sparsity(gated).asscalar()) == pytest.approx(1 - kept / total,
                                                                       rel=1e-5)
    assert gate_sparsity(gated) == pytest.approx(1 - realised / total)


def test_dense_sparsity_counts_the_compacted_dense_weights():
    """1 - sum min(k (in + out), in out) / sum in out; the dense target's factorised
    equivalent keeps the same factor weights."""
    _, _, gated = _gated(_dense_state())
    rng = np.random.RandomState(3)
    for block in gated.values():   # a few components on, the rest off
        la = np.where(rng.rand(block.rank) < 0.3, 3.0, -5.0).astype(np.float32)
        block.mask.log_alpha.set_data(mx.nd.array(la))
    kept = dense = factors = 0
    for block in gated.values():
        on = int((block.mask.log_alpha.data().asnumpy() > 0).sum())
        width = block.in_units + block.units
        kept += min(on * width, block.in_units * block.units)
        dense += block.in_units * block.units
        factors += block.rank * width
    assert dense_sparsity(gated) == pytest.approx(1 - kept / dense)
    # CONFIG's shapes: 16x16 (factorised 2x) and 16x40 (1.4x); the factorised reading is
    # higher than the dense one for the same gates.
    assert gate_sparsity(gated) > dense_sparsity(gated)
    t = factorised_target(0.6, gated)
    assert (1 - t) * factors == pytest.approx(0.4 * dense)


def test_default_schedules_scale_with_the_run():
    for steps in (160, 400, 1000):
        s = PruneArgs("", "", "", "", max_steps=steps).schedules()
        assert s["target_warmup_steps"] == steps // 2
        assert s["schedule_warmup_steps"] == steps // 8
        for key, travel in (("mask_learning_rate", MASK_TRAVEL),
                            ("lambda_learning_rate", LAMBDA_TRAVEL)):
            rates = NoamSchedule(s[key], s["schedule_warmup_steps"])
            assert sum(rates(i) for i in range(1, steps + 1)) == pytest.approx(travel)
    given = PruneArgs("", "", "", "", mask_learning_rate=0.01, target_warmup_steps=0,
                      schedule_warmup_steps=7).schedules()
    assert (given["mask_learning_rate"], given["target_warmup_steps"],
            given["schedule_warmup_steps"]) == (0.01, 0, 7)


def test_a_missed_target_is_a_warning_in_the_targets_reading():
    args = PruneArgs("", "", "", "", target_sparsity=0.6, tolerance=0.02)
    assert target_miss({"dense_sparsity": 0.61, "sparsity": 0.74}, args) is None
    warning = target_miss({"dense_sparsity": 0.45, "sparsity": 0.63}, args)
    assert warning.startswith("warning: the kept model's dense sparsity is 0.450, 0.150 "
                              "short of the target 0.6 (tolerance 0.02)")
    args.sparsity_of = "factorised"
    assert target_miss({"dense_sparsity": 0.45, "sparsity": 0.61}, args) is None
    assert "beyond the target" in target_miss({"dense_sparsity": 0.6, "sparsity": 0.7}, args)


def test_kept_model_is_the_best_at_target_else_the_closest_to_it():
    """The evaluations of bench/prune_defaults.py's first run (dense target 0.6): it passed
    the target between two evaluations and overshot; the one nearest 0.6 is kept, not the
    overshooting one with a better dev metric."""
    from bortkit.prune.trainer import is_at_target, keeps
    args = PruneArgs("", "", "", "", target_sparsity=0.6, tolerance=0.02)
    kept = None
    for step, dense, main in ((100, 0.101, 0.790), (200, 0.541, 0.815), (250, 0.631, 0.802),
                              (300, 0.681, 0.813), (350, 0.711, 0.806)):
        scores = {"step": step, "dense_sparsity": dense, "sparsity": dense + 0.1,
                  "main": main}
        scores["at_target"] = is_at_target(scores, args)
        assert not scores["at_target"]
        kept = scores if keeps(scores, kept, args) else kept
    assert kept["step"] == 250
    at = {"step": 400, "dense_sparsity": 0.61, "sparsity": 0.7, "main": 0.70}
    at["at_target"] = is_at_target(at, args)
    assert at["at_target"] and keeps(at, kept, args)        # at the target beats closeness
    better = {**at, "step": 450, "dense_sparsity": 0.59, "main": 0.75}
    worse = {**at, "step": 500, "main": 0.65}
    assert keeps(better, at, args) and not keeps(worse, better, args)
    assert not keeps(kept, better, args)


def test_low_rank_config_round_trips_and_counts(tmp_path):
    config = CONFIG.replace(low_rank={"encoder.1.ffn.ffn_2": 4, "encoder.0.attention.key": 3})
    assert list(config.low_rank) == ["encoder.0.attention.key", "encoder.1.ffn.ffn_2"]
    assert json.loads(json.dumps(config.to_dict()))["low_rank"] == config.low_rank
    dense = count_params(CONFIG)
    assert count_params(config) == dense - (16 * 16 - 3 * 32) - (40 * 16 - 4 * 56)
    with pytest.raises(ConfigError, match=r"rank of encoder.0.ffn.ffn_1 must be an integer "
                                          r"in \[1, 16\], got 17"):
        CONFIG.replace(low_rank={"encoder.0.ffn.ffn_1": 17})


# ----------------------------------------------------------------------- command line
def _run_cli(capsys, *argv):
    """Run ``python -m bortkit.prune`` in this process; (exit status, stderr)."""
    from bortkit.errors import run_cli
    from bortkit.prune.__main__ import main
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, [str(a) for a in argv])
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2"])
def test_target_sparsity_outside_the_open_interval_is_one_line(tmp_path, tiny_model, glue_dir,
                                                                value, capsys):
    out = tmp_path / "out"
    code, err = _run_cli(capsys, "--task", "SST-2", "--model", tiny_model, "--data-dir",
                         glue_dir, "--target-sparsity", value, "--output-dir", out)
    assert code == 2
    assert err.strip() == (f"bortkit: error: --target-sparsity must be a number in (0, 1), "
                           f"got {float(value)!r}")
    assert not out.exists()


def test_unknown_sparsity_reading_is_one_line(tmp_path, tiny_model, glue_dir, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        from bortkit.prune.__main__ import main
        main(["--task", "SST-2", "--model", str(tiny_model), "--data-dir", str(glue_dir),
              "--sparsity-of", "params", "--output-dir", str(out)])
    assert exit_info.value.code == 2
    assert "--sparsity-of: invalid choice: 'params'" in capsys.readouterr().err
    assert not out.exists()


def test_model_without_task_head_is_one_line(tmp_path, tiny_model, glue_dir, capsys):
    out = tmp_path / "out"
    code, err = _run_cli(capsys, "--task", "SST-2", "--model", tiny_model, "--data-dir",
                         glue_dir, "--output-dir", out)
    assert code == 2
    assert err.strip() == (
        f"bortkit: error: {tiny_model}: has no task head: prune a fine-tuned classifier "
        "(python -m bortkit.finetune writes one to RUN/TASK/seed-S/best)")
    assert not out.exists()


def test_compact_of_a_model_without_gates_is_one_line(tmp_path, tiny_model, capsys):
    out = tmp_path / "small"
    code, err = _run_cli(capsys, "compact", "--model", tiny_model, "--output-dir", out)
    assert code == 2
    assert err.strip().startswith(f"bortkit: error: {tiny_model}: not a gated model")
    assert not out.exists()


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory, tiny_model):
    """The tiny random model with an SST-2 head, as bortkit.finetune would save it."""
    state = read_state(tiny_model)
    mx.random.seed(0)
    classifier, _ = classifier_from_state(state, 2)
    path = tmp_path_factory.mktemp("head") / "model"
    save_pretrained(classifier, path, config=state.config, source=tiny_model,
                    meta={"_head": {"task": "SST-2", "kind": "classification",
                                    "num_labels": 2, "labels": ["0", "1"],
                                    "max_length": 32, "pooling": "cls"}})
    return path


@pytest.mark.slow
def test_resumed_pruning_run_equals_an_uninterrupted_one(tmp_path, tiny_classifier, glue_dir,
                                                         capsys):
    """Gates, multipliers, optimizer states, data order and gate noise all resume."""
    common = ["--task", "SST-2", "--model", tiny_classifier, "--data-dir", glue_dir,
              "--target-sparsity", "0.5", "--target-warmup-steps", "2", "--batch-size", "4",
              "--max-train-examples", "16", "--max-eval-examples", "8", "--eval-every", "2",
              "--learning-rate", "0", "--mask-learning-rate", "0.5",
              "--lambda-learning-rate", "5", "--schedule-warmup-steps", "1", "--no-progress"]
    assert _run_cli(capsys, *common, "--max-steps", "4", "--output-dir", tmp_path / "a")[0] == 0
    assert _run_cli(capsys, *common, "--max-steps", "2", "--output-dir", tmp_path / "b")[0] == 0
    code, err = _run_cli(capsys, *common, "--max-steps", "2", "--output-dir", tmp_path / "b")
    assert code == 2 and "holds a finished run (result.json)" in err
    assert _run_cli(capsys, *common, "--max-steps", "4", "--output-dir", tmp_path / "b",
                    "--resume")[0] == 0
    a = read_state(tmp_path / "a" / "checkpoint").tensors
    b = read_state(tmp_path / "b" / "checkpoint").tensors
    gates = [k for k in a if k.endswith("mask.log_alpha")]
    assert gates and all(np.array_equal(a[k], b[k]) for k in gates)
    final = [json.loads((tmp_path / run / "result.json").read_text())["evaluations"][-1]
             for run in ("a", "b")]
    assert final[0] == final[1]

"""The training runtime (bortkit.train): TrainStep with several optimizers, the Loop's hooks,
and the one Horovod rule, against NumPy and by their observable effects."""
from __future__ import annotations

import io
import math
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon

from bortkit.train import (LinearSchedule, Loop, ParamGroup, TrainStep, Workers,
                           launched_by_horovod, make_trainer)

X = np.random.RandomState(0).normal(size=(6, 3)).astype(np.float32)
Y = np.random.RandomState(1).normal(size=(6, 2)).astype(np.float32)


def tiny(seed=0):
    net = gluon.nn.Dense(2, in_units=3, prefix="dense_")
    net.initialize(mx.init.Normal(0.5))
    rng = np.random.RandomState(seed)
    net.weight.set_data(mx.nd.array(rng.normal(size=(2, 3))))
    net.bias.set_data(mx.nd.array(rng.normal(size=(2,))))
    return net


def squared_error(net):
    def loss_fn(rows):
        if rows is None:
            return None
        out = net(mx.nd.array(X[rows]))
        diff = out - mx.nd.array(Y[rows])
        return [(diff ** 2).sum().reshape((1,)), out.sum().reshape((1,))]
    return loss_fn


def numpy_grads(weight, bias, rows):
    diff = X[rows] @ weight.T + bias - Y[rows]
    return 2 * diff.T @ X[rows], 2 * diff.sum(axis=0)


def adamw_first_step(value, grad, lr, wd=0.0, eps=1e-6):
    """AdamW with bias correction, step 1: m_hat = g, v_hat = g^2."""
    return value - lr * (grad / (np.abs(grad) + eps) + wd * value)


def test_two_optimizers_accumulate_clip_and_report():
    net = tiny()
    weight0, bias0 = net.weight.data().asnumpy(), net.bias.data().asnumpy()
    weights = {"weight": net.weight}
    biases = {"bias": net.bias}
    groups = [ParamGroup(weights, make_trainer(weights, "adamw", 0.1, 0.0, accumulate=2),
                         LinearSchedule(0.1, 10, warmup_ratio=0.5), max_grad_norm=1e-3,
                         name="weights"),
              ParamGroup(biases, make_trainer(biases, "adamw", 0.05, 0.0, accumulate=2),
                         lambda step: -0.05, name="biases")]  # a maximising group
    result = TrainStep(groups)(squared_error(net), [np.arange(3), np.arange(3, 6)], 1)
    gw, gb = numpy_grads(weight0, bias0, np.arange(6))  # two micro-batches add up
    terms = result.terms.asnumpy()
    out = X @ weight0.T + bias0
    np.testing.assert_allclose(terms, [((out - Y) ** 2).sum(), out.sum()], rtol=1e-5)
    assert result.learning_rates == pytest.approx([0.1 * 1 / 5, -0.05])
    assert result.grad_norm(0) == pytest.approx(np.linalg.norm(gw), rel=1e-5)
    assert result.grad_norm(1) == pytest.approx(np.linalg.norm(gb), rel=1e-5)
    clipped = gw * 1e-3 / (np.linalg.norm(gw) + 1e-8)  # only the weights' group is clipped
    np.testing.assert_allclose(net.weight.data().asnumpy(),
                               adamw_first_step(weight0, clipped, 0.02), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.bias.data().asnumpy(),
                               adamw_first_step(bias0, gb, -0.05), rtol=1e-4, atol=1e-6)
    for param in (net.weight, net.bias):  # accumulated gradients are cleared after the update
        assert not param.grad().asnumpy().any()


def test_clipping_factor_reaches_the_update():
    """Second Adam step: m and v mix a clipped and an unclipped gradient, so the clip factor
    is visible; compared with a NumPy AdamW fed the clipped gradients."""
    net = tiny(3)
    params = {"weight": net.weight, "bias": net.bias}
    step = TrainStep([ParamGroup(params, make_trainer(params, "adamw", 0.01, 0.0),
                                 max_grad_norm=0.5)])
    value = {k: p.data().asnumpy() for k, p in params.items()}
    m = {k: 0.0 for k in params}
    v = {k: 0.0 for k in params}
    for n in (1, 2):
        grads = dict(zip(("weight", "bias"), numpy_grads(value["weight"], value["bias"],
                                                         np.arange(6))))
        norm = math.sqrt(sum((g ** 2).sum() for g in grads.values()))
        scale = 0.5 / (norm + 1e-8) if norm > 0.5 else 1.0
        result = step(squared_error(net), [np.arange(6)], n)
        assert result.grad_norm() == pytest.approx(norm, rel=1e-5)
        for k, g in grads.items():
            g = g * scale
            m[k] = 0.9 * m[k] + 0.1 * g
            v[k] = 0.999 * v[k] + 0.001 * g * g
            m_hat, v_hat = m[k] / (1 - 0.9 ** n), v[k] / (1 - 0.999 ** n)
            value[k] = value[k] - 0.01 * m_hat / (np.sqrt(v_hat) + 1e-6)
    for k, p in params.items():
        np.testing.assert_allclose(p.data().asnumpy(), value[k], rtol=1e-4, atol=1e-6)


def test_a_worker_without_rows_adds_no_gradient():
    net = tiny()
    params = {"weight": net.weight, "bias": net.bias}
    step = TrainStep([ParamGroup(params, make_trainer(params, "adamw", 0.1))])
    step(squared_error(net), [np.arange(6)], 1)
    assert np.abs(net.weight.grad().asnumpy()).max() > 0
    result = step(squared_error(net), [None], 2)  # the stale gradients must not count again
    assert result.grad_norm() == 0.0 and result.terms.asnumpy().tolist() == [0.0]
    np.testing.assert_array_equal(net.weight.grad().asnumpy(), 0)


def test_loop_hooks_in_order_and_the_last_step_once():
    net = tiny()
    params = {"weight": net.weight, "bias": net.bias}
    step = TrainStep([ParamGroup(params, make_trainer(params, "adamw", 0.01))], seed=0)
    events = []
    loop = Loop(step, squared_error(net), ([np.arange(6)] for _ in range(100)), 7,
                on_step=lambda r: events.append(("step", r.step)),
                evaluate=lambda s: events.append(("eval", s)) or {"main": -s},
                eval_every=3, checkpoint=lambda s: events.append(("checkpoint", s)),
                checkpoint_every=2)
    result = loop.run()
    assert result.step == 7 and not result.stopped and result.scores == {"main": -7}
    hooks = [e for e in events if e[0] != "step"]
    assert hooks == [("checkpoint", 2), ("eval", 3), ("checkpoint", 4), ("eval", 6),
                     ("checkpoint", 6), ("eval", 7), ("checkpoint", 7)]
    # a stop hook ends the run after its evaluation; every hook hears every evaluation
    heard = []
    stop = Loop(step, squared_error(net), ([np.arange(6)] for _ in range(100)), 10,
                evaluate=lambda s: {"main": float(s)}, eval_every=2,
                stop=[lambda s, scores: heard.append(s) or s >= 4,
                      lambda s, scores: heard.append(-s) or False]).run()
    assert stop.step == 4 and stop.stopped and heard == [2, -2, 4, -4]
    # resumed after the last step: evaluated and checkpointed once more, no step run
    again = []
    Loop(step, squared_error(net), iter(()), 7, 7, evaluate=lambda s: again.append(s) or {},
         checkpoint=lambda s: again.append(("checkpoint", s))).run()
    assert again == [7, ("checkpoint", 7)]


def test_one_horovod_rule(monkeypatch):
    for key in ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert not launched_by_horovod()
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "1")  # horovodrun -np 1: one process
    assert not launched_by_horovod()
    monkeypatch.setenv("HOROVOD_SIZE", "2")
    assert launched_by_horovod()
    single = Workers(distributed=False)
    assert (single.rank, single.size, single.is_root) == (0, 1, True)
    assert single.share({"a": 1}, "x") == {"a": 1}
    np.testing.assert_array_equal(single.sum([1.5, 2], "s"), [1.5, 2.0])


def test_run_keeps_every_group_and_refuses_other_inputs_on_resume(tmp_path):
    """bortkit.train.Run: one checkpoint holds the model, two optimizers' states and a group's
    parameters outside the model (as pruning's Lagrange multipliers); --resume restores them
    exactly, refuses other settings or another input file, and needs a checkpoint."""
    from bortkit.checkpoint import named_parameters
    from bortkit.config import ModelConfig
    from bortkit.errors import ConfigError
    from bortkit.model import BertNetwork
    from bortkit.train import Run, RunState

    config = ModelConfig(num_layers=1, num_heads=2, units=8, ffn_units=16, vocab_size=40,
                         max_length=16)
    data = tmp_path / "train.txt"
    data.write_text("some rows\n")
    settings = {"learning_rate": 0.01, "seed": 0, "max_steps": 4}

    def build():
        mx.random.seed(0)
        model = BertNetwork(config, prefix="bert_")
        model.initialize(mx.init.Normal(0.02))
        weights = {k: p for k, p in named_parameters(model).items() if p.grad_req != "null"}
        outside = gluon.ParameterDict(prefix="lagrangian_")
        outside.get("lambda", shape=(1,), init=mx.init.Constant(0.5))
        outside.initialize()
        lam = {"lambda": outside.get("lambda")}
        groups = [ParamGroup(weights, make_trainer(weights, "adamw", 0.01), name="weights"),
                  ParamGroup(lam, make_trainer(lam, "adamw", 0.1), name="lambdas")]
        ids = mx.nd.array([[1, 5, 7, 2]])

        def loss_fn(_):
            sequence, pooled = model(ids, mx.nd.zeros_like(ids), mx.nd.ones_like(ids))[:2]
            size = (sequence ** 2).mean() + (pooled ** 2).mean()
            return (size * lam["lambda"].data() ** 2).reshape((1,))
        step = TrainStep(groups, Workers(distributed=False), seed=0)
        return model, groups, lambda n: step(loss_fn, [None], n)

    def values(model, groups):
        return {**{k: p.data().asnumpy() for k, p in named_parameters(model).items()},
                "lambda": groups[1].params["lambda"].data().asnumpy()}

    out = tmp_path / "run"
    model, groups, step = build()
    with Run(out, settings, ["learning_rate", "seed"], inputs={"--train": data}) as run:
        state = run.begin(model, groups)
        for n in (1, 2):
            step(n)
        state.step = 2
        run.save(model, config, groups, state)
        step(3)
        expected = values(model, groups)
    assert sorted(p.name for p in (out / "checkpoint").glob("*.states")) == \
        ["optimizer-lambdas.states", "optimizer-weights.states"]
    assert (out / "checkpoint" / "lambdas.params").is_file()

    model, groups, step = build()  # fresh values: everything must come from the checkpoint
    with Run(out, {**settings, "max_steps": 9}, ["learning_rate", "seed"],
             inputs={"--train": data}, resume=True) as run:
        state = run.begin(model, groups, RunState)
        assert state.step == 2
        step(3)
    got = values(model, groups)
    assert got.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)

    with pytest.raises(ConfigError, match=r"--learning-rate 0.01 -> 0.02"):
        Run(out, {**settings, "learning_rate": 0.02}, ["learning_rate", "seed"],
            inputs={"--train": data}, resume=True)
    data.write_text("other rows\n")
    with pytest.raises(ConfigError, match=r"input files differ .*--train .*other content"):
        Run(out, settings, ["learning_rate", "seed"], inputs={"--train": data}, resume=True)
    with pytest.raises(ConfigError, match=r"--resume: no checkpoint to resume from"):
        Run(tmp_path / "empty", settings, ["seed"], resume=True)
    assert not (tmp_path / "empty").exists()


class _Stream(io.StringIO):
    def __init__(self, terminal: bool):
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


@pytest.mark.parametrize("terminal", [True, False])
def test_progress_bar_on_a_terminal_and_step_lines_in_a_log(terminal, monkeypatch):
    """Progress is on by default: a bar on a terminal; redirected to a file, the per-step
    lines instead of a bar's redraws."""
    from bortkit.train import Progress
    stream = _Stream(terminal)
    monkeypatch.setattr(sys, "stderr", stream)
    progress = Progress(total=3, desc="steps")
    for step in range(3):
        progress.update(1)
        progress.say(f"step {step + 1}: loss 1.0")
    progress.close()
    text = stream.getvalue()
    assert ("steps:" in text) is terminal
    assert ("step 2: loss 1.0" in text) is not terminal

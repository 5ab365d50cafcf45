"""Multi-task training: the task sampler against its formula, a real run on GLUE files with
exact parameter accounting, resume after SIGKILL, reload, and one-line errors."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bortkit.errors import run_cli
from bortkit.multitask import TaskSampler, anneal_alpha

SIZES = [6680, 2865, 1945, 4491]   # the paper's N for CoLA, MRPC, RTE, SST-B (x0.78)


# ----------------------------------------------------------------------------- sampler
def frequencies(tasks, n):
    return np.bincount(tasks, minlength=n) / len(tasks)


@pytest.mark.parametrize("schedule,alpha", [("proportional", 1.0), ("sqrt", 0.5)])
def test_fixed_schedules_draw_tasks_at_n_to_the_alpha(schedule, alpha):
    steps = 20000
    sampler = TaskSampler(SIZES, schedule, epochs=1, steps_per_epoch=steps, seed=3)
    expected = np.asarray(SIZES, float) ** alpha
    expected /= expected.sum()
    got = frequencies(sampler.tasks(steps), len(SIZES))
    sigma = np.sqrt(expected * (1 - expected) / steps)
    assert np.all(np.abs(got - expected) < 4 * sigma), (got, expected)


def test_anneal_falls_from_proportional_to_alpha_0_2_epoch_by_epoch():
    assert anneal_alpha(0, 25) == 1.0 and anneal_alpha(24, 25) == pytest.approx(0.2)
    epochs, per_epoch = 3, 15000
    sampler = TaskSampler(SIZES, "anneal", epochs=epochs, steps_per_epoch=per_epoch, seed=1)
    tasks = sampler.tasks(epochs * per_epoch)
    for e, alpha in enumerate([1.0, 0.6, 0.2]):        # 1 - 0.8 e / (E - 1)
        expected = np.asarray(SIZES, float) ** alpha
        expected /= expected.sum()
        got = frequencies(tasks[e * per_epoch:(e + 1) * per_epoch], len(SIZES))
        sigma = np.sqrt(expected * (1 - expected) / per_epoch)
        assert np.all(np.abs(got - expected) < 4 * sigma), (e, got, expected)


def test_round_robin_visits_every_task_in_turn():
    sampler = TaskSampler(SIZES, "rr")
    tasks = sampler.tasks(4 * 25)
    assert tasks[:6].tolist() == [0, 1, 2, 3, 0, 1]
    assert all(sorted(tasks[i:i + 4]) == [0, 1, 2, 3] for i in range(0, 100, 4))


def test_draws_depend_only_on_seed_and_step():
    a = TaskSampler(SIZES, "sqrt", epochs=2, steps_per_epoch=50, seed=7)
    b = TaskSampler(SIZES, "sqrt", epochs=2, steps_per_epoch=50, seed=7)
    assert [a.task(s) for s in range(60, 100)] == b.tasks(99)[59:].tolist()
    assert a.tasks(100).tolist() != TaskSampler(SIZES, "sqrt", 2, 50, seed=8).tasks(100).tolist()


# ----------------------------------------------------------------------------- command line
def cli(capsys, *argv):
    """Run the command in this process; (exit status, stdout, stderr)."""
    from bortkit.multitask.__main__ import main
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["--no-progress", *map(str, argv)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


def small(tiny_model, glue_dir, out, *more):
    return ["--tasks", "RTE,STS-B", "--model", tiny_model, "--data-dir", glue_dir,
            "--output-dir", out, "--max-train-examples", 64, "--max-eval-examples", 32,
            "--batch-size", 8, "--max-length", 32, "--learning-rate", 1e-3, "--epochs", 2,
            *more]


@pytest.fixture(scope="module")
def pals_run(tiny_model, glue_dir, tmp_path_factory):
    """A 12-step PALs run on RTE and STS-B from the tiny model (result.json and folder)."""
    from bortkit.multitask import train_multitask
    out = tmp_path_factory.mktemp("mt") / "run"
    result = train_multitask(tasks=["RTE", "STS-B"], model=str(tiny_model),
                             data_dir=str(glue_dir), output_dir=str(out), adapter="pals",
                             sample="anneal", max_steps=12, epochs=2, max_train_examples=64,
                             max_eval_examples=32, batch_size=8, max_length=32,
                             learning_rate=1e-3, progress=False)
    return result, out


def test_run_reports_each_task_and_exact_overhead(pals_run):
    from bortkit.accounting import adapter_params, classifier_params, count_params
    from bortkit.checkpoint import read_state
    from bortkit.multitask.trainer import without_adapters
    result, out = pals_run
    assert set(result["best"]) == {"RTE", "STS-B"}
    assert {"accuracy", "main"} <= set(result["best"]["RTE"])
    assert {"pearson", "spearman", "main"} <= set(result["best"]["STS-B"])
    assert sum(result["steps_per_task"].values()) == 12 and result["steps"] == 12
    assert [e["step"] for e in result["evaluations"]] == [6, 12]
    config = read_state(out / "best").config
    assert (config.adapter, config.num_tasks) == ("pals", 2)
    params = result["params"]
    base = without_adapters(config)
    # the built model holds exactly what the accounting says
    assert params["built_total"] == params["total"] == count_params(config) + \
        classifier_params(config, 2) + classifier_params(config, 1)
    assert params["adapters_per_task"] * 2 == adapter_params(config) > 0
    assert params["overhead_per_task"]["RTE"] == params["adapters_per_task"] + \
        classifier_params(config, 2)
    assert params["separate_models_total"] == 2 * count_params(base) + \
        classifier_params(base, 2) + classifier_params(base, 1)
    for name in ("curve-RTE.png", "curve-STS-B.png", "log.jsonl", "result.json"):
        assert (out / name).stat().st_size > 0
    tasks = [json.loads(line).get("task") for line in (out / "log.jsonl").read_text().splitlines()]
    assert tasks.count("RTE") == result["steps_per_task"]["RTE"]


def test_checkpoint_loads_with_from_pretrained_and_keeps_the_adapters(pals_run):
    import bortkit
    from bortkit.checkpoint import named_parameters, read_state
    _, out = pals_run
    model = bortkit.from_pretrained(out / "best")
    saved = read_state(out / "best").tensors
    loaded = named_parameters(model.network)
    adapters = [n for n in loaded if ".pal." in n or n.startswith("task_projections.")]
    assert adapters and model.config.adapter == "pals"
    for name, param in loaded.items():
        np.testing.assert_array_equal(param.data().asnumpy(), saved[name])


def test_export_refused_for_adapters_in_one_line_before_training(capsys, tiny_model, glue_dir,
                                                                 tmp_path):
    code, _, err = cli(capsys, *small(tiny_model, glue_dir, tmp_path / "out", "--max-steps", 4,
                                      "--export-huggingface", tmp_path / "hf"))
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("bortkit: error: --export-huggingface: the Hugging Face BERT layout "
                          "has dot-product attention with linear projections and no adapters")
    assert "adapter 'pals'" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "hf").exists()


def test_shared_model_exports_to_hugging_face(capsys, tiny_model, glue_dir, tmp_path):
    code, out, err = cli(capsys, *small(tiny_model, glue_dir, tmp_path / "out", "--max-steps", 4,
                                        "--epochs", 1, "--adapter", "none", "--sample", "rr",
                                        "--export-huggingface", tmp_path / "hf"))
    assert code == 0, err
    assert "Hugging Face encoder" in out
    hf = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf["model_type"] == "bert" and hf["hidden_size"] == 32
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["steps_per_task"] == {"RTE": 2, "STS-B": 2}        # round-robin advances
    assert result["params"]["adapters_per_task"] == 0


@pytest.mark.parametrize("change,message", [
    (["--tasks", "RTE,FOO"], "bortkit: error: --tasks: unknown task 'FOO'; valid tasks: "),
    (["--sample", "uniform"], "bortkit: error: --sample must be one of proportional, sqrt, "
                              "anneal, round_robin (or prop, rr), got 'uniform'"),
    (["--adapter", "lora"], "bortkit: error: --adapter must be one of none, pals, low_rank, "
                            "houlsby, lhuc, top, top_layer, got 'lora'"),
    (["--adapter", "none", "--freeze-base"], "bortkit: error: --freeze-base trains only "
                                              "adapters, LayerNorms and heads; with --adapter "
                                              "none there are no adapters to train"),
    (["--sample", "anneal", "--epochs", 1], "bortkit: error: --epochs must be >= 2 for "
                                            "--sample anneal"),
])
def test_bad_input_is_one_line_and_writes_nothing(capsys, tiny_model, glue_dir, tmp_path,
                                                  change, message):
    argv = small(tiny_model, glue_dir, tmp_path / "out", "--max-steps", 4) + change
    code, _, err = cli(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and err.startswith(message), err
    assert not (tmp_path / "out").exists()


def test_adapters_the_checkpoint_does_not_have_and_task_ids_out_of_range(
        capsys, pals_run, glue_dir, tmp_path):
    import mxnet as mx
    from bortkit.errors import BortkitError
    from bortkit.multitask import MultitaskArgs, MultitaskTrainer
    _, out = pals_run
    code, _, err = cli(capsys, *small(out / "best", glue_dir, tmp_path / "o", "--max-steps", 4,
                                      "--adapter", "low_rank"))
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "o").exists()
    assert err.startswith("bortkit: error: --adapter low_rank for 2 tasks: the checkpoint "
                          "already has pals adapters for 2 tasks")
    trainer = MultitaskTrainer(MultitaskArgs(
        tasks=["RTE", "STS-B"], model=str(out / "best"), data_dir=str(glue_dir),
        output_dir=str(tmp_path / "t"), max_steps=2, epochs=2, max_train_examples=16,
        max_eval_examples=16, max_length=32, progress=False))
    ids = mx.nd.ones((2, 8))
    for bad in (2, -1, 1.0):
        with pytest.raises(BortkitError, match=r"^task_id must be an integer in \[0, 1\] \(this "
                                               rf"model has 2 tasks\), got {bad!r}$"):
            trainer.net(ids, mx.nd.zeros_like(ids), mx.nd.ones_like(ids), bad)
    # a model without adapters refuses a task id, and one with them needs it
    for adapter, problem in ((False, "a task id was given but this model has no adapters"),
                             (True, "this model has pals adapters for 2 tasks: pass the task")):
        network = network_of(out / "best", adapter)
        with pytest.raises(BortkitError, match=f"^{problem}"):
            network.run(mx.nd, ids, mx.nd.zeros_like(ids), mx.nd.ones_like(ids),
                        task_id=None if adapter else mx.nd.zeros(1))
    assert not (tmp_path / "t").exists()


def network_of(path, adapter: bool):
    import mxnet as mx
    from bortkit.checkpoint import read_state
    from bortkit.model import BertNetwork
    from bortkit.multitask.trainer import without_adapters
    config = read_state(path).config
    network = BertNetwork(config if adapter else without_adapters(config), prefix="bert_")
    network.initialize(mx.init.Normal(0.02))
    return network


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(tiny_model, glue_dir, tmp_path):
    argv = [str(a) for a in small(tiny_model, glue_dir, "", "--max-steps", 16, "--epochs", 4,
                                  "--sample", "sqrt")]
    base = [sys.executable, "-m", "bortkit.multitask", "--no-progress", *argv]
    where = base.index("--output-dir") + 1
    clean = list(base)
    clean[where] = str(tmp_path / "clean")
    assert subprocess.run(clean, capture_output=True, timeout=300).returncode == 0
    killed = list(base)
    killed[where] = str(tmp_path / "killed")
    proc = subprocess.Popen(killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "killed" / "checkpoint" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["run"]["step"] >= 8:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["run"]["step"] < 16
    resumed = subprocess.run(killed + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "clean" / "result.json").read_text())
    b = json.loads((tmp_path / "killed" / "result.json").read_text())
    assert a["evaluations"] == b["evaluations"] and a["steps_per_task"] == b["steps_per_task"]


def test_partial_group_leaves_heads_a_step_does_not_use_untouched():
    """ParamGroup(partial=True): one task's head per step; the other head keeps its weights,
    and the step's norm is the used head's gradient norm alone (no stale gradient)."""
    import mxnet as mx
    from mxnet import gluon
    from bortkit.train import ParamGroup, TrainStep, make_trainer
    heads = [gluon.nn.Dense(2, in_units=3, prefix=f"h{i}_") for i in range(2)]
    for head in heads:
        head.initialize(mx.init.Normal(0.5))
    params = {f"{i}.{n}": p for i, h in enumerate(heads) for n, p in h.collect_params().items()}
    group = ParamGroup(params, make_trainer(params, "adamw", 0.1), partial=True)
    step, x = TrainStep([group]), np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    loss = lambda t: (heads[t](mx.nd.array(x)) ** 2).mean()            # noqa: E731
    step(loss, [0], 1)                                                  # head 0 only
    before = {k: p.data().asnumpy().copy() for k, p in params.items()}
    w, b = heads[1].weight.data().asnumpy(), heads[1].bias.data().asnumpy()
    dy = 2 * (x @ w.T + b) / 8                                          # d mean(y^2) / dy
    expected = np.sqrt((dy.T @ x).ravel() @ (dy.T @ x).ravel() + dy.sum(0) @ dy.sum(0))
    result = step(loss, [1], 2)                                         # head 1 only
    assert result.grad_norm() == pytest.approx(expected, rel=1e-5)
    for key, value in before.items():
        changed = not np.array_equal(params[key].data().asnumpy(), value)
        assert changed == key.startswith("1."), key


def test_freeze_base_trains_only_adapters_norms_and_heads(capsys, tiny_model, glue_dir, tmp_path):
    from bortkit.checkpoint import read_state
    code, _, err = cli(capsys, *small(tiny_model, glue_dir, tmp_path / "out", "--max-steps", 4,
                                      "--adapter", "houlsby", "--sample", "sqrt",
                                      "--freeze-base", "--learning-rate", 1e-2))
    assert code == 0, err
    before, after = read_state(tiny_model).tensors, read_state(tmp_path / "out" / "best").tensors
    for name in ("encoder.0.ffn.ffn_1.weight", "embeddings.word_embed.weight",
                 "encoder.1.attention.query.weight", "pooler.dense.weight"):
        assert np.array_equal(before[name], after[name]), name
    assert not np.array_equal(before["encoder.0.attention_norm.gamma"],
                              after["encoder.0.attention_norm.gamma"])
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    params = result["params"]
    assert params["trainable"] == sum(
        v.size for k, v in after.items()
        if ".attention_adapter." in k or ".ffn_adapter." in k or k.endswith((".gamma", ".beta"))
        or k.startswith("heads."))

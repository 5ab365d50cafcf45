"""Fine-tuning harness: real learning on real GLUE data, crash/resume, bad input, outputs."""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bortkit.finetune import FinetuneArgs, Finetuner


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "bortkit.finetune", "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_minilm_learns_sst2_from_a_few_hundred_examples(minilm_dir, glue_dir, tmp_path):
    result = Finetuner(FinetuneArgs(
        task="SST-2", model=str(minilm_dir), data_dir=str(glue_dir), output_dir=str(tmp_path),
        max_train_examples=400, max_eval_examples=300, epochs=2, batch_size=16,
        learning_rate=1e-4, max_length=64, progress=False)).run()
    dev = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines()]
    majority = 0.52  # SST-2 dev: 444 of 872 positive (SOURCES.md); a 300 subset is ~the same
    assert result["best"]["accuracy"] > majority + 0.15, result["best"]
    assert any(r["event"] == "eval" for r in dev)
    assert (tmp_path / "best" / "model.safetensors").exists()
    assert (tmp_path / "learning_curve.png").stat().st_size > 5000
    from safetensors.numpy import load_file
    tensors = load_file(str(tmp_path / "best" / "model.safetensors"))
    assert tensors["head.out.weight"].shape == (2, 384)  # the task head is saved with it
    head = json.loads((tmp_path / "best" / "config.json").read_text())["_head"]
    assert head["task"] == "SST-2" and head["num_labels"] == 2


def _events(path: Path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_loses_no_evaluation(tiny_model, glue_dir, tmp_path):
    common = ["--task", "SST-2", "--model", str(tiny_model), "--data-dir", str(glue_dir),
              "--max-train-examples", "480", "--max-eval-examples", "64", "--batch-size", "8",
              "--epochs", "1", "--eval-every", "10", "--max-length", "48", "--lr", "3e-4"]
    clean = cli(*common, "--output-dir", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stderr[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "bortkit.finetune", "--no-progress", *common,
                             "--output-dir", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:  # kill mid-epoch, once two evaluations are checkpointed
        state = out / "SST-2" / "seed-0" / "checkpoint" / "state.json"
        if state.exists() and json.loads(state.read_text())["run"]["step"] >= 20:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [e for e in _events(out / "SST-2" / "seed-0" / "log.jsonl") if e["event"] == "eval"]
    assert 2 <= len(before) and before[-1]["step"] < 60  # 60 steps in the epoch

    resumed = cli(*common, "--output-dir", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clean_result = json.loads((tmp_path / "clean" / "SST-2" / "seed-0" / "result.json").read_text())
    resumed_result = json.loads((out / "SST-2" / "seed-0" / "result.json").read_text())
    # every evaluation completed before the kill is kept, and the resumed run is exact
    assert [e["step"] for e in resumed_result["evaluations"]] == \
        [e["step"] for e in clean_result["evaluations"]]
    for a, b in zip(resumed_result["evaluations"], clean_result["evaluations"]):
        assert a == b
    kept = {e["step"]: e["accuracy"] for e in resumed_result["evaluations"]}
    for e in before:
        assert kept[e["step"]] == e["accuracy"]


def test_regression_and_multi_seed_report(tiny_model, glue_dir, tmp_path):
    proc = cli("--task", "STS-B", "--model", str(tiny_model), "--data-dir", str(glue_dir),
               "--max-train-examples", "64", "--max-eval-examples", "64", "--batch-size", "16",
               "--epochs", "1", "--seeds", "0,1", "--output-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]["STS-B"]
    assert summary["spearman"]["seeds"] == 2
    assert summary["spearman"]["min"] <= summary["spearman"]["median"] <= summary["spearman"]["max"]
    assert "| STS-B | pearson |" in (tmp_path / "results.md").read_text()


def test_predict_writes_server_files(tiny_model, glue_dir, tmp_path):
    data = tmp_path / "glue" / "RTE"
    data.mkdir(parents=True)
    for split in ("train", "dev"):
        lines = (glue_dir / "RTE" / f"{split}.tsv").read_text().splitlines()[:41]
        (data / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    test_rows = [l.rsplit("\t", 1)[0] for l in lines]
    test_rows[0] = "index\tsentence1\tsentence2"
    (data / "test.tsv").write_text("\n".join(test_rows) + "\n")
    proc = cli("--task", "RTE", "--model", str(tiny_model), "--data-dir", str(tmp_path / "glue"),
               "--epochs", "1", "--batch-size", "8", "--predict", "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = (tmp_path / "o" / "RTE" / "seed-0" / "submission" / "RTE.tsv").read_text().splitlines()
    assert rows[0] == "index\tprediction" and len(rows) == 41
    assert {r.split("\t")[1] for r in rows[1:]} <= {"entailment", "not_entailment"}


def test_superglue_pair_task(tiny_model, tmp_path):
    fixtures = Path(__file__).parent / "data" / "superglue"
    data = tmp_path / "sg" / "BoolQ"
    data.mkdir(parents=True)
    shutil.copy(fixtures / "BoolQ" / "val.jsonl", data / "train.jsonl")
    shutil.copy(fixtures / "BoolQ" / "val.jsonl", data / "val.jsonl")
    shutil.copy(fixtures / "BoolQ" / "test.jsonl", data / "test.jsonl")
    proc = cli("--task", "BoolQ", "--model", str(tiny_model), "--data-dir", str(tmp_path / "sg"),
               "--epochs", "1", "--batch-size", "2", "--predict", "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = (tmp_path / "o" / "BoolQ" / "seed-0" / "submission" / "BoolQ.jsonl").read_text()
    assert all(json.loads(l)["label"] in ("true", "false") for l in lines.splitlines())


GOOD_SST2 = "sentence\tlabel\na fine film\t1\na dull film\t0\n"


@pytest.mark.parametrize("train,where,problem", [
    ("sentence\tlabel\na fine film\n", 2, "missing column(s)"),
    ("sentence\tlabel\na fine film\tgreat\n", 2, "unknown SST-2 label 'great'"),
    ("sentence\tlabel\n\t1\n", 2, "empty sentence"),
    ("sentence\tlabel\na fine film\t1\nbad \xff byte\t0\n", 3, "not valid UTF-8"),
    ("sentence\tlabel\na fine\tfilm\t1\n", 2, "too many tabs"),
])
def test_bad_tsv_is_one_line_with_file_and_line(tiny_model, tmp_path, train, where, problem):
    data = tmp_path / "SST-2"
    data.mkdir()
    (data / "train.tsv").write_bytes(train.encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    (data / "dev.tsv").write_text(GOOD_SST2)
    proc = cli("--task", "SST-2", "--model", str(tiny_model), "--data-dir", str(tmp_path),
               "--output-dir", str(tmp_path / "out"))
    errors = [l for l in proc.stderr.splitlines() if l.startswith("bortkit: error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-1500:]
    assert len(errors) == 1
    assert errors[0].startswith(f"bortkit: error: {data / 'train.tsv'}:{where}: {problem}")


def test_unknown_task_and_empty_folder(tiny_model, tmp_path):
    proc = cli("--task", "SST-3", "--model", str(tiny_model), "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "SST-3" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("--task", "SST-2", "--model", str(tiny_model), "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "empty data folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mean_pooling_head_trains_freezes_the_pooler_and_reloads(tiny_model, glue_dir, tmp_path):
    from bortkit.agora.teacher import CheckpointClassifier
    from bortkit.checkpoint import read_state
    from bortkit.finetune import FinetuneArgs, Finetuner
    from bortkit.tasks import get_task
    run = Finetuner(FinetuneArgs(task="STS-B", model=str(tiny_model), data_dir=str(glue_dir),
                                 output_dir=str(tmp_path), pooling="mean", max_steps=3,
                                 max_train_examples=32, max_eval_examples=16, batch_size=8,
                                 progress=False))
    result = run.run()
    before, after = read_state(tiny_model), read_state(tmp_path / "best")
    assert after.meta["_head"]["pooling"] == "mean" and "head.dense.weight" not in after.tensors
    for name in ("pooler.dense.weight", "pooler.dense.bias"):  # unused, so frozen
        np.testing.assert_array_equal(after.tensors[name], before.tensors[name])
    moved = after.tensors["encoder.0.ffn.ffn_1.weight"] - before.tensors["encoder.0.ffn.ffn_1.weight"]
    assert np.abs(moved).max() > 0  # the encoder did train
    reloaded = CheckpointClassifier(tmp_path / "best", get_task("STS-B"))
    scores = reloaded.logits(run.dev_examples)[:, 0]
    assert result["best_step"] == result["steps"] == 3  # one evaluation: best = last weights
    np.testing.assert_allclose(scores, run.predict(run.dev), atol=1e-5)
    with pytest.raises(Exception, match="pooling"):
        FinetuneArgs(task="STS-B", model="m", data_dir="d", output_dir="o",
                     pooling="max").validate()


def test_composite_attention_checkpoint_fine_tunes_and_keeps_its_fields(minilm_dir, glue_dir,
                                                                        tmp_path):
    """The new ModelConfig fields go through fine-tuning: a relative-position model with
    convolutional queries/keys trains, and its best checkpoint keeps the fields."""
    from bortkit.checkpoint import read_state, save_pretrained
    from bortkit.config import ModelConfig
    from bortkit.model import Model
    from bortkit.tokenizers import load_tokenizer
    config = ModelConfig(num_layers=1, num_heads=2, units=32, ffn_units=64, vocab_size=30522,
                         max_length=64, position_embedding="none",
                         attention="qk_convfixed_convq", qk_projection="convolution_depth")
    model = tmp_path / "composite"
    save_pretrained(Model(config), model, config=config, tokenizer=load_tokenizer(minilm_dir))
    result = Finetuner(FinetuneArgs(task="RTE", model=str(model), data_dir=str(glue_dir),
                                    output_dir=str(tmp_path / "run"), max_train_examples=32,
                                    max_eval_examples=16, batch_size=8, max_steps=3,
                                    max_length=32, progress=False)).run()
    assert result["steps"] == 3 and 0 <= result["best"]["accuracy"] <= 1
    best = read_state(tmp_path / "run" / "best").config
    assert (best.attention, best.position_embedding, best.qk_projection) == \
        ("qk_convfixed_convq", "none", "convolution_depth")


def test_adapter_checkpoint_is_refused_in_one_line(minilm_dir, glue_dir, tmp_path):
    from bortkit.checkpoint import save_pretrained
    from bortkit.config import ModelConfig
    from bortkit.model import Model
    from bortkit.tokenizers import load_tokenizer
    config = ModelConfig(num_layers=1, num_heads=2, units=32, ffn_units=64, vocab_size=30522,
                         max_length=64, adapter="low_rank", num_tasks=2, adapter_units=8)
    model = tmp_path / "adapters"
    save_pretrained(Model(config), model, config=config, tokenizer=load_tokenizer(minilm_dir))
    proc = cli("--task", "RTE", "--model", str(model), "--data-dir", str(glue_dir),
               "--output-dir", str(tmp_path / "out"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr == (f"bortkit: error: --model {model}: the checkpoint has low_rank adapters "
                           f"for 2 tasks, which need a task id; train it with python -m "
                           f"bortkit.multitask (one or more tasks)\n")
    assert not (tmp_path / "out").exists()

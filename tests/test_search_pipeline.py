"""One pipeline on tiny settings: search -> distillation -> fine-tuning -> Hugging Face export.

The search's ``best/config.json`` is the student of ``run_pretraining_distillation.sh``, its
``final/`` the model of ``bortkit.finetune``, whose ``best/`` exports to a directory that
``transformers`` loads and that reproduces bortkit's hidden states.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_search_cli import SPACE, make_teacher

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "bortkit" / "resources" / "corpus"


def run(*args, env=None, timeout=900):
    proc = subprocess.run([*args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{args[:3]}: {proc.stderr[-3000:]}"
    return proc


@pytest.mark.slow
def test_search_distill_finetune_export(tmp_path, minilm_dir):
    teacher = make_teacher(tmp_path / "teacher", minilm_dir)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    search_out, distill_out, finetune_out = (tmp_path / n for n in ("search", "distill", "ft"))
    # 1. search a tiny space
    run(sys.executable, "-m", "bortkit.search", "--no-progress", "--max-params", "2.5M",
        "--space", str(space), "--teacher", str(teacher), "--steps-per-candidate", "3",
        "--epsilon", "11", "--batch-size", "4", "--max-length", "32", "--eval-batches", "2",
        "--latency", "flops", "--output-dir", str(search_out))
    # 2. its best/ is the distillation student: 20 steps on a slice of the bundled text
    for name, lines in (("train.txt", 400), ("heldout.txt", 100)):
        text = (CORPUS / name).read_text(encoding="utf-8").splitlines()[:lines]
        (tmp_path / name).write_text("\n".join(text) + "\n", encoding="utf-8")
    run("bash", "scripts/run_pretraining_distillation.sh", "1", str(tmp_path / "train.txt"),
        str(tmp_path / "heldout.txt"), str(teacher), "--",
        "--student-config", str(search_out / "best" / "config.json"), "--max-steps", "20",
        "--batch-size", "4", "--eval-every", "0", "--eval-batches", "2",
        "--checkpoint-every", "0", "--no-progress", "--output-dir", str(distill_out),
        env={"PYTHON": sys.executable, "MAX_SEQ_LENGTH": "32"})
    # 3. its final/ is the fine-tuning model: 20 steps of SST-2
    run(sys.executable, "-m", "bortkit.finetune", "--task", "SST-2",
        "--model", str(distill_out / "final"), "--data-dir", str(REPO.parent / "shared" / "data"
                                                                   / "glue"),
        "--max-steps", "20", "--batch-size", "8", "--max-length", "32",
        "--max-train-examples", "160", "--max-eval-examples", "32", "--eval-every", "10",
        "--output-dir", str(finetune_out), "--no-progress")
    best = finetune_out / "SST-2" / "seed-0" / "best"
    # 4. its best/ exports to Hugging Face, and transformers loads it as it is
    import bortkit
    from bortkit.checkpoint import export_huggingface
    from bortkit.config import load_config
    searched = load_config(search_out / "best" / "config.json")
    model = bortkit.from_pretrained(best)
    assert (model.config.num_layers, model.config.units, model.config.ffn_units) == \
        (searched.num_layers, searched.units, searched.ffn_units)
    export_huggingface(model, tmp_path / "hf")
    import torch
    import transformers
    hf = transformers.AutoModel.from_pretrained(tmp_path / "hf").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    batch = tokenizer(["A man plays a guitar.", "Someone plays music loudly."], padding=True,
                      return_tensors="pt")
    with torch.no_grad():
        theirs = hf(**batch).last_hidden_state.numpy()
    ours = model.encode(batch["input_ids"].numpy(), batch["token_type_ids"].numpy(),
                        batch["attention_mask"].numpy()).last_hidden_state
    real = batch["attention_mask"].numpy().astype(bool)
    np.testing.assert_allclose(ours[real], theirs[real], atol=1e-4)

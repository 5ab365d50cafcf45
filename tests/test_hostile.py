"""Hostile but fair input to every entry point and the Python API (issue 11).

For every case of the table below: a non-zero exit, exactly one ``bortkit: error:`` line that
names the option or file at fault, no traceback, and nothing under the sandbox changed
(no file written, replaced or removed, no empty folder left behind). Each entry point runs in
one child process (``tests/hostile_child.py``) that calls its ``main(argv)`` through
``run_cli`` case after case; the children run side by side.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bortkit.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("hostile_child.py")
NUMBERS = {"zero": "0", "negative": "-1", "non-number": "abc"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, tiny_model, glue_dir):
    """Inputs the cases break: a tiny model, a Hugging Face folder without weights, a small
    SST-2, pretraining shards (whole, truncated, missing a file), finished and started runs,
    a file where folders belong, a folder held by a live process, a read-only mount."""
    root = tmp_path_factory.mktemp("hostile")
    s = root / "template"
    shutil.copytree(tiny_model, s / "model")
    (s / "hf-no-weights").mkdir()
    (s / "hf-no-weights" / "config.json").write_text(json.dumps(
        {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1}))
    for split in ("train", "dev"):
        lines = (glue_dir / "SST-2" / f"{split}.tsv").read_text().splitlines()[:41]
        (s / "glue" / "SST-2").mkdir(parents=True, exist_ok=True)
        (s / "glue" / "SST-2" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    corpus = REPO / "bortkit" / "resources" / "corpus" / "train.txt"
    (s / "corpus.txt").write_text("\n".join(corpus.read_text().splitlines()[:200]) + "\n")
    from bortkit.data.pretraining import create_pretraining_data
    create_pretraining_data([str(s / "corpus.txt")], str(s / "model"), s / "shards",
                            max_seq_length=32, shard_size=40, progress=False)
    shard = sorted(p for p in (s / "shards").iterdir() if p.is_dir() and
                   (p / "input_ids.npy").exists())[-1].name
    shutil.copytree(s / "shards", s / "shards-truncated")
    ids = s / "shards-truncated" / shard / "input_ids.npy"
    ids.write_bytes(ids.read_bytes()[:ids.stat().st_size // 2])
    shutil.copytree(s / "shards", s / "shards-missing")
    (s / "shards-missing" / shard / "lengths.npy").unlink()
    config = ModelConfig(num_layers=1, num_heads=2, units=32, ffn_units=64, vocab_size=30522,
                         max_length=64)
    (s / "student.json").write_text(json.dumps(config.to_dict()))
    (s / "afile").write_text("not a folder\n")
    (s / "not-json.json").write_text("{oops\n")
    (s / "emptydir").mkdir()
    seed = s / "runs" / "finished" / "SST-2" / "seed-0"
    seed.mkdir(parents=True)
    (seed / "result.json").write_text("{}\n")
    started = s / "runs" / "started" / "SST-2" / "seed-0" / "checkpoint"
    started.mkdir(parents=True)
    (started / "state.json").write_text(json.dumps(
        {"args": {"task": "SST-2", "batch_size": 16, "learning_rate": 5e-5, "max_length": 32}}))
    (s / "distilled" / "final").mkdir(parents=True)
    (s / "distilling" / "checkpoint").mkdir(parents=True)
    (s / "data-out").mkdir()
    (s / "data-out" / "meta.json").write_text("{}\n")
    (s / ".held.bortkit-lock").write_text(f"{os.getpid()}\n")  # this live process holds it
    (s / "agora-started").mkdir()
    (s / "agora-started" / "agora_state.json").write_text("{}\n")
    (s / "export-existing").mkdir()
    (s / "predict-in.txt").write_text("a fine film\n")
    (s / "predict-out.jsonl").write_text("{}\n")
    readonly = root / "ro"
    readonly.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs",
                              str(readonly)], capture_output=True).returncode == 0
    yield {"template": s, "root": root, "readonly": readonly if mounted else None}
    if mounted:
        subprocess.run(["umount", str(readonly)], capture_output=True)


def _numeric(base, options, values=NUMBERS, expect=None):
    """One case per (option, bad value): the option is appended (argparse keeps the last)."""
    out = []
    for option, extra in options.items():
        cases = dict(values)
        cases.update(extra)
        for label, value in cases.items():
            out.append((f"{option}={label}", base + [option, value], expect or option))
    return out


def table(s: Path, readonly) -> dict:
    """module -> [(case id, argv, text the error line must contain)]."""
    m, g = str(s / "model"), str(s / "glue")
    ft = ["--task", "SST-2", "--model", m, "--data-dir", g, "--output-dir", str(s / "out/ft"),
          "--max-train-examples", "8", "--max-eval-examples", "8", "--max-steps", "1",
          "--batch-size", "4", "--max-length", "32", "--no-progress"]
    finetune = _numeric(ft, {
        "--learning-rate": {"nan": "nan", "inf": "inf"},
        "--batch-size": {"fraction": "1.5"},
        "--max-length": {"above the position table": "1024", "huge": "1000000000"},
        "--epochs": {}, "--accumulate": {},
        "--max-steps": {}, "--eval-batch-size": {}, "--max-train-examples": {},
        "--max-eval-examples": {},
    }) + _numeric(ft, {"--warmup-ratio": {"huge": "1e6"}, "--weight-decay": {},
                       "--max-grad-norm": {}, "--eval-every": {}, "--early-stopping": {},
                       "--seed": {"fraction": "0.5"}},
                  values={"negative": "-1", "non-number": "abc"}) + [
        ("model missing", ft + ["--model", str(s / "nope")], "nope"),
        ("model is a text file", ft + ["--model", str(s / "afile")], "afile"),
        ("model folder empty", ft + ["--model", str(s / "emptydir")], "emptydir"),
        ("model HF without weights", ft + ["--model", str(s / "hf-no-weights")],
         "hf-no-weights"),
        ("data-dir missing", ft + ["--data-dir", str(s / "nope")], "nope"),
        ("data-dir is a file", ft + ["--data-dir", str(s / "afile")], "afile"),
        ("tokenizer missing", ft + ["--tokenizer", str(s / "nope")], "nope"),
        ("output-dir is a file", ft + ["--output-dir", str(s / "afile")], "afile"),
        ("output-dir under a file", ft + ["--output-dir", str(s / "afile/x")], "afile"),
        ("task unknown", ft + ["--task", "NOPE"], "NOPE"),
        ("optimizer unknown", ft + ["--optimizer", "sgd2"], "--optimizer"),
        ("pooling unknown", ft + ["--pooling", "max"], "--pooling"),
        ("seeds not numbers", ft + ["--seeds", "a,b"], "--seeds"),
        ("seeds repeated", ft + ["--seeds", "1,1"], "--seeds"),
        ("unknown option", ft + ["--learning-rte", "1e-4"], "--learning-rte"),
        ("predict without a test file", ft + ["--predict"], "test"),
        ("finished run", ft + ["--output-dir", str(s / "runs/finished")], "--overwrite"),
        ("resume without checkpoint", ft + ["--resume"], "--resume"),
        ("resume with other settings", ft + ["--output-dir", str(s / "runs/started"),
                                             "--resume", "--batch-size", "8"], "--batch-size"),
    ]
    ds = ["--train", str(s / "shards"), "--student-config", str(s / "student.json"),
          "--output-dir", str(s / "out/ds"), "--batch-size", "2", "--max-steps", "1",
          "--no-progress", "--check-only"]
    distill = _numeric(ds, {
        "--batch-size": {}, "--max-steps": {}, "--learning-rate": {},
        "--mlm-probability": {"one": "1.5"},
        "--max-predictions": {"above the length": "1000"}, "--accumulate": {},
    }) + _numeric(ds, {"--warmup-ratio": {"huge": "2"}},
                  values={"negative": "-1", "non-number": "abc"}) + [
        ("train missing", ds + ["--train", str(s / "nope")], "nope"),
        ("train is a file", ds + ["--train", str(s / "afile")], "afile"),
        ("train shard truncated", ds + ["--train", str(s / "shards-truncated")],
         "input_ids.npy"),
        ("train shard file missing", ds + ["--train", str(s / "shards-missing")],
         "lengths.npy"),
        ("test shards truncated", ds + ["--test", str(s / "shards-truncated")],
         "input_ids.npy"),
        ("student config missing", ds + ["--student-config", str(s / "nope.json")], "nope"),
        ("student config not JSON", ds + ["--student-config", str(s / "not-json.json")],
         "not-json.json"),
        ("teacher missing", ds + ["--teacher", str(s / "nope")], "nope"),
        ("output-dir is a file", ds + ["--output-dir", str(s / "afile")], "afile"),
        ("finished run", ds + ["--output-dir", str(s / "distilled")], "--overwrite"),
        ("started run", ds + ["--output-dir", str(s / "distilling")], "--resume"),
        ("resume without checkpoint", ds + ["--resume"], "--resume"),
        ("held by a live run", ds + ["--output-dir", str(s / "held")], "pid"),
    ]
    cpd_base = ["--input", str(s / "corpus.txt"), "--tokenizer", m, "--output-dir",
                str(s / "out/data"), "--no-progress"]
    create = _numeric(cpd_base, {"--max-length": {"too short": "2"}, "--shard-size": {},
                                 "--workers": {}}) + _numeric(
        cpd_base, {"--seed": {"fraction": "0.5"}}, values={"negative": "-1", "non-number": "x"}) + [
        ("input missing", cpd_base + ["--input", str(s / "nope.txt")], "nope.txt"),
        ("tokenizer missing", cpd_base + ["--tokenizer", str(s / "nope")], "nope"),
        ("output-dir is a file", cpd_base + ["--output-dir", str(s / "afile")], "afile"),
        ("output-dir holds data", cpd_base + ["--output-dir", str(s / "data-out")],
         "data-out"),
        ("output-dir held by a live run", cpd_base + ["--output-dir", str(s / "held")],
         "pid"),
    ]
    info = _numeric(["bort"], {"--max-length": {"above the position table": "4096"}}) + [
        ("missing path", [str(s / "nope")], "nope"),
        ("HF without weights", [str(s / "hf-no-weights")], "hf-no-weights"),
        ("unknown preset", ["bortt"], "bortt"),
        ("config not JSON", [str(s / "not-json.json")], "not-json.json"),
    ]
    sr = ["--output-dir", str(s / "out/search"), "--no-progress", "--latency", "flops"]
    search = _numeric(sr, {"--max-length": {"absurd": "100000"}, "--batch-size": {},
                           "--steps-per-candidate": {}, "--epsilon": {},
                           "--teacher-mlm-lr": {"nan": "nan", "inf": "inf"}}) + [
        ("space missing", sr + ["--space", str(s / "nope.yaml")], "nope.yaml"),
        ("teacher missing", sr + ["--teacher", str(s / "nope")], "nope"),
        ("corpus missing", sr + ["--corpus", str(s / "nope.txt")], "nope.txt"),
        ("output-dir is a file", sr + ["--output-dir", str(s / "afile")], "afile"),
    ]
    sw = ["--task", "SST-2", "--model", m, "--data-dir", g, "--study", "s", "--n-trials", "1",
          "--output-dir", str(s / "out/sweep")]
    sweep = _numeric(sw, {"--n-trials": {}}) + [
        ("model missing", sw + ["--model", str(s / "nope")], "nope"),
        ("data-dir missing", sw + ["--data-dir", str(s / "nope")], "nope"),
        ("space missing", sw + ["--space", str(s / "nope.yaml")], "nope.yaml"),
        ("output-dir is a file", sw + ["--output-dir", str(s / "afile")], "afile"),
    ]
    ag = ["--task", "SST-2", "--student", m, "--teacher", m, "--data-dir", g,
          "--output-dir", str(s / "out/agora"), "--theta", "learning_rate=1e-4",
          "--budget", "10", "--no-progress"]
    agora = _numeric(ag, {"--budget": {}, "--per-error": {}, "--eval-fraction": {"one": "1"}}) \
        + _numeric(ag, {"--max-generated": {}, "--replays": {}},
                   values={"negative": "-1", "non-number": "abc"}) + [
        ("student too short for a θ", ag + ["--theta", "max_length=1024"], "--max-length"),
        ("teacher without a task head", ag, "no task head"),
        ("output-dir is a file", ag + ["--output-dir", str(s / "afile")], "afile"),
        ("started run", ag + ["--output-dir", str(s / "agora-started")], "--resume"),
    ]
    pr = ["--model", m, "--input", str(s / "predict-in.txt"), "--output",
          str(s / "out/pred.jsonl"), "--no-progress"]
    predict = _numeric(pr, {"--batch-size": {},
                            "--max-length": {"too short": "2"}}) + [
        ("output exists", pr + ["--output", str(s / "predict-out.jsonl")], "predict-out"),
        ("model missing", pr + ["--model", str(s / "nope")], "nope"),
        ("input missing", pr + ["--input", str(s / "nope.txt")], "nope.txt"),
    ]
    export = [("output exists", ["--model", m, "--output-dir", str(s / "export-existing")],
               "export-existing"),
              ("model missing", ["--model", str(s / "nope"), "--output-dir",
                                 str(s / "out/export")], "nope"),
              ("unknown format", ["--model", m, "--format", "tflite", "--output-dir",
                                  str(s / "out/export")], "--format"),
              ("quantize without onnx", ["--model", m, "--quantize", "int8", "--output-dir",
                                         str(s / "out/export")], "--quantize"),
              ("unknown quantization", ["--model", m, "--format", "onnx", "--quantize", "int4",
                                        "--output-dir", str(s / "out/export")], "--quantize")]
    convert = [("missing folder", [str(s / "nope")], "nope"),
               ("a file", [str(s / "afile")], "afile")]
    api = [(name, [f"api:{name}"], text) for name, text in (
        ("encode-token-type-2", "token_type_ids"), ("encode-token-type-99", "token_type_ids"),
        ("encode-token-type-neg", "token_type_ids"), ("encode-empty-batch", "input_ids"),
        ("encode-zero-length", "input_ids"), ("encode-id-too-big", "input_ids"),
        ("encode-id-negative", "input_ids"), ("encode-3d", "input_ids"),
        ("encode-float-ids", "input_ids"), ("encode-strings", "input_ids"),
        ("encode-mask-2", "attention_mask"), ("encode-mask-shape", "attention_mask"),
        ("encode-too-long", "sequence length"), ("finetune-api-max-length", "--max-length"),
        ("from-pretrained-missing", "nope"), ("from-pretrained-hf-no-weights", "model"))]
    if readonly is not None:
        finetune.append(("output-dir read-only", ft + ["--output-dir", str(readonly / "x")],
                         str(readonly)))
        distill.append(("output-dir read-only", ds + ["--output-dir", str(readonly / "x")],
                        str(readonly)))
        create.append(("output-dir read-only", cpd_base + ["--output-dir",
                                                           str(readonly / "x")], str(readonly)))
        search.append(("output-dir read-only", sr + ["--output-dir", str(readonly / "x")],
                       str(readonly)))
    return {"bortkit.finetune.__main__": finetune, "bortkit.distill.__main__": distill,
            "bortkit.data.create_pretraining_data": create, "bortkit.info": info,
            "bortkit.search.__main__": search, "bortkit.sweep.__main__": sweep,
            "bortkit.agora.__main__": agora, "bortkit.predict": predict,
            "bortkit.export.__main__": export, "bortkit.data.convert_shards": convert, None: api}


def _run_children(jobs: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO), os.environ.get("PYTHONPATH", "")])}
    procs = {}
    for module, (sandbox, cases) in jobs.items():
        job = {"module": module, "sandbox": str(sandbox),
               "cases": [{"id": i, "argv": argv} for i, argv, _ in cases]}
        path = Path(sandbox).with_suffix(".job.json")
        path.write_text(json.dumps(job))
        with open(path) as stdin:
            procs[module] = subprocess.Popen([sys.executable, str(CHILD)], stdin=stdin,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True, env=env)
    results = {}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{module} child died ({proc.returncode}):\n{err[-3000:]}"
        results[module] = json.loads(out)
    return results


def test_every_bad_input_gets_one_line_and_changes_nothing(sandbox):
    jobs = {}
    for index, (module, cases) in enumerate(table(sandbox["template"], sandbox["readonly"])
                                            .items()):
        copy = sandbox["root"] / f"child-{index}"  # each child breaks its own copy
        shutil.copytree(sandbox["template"], copy, symlinks=True)
        cases = [(i, [a.replace(str(sandbox["template"]), str(copy)) for a in argv],
                  text.replace(str(sandbox["template"]), str(copy))) for i, argv, text in cases]
        jobs[module] = (copy, cases)
    total = sum(len(cases) for _, cases in jobs.values())
    assert total >= 100, total
    results = _run_children(jobs)
    failures = []
    for module, (_, cases) in jobs.items():
        for case_id, argv, text in cases:
            r = results[module][case_id]
            lines = [line for line in r["stderr"].splitlines()
                     if line.startswith("bortkit: error:")]
            problems = []
            if r["traceback"] or "Traceback" in r["stderr"]:
                problems.append("traceback: " + (r["traceback"] or r["stderr"])[-600:])
            if not r["code"]:
                problems.append("exit status 0")
            if len(lines) != 1:
                problems.append(f"{len(lines)} error lines: {r['stderr'][-400:]!r}")
            elif text not in lines[0]:
                problems.append(f"the line does not name {text!r}: {lines[0]}")
            if r["changed"]:
                problems.append(f"changed {r['changed'][:5]}")
            if problems:
                failures.append(f"{module or 'api'} [{case_id}]: " + "; ".join(problems))
    print(f"hostile-input table: {total} cases, {total - len(failures)} answered correctly")
    assert not failures, f"{len(failures)} of {total} cases failed:\n" + "\n".join(failures)


@pytest.mark.parametrize("env,expected", [
    ({"BORTKIT_ISA": "bogus"},
     "BORTKIT_ISA must be one of scalar, avx2, avx512, amx, got 'bogus'"),
    ({"BORTKIT_MARCH": "nonsense-arch"}, "nonsense-arch"),  # g++'s quotes follow the locale
])
def test_bad_kernel_environment_is_one_line(tmp_path, env, expected):
    """The fused kernels' environment variables: an unknown tier, or a baseline -march the
    compiler refuses, is one `bortkit: error:` line naming it, exit 2, no traceback."""
    command = ["status"] if "BORTKIT_ISA" in env else ["build"]
    proc = subprocess.run([sys.executable, "-m", "bortkit.ops", *command], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "BORTKIT_CACHE": str(tmp_path), **env})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bortkit: error: ")
    assert expected in proc.stderr and ("BORTKIT_ISA" in env or "-march" in proc.stderr)

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
from bortkit.io import OLD, STAGING

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
    round_two_inputs(s)
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
        ("unknown tracker", ft + ["--report-to", "bogus"], "--report-to"),
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
        ("unknown loss preset", ds + ["--loss-preset", "bogus"], "--loss-preset"),
        ("unknown tracker", ds + ["--report-to", "bogus"], "--report-to"),
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
                           "--steps-per-candidate": {"zero": "-2"}, "--epsilon": {},
                           "--teacher-mlm-lr": {"nan": "nan", "inf": "inf"}}) + [
        ("space missing", sr + ["--space", str(s / "nope.yaml")], "nope.yaml"),
        ("teacher missing", sr + ["--teacher", str(s / "nope")], "nope"),
        ("corpus missing", sr + ["--corpus", str(s / "nope.txt")], "nope.txt"),
        ("heldout missing", sr + ["--heldout", str(s / "nope.txt")], "nope.txt"),
        ("output-dir is a file", sr + ["--output-dir", str(s / "afile")], "afile"),
        ("unknown regime", sr + ["--regime", "bogus"], "--regime"),
        ("unknown error term", sr + ["--error", "bogus"], "--error"),
    ]
    sw = ["--task", "SST-2", "--model", m, "--data-dir", g, "--study", "s", "--n-trials", "1",
          "--output-dir", str(s / "out/sweep")]
    sweep = _numeric(sw, {"--n-trials": {}}) + _numeric(
        sw, {"--sampler-seed": {"huge": str(2 ** 40)}},
        values={"negative": "-1", "non-number": "abc"}) + [
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
    more = round_two_cases(s, readonly)
    finetune += more.pop("finetune")
    distill += more.pop("distill")
    info += more.pop("info")
    search += more.pop("search")
    sweep += more.pop("sweep")
    agora += more.pop("agora")
    export += more.pop("export")
    convert += more.pop("convert")
    predict += more.pop("predict")
    api += more.pop("api")
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
            "bortkit.export.__main__": export, "bortkit.data.convert_shards": convert,
            "bortkit.prune.__main__": more.pop("prune"),
            "bortkit.multitask.__main__": more.pop("multitask"),
            "bortkit.analyze.__main__": more.pop("analyze"), None: api}


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
    assert total >= 400, total
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
            elif STAGING in lines[0] or OLD in lines[0]:  # never an internal name
                problems.append(f"the line names a staging path: {lines[0]}")
            if r["changed"]:
                problems.append(f"changed {r['changed'][:5]}")
            if problems:
                failures.append(f"{module or 'api'} [{case_id}]: " + "; ".join(problems))
    print(f"hostile-input table: {total} cases, {total - len(failures)} answered correctly")
    assert not failures, f"{len(failures)} of {total} cases failed:\n" + "\n".join(failures)


@pytest.mark.parametrize("argv,expected", [
    (["bogus"], "unknown command 'bogus'"),
    (["search", "--regime", "bogus"], "argument --regime: invalid choice: 'bogus'"),
])
def test_bad_console_script_command_is_one_line(argv, expected):
    """The ``bortkit`` console script: an unknown command, or a command's bad option, is one
    ``bortkit: error:`` line, exit 2, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "bortkit", *argv], capture_output=True,
                          text=True, timeout=300)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("bortkit: error:")]
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


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


# ---------------------------------------------------------------------------------- round two
# Issue 26: configs and int8 records (one schema), exports that hold every feature they accept
# or refuse it, output folders apart from their source, data-file paths inside their folder,
# numeric labels read once, bounded YAML.

LABEL_FILES = {  # name -> (file contents, the text the error line must hold)
    "nan.csv": ("text,label\na,0\nb,nan\n", "'nan' is not a finite number"),
    "NaN-upper.csv": ("text,label\na,0\nb,NaN\n", "'NaN' is not a finite number"),
    "inf.csv": ("text,label\na,0\nb,inf\n", "'inf' is not a finite number"),
    "minus-inf.csv": ("text,label\na,0\nb,-inf\n", "'-inf' is not a finite number"),
    "1e400.csv": ("text,label\na,0\nb,1e400\n", "'1e400' is not a finite number"),
    "1e400.tsv": ("text\tlabel\na\t0\nb\t1e400\n", "'1e400' is not a finite number"),
    "nan-literal.jsonl": ('{"text": "a", "label": 0}\n{"text": "b", "label": NaN}\n',
                          "'nan' is not a finite number"),
    "infinity-literal.jsonl": ('{"text": "a", "label": 0}\n{"text": "b", "label": -Infinity}\n',
                               "'-inf' is not a finite number"),
    "1e400.jsonl": ('{"text": "a", "label": 0}\n{"text": "b", "label": 1e400}\n',
                    "'inf' is not a finite number"),
    "huge-label.jsonl": ('{"text": "a", "label": 0}\n{"text": "b", "label": ' + "7" * 5000
                         + "}\n", "more than 4300 digits"),
    "huge-text.jsonl": ('{"text": ' + "7" * 4400 + ', "label": 0}\n{"text": "b", "label": 1}\n',
                        "more than 4300 digits"),
    "cr-only.csv": ("text,label\ra,0\rb,1\r", "carriage return"),
    "cr-only.tsv": ("text\tlabel\ra\t0\rb\t1\r", "carriage return"),
    "stray-cr.jsonl": ('{"text": "a", "label": 0}\n{"text": "b\r", "label": 1}\n',
                       "carriage return"),
    "one-class.csv": ("text,label\na,1\nb,1.0\nc,01\nd,1e0\n", "single value ('1')"),
    "one-class.jsonl": ('{"text": "a", "label": 1}\n{"text": "b", "label": 1.0}\n'
                        '{"text": "c", "label": "1"}\n', "single value ('1')"),
    "half.csv": ("text,label\na,0\nb,0.5\n", "--task-type"),
}

CONFIGS = {  # name -> (changes to a valid config, the text the error line must hold)
    "max-length-1e12": ({"max_length": 10 ** 12}, "max_length"),
    "max-length-float": ({"max_length": 1e12}, "max_length"),
    "max-length-1e400": ('1e400', "max_length"),
    "max-length-zero": ({"max_length": 0}, "max_length"),
    "use-pooler-no": ({"use_pooler": "no"}, "use_pooler"),
    "use-pooler-zero": ({"use_pooler": 0}, "use_pooler"),
    "use-pooler-null": ({"use_pooler": None}, "use_pooler"),
    "offset-beyond": ({"position_offset": 200}, "position_offset (200) must be < max_length"),
    "offset-equal": ({"position_offset": 64}, "position_offset (64) must be < max_length"),
    "offset-negative": ({"position_offset": -1}, "position_offset"),
    "eps-nan": ('NaN', "layer_norm_eps"),
    "eps-infinity": ('Infinity', "layer_norm_eps"),
    "eps-zero": ({"layer_norm_eps": 0}, "layer_norm_eps"),
    "eps-huge": ({"layer_norm_eps": 2}, "layer_norm_eps"),
    "dropout-nan": ('dropout-NaN', "dropout"),
    "dropout-negative": ({"dropout": -0.1}, "dropout"),
    "dropout-string": ({"dropout": "0.1"}, "dropout"),
    "attention-dropout-one": ({"attention_dropout": 1}, "attention_dropout"),
    "layers-string": ({"num_layers": "abc"}, "num_layers"),
    "layers-fraction": ({"num_layers": 2.5}, "num_layers"),
    "layers-bool": ({"num_layers": True}, "num_layers"),
    "layers-huge": ({"num_layers": 10 ** 7}, "num_layers"),
    "heads-zero": ({"num_heads": 0}, "num_heads"),
    "units-indivisible": ({"units": 33}, "units (33) must be divisible"),
    "vocab-huge": ({"vocab_size": 10 ** 10}, "vocab_size"),
    "vocab-negative": ({"vocab_size": -5}, "vocab_size"),
    "ffn-huge": ({"ffn_units": 10 ** 9}, "ffn_units"),
    "embed-zero": ({"embed_size": 0}, "embed_size"),
    "types-negative": ({"type_vocab_size": -1}, "type_vocab_size"),
    "types-huge": ({"type_vocab_size": 10 ** 9}, "type_vocab_size"),
    "pad-beyond-vocab": ({"pad_token_id": 30522}, "pad_token_id"),
    "activation-unknown": ({"activation": "swish"}, "activation"),
    "positions-unknown": ({"position_embedding": "rotary"}, "position_embedding"),
    "norm-unknown": ({"layer_norm_position": "middle"}, "layer_norm_position"),
    "attention-spaces": ({"attention": "qk convq"}, "attention"),
    "adapter-unknown": ({"adapter": "pals2"}, "adapter"),
    "tasks-zero": ({"num_tasks": 0}, "num_tasks"),
    "adapter-units-alone": ({"adapter_units": 16}, "adapter_units"),
    "low-rank-list": ({"low_rank": [1]}, "low_rank"),
    "low-rank-layer": ({"low_rank": {"encoder.5.ffn.ffn_1": 4}}, "low_rank"),
    "low-rank-zero": ({"low_rank": {"encoder.0.ffn.ffn_1": 0}}, "low_rank"),
    "low-rank-huge": ({"low_rank": {"encoder.0.ffn.ffn_1": 1000}}, "low_rank"),
    "unknown-field": ({"hidden_units": 32}, "hidden_units"),
    "relative-zero": ({"relative_positions_each_dir": 0}, "relative_positions_each_dir"),
    "kernel-negative": ({"projection_kernel_each_dir": -1}, "projection_kernel_each_dir"),
    "not-an-object": ([], "JSON object"),
    "huge-integer": ("digits", "not valid JSON"),
}

INT8_RECORDS = {  # name -> (changes to the record, or a raw text; the error line's text)
    "other-mxnet": ({"mxnet": "1.8.0"}, "MXNet '1.8.0'"),
    "no-mxnet": ({"mxnet": None}, "MXNet None"),
    "threshold-nan": ("nan", "threshold of"),
    "threshold-infinity": ("infinity", "threshold of"),
    "threshold-one": ([1.0], "threshold of"),
    "threshold-string": ("abc", "threshold of"),
    "threshold-reversed": ("reversed", "threshold of"),
    "threshold-zero": ([0, 0], "threshold of"),
    "threshold-1e38": ([-1e38, 1e38], "threshold of"),
    "threshold-max-1e38": ([0, 1e38], "threshold of"),
    "threshold-bool": ([False, True], "threshold of"),
    "threshold-null": ([None, 1], "threshold of"),
    "threshold-three": ([0, 1, 2], "threshold of"),
    "threshold-mapping": ({"min": 0, "max": 1}, "threshold of"),
    "thresholds-empty": ({"thresholds": {}}, "not an int8 record"),
    "thresholds-list": ({"thresholds": []}, "not an int8 record"),
    "other-format": ({"format": "onnx-int8"}, "not an int8 record"),
    "unknown-key": ({"extra": 1}, "unknown key(s) extra"),
    "dense-unknown": ({"dense": "avx2"}, "dense is 'avx2'"),
    "activation-range": ({"ffn_activation_range": 1.0}, "ffn_activation_range"),
    "sentences-negative": ({"calibration_sentences": -1}, "calibration_sentences"),
    "a-list": ("[]", "not an int8 record"),
    "not-json": ("{", "cannot read JSON"),
    "huge-integer": ("digits", "cannot read JSON"),
}

SHARDS_V1 = {  # name -> (meta.json, or a raw text; the error line's text)
    "escape": ({"shards": [{"file": "../../victim/shard-x.npz", "num_examples": 2}]},
               "must be a name inside the data folder"),
    "absolute": ({"shards": [{"file": "VICTIM", "num_examples": 2}]},
                 "must be a name inside the data folder"),
    "dot-dot": ({"shards": [{"file": "..", "num_examples": 2}]}, "inside the data folder"),
    "sub-folder": ({"shards": [{"file": "sub/shard-x.npz", "num_examples": 2}]},
                   "inside the data folder"),
    "backslash": ({"shards": [{"file": "..\\\\shard-x.npz", "num_examples": 2}]},
                  "inside the data folder"),
    "no-file": ({"shards": [{"num_examples": 2}]}, "'file'"),
    "file-number": ({"shards": [{"file": 5, "num_examples": 2}]}, "inside the data folder"),
    "entry-string": ({"shards": ["shard-x.npz"]}, "shards[0]"),
    "shards-mapping": ({"shards": {}}, "shards must be a non-empty list"),
    "shards-empty": ({"shards": []}, "shards must be a non-empty list"),
    "no-length": ({"max_seq_length": None}, "max_seq_length"),
    "examples-negative": ({"shards": [{"file": "shard-x.npz", "num_examples": -1}]},
                          "num_examples"),
    "examples-string": ({"shards": [{"file": "shard-x.npz", "num_examples": "2"}]},
                        "num_examples"),
    "file-missing": ({"shards": [{"file": "nope.npz", "num_examples": 2}]},
                     "shard file does not exist"),
    "meta-list": ("[]", "format must be"),
    "huge-integer": ("digits", "meta.json"),
}


def _write_json_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _digits(key: str) -> str:
    return '{"' + key + '": ' + "9" * 5000 + "}"


def _small_model(s: Path, name: str, meta=None, **changes) -> Path:
    from bortkit.checkpoint import save_pretrained
    from bortkit.model import Model
    config = ModelConfig(num_layers=1, num_heads=2, units=32, ffn_units=64, vocab_size=1000,
                         max_length=128, **changes)
    save_pretrained(Model(config), s / name, config=config, source=s / "model", meta=meta)
    return s / name


def _poison(path: Path, tensor: str, value: float) -> None:
    from safetensors.numpy import load_file, save_file
    tensors = load_file(str(path / "model.safetensors"))
    tensors[tensor] = tensors[tensor].copy()
    tensors[tensor].flat[3] = value
    save_file(tensors, str(path / "model.safetensors"))


def round_two_inputs(s: Path) -> None:
    """The inputs of the round-two cases, written into the sandbox template."""
    import numpy as np
    import bortkit
    # models: NaN and infinite weights, a low-rank one, PALs and plain multi-task ones
    _poison(_small_model(s, "model-nan"), "embeddings.word_embed.weight", float("nan"))
    _poison(_small_model(s, "model-inf"), "encoder.0.ffn.ffn_1.bias", float("inf"))
    _small_model(s, "model-lowrank", low_rank={"encoder.0.ffn.ffn_1": 8})
    multitask = {"_multitask": {"tasks": ["RTE", "MRPC"], "num_labels": [2, 2]}}
    _small_model(s, "model-pals", meta=multitask, adapter="pals", num_tasks=2,
                 adapter_units=16, adapter_heads=2)
    _small_model(s, "model-mt", meta=multitask)
    (s / "export-foreign").mkdir()
    (s / "export-foreign" / "config.json").write_text("{}\n")
    (s / "export-foreign" / "notes.txt").write_text("the user's own notes\n")
    # configs
    base = json.loads((s / "student.json").read_text())
    for name, (changes, _) in CONFIGS.items():
        path = s / "configs" / f"{name}.json"
        if changes == "digits":
            _write_json_text(path, _digits("num_layers"))
        elif isinstance(changes, str):
            raw = {"1e400": '"max_length": 1e400', "NaN": '"layer_norm_eps": NaN',
                   "Infinity": '"layer_norm_eps": Infinity',
                   "dropout-NaN": '"dropout": NaN'}[changes]
            _write_json_text(path, json.dumps(base)[:-1] + ", " + raw + "}")
        elif isinstance(changes, list):
            _write_json_text(path, json.dumps(changes))
        else:
            _write_json_text(path, json.dumps({**base, **changes}))
    # int8 records beside one saved int8 model (weights and tokenizer shared by symlinks)
    quantized = bortkit.from_pretrained(s / "model", quantize="int8",
                                        calibration=["a fine film", "a dull film"] * 8)
    quantized.save(s / "int8")
    record = json.loads((s / "int8" / "int8.json").read_text())
    first = next(iter(record["thresholds"]))
    for name, (changes, _) in INT8_RECORDS.items():
        target = s / "int8-bad" / name
        target.mkdir(parents=True)
        for entry in (s / "int8").iterdir():
            if entry.name != "int8.json":
                (target / entry.name).symlink_to(Path("../../int8") / entry.name)
        if changes in ("[]", "{"):
            text = changes
        elif changes == "digits":
            text = _digits("format")
        elif name.startswith("threshold-"):
            pair = {"nan": "[NaN, 1.0]", "infinity": "[0, Infinity]", "abc": '"abc"',
                    "reversed": "[2.0, 1.0]"}.get(changes) if isinstance(changes, str) \
                else json.dumps(changes)
            text = json.dumps({**record, "thresholds": {**record["thresholds"],
                                                        first: "PAIR"}})
            text = text.replace('"PAIR"', pair)
        else:
            text = json.dumps({k: v for k, v in {**record, **changes}.items()
                               if v is not None or k not in changes})
        (target / "int8.json").write_text(text)
    # old-format shard folders, and a victim file outside them
    (s / "victim").mkdir()
    arrays = {"input_ids": np.zeros((2, 32), np.int32), "lengths": np.full(2, 4, np.int32),
              "token_type_ids": np.zeros((2, 32), np.int8),
              "word_starts": np.zeros((2, 32), bool)}
    np.savez(s / "victim" / "shard-x.npz", **arrays)
    v1 = {"format": "bortkit-pretraining-v1", "max_seq_length": 32, "num_examples": 2}
    for name, (meta, _) in SHARDS_V1.items():
        folder = s / "v1" / name
        folder.mkdir(parents=True)
        np.savez(folder / "shard-x.npz", **arrays)
        if meta == "[]":
            text = "[]"
        elif meta == "digits":
            text = _digits("format")
        else:
            text = json.dumps({k: v for k, v in {**v1, **meta}.items() if v is not None})
            text = text.replace("VICTIM", str(s / "victim" / "shard-x.npz"))
        (folder / "meta.json").write_text(text)
    (s / "v1-good").mkdir()  # converted only if every folder given is convertible
    np.savez(s / "v1-good" / "shard-x.npz", **arrays)
    (s / "v1-good" / "meta.json").write_text(json.dumps(
        {**v1, "shards": [{"file": "shard-x.npz", "num_examples": 2}]}))
    meta = json.loads((s / "shards" / "meta.json").read_text())
    shutil.copytree(s / "shards", s / "shards-escape", symlinks=True)
    meta["shards"][0]["directory"] = "../shards/" + meta["shards"][0]["directory"]
    (s / "shards-escape" / "meta.json").write_text(json.dumps(meta))
    # the user's task files with bad labels
    for name, (text, _) in LABEL_FILES.items():
        (s / "files").mkdir(exist_ok=True)
        (s / "files" / name).write_bytes(text.encode())
    (s / "files" / "good.csv").write_text("text,label\na fine film,1\na dull film,0\n")
    # YAML: a billion laughs, an oversized file, unknown and bad fixed fields, a NaN θ
    laughs = ['lol: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "a" if i == 0 else "bcdefghi"[i - 1]
        laughs.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    (s / "laughs.yaml").write_text("\n".join(laughs) + "\n")
    (s / "space-laughs.yaml").write_text(
        "num_layers: [2]\nunits: [32]\nfixed:\n  name_list: &a [1, 1, 1, 1, 1, 1, 1, 1]\n"
        + "".join(f"  k{i}: &{'abcdefg'[i]} [" + ", ".join(
            [f"*{'aabcdefg'[i]}"] * 8) + "]\n" for i in range(1, 7)))
    (s / "huge.yaml").write_text("learning_rate: [" + ", ".join(["1.0e-4"] * 200_000) + "]\n")
    (s / "fixed-unknown.yaml").write_text(
        "num_layers: [2]\nnum_heads: [2]\nunits: [32]\nffn_units: [64]\nfixed:\n"
        "  vocab_sise: 30522\n")
    (s / "fixed-huge.yaml").write_text(
        "num_layers: [2]\nnum_heads: [2]\nunits: [32]\nffn_units: [64]\nfixed:\n"
        "  max_length: 1e12\n")
    (s / "fixed-pooler.yaml").write_text(
        "num_layers: [2]\nnum_heads: [2]\nunits: [32]\nffn_units: [64]\nfixed:\n"
        "  use_pooler: 'no'\n")
    (s / "theta-nan.yaml").write_text("- {learning_rate: .nan}\n")
    (s / "theta-inf.yaml").write_text("learning_rate: [.inf]\n")
    (s / "theta-laughs.yaml").write_text("\n".join(laughs) + "\n")
    (s / "space-nan.yaml").write_text("learning_rate: .nan\n")


def round_two_cases(s: Path, readonly) -> dict:
    """entry point -> [(case id, argv, text the error line must contain)]."""
    m = str(s / "model")
    cases = {name: [] for name in ("finetune", "distill", "info", "search", "sweep", "agora",
                                   "export", "convert", "predict", "api", "prune",
                                   "multitask", "analyze")}
    # configs: bortkit.info reads one; distill builds its student from one
    ds = ["--train", str(s / "shards"), "--output-dir", str(s / "out/ds2"), "--batch-size",
          "2", "--max-steps", "1", "--no-progress", "--check-only"]
    for name, (_, text) in CONFIGS.items():
        path = str(s / "configs" / f"{name}.json")
        cases["info"].append((f"config {name}", [path, "--max-length", "32"], text))
        cases["distill"].append((f"student config {name}", ds + ["--student-config", path],
                                 text))
    for name, (_, text) in list(CONFIGS.items())[:12]:
        cases["api"].append((f"load-config {name}",
                             ["api:load-config", f"configs/{name}.json"], text))
    # int8 records
    for name, (_, text) in INT8_RECORDS.items():
        cases["api"].append((f"int8 {name}", ["api:from-pretrained", f"int8-bad/{name}"],
                             text))
    # weights holding NaN or infinity, at every entry point that reads a model
    for kind, tensor in (("nan", "embeddings.word_embed.weight"),
                         ("inf", "encoder.0.ffn.ffn_1.bias")):
        bad = str(s / f"model-{kind}")
        text = f"tensor {tensor} holds 1 NaN or infinite value"
        cases["api"].append((f"from-pretrained {kind} weights",
                             ["api:from-pretrained", f"model-{kind}"], text))
        cases["info"].append((f"{kind} weights", [bad], text))
        cases["export"].append((f"{kind} weights", ["--model", bad, "--output-dir",
                                                    str(s / "out/e-nan")], text))
        cases["export"].append((f"{kind} weights onnx", ["--model", bad, "--format", "onnx",
                                                         "--output-dir", str(s / "out/e")],
                                text))
        cases["predict"].append((f"{kind} weights", [
            "--model", bad, "--input", str(s / "predict-in.txt"), "--output",
            str(s / "out/pred2.jsonl"), "--no-progress"], text))
        cases["finetune"].append((f"{kind} weights", [
            "--task", "SST-2", "--model", bad, "--data-dir", str(s / "glue"), "--output-dir",
            str(s / "out/ft2"), "--max-steps", "1", "--no-progress"], text))
        cases["distill"].append((f"{kind} teacher weights", ds + [
            "--student-config", str(s / "student.json"), "--teacher", bad], text))
    # exports: every feature held or refused; the output never the source; --overwrite
    # never deletes files bortkit did not write
    e = ["--output-dir", str(s / "out/e")]
    for fmt in ("onnx", "huggingface"):
        f = ["--format", fmt]
        cases["export"] += [
            (f"{fmt} PALs multi-task", ["--model", str(s / "model-pals")] + f + e,
             "multi-task" if fmt == "huggingface" else "adapter 'pals'"),
            (f"{fmt} PALs multi-task, no head",
             ["--model", str(s / "model-pals"), "--no-head"] + f + e, "adapter"),
            (f"{fmt} multi-task heads", ["--model", str(s / "model-mt")] + f + e, "--no-head"),
            (f"{fmt} output is the source", ["--model", m, "--output-dir", m, "--overwrite"]
             + f, "is the model's folder"),
            (f"{fmt} output inside the source",
             ["--model", m, "--output-dir", str(s / "model/onnx"), "--overwrite"] + f,
             "is inside the model's folder"),
            (f"{fmt} output holds the source",
             ["--model", m, "--output-dir", str(s), "--overwrite"] + f, "holds the model's"),
            (f"{fmt} output is the source's file's folder",
             ["--model", str(s / "model/model.safetensors"), "--output-dir", m,
              "--overwrite"] + f, "is the model's folder"),
            (f"{fmt} overwrite a folder of other files",
             ["--model", m, "--output-dir", str(s / "export-foreign"), "--overwrite"] + f,
             "'notes.txt'"),
            (f"{fmt} overwrite a folder of data", ["--model", m, "--output-dir",
                                                   str(s / "glue"), "--overwrite"] + f,
             "'SST-2'"),
        ]
    cases["export"] += [
        ("low-rank to Hugging Face", ["--model", str(s / "model-lowrank")] + e,
         "--merge-low-rank"),
        ("output-dir under a file", ["--model", m, "--output-dir", str(s / "afile/x")],
         "afile"),
        ("output-dir is a file", ["--model", m, "--output-dir", str(s / "afile"),
                                  "--overwrite"], "afile"),
    ]
    if readonly is not None:
        for fmt in ("onnx", "huggingface"):
            cases["export"].append((f"{fmt} output read-only", [
                "--model", m, "--format", fmt, "--output-dir", str(readonly / "x")],
                f"{readonly / 'x'}: "))
        cases["api"].append(("int8 save read-only", ["api:int8-save", str(readonly / "x")],
                             f"{readonly / 'x'}: "))
    # data-file paths inside their folder (old and new shard formats)
    for name, (_, text) in SHARDS_V1.items():
        cases["convert"].append((f"v1 {name}", [str(s / "v1" / name)], text))
    cases["convert"] += [
        ("v2 shard outside", [str(s / "shards-escape")], "inside the data folder"),
        ("two folders, the second bad", [str(s / "v1-good"), str(s / "v1" / "escape")],
         "inside the data folder"),
    ]
    cases["distill"] += [("train shard outside", ds + ["--student-config",
                                                       str(s / "student.json"), "--train",
                                                       str(s / "shards-escape")],
                          "inside the data folder"),
                         ("test shard outside", ds + ["--student-config",
                                                      str(s / "student.json"), "--test",
                                                      str(s / "shards-escape")],
                          "inside the data folder")]
    # the user's files: numeric labels read once (1 and 1.0 are one class), non-finite
    # labels and 4,300-digit integers refused, CR-only line endings named
    files = s / "files"
    for name, (_, text) in LABEL_FILES.items():
        own = ["--train", str(files / name), "--dev", str(files / "good.csv")]
        cases["finetune"].append((f"file {name}", own + [
            "--model", m, "--output-dir", str(s / "out/ft3"), "--max-steps", "1",
            "--no-progress"], text))
        cases["sweep"].append((f"file {name}", own + [
            "--model", m, "--study", "s", "--n-trials", "1", "--output-dir",
            str(s / "out/sweep3")], text))
        cases["agora"].append((f"file {name}", own + [
            "--student", m, "--teacher", m, "--output-dir", str(s / "out/agora3"), "--theta",
            "learning_rate=1e-4", "--budget", "10", "--no-progress"], text))
        cases["api"].append((f"file-task {name}", ["api:file-task", f"files/{name}"], text))
    cases["finetune"] += [
        ("regression label nan", ["--train", str(files / "nan.csv"), "--dev",
                                  str(files / "good.csv"), "--task-type", "regression",
                                  "--model", m, "--output-dir", str(s / "out/ft3"),
                                  "--no-progress"], "not a finite number"),
        ("classification label inf", ["--train", str(files / "inf.csv"), "--dev",
                                      str(files / "good.csv"), "--task-type",
                                      "classification", "--model", m, "--output-dir",
                                      str(s / "out/ft3"), "--no-progress"],
         "not a finite number"),
    ]
    # YAML: bounded size and aliases, YAML 1.2 numbers, unknown fixed fields
    sp = ["--output-dir", str(s / "out/search2"), "--no-progress", "--latency", "flops"]
    cases["search"] += [
        ("space billion laughs", sp + ["--space", str(s / "space-laughs.yaml")], "aliases"),
        ("space unknown fixed field", sp + ["--space", str(s / "fixed-unknown.yaml")],
         "unknown fixed field 'vocab_sise' (did you mean 'vocab_size'?)"),
        ("space fixed max_length 1e12", sp + ["--space", str(s / "fixed-huge.yaml")],
         "max_length"),
        ("space fixed use_pooler 'no'", sp + ["--space", str(s / "fixed-pooler.yaml")],
         "use_pooler"),
        ("theta NaN", sp + ["--theta", str(s / "theta-nan.yaml")], "finite"),
        ("theta infinity", sp + ["--theta", str(s / "theta-inf.yaml")], "finite"),
        ("theta billion laughs", sp + ["--theta", str(s / "theta-laughs.yaml")], "aliases"),
        ("theta too big", sp + ["--theta", str(s / "huge.yaml")], "at most"),
    ]
    sw = ["--task", "SST-2", "--model", m, "--data-dir", str(s / "glue"), "--study", "s",
          "--n-trials", "1", "--output-dir", str(s / "out/sweep2")]
    cases["sweep"] += [
        ("space billion laughs", sw + ["--space", str(s / "laughs.yaml")], "aliases"),
        ("space too big", sw + ["--space", str(s / "huge.yaml")], "at most"),
        ("space NaN", sw + ["--space", str(s / "space-nan.yaml")], "learning_rate"),
        ("set billion laughs", sw + ["--set", "learning_rate=&a [*a]"], "--set"),
        ("storage a text file", sw + ["--storage", f"sqlite:///{s / 'afile'}"],
         "cannot open study storage"),
        ("storage in a missing folder", sw + ["--storage", f"sqlite:///{s / 'nope/x.db'}"],
         "cannot open study storage"),
        ("storage unknown scheme", sw + ["--storage", "nosuchdb://x"],
         "cannot open study storage"),
    ]
    ag = ["--task", "SST-2", "--student", m, "--teacher", m, "--data-dir", str(s / "glue"),
          "--output-dir", str(s / "out/agora2"), "--budget", "10", "--no-progress"]
    cases["agora"] += [
        ("space billion laughs", ag + ["--space", str(s / "laughs.yaml")], "aliases"),
        ("theta value alias loop", ag + ["--theta", "learning_rate=&a [*a]"], "--theta"),
    ]
    for name in ("laughs.yaml", "huge.yaml", "space-nan.yaml"):
        cases["api"].append((f"finetune space {name}", ["api:finetune-space", name],
                             {"laughs.yaml": "aliases", "huge.yaml": "at most",
                              "space-nan.yaml": "learning_rate"}[name]))
    cases["api"].append(("search space laughs", ["api:search-space", "space-laughs.yaml"],
                         "aliases"))
    # prune and multitask: option checks through bortkit.options; analyze's layer ranges
    pr = ["--task", "SST-2", "--model", m, "--data-dir", str(s / "glue"), "--output-dir",
          str(s / "out/prune"), "--no-progress"]
    mt = ["--tasks", "SST-2", "--model", m, "--data-dir", str(s / "glue"), "--output-dir",
          str(s / "out/mt"), "--no-progress"]
    for option in ("--max-train-examples", "--max-eval-examples"):
        for label, value in (("negative", "-1"), ("zero", "0"), ("non-number", "abc")):
            cases["prune"].append((f"{option}={label}", pr + [option, value], option))
            cases["multitask"].append((f"{option}={label}", mt + [option, value], option))
    cases["multitask"] += [
        ("export-huggingface is the model", mt + ["--export-huggingface", m],
         "--export-huggingface"),
        ("export-huggingface holds the model", mt + ["--export-huggingface", str(s)],
         "--export-huggingface"),
        ("export-huggingface a folder of other files", mt + [
            "--export-huggingface", str(s / "export-foreign"), "--overwrite"], "notes.txt"),
    ]
    an = ["--model", m, "--data-dir", str(s / "glue"), "--task", "SST-2", "--output-dir",
          str(s / "out/analyze"), "--no-progress"]
    for command, value in (("remove", "-1"), ("replace", "abc")):
        cases["analyze"].append((f"{command} --finetune-steps {value}", [command] + an + [
            "--part", "ffn", "--finetune-steps", value], "--finetune-steps"))
    for command in ("remove", "replace", "nonlinearity"):
        extra = ["--part", "ffn"] if command != "nonlinearity" else []
        for layers in ("5-1", "1-0", "3--1"):
            cases["analyze"].append((f"{command} --layers {layers}",
                                     [command] + an + extra + ["--layers", layers], "--layers"))
    return cases


# What the exports hold (issue 26): the refusals are in the table above.
def test_onnx_export_holds_low_rank_factors_and_no_head_means_no_logits(tmp_path,
                                                                       finetuned_sst2):
    """A pruned and compacted (low-rank) model was a KeyError; its ONNX graph now computes
    each factored matrix as two products and equals bortkit's encoder. ``--no-head`` wrote a
    graph with ``logits``; now the encoder's outputs, and config.json declares no head."""
    import numpy as np

    import bortkit
    from bortkit.checkpoint import save_pretrained
    from bortkit.export.core import export
    from bortkit.inference import OnnxModel
    from bortkit.model import Model
    config = ModelConfig(num_layers=2, num_heads=2, units=32, ffn_units=64, vocab_size=30522,
                         max_length=64, low_rank={"encoder.0.attention.query": 4,
                                                  "encoder.0.ffn.ffn_1": 8,
                                                  "encoder.1.attention.output": 3})
    save_pretrained(Model(config), tmp_path / "low-rank", config=config,
                    source=finetuned_sst2 / "best")
    export(tmp_path / "low-rank", tmp_path / "low-rank-onnx")
    ids = np.array([[101, 2023, 2003, 1037, 2204, 102], [101, 2023, 102, 0, 0, 0]])
    mask = (ids > 0).astype(np.int64)
    got = OnnxModel(tmp_path / "low-rank-onnx").run(ids, attention_mask=mask)
    expected = bortkit.from_pretrained(tmp_path / "low-rank").encode(ids, attention_mask=mask)
    np.testing.assert_allclose(got["last_hidden_state"], expected.last_hidden_state,
                               atol=2e-5)
    export(finetuned_sst2 / "best", tmp_path / "encoder", include_head=False)
    encoder = OnnxModel(tmp_path / "encoder")
    assert encoder.output_names == ["last_hidden_state", "pooler_output"]
    assert "_head" not in json.loads((tmp_path / "encoder" / "config.json").read_text())
    plain = bortkit.from_pretrained(finetuned_sst2 / "best")
    np.testing.assert_allclose(encoder.run(ids, attention_mask=mask)["last_hidden_state"],
                               plain.encode(ids, attention_mask=mask).last_hidden_state,
                               atol=2e-5)
    # --overwrite replaces a previous export (every name in it is one bortkit writes)
    export(finetuned_sst2 / "best", tmp_path / "encoder", overwrite=True)
    assert OnnxModel(tmp_path / "encoder").output_names == ["logits"]

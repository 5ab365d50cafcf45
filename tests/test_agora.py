"""Agora: the data-generating function, students cut from a pretrained model, the round loop
(pruning, replay, budget, resume) and real end-to-end runs from the command line."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from bortkit.agora import Agora, AgoraArgs, CheckpointClassifier, Perturbation, truncate_layers
from bortkit.checkpoint import read_state
from bortkit.errors import CheckpointError, ConfigError
from bortkit.finetune import FinetuneArgs, Finetuner
from bortkit.tasks import Example, get_task
from bortkit.train import read_jsonl


@pytest.fixture(scope="module")
def tiny_teacher(tiny_model, glue_dir, tmp_path_factory):
    """The tiny model fine-tuned a few steps on SST-2: a checkpoint with its task head."""
    out = tmp_path_factory.mktemp("teacher")
    Finetuner(FinetuneArgs(task="SST-2", model=str(tiny_model), data_dir=str(glue_dir),
                           output_dir=str(out), max_train_examples=64, max_eval_examples=16,
                           max_steps=4, batch_size=16, max_length=32, progress=False)).run()
    return out / "best"


@pytest.fixture(scope="module")
def two_class_teacher(tiny_teacher, glue_dir, tmp_path_factory):
    """``tiny_teacher`` with its head's bias moved so that it splits SST-2 sentences about
    evenly between the classes (a few steps leave it on one class, and Agora keeps the
    generated data only in D's class shares)."""
    from safetensors.numpy import load_file, save_file
    path = tmp_path_factory.mktemp("two-class") / "teacher"
    shutil.copytree(tiny_teacher, path)
    examples = get_task("SST-2").read(glue_dir, "train")[:200]
    logits = CheckpointClassifier(path, get_task("SST-2"), max_length=32).logits(examples)
    tensors = load_file(str(path / "model.safetensors"))
    tensors["head.out.bias"] = tensors["head.out.bias"] + \
        np.array([0, -np.median(logits[:, 1] - logits[:, 0])], np.float32)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "bortkit"})
    labels = CheckpointClassifier(path, get_task("SST-2"), max_length=32).label(examples)
    assert 0.3 < labels.mean() < 0.7
    return path


# --------------------------------------------------------------------------- g
PAIRS = [Example(f"train-{i}", f"the premise number {i} is long enough here",
                 f"hypothesis {i} holds", i % 2, i + 2) for i in range(6)]


def test_perturbations_are_local_distinct_and_unlabeled():
    g = Perturbation(rate=0.2).fit(PAIRS)
    new = g.generate(PAIRS[:3], 5, np.random.RandomState(0))
    assert len(new) == 15 and all(ex.label is None for ex in new)
    assert len({(ex.text_a, ex.text_b) for ex in new}) == 15
    assert not {(ex.text_a, ex.text_b) for ex in new} & {(ex.text_a, ex.text_b) for ex in PAIRS}
    assert [ex.guid for ex in new[:5]] == [f"train-0~g{k}" for k in range(5)]
    vocabulary = {w for ex in PAIRS for w in (ex.text_a + " " + ex.text_b).split()}
    for ex in new:
        assert set((ex.text_a + " " + ex.text_b).split()) <= vocabulary
    again = Perturbation(rate=0.2).fit(PAIRS).generate(PAIRS[:3], 5, np.random.RandomState(0))
    assert again == new  # a function of the random state


@pytest.mark.parametrize("op", ["delete", "swap", "replace", "crop", "mix"])
def test_each_operation_does_what_it_says(op):
    g = Perturbation(rate=0.3, ops=[op]).fit(PAIRS)
    source = PAIRS[1]
    rng = np.random.RandomState(1)
    for _ in range(20):
        new = g.perturb(source, rng)
        if op == "mix":
            assert new.text_a == source.text_a and new.text_b in {p.text_b for p in PAIRS}
            continue
        changed = "text_a" if new.text_a != source.text_a else "text_b"
        before, after = getattr(source, changed).split(), getattr(new, changed).split()
        if op == "delete":
            assert len(after) < len(before) and all(w in before for w in after)
        elif op == "swap":
            assert sorted(after) == sorted(before)
        elif op == "replace":
            assert len(after) == len(before)
        elif op == "crop":
            text = " ".join(before)
            assert " ".join(after) in text and len(after) >= (len(before) + 1) // 2


def test_bad_generator_settings():
    with pytest.raises(ConfigError, match="unknown perturbation"):
        Perturbation(ops=["shuffle"])
    with pytest.raises(ConfigError, match="rate must be in"):
        Perturbation(rate=0)


# --------------------------------------------------------------------------- student, teacher
def test_truncated_student_keeps_the_bottom_layers(tiny_model, tmp_path):
    out = truncate_layers(tiny_model, tmp_path / "l1", 1)
    small, full = read_state(out), read_state(tiny_model)
    assert small.config.num_layers == 1 and (out / "vocab.txt").exists()
    assert not any(name.startswith("encoder.1.") for name in small.tensors)
    for name, value in small.tensors.items():
        np.testing.assert_array_equal(value, full.tensors[name])
    assert len(small.tensors) == len(full.tensors) - sum(n.startswith("encoder.1.")
                                                         for n in full.tensors)
    with pytest.raises(ConfigError, match="--layers must be between 1 and 2"):
        truncate_layers(tiny_model, tmp_path / "l3", 3)


def test_teacher_must_have_a_head_for_the_task(tiny_model, tiny_teacher):
    with pytest.raises(CheckpointError, match="no task head"):
        CheckpointClassifier(tiny_model, get_task("SST-2"))
    with pytest.raises(CheckpointError, match="fine-tuned on SST-2, not RTE"):
        CheckpointClassifier(tiny_teacher, get_task("RTE"))
    assert {"head.out.weight", "head.out.bias"} <= set(read_state(tiny_teacher).tensors)
    teacher = CheckpointClassifier(tiny_teacher, get_task("SST-2"))
    labels = teacher.label(PAIRS[:4])
    assert labels.shape == (4,) and set(labels) <= {0, 1}


# --------------------------------------------------------------------------- the loop
class ScriptedAgora(Agora):
    """Agora whose fine-tuning returns scripted E scores (the loop logic, without training)."""

    def __init__(self, args, scores, checkpoint, **kwargs):
        super().__init__(args, **kwargs)
        self.scores, self.checkpoint, self.calls = scores, checkpoint, []

    def _train(self, index, start, steps, planned, train, run_dir):
        begin = 0 if start is None else \
            json.loads((Path(start) / "state.json").read_text())["run"]["step"]
        self.calls.append({"theta": index, "start": start, "steps": steps,
                           "schedule_end": begin + planned,
                           "guids": [ex.guid for ex in train], "run_dir": run_dir,
                           "texts": {ex.text_a for ex in train if ex.guid.startswith("agora-")}})
        shutil.copytree(self.checkpoint, run_dir / "checkpoint")
        (run_dir / "checkpoint" / "state.json").write_text(
            json.dumps({"run": {"step": begin + steps}}))
        score = self.scores.pop(0)
        return {"evaluations": [{"main": score}], "steps": begin + steps}

    def _logits(self, models):
        """Every candidate gets E's first three examples wrong, the rest right."""
        gold = np.array([ex.label for ex in self.e])
        predicted = np.where(np.arange(len(gold)) < 3, 1 - gold, gold)
        return {i: np.eye(2)[predicted] for i in models}


class AlternatingTeacher:
    def label(self, examples):
        return np.arange(len(examples)) % 2


def _args(tmp_path, glue_dir, teacher, **kw):
    thetas = [{"learning_rate": lr, "max_length": 32} for lr in (1e-4, 2e-4, 3e-4)]
    # the scripted runs never train the student, but Agora checks it fits every θ first
    return AgoraArgs(task="SST-2", student=str(teacher), teacher=str(teacher),
                     data_dir=str(glue_dir), output_dir=str(tmp_path / "run"), thetas=thetas,
                     budget=300, rounds=3, per_error=2, max_train_examples=40,
                     max_eval_examples=32, **kw)


def test_rounds_prune_replay_and_spend_the_budget(tmp_path, glue_dir, tiny_teacher):
    scripted = [0.6, 0.7, 0.5,   # round 1: θ2 is pruned
                0.65, 0.68,      # round 2: no better than 0.7 -> replayed with new data
                0.72, 0.71,      # round 2 again: better; θ1 is pruned
                0.74]            # round 3: θ0 alone
    agora = ScriptedAgora(_args(tmp_path, glue_dir, tiny_teacher), list(scripted),
                          tiny_teacher, teacher=AlternatingTeacher())
    result = agora.run()
    calls = agora.calls
    assert [c["theta"] for c in calls] == [0, 1, 2, 0, 1, 0, 1, 0]
    assert [c["steps"] for c in calls] == [50] * 5 + [16, 16, 18]
    assert result["steps"] == 300 == sum(c["steps"] for c in calls)
    assert [(h["round"], h["attempt"], h["replayed"], h.get("pruned")) for h in
            result["rounds"]] == [(1, 0, False, 2), (2, 0, True, None), (2, 1, False, 1),
                                  (3, 0, False, None)]
    assert result["winner"] == 0 and result["e_score"] == 0.74
    # D: 32 of the 40 examples (E holds 8), then the generated examples kept so far
    data = tmp_path / "run" / "data"
    added = {name: [json.loads(l) for l in (data / f"{name}.jsonl").read_text().splitlines()]
             for name in ("round-1-attempt-0", "round-1-attempt-1", "round-2-attempt-0")}
    assert [len(c["guids"]) for c in calls] == \
        [32] * 3 + [32 + len(added["round-1-attempt-0"])] * 2 + \
        [32 + len(added["round-1-attempt-1"])] * 2 + \
        [32 + len(added["round-1-attempt-1"]) + len(added["round-2-attempt-0"])]
    assert calls[3]["texts"] and calls[3]["texts"] != calls[5]["texts"]  # drawn again
    d_labels = [ex.label for ex in agora.d]
    e_guids = set(json.loads((tmp_path / "run" / "split.json").read_text())["evaluation"])
    for examples in added.values():
        assert 0 < len(examples) <= 6  # 3 errors x 2 draws, thinned to D's class shares
        share = sum(ex["label"] for ex in examples) / len(examples)
        assert abs(share - np.mean(d_labels)) <= 0.5 / len(examples) + 1e-9
        assert {ex["guid"].split("-", 2)[2].split("~")[0] for ex in examples} <= e_guids
    # a θ's rounds are one run: each goes on from the θ's last training state, the replay
    # too, and the learning-rate schedule is planned to the θ's last step if never pruned
    # (150 = 3 rounds x 50 steps; after the replay 100 + 16 + 16, then 116 + 18)
    assert calls[0]["start"] is None
    assert calls[3]["start"] == str(calls[0]["run_dir"] / "checkpoint")
    assert calls[5]["start"] == str(calls[3]["run_dir"] / "checkpoint")
    assert calls[7]["start"] == str(calls[5]["run_dir"] / "checkpoint")
    assert [c["schedule_end"] for c in calls] == [150] * 5 + [132, 132, 134]
    assert (tmp_path / "run" / "best" / "model.safetensors").exists()
    assert not (tmp_path / "run" / "best" / "state.json").exists()  # weights only
    assert set(result["best"]) == {"accuracy", "main"}
    # replaced and pruned θs' weights are deleted; only the survivor's last state is left
    left = sorted((tmp_path / "run").glob("round-*/attempt-*/theta-*/checkpoint"))
    assert left == [calls[7]["run_dir"] / "checkpoint"]
    assert len(list((tmp_path / "run").glob("round-*/attempt-*/theta-*"))) == 8  # logs stay

    resumed = ScriptedAgora(_args(tmp_path, glue_dir, tiny_teacher, resume=True), [],
                            tiny_teacher, teacher=AlternatingTeacher())
    assert resumed.run() == result and resumed.calls == []
    with pytest.raises(ConfigError,
                       match=r"holds a finished run \(result.json\); pass --overwrite"):
        ScriptedAgora(_args(tmp_path, glue_dir, tiny_teacher), [], tiny_teacher).run()
    state_file = tmp_path / "run" / "agora_state.json"
    state_file.write_text(json.dumps({k: v for k, v in json.loads(state_file.read_text()).items()
                                      if k != "trained"}))
    with pytest.raises(ConfigError, match="written by an older bortkit"):
        ScriptedAgora(_args(tmp_path, glue_dir, tiny_teacher, resume=True), [],
                      tiny_teacher).run()


def test_on_round_can_stop_the_run(tmp_path, glue_dir, tiny_teacher):
    seen = []
    agora = ScriptedAgora(_args(tmp_path, glue_dir, tiny_teacher), [0.6, 0.7, 0.5],
                          tiny_teacher, teacher=AlternatingTeacher(),
                          on_round=lambda r, score: seen.append((r, score)) or True)
    result = agora.run()
    assert seen == [(1, 0.7)] and result["stopped_early"] and result["steps"] == 150
    assert result["winner"] == 1  # the best survivor of the last round


def test_pruning_breaks_ties_by_cross_entropy_on_e(tmp_path, glue_dir):
    agora = Agora(_args(tmp_path, glue_dir, "teacher"))
    agora.e = [Example(f"e{i}", "text", None, label, i) for i, label in enumerate([0, 0, 0, 1])]
    majority = np.array([[2.0, 0.0]] * 4)      # 3 of 4 right, sure of itself: CE 0.63
    hesitant = np.array([[0.5, 0.0]] * 4)      # 3 of 4 right, hesitant: CE 0.60
    logits = {0: majority, 1: hesitant, 2: np.array([[0.0, 0.0]] * 4)}  # θ2: CE log 2
    assert agora._prune({0: 0.75, 1: 0.75, 2: 0.75}, logits) == 2
    assert agora._prune({0: 0.75, 1: 0.75, 2: 0.8}, logits) == 0
    assert agora._prune({0: 0.75, 1: 0.75}, {0: majority, 1: majority}) == 1  # the later θ
    assert agora._prune({0: 0.5, 1: 0.75}, {0: majority, 1: hesitant}) == 0  # score first
    assert agora._errors({0: majority, 1: logits[2]}) == [3]
    assert agora._errors({0: majority, 1: -majority}) == [0, 1, 2, 3]


def test_evaluation_set_from_the_dev_split(tmp_path, glue_dir, tiny_teacher):
    args = _args(tmp_path, glue_dir, tiny_teacher, eval_source="dev", eval_fraction=0.5)
    agora = ScriptedAgora(args, [0.6, 0.7, 0.5, 0.8, 0.7, 0.9], tiny_teacher,
                          teacher=AlternatingTeacher())
    result = agora.run()
    assert len(agora.calls[0]["guids"]) == 40  # D: the whole (40-example) training subset
    assert result["eval_examples"] == 16 and result["report_examples"] == 16
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert all(g.startswith("dev-") for g in split["evaluation"])
    assert not set(split["evaluation"]) & set(agora.calls[0]["guids"])


@pytest.mark.parametrize("change,problem", [
    ({"thetas": []}, "at least one hyperparameter setting"),
    ({"thetas": [{"learnin_rate": 1e-4}]}, "unknown fine-tuning parameter(s) in θ: learnin_rate"),
    ({"budget": 5}, "--budget 5 is smaller than one step per candidate and round (6)"),
    ({"eval_fraction": 1.0}, "--eval-fraction must be a number in (0, 1), got 1.0"),
])
def test_bad_agora_settings(tmp_path, glue_dir, change, problem):
    args = _args(tmp_path, glue_dir, "teacher")
    for key, value in change.items():
        setattr(args, key, value)
    with pytest.raises(ConfigError) as err:
        Agora(args)
    assert problem in str(err.value)


def test_regression_tasks_are_refused(tmp_path, glue_dir):
    args = _args(tmp_path, glue_dir, "teacher")
    args.task = "STS-B"
    with pytest.raises(ConfigError, match="STS-B is not"):
        Agora(args)


# --------------------------------------------------------------------------- end to end
def agora_cli(*args):
    return subprocess.run([sys.executable, "-m", "bortkit.agora", *args], capture_output=True,
                          text=True, timeout=400)


@pytest.mark.slow
def test_cli_end_to_end_and_resume(tiny_model, two_class_teacher, glue_dir, tmp_path):
    common = ["--task", "SST-2", "--student", str(tiny_model), "--teacher",
              str(two_class_teacher),
              "--data-dir", str(glue_dir), "--output-dir", str(tmp_path / "run"),
              "--student-layers", "1", "--theta", "learning_rate=3e-4,batch_size=8",
              "--theta", "learning_rate=1e-4,batch_size=8", "--set", "max_length=32",
              "--budget", "30", "--max-train-examples", "60", "--max-eval-examples", "40"]
    proc = agora_cli(*common)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["steps"] == 30 and len(result["rounds"]) >= 2
    assert result["rounds"][0]["errors"] > 0 and 0 <= result["best"]["accuracy"] <= 1
    used = json.loads((tmp_path / "run" / "agora_state.json").read_text())["generated"]
    generated = [json.loads(line) for p in used for line in Path(p).read_text().splitlines()]
    assert result["generated_examples"] == len(generated) > 0
    d_labels = [ex.label for ex in get_task("SST-2").read(glue_dir, "train")
                if ex.guid in json.loads((tmp_path / "run" / "split.json").read_text())["train"]]
    # D's class shares, up to one example of rounding per class (keep_class_shares floors)
    assert abs(np.mean([ex["label"] for ex in generated]) - np.mean(d_labels)) \
        < 0.1 + 2 / len(generated)
    assert read_state(tmp_path / "run" / "best").config.num_layers == 1
    logs = sorted((tmp_path / "run").glob("round-*/attempt-*/theta-*/log.jsonl"))
    # 3 candidate-rounds of 10 steps; the survivor's two rounds are one 20-step run: round 2
    # resumes at step 10, and the learning rate (warmup 2 steps) decays to 0 at step 20 only
    survivor = f"theta-{result['winner']}"
    first, second = (read_jsonl(tmp_path / "run" / f"round-{r}" / "attempt-0" / survivor /
                                "log.jsonl") for r in (1, 2))
    peak = (3e-4, 1e-4)[result["winner"]]
    lr_at_10 = next(e["lr"] for e in first if e["event"] == "train" and e["step"] == 10)
    assert lr_at_10 == pytest.approx(peak * 10 / 18)
    assert [e["step"] for e in second if e["event"] == "resume"] == [10]
    assert [e["step"] for e in second if e["event"] == "train"] == [20]
    assert second[-1]["event"] == "done"
    assert next(e["lr"] for e in second if e["event"] == "train") == pytest.approx(0)
    again = agora_cli(*common, "--resume")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["best"] == result["best"]
    assert sorted((tmp_path / "run").glob("round-*/attempt-*/theta-*/log.jsonl")) == logs

    wrong = agora_cli(*common[:5], str(tiny_model), *common[6:], "--output-dir",
                      str(tmp_path / "other"))
    errors = [l for l in wrong.stderr.splitlines() if l.startswith("bortkit: error:")]
    assert wrong.returncode == 2 and len(errors) == 1 and "no task head" in errors[0]


@pytest.mark.slow
def test_sweep_runs_agora_trials(tiny_model, tiny_teacher, glue_dir, tmp_path):
    (tmp_path / "space.yaml").write_text("learning_rate: [1.0e-4, 3.0e-4]\nbatch_size: 8\n"
                                         "max_length: 32\nagora_budget: 12\n"
                                         "agora_rounds: 2\nmax_train_examples: 40\n"
                                         "max_eval_examples: 24\n")
    proc = subprocess.run([sys.executable, "-m", "bortkit.sweep", "--task", "SST-2", "--model",
                           str(tiny_model), "--data-dir", str(glue_dir), "--study", "ag",
                           "--n-trials", "1", "--output-dir", str(tmp_path / "sweep"),
                           "--space", str(tmp_path / "space.yaml"), "--agora", "--teacher",
                           str(tiny_teacher), "--pruner", "none"],
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = optuna.load_study(study_name="ag",
                              storage=f"sqlite:///{tmp_path / 'sweep' / 'study.db'}")
    trial = study.trials[0]
    result = json.loads((Path(trial.user_attrs["run_dir"]) / "result.json").read_text())
    assert trial.value == result["best"]["main"] and result["steps"] == 12
    assert sorted(trial.intermediate_values) == [1, 2]  # one report per round
    assert (tmp_path / "sweep" / "best_model" / "model.safetensors").exists()


def test_generated_examples_keep_the_class_shares_of_d():
    from bortkit.agora.loop import keep_class_shares
    reference = [Example(str(i), "a", None, int(i < 45), i) for i in range(100)]  # 45 % ones
    new = [Example(f"g{i}", "b", None, int(i % 4 == 0), i) for i in range(200)]  # 25 % ones
    kept = keep_class_shares(new, reference, np.random.RandomState(0))
    assert sum(ex.label for ex in kept) == 50 and len(kept) in (110, 111)  # all 50 ones
    assert [ex.guid for ex in kept] == sorted((ex.guid for ex in kept), key=lambda g: int(g[1:]))
    assert keep_class_shares([ex for ex in new if ex.label == 0], reference,
                             np.random.RandomState(0)) == []


def test_class_shares_survive_floating_point_rounding():
    """6 references, 1 of class 0: two new examples of class 0 and nine of class 1 keep one and
    nine (total 10.8); 10.8 * 5 / 6 is 8.999... in floating point, which truncation made 8."""
    from bortkit.agora.loop import keep_class_shares
    reference = [Example(str(i), "a", None, int(i > 0), i) for i in range(6)]
    new = [Example(f"g{i}", "b", None, int(i >= 2), i) for i in range(11)]
    kept = keep_class_shares(new, reference, np.random.RandomState(0))
    assert sorted(ex.label for ex in kept) == [0] + [1] * 9

"""bortkit.pipeline over every kind of model (checkpoint path, Model, int8 model, ONNX export)
in transformers' text-classification format, against transformers' own pipeline."""
import json

import numpy as np
import pytest

import bortkit
from bortkit.errors import ConfigError, DataError

TEXTS = ["A gripping, funny film.", "Dull.", "not bad at all , rather good " * 9,
         "the plot is thin but the actors carry it"]
LONG = " ".join(["a gripping , funny and moving film"] * 430)  # ~3,000 words


@pytest.fixture(scope="module")
def best(finetuned_sst2):
    return finetuned_sst2 / "best"


@pytest.fixture(scope="module")
def onnx_dir(best, tmp_path_factory):
    pytest.importorskip("onnxruntime")
    from bortkit.export import export
    return export(best, tmp_path_factory.mktemp("onnx") / "onnx", format="onnx")


@pytest.fixture(scope="module")
def int8_model(best, glue_dir):
    rows = (glue_dir / "SST-2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:65]
    return bortkit.from_pretrained(best, quantize="int8",
                                   calibration=[r.split("\t")[0] for r in rows])


def check_format(classify, label_names):
    one = classify("A gripping, funny film.")
    assert isinstance(one, list) and len(one) == 1 and set(one[0]) == {"label", "score"}
    many = classify(TEXTS)
    assert len(many) == len(TEXTS) and all(set(p) == {"label", "score"} for p in many)
    ranked = classify("Dull.", top_k=None)
    assert [p["label"] for p in ranked] == sorted(label_names, key=lambda n: -next(
        p["score"] for p in ranked if p["label"] == n))
    assert len(ranked) == len(label_names) and sum(p["score"] for p in ranked) == \
        pytest.approx(1.0)
    assert ranked[0] == {"label": classify("Dull.")[0]["label"],
                         "score": pytest.approx(classify("Dull.")[0]["score"])}
    top1 = classify(TEXTS, top_k=1)
    assert [t[0]["label"] for t in top1] == [p["label"] for p in many]
    assert all(len(t) == 1 for t in top1)
    # batch size changes nothing but speed
    one_by_one = classify(TEXTS, batch_size=1)
    assert [p["label"] for p in one_by_one] == [p["label"] for p in many]
    np.testing.assert_allclose([p["score"] for p in one_by_one], [p["score"] for p in many],
                               atol=1e-5)
    # a 3,000-word text is cut to the model's length, not refused
    assert set(classify(LONG)[0]) == {"label", "score"}
    return many


def test_one_call_over_path_model_int8_and_onnx(best, onnx_dir, int8_model):
    names = json.loads((best / "config.json").read_text())["_head"]["labels"]
    from_path = check_format(bortkit.pipeline(best), names)
    from_model = check_format(bortkit.pipeline(bortkit.from_pretrained(best)), names)
    from_onnx = check_format(bortkit.pipeline(onnx_dir), names)
    from_int8 = check_format(bortkit.pipeline(int8_model), names)
    scores = lambda preds: [p["score"] for p in preds]  # noqa: E731
    assert [p["label"] for p in from_model] == [p["label"] for p in from_path]
    np.testing.assert_allclose(scores(from_model), scores(from_path), atol=1e-6)
    # ONNX Runtime computes the same graph in fp32; int8 approximates it
    assert [p["label"] for p in from_onnx] == [p["label"] for p in from_path]
    np.testing.assert_allclose(scores(from_onnx), scores(from_path), atol=1e-4)
    logits = bortkit.pipeline(best).logits(TEXTS)
    np.testing.assert_allclose(bortkit.pipeline(int8_model).logits(TEXTS), logits, atol=0.1)


def test_same_answers_as_transformers_pipeline_on_the_export(best, tmp_path):
    transformers = pytest.importorskip("transformers")
    from bortkit.export import export
    hf = export(best, tmp_path / "hf", format="huggingface")
    theirs = transformers.pipeline("text-classification", model=str(hf), device="cpu")
    ours = bortkit.pipeline(hf)
    for call in ({}, {"top_k": None}, {"top_k": 1}):
        for inputs in ("A gripping, funny film.", TEXTS):
            expected, got = theirs(inputs, truncation=True, **call), ours(inputs, **call)
            assert json.dumps(got, sort_keys=True).count("label") == \
                json.dumps(expected, sort_keys=True).count("label")
            flat = lambda x: x if isinstance(x, dict) else [flat(y) for y in x]  # noqa: E731
            assert type(got) is type(expected) and len(got) == len(expected)
            for g, e in zip(flat(got), flat(expected)):
                g, e = (g if isinstance(g, list) else [g]), (e if isinstance(e, list) else [e])
                assert [x["label"] for x in g] == [x["label"] for x in e]
                np.testing.assert_allclose([x["score"] for x in g], [x["score"] for x in e],
                                           atol=1e-5)


def test_empty_text_and_bad_arguments_are_refused(best):
    classify = bortkit.pipeline(best)
    with pytest.raises(DataError, match=r"^inputs\[2\] is empty: nothing to classify$"):
        classify(["fine", "good", "  ", "bad"])
    with pytest.raises(DataError, match=r"^inputs\[0\] is empty: nothing to classify$"):
        classify("")
    with pytest.raises(DataError, match=r"^inputs\[1\] \(its pair\) is empty"):
        classify([("a", "b"), ("c", "")])
    with pytest.raises(ConfigError, match=r"^top_k must be a positive integer or None "
                                          r"\(every label\), got 0$"):
        classify("fine", top_k=0)
    with pytest.raises(ConfigError, match=r"^batch_size must be a positive integer, got 0$"):
        classify(["fine"], batch_size=0)
    with pytest.raises(DataError, match=r"^inputs\[1\] has \d+ tokens, more than max_length "
                                        r"40 \(truncation=False\)$"):
        classify(["fine", LONG], truncation=False)
    with pytest.raises(ConfigError, match="^model must be a checkpoint path, a bortkit Model"):
        bortkit.pipeline(3)
    assert classify([]) == []
    # transformers' dict form of a pair
    assert classify({"text": "a man plays", "text_pair": "music"})[0]["label"] in ("0", "1")


@pytest.mark.slow
def test_minilm_fine_tuned_on_own_csv_on_every_backend(glue_dir, tmp_path):
    """all-MiniLM-L6-v2 fine-tuned on a CSV of one's own: the same calls on its best/, its
    int8 model and its ONNX export, and transformers on its Hugging Face export."""
    import csv

    from bortkit.export import export
    from bortkit.finetune.__main__ import main
    from bortkit.tasks import get_task
    names = {0: "negative", 1: "positive"}
    examples = get_task("SST-2").read(glue_dir, "train")[:160]
    for name, rows in (("reviews.csv", examples[:128]), ("reviews_dev.csv", examples[128:])):
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["review", "sentiment"])
            writer.writerows([ex.text_a, names[ex.label]] for ex in rows)
    assert main(["--train", str(tmp_path / "reviews.csv"), "--dev",
                 str(tmp_path / "reviews_dev.csv"), "--text-column", "review",
                 "--label-column", "sentiment", "--model", "minilm", "--max-steps", "8",
                 "--batch-size", "16", "--learning-rate", "1e-4", "--max-length", "40",
                 "--eval-every", "8", "--no-progress", "--output-dir", str(tmp_path / "run")]) == 0
    best = tmp_path / "run" / "reviews" / "seed-0" / "best"
    labels = ["negative", "positive"]
    fp32 = bortkit.pipeline(best)
    int8 = bortkit.pipeline(bortkit.from_pretrained(
        best, quantize="int8", calibration=[ex.text_a for ex in examples[:64]]))
    onnx = bortkit.pipeline(export(best, tmp_path / "onnx", format="onnx"))
    texts = [ex.text_a for ex in examples[128:]]
    expected = fp32(texts)
    for classify in (fp32, int8, onnx):
        one = classify("a gripping , funny film")
        assert len(one) == 1 and one[0]["label"] in labels
        ranked = classify("a gripping , funny film", top_k=None)
        assert sorted(p["label"] for p in ranked) == labels and ranked[0] == \
            {"label": one[0]["label"], "score": pytest.approx(one[0]["score"], abs=1e-6)}
        got = classify(texts)
        agree = np.mean([g["label"] == e["label"] for g, e in zip(got, expected)])
        assert agree >= (1.0 if classify is not int8 else 0.9), agree
    np.testing.assert_allclose([p["score"] for p in onnx(texts)],
                               [p["score"] for p in expected], atol=1e-4)
    transformers = pytest.importorskip("transformers")
    hf = export(best, tmp_path / "hf", format="huggingface")
    theirs = transformers.pipeline("text-classification", model=str(hf), device="cpu")
    assert [p["label"] for p in theirs(texts, truncation=True)] == \
        [p["label"] for p in expected]
    assert theirs(LONG, truncation=True)[0]["label"] == fp32(LONG)[0]["label"]


def test_raw_logits_take_an_empty_text(best):
    """.logits is the raw head output: an empty text is its [CLS] [SEP] encoding there;
    only labelling it is refused."""
    classify = bortkit.pipeline(best)
    model = bortkit.from_pretrained(best)
    ids = model.tokenizer("")["input_ids"]
    np.testing.assert_allclose(classify.logits(["", "fine"])[0],
                               model.logits([ids])[0], atol=1e-5)
    with pytest.raises(DataError, match=r"^inputs\[0\] is empty"):
        classify(["", "fine"])

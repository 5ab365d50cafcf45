"""Hugging Face interop with task heads: bortkit -> export -> `transformers` (logits and hidden
states to 1e-4) -> back into bortkit, for the BERT and RoBERTa layouts, with and without a
pooler and token types; file modes follow the umask."""
import json
import os

import numpy as np
import pytest

import bortkit
from bortkit.checkpoint import export_huggingface, read_state, save_pretrained
from bortkit.checkpoint.heads import TaskHead
from bortkit.config import ModelConfig
from bortkit.errors import ConfigError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = ["A gripping, funny film.", "Dull.", "", "it is not bad at all , rather good " * 4]
SMALL = dict(num_layers=2, num_heads=2, units=32, ffn_units=64, vocab_size=30522,
             max_length=64)
LAYOUTS = {
    "bert": SMALL,                                                  # pooler, token types
    "bert-no-pooler-no-types": {**SMALL, "use_pooler": False, "type_vocab_size": 0},
    "roberta-like-bort": {**SMALL, "use_pooler": False, "type_vocab_size": 0,  # Bort's shape
                          "position_offset": 2, "pad_token_id": 1, "layer_norm_eps": 1e-5,
                          "max_length": 66},
    "roberta-with-pooler": {**SMALL, "position_offset": 2, "pad_token_id": 1,
                            "type_vocab_size": 1, "max_length": 66},
}
HEADS = {"classification": TaskHead("classification", ("negative", "neutral", "positive"),
                                    max_length=24, task="mine"),
         "regression": TaskHead("regression", max_length=24, task="STS-B")}


def _randomise(block, seed):
    """Weights of a trained-looking size (biases and LayerNorms included) so that a swapped
    or dropped tensor shows in the outputs."""
    import mxnet as mx
    rng = np.random.RandomState(seed)
    for name, param in block.collect_params().items():
        base = 1.0 if name.endswith("gamma") else 0.0
        param.set_data(mx.nd.array(base + rng.normal(0, 0.08, param.shape)))


def _checkpoint(tmp_path, minilm_dir, layout, head):
    from bortkit.model import BertNetwork, SequenceClassifier
    from bortkit.tokenizers import load_tokenizer
    config = ModelConfig(**LAYOUTS[layout])
    classifier = SequenceClassifier(BertNetwork(config, prefix="bert_"), head.num_labels,
                                    prefix="clf_")
    classifier.initialize()
    _randomise(classifier, seed=len(layout))
    path = tmp_path / f"{layout}-{head.kind}"
    save_pretrained(classifier, path, config=config, tokenizer=load_tokenizer(minilm_dir),
                    meta=head.to_meta())
    return path


def _torch_inputs(batch):
    return {k: torch.tensor(v) for k, v in batch.items()}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("kind", list(HEADS))
def test_head_round_trip_through_transformers(tmp_path, minilm_dir, layout, kind):
    model = bortkit.from_pretrained(_checkpoint(tmp_path, minilm_dir, layout, HEADS[kind]))
    ours = bortkit.pipeline(model).logits(TEXTS)
    assert np.ptp(ours) > 1e-2  # the outputs differ by input: a real comparison

    out = export_huggingface(model, tmp_path / "hf")
    hf_config = json.loads((out / "config.json").read_text())
    roberta = layout.startswith("roberta")
    assert hf_config["architectures"] == [("Roberta" if roberta else "Bert")
                                          + "ForSequenceClassification"]
    assert hf_config["problem_type"] == {"classification": "single_label_classification",
                                         "regression": "regression"}[kind]
    hf = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    if kind == "classification":
        assert hf.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
        assert hf.config.label2id == {"negative": 0, "neutral": 1, "positive": 2}
    batch = model.tokenizer.batch(TEXTS, max_length=24)
    with torch.no_grad():
        theirs = hf(**_torch_inputs(batch), output_hidden_states=True)
    np.testing.assert_allclose(theirs.logits.numpy(), ours, atol=1e-4)
    encoded = model.encode(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"],
                           output_hidden_states=True)
    real = batch["attention_mask"].astype(bool)  # HF RoBERTa numbers padded positions apart
    for mine, hf_states in zip(encoded.hidden_states, theirs.hidden_states):
        np.testing.assert_allclose(hf_states.numpy()[real], mine[real], atol=1e-4)

    back = bortkit.from_pretrained(out)
    assert back.head == model.head
    assert back.config.type_vocab_size == model.config.type_vocab_size
    np.testing.assert_allclose(bortkit.pipeline(back).logits(TEXTS), ours, atol=1e-6)
    # and a second export of the loaded copy is the same files
    export_huggingface(back, tmp_path / "hf2")
    assert json.loads((tmp_path / "hf2" / "config.json").read_text()) == hf_config


@pytest.mark.parametrize("layout", ["bert-no-pooler-no-types", "roberta-like-bort"])
def test_encoder_without_pooler_exports_faithfully(tmp_path, minilm_dir, layout):
    """transformers 5 ignores add_pooling_layer: false and would give a random pooler; the
    export holds a pooler of zeros (pooler_output 0, documented as meaningless) and every
    hidden state equals bortkit's."""
    path = _checkpoint(tmp_path, minilm_dir, layout, HEADS["classification"])
    model = bortkit.from_pretrained(path)
    out = export_huggingface(model, tmp_path / "hf", include_head=False)
    assert json.loads((out / "config.json").read_text())["add_pooling_layer"] is False
    hf = transformers.AutoModel.from_pretrained(out).eval()
    batch = model.tokenizer.batch(TEXTS)
    with torch.no_grad():
        theirs = hf(**_torch_inputs(batch), output_hidden_states=True)
    real = batch["attention_mask"].astype(bool)
    mine = model.encode(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    np.testing.assert_allclose(theirs.last_hidden_state.numpy()[real],
                               mine.last_hidden_state[real], atol=1e-4)
    assert not theirs.pooler_output.numpy().any()
    back = read_state(out)
    assert back.config == model.config and back.meta == {}


def test_mean_pooled_head_is_refused_not_dropped(tmp_path, tiny_model):
    import mxnet as mx  # noqa: F401
    from bortkit.checkpoint import classifier_from_state
    state = read_state(tiny_model)
    classifier, _ = classifier_from_state(state, 2, "mean")
    save_pretrained(classifier, tmp_path / "mean", config=state.config,
                    source=state.tokenizer_dir,
                    meta=TaskHead("classification", ("0", "1"), pooling="mean").to_meta())
    model = bortkit.from_pretrained(tmp_path / "mean")
    with pytest.raises(ConfigError, match=r"a head trained with --pooling mean has no Hugging "
                                          r"Face \.\.\.ForSequenceClassification layout"):
        export_huggingface(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    export_huggingface(model, tmp_path / "hf", include_head=False)
    assert "classifier.weight" not in read_state(tmp_path / "hf").tensors


def test_checkpoint_files_follow_the_umask(tmp_path, tiny_model):
    model = bortkit.from_pretrained(tiny_model)
    old = os.umask(0o027)
    try:
        save_pretrained(model, tmp_path / "ckpt")
        export_huggingface(model, tmp_path / "hf")
    finally:
        os.umask(old)
    for folder in (tmp_path / "ckpt", tmp_path / "hf"):
        assert oct(folder.stat().st_mode & 0o777) == oct(0o750)
        for path in folder.iterdir():
            assert oct(path.stat().st_mode & 0o777) == oct(0o640), path
    old = os.umask(0o002)
    try:
        save_pretrained(model, tmp_path / "shared")
    finally:
        os.umask(old)
    assert oct((tmp_path / "shared" / "model.safetensors").stat().st_mode & 0o777) == oct(0o664)

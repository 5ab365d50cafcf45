"""Exact parameter accounting: analytic counts against built networks and HF's counts."""
import pytest

from bortkit import count_params, param_table
from bortkit.accounting import flops_per_sequence
from bortkit.config import ModelConfig, load_config

HF_COUNTS = {  # transformers' BertModel/RobertaModel with pooler, sum(p.numel())
    "bert-base": 109_482_240,
    "bert-large": 335_141_888,
    "minilm-l6-h384": 22_713_216,
    "roberta-base": 124_645_632,
}


@pytest.mark.parametrize("name,expected", sorted(HF_COUNTS.items()))
def test_presets_match_hugging_face_counts(name, expected):
    assert count_params(load_config(name)) == expected


def test_bort_preset_is_the_released_shape():
    bort = load_config("bort")
    assert (bort.num_layers, bort.num_heads, bort.units, bort.ffn_units, bort.embed_size) \
        == (4, 8, 1024, 768, 1024)
    assert (bort.vocab_size, bort.type_vocab_size, bort.use_pooler) == (50265, 0, False)
    table = param_table(bort)
    assert table.total == 75_106_304            # "about 75.1M without the MLM head"
    assert table.embeddings == (50265 + 512) * 1024 + 2 * 1024
    assert table.total_with_mlm_head == 76_208_217


def test_bort_paper_reading_is_the_swapped_widths():
    table = param_table(load_config("bort"))
    paper = table.alternate
    assert (paper.config.units, paper.config.ffn_units) == (768, 1024)
    assert round(paper.embeddings / 1e6) == 39       # the paper's "39M embeddings"
    assert 54e6 < paper.total < 56.5e6               # the paper's "56M"
    text = str(table)
    assert "swapped reading: units=768 ffn_units=1024" in text and "75,106,304" in text


@pytest.mark.parametrize("changes", [
    {},                                                         # BERT-like
    {"layer_norm_position": "pre"},                             # final LayerNorm
    {"embed_size": 32, "use_pooler": False},                    # factorised, no pooler
    {"type_vocab_size": 0, "position_embedding": "none"},
    {"attention": "qk_convfixed_convq_convk", "relative_positions_each_dir": 5},
    {"attention": "convfixed", "qk_projection": "convolution", "projection_groups": 4,
     "value_projection": "convolution_depth_mixed_no_act", "projection_kernel_each_dir": 3},
    {"attention": "qk_convk", "qk_projection": "convolution_mixed",
     "value_projection": "convolution_depth", "projection_groups": 2},
])
def test_count_equals_built_network(changes):
    from bortkit.model import Model
    config = ModelConfig(num_layers=2, num_heads=4, units=64, ffn_units=96, vocab_size=300,
                         max_length=40, **changes)
    assert Model(config).num_params() == count_params(config)


def test_heads_count_equals_built_heads():
    import mxnet as mx
    from bortkit.accounting import classifier_params, mlm_head_params
    from bortkit.checkpoint import named_parameters
    from bortkit.model import BertNetwork, MaskedLMModel, SequenceClassifier
    for use_pooler in (True, False):
        config = ModelConfig(num_layers=1, num_heads=2, units=16, ffn_units=24,
                             vocab_size=50, max_length=8, embed_size=8, use_pooler=use_pooler)
        net = BertNetwork(config)
        mlm, clf = MaskedLMModel(net), SequenceClassifier(net, 3)
        mean = SequenceClassifier(net, 3, pooling="mean")
        for block in (mlm, clf, mean):
            block.initialize(mx.init.Normal(0.02))
        size = lambda block: sum(p.data().size for p in named_parameters(block).values())
        assert size(mlm) - count_params(config) == mlm_head_params(config)
        assert size(clf) - count_params(config) == classifier_params(config, 3)
        assert size(mean) - count_params(config) == classifier_params(config, 3, "mean") == 51


def test_flops_scale_with_length():
    base = load_config("bert-base")
    f128, f256 = flops_per_sequence(base, 128), flops_per_sequence(base, 256)
    # matmul FLOPs of BERT-base at 128 tokens: ~22.4 G (2 * 12 * (4TU^2 + 2T^2U + 2TUF) + pooler)
    assert f128 == 2 * (12 * (4 * 128 * 768**2 + 2 * 128**2 * 768 + 2 * 128 * 768 * 3072)
                        + 768**2)
    assert 2 < f256 / f128 < 2.2  # linear terms double, attention terms quadruple


def test_flops_count_variant_matrix_products():
    base = load_config("bert-base")
    t, u, r, h = 128, 768, 17, 12
    composite = load_config("bert-base-composite")
    # convq and convk: q.w (T x U x R) and the gather (H x T x T x R) each, per layer
    assert flops_per_sequence(composite, t) - flops_per_sequence(base, t) == \
        2 * 12 * 2 * (t * u * r + h * t * t * r)
    pals = load_config("bert-base-pals")
    a = 204
    assert flops_per_sequence(pals, t) - flops_per_sequence(base, t) == \
        2 * 12 * (2 * t * u * a + 3 * t * a * a + 2 * t * t * a)
    depthwise = base.replace(attention="qk", qk_projection="convolution_depth",
                             projection_kernel_each_dir=4)
    assert flops_per_sequence(depthwise, t) - flops_per_sequence(base, t) == \
        2 * 12 * 2 * (t * u * 9)     # the depthwise convolutions of Q and K

"""bortkit's search costs: the parameter column is exact at known points; latency model."""
from pathlib import Path

import pytest

import search
from bortkit.search.costs import MeasuredLatency, ParamCost, analytic_flops

REPO = Path(__file__).resolve().parents[1]
BERT_FIXED = dict(vocab_size=30522, max_length=512, type_vocab_size=2, use_pooler=True,
                  layer_norm_eps=1e-12, pad_token_id=0)


def bort_space_point(**searched):
    space = search.SearchSpace.from_yaml(REPO / "search" / "spaces" / "bert-space.yaml")
    return {**searched, **space.fixed}


@pytest.mark.parametrize("arch,expected", [
    (dict(num_layers=12, num_heads=12, units=768, ffn_units=3072, **BERT_FIXED), 109_482_240),
    (dict(num_layers=24, num_heads=16, units=1024, ffn_units=4096, **BERT_FIXED), 335_141_888),
])
def test_params_exact_for_bert_base_and_large(arch, expected):
    assert ParamCost()(arch) == expected


def test_bort_points_in_the_paper_space():
    released = bort_space_point(num_layers=4, num_heads=8, units=1024, ffn_units=768)
    paper = bort_space_point(num_layers=4, num_heads=8, units=768, ffn_units=1024)
    assert ParamCost()(released) == 75_106_304
    assert ParamCost()(paper) == 54_758_656          # the paper's "56M" reading
    assert ParamCost(include_embeddings=False)(paper) == 54_758_656 - 38_998_272
    # under the README's budget the released shape is out and the paper's reading is in
    assert ParamCost()(paper) <= search.parse_count("56M") < ParamCost()(released)
    readme = (REPO / "README.md").read_text()
    assert "54,758,656" in readme and "75,106,304" in readme


def test_analytic_flops_grow_with_depth():
    small = bort_space_point(num_layers=2, num_heads=8, units=512, ffn_units=256)
    deep = dict(small, num_layers=4)
    flops = analytic_flops(128)
    assert flops(deep) > 1.9 * flops(small)


def test_measured_latency_model_is_close_to_whole_model_timing():
    latency = MeasuredLatency(seq_length=32, repeats=3)
    arch = bort_space_point(num_layers=4, num_heads=8, units=512, ffn_units=512)
    deeper = dict(arch, num_layers=8)
    assert latency(deeper) > latency(arch) > 0
    rows = latency.validate([deeper])
    assert abs(rows[0]["relative_error"]) < 0.5, rows  # noisy 2-core machine: loose bound

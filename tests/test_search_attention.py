"""Attention kinds as a search dimension: exact counts, their own latency, one-line errors."""
import pytest

import search
from bortkit.errors import ConfigError
from bortkit.search.costs import MeasuredLatency, ParamCost, arch_config

KINDS = ["qk", "qk_convfixed", "qk_convfixed_convq_convk"]
SPACE = f"""num_layers: [1, 2]
num_heads: [4]
units: [32]
ffn_units: [48]
attention: [{", ".join(KINDS)}]
fixed:
  vocab_size: 64
  max_length: 64
  position_embedding: none
  relative_positions_each_dir: 4
  use_pooler: false
"""


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    return search.SearchSpace.from_yaml(path)


def test_attention_kinds_are_a_dimension_with_exact_counts(space):
    from bortkit.model import Model
    archs = list(space)
    assert len(archs) == 6 and [a["attention"] for a in archs[:3]] == KINDS
    params = ParamCost()
    for arch in archs:
        assert params(arch) == Model(arch_config(arch)).num_params()
    one_layer = [params(a) for a in archs[:3]]
    # convfixed adds H x R = 4 x 9 per layer, convq + convk add 2 x d x R = 2 x 8 x 9
    assert [b - a for a, b in zip(one_layer, one_layer[1:])] == [36, 144]


def test_latency_is_measured_per_attention_kind_and_the_search_ranks_kinds(space):
    archs = list(space)
    latency = MeasuredLatency(seq_length=32, repeats=3, warmup=1, depths=(1, 2))
    times = {a["attention"]: latency(a) for a in archs[:3]}
    assert all(t > 0 for t in times.values())
    assert times["qk"] != times["qk_convfixed_convq_convk"]   # not one cached layer time
    # a synthetic error that prefers the composite kinds: the search must see the dimension
    error = {"qk": 3.0, "qk_convfixed": 2.5, "qk_convfixed_convq_convk": 2.0}
    costs = search.CostModel(params=ParamCost(), inference_cost=latency,
                             error=lambda a: error[a["attention"]] / a["num_layers"])
    result = search.exhaustive(archs, costs)
    assert "attention" in result.dimensions
    assert result.chosen.arch["attention"] in KINDS
    assert "qk_convfixed_convq_convk" in search.format_table(result)


def test_unknown_attention_kind_in_a_space_is_one_line(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text("units: [32]\nattention:\n  - qk\n  - qk_relative\n")
    with pytest.raises(ConfigError) as err:
        search.SearchSpace.from_yaml(path)
    text = str(err.value)
    assert text.startswith(f"{path}:4: attention[1] must be one of dot_product, qk, ")
    assert text.endswith("got 'qk_relative'") and "\n" not in text


def test_bundled_attention_space_loads():
    space = search.SearchSpace.from_yaml(search.space.default_space_path().parent
                                         / "attention-space.yaml")
    assert len(space) == 12 and {a["attention"] for a in space} == set(KINDS)

"""Config validation: one-line errors naming the file and the problem."""
import json

import pytest

from bortkit.config import ModelConfig, load_config, preset_names
from bortkit.errors import ConfigError


def test_all_presets_load():
    assert {"bert-base", "bert-large", "roberta-base", "bort", "minilm-l6-h384"} \
        <= set(preset_names())
    for name in preset_names():
        load_config(name)


def test_embed_size_defaults_to_units():
    assert ModelConfig(units=128, num_heads=4, ffn_units=256).embed_size == 128


@pytest.mark.parametrize("data,message", [
    ({"units": 100, "num_heads": 12}, "units (100) must be divisible by num_heads (12)"),
    ({"num_layers": 0}, "num_layers must be a positive integer, got 0"),
    ({"hidden_size": 768}, "a Hugging Face config.json (model_type/hidden_size) without its "
                           "weights"),
    ({"hidden_units": 768}, "unknown model config field(s): hidden_units"),
    ({"activation": "swish"}, "activation must be one of"),
    ({"dropout": 1.5}, "dropout must be a number in [0, 1), got 1.5"),
])
def test_bad_config_file_is_one_line_naming_the_file(tmp_path, data, message):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_unknown_architecture_lists_presets():
    with pytest.raises(ConfigError, match="unknown architecture 'bert-huge'.*bort"):
        load_config("bert-huge")


def test_invalid_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(path)


@pytest.mark.parametrize("changes, message", [
    ({"use_pooler": "no"}, "use_pooler must be true or false, got 'no'"),
    ({"use_pooler": 1}, "use_pooler must be true or false, got 1"),
    ({"max_length": 10 ** 12}, "max_length x embed_size = 1000000000000 x 768 = "
                               "768000000000000 weights exceeds the 2147483647 one tensor can "
                               "hold"),
    ({"num_layers": 10 ** 6}, "num_layers (1000000) x 7077888 weights per layer + embeddings "
                              "= 7077911835648 weights exceeds the 4294967296 a model may "
                              "hold"),
    ({"position_offset": 200, "max_length": 128},
     "position_offset (200) must be < max_length (128): the position table would hold no "
     "position"),
    ({"layer_norm_eps": float("nan")}, "layer_norm_eps must be a number in (0, 1), got nan"),
    ({"layer_norm_eps": float("inf")}, "layer_norm_eps must be a number in (0, 1), got inf"),
    ({"dropout": float("nan")}, "dropout must be a number in [0, 1), got nan"),
    ({"attention_dropout": True}, "attention_dropout must be a number in [0, 1), got True"),
])
def test_one_schema_refuses_types_ranges_and_sizes(changes, message):
    """Issue 26: before, use_pooler "no" read as true, max_length 1e12 was an MXNetError
    while building, position_offset 200 failed at the first batch ("[1, -72]"), NaN passed."""
    with pytest.raises(ConfigError) as err:
        ModelConfig(**changes)
    assert str(err.value) == f"invalid model config: {message}"


def test_a_position_table_of_one_row_and_a_large_model_still_load():
    assert ModelConfig(position_offset=127, max_length=128).longest_sequence == 1
    assert ModelConfig(num_layers=24, units=1024, num_heads=16, ffn_units=4096)


def test_yaml_reads_yaml_12_numbers_and_refuses_alias_bombs():
    """One YAML reader for every YAML input: 1e-4 is a number (PyYAML's YAML 1.1 read it as
    the string '1e-4'); a billion-laughs document and an oversized text are one line."""
    from search.errors import SearchError
    from search.yamlfile import MAX_BYTES, load_yaml
    data, _ = load_yaml("a: 1e-4\nb: [-2E+3, 5.0e-4, 7, .5]\nc: '1e-4'\nd: 1_000\n")
    assert data == {"a": 1e-4, "b": [-2000.0, 5e-4, 7, 0.5], "c": "1e-4", "d": 1000}
    laughs = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [
        f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in zip("abcdefgh", "bcdefghi")]
    with pytest.raises(SearchError) as err:
        load_yaml("\n".join(laughs), "space.yaml", "the search space")
    assert str(err.value) == ("space.yaml: the search space expands to more than 100000 values "
                              "through its aliases (*name); write the values out")
    with pytest.raises(SearchError, match="aliases"):
        load_yaml("a: &a [1, *a]")  # a recursive anchor
    with pytest.raises(ConfigError, match=f"at most {MAX_BYTES} are read"):
        load_yaml("a: " + "1" * MAX_BYTES, error=ConfigError)
    assert load_yaml("a: &x [1, 2]\nb: *x\n")[0] == {"a": [1, 2], "b": [1, 2]}


def test_theta_and_space_values_written_1e_4_are_numbers(tmp_path):
    from bortkit.finetune.space import load_space
    path = tmp_path / "space.yaml"
    path.write_text("learning_rate: [1e-4, 5e-5]\nwarmup_ratio: 0.1\n")
    assert load_space(path).params["learning_rate"].choices == (1e-4, 5e-5)


def test_search_space_fixed_fields_are_config_fields(tmp_path):
    from search.errors import SearchError

    from bortkit.search import load_space
    path = tmp_path / "space.yaml"
    path.write_text("num_layers: [2]\nunits: [32]\nfixed:\n  vocab_size: 100\n  ffn_unit: 64\n")
    with pytest.raises(SearchError) as err:
        load_space(path)
    assert str(err.value) == f"{path}:5: unknown fixed field 'ffn_unit' (did you mean " \
                             "'ffn_units'?)"
    path.write_text("num_layers: [2]\nunits: [32]\nfixed:\n  use_pooler: 'no'\n")
    with pytest.raises(ConfigError, match="use_pooler must be true or false"):
        load_space(path)


def test_a_theta_file_reads_1e_4_as_a_number(tmp_path):
    """Before: YAML 1.1 read 1e-4 as a string: "learning_rate: must be a number, got '1e-4'"."""
    import search
    path = tmp_path / "theta.yaml"
    path.write_text("- {learning_rate: 1e-4}\n- {learning_rate: 5E-5}\n")
    known = {"learning_rate": lambda v: None if isinstance(v, float) else "must be a number"}
    assert search.load_thetas(path, known) == [{"learning_rate": 1e-4}, {"learning_rate": 5e-5}]

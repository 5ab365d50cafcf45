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
    ({"dropout": 1.5}, "dropout must be in [0, 1)"),
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

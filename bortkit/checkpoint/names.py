"""Parameter-name maps between bortkit, Hugging Face and GluonNLP 0.x layouts.

bortkit names are the structural names of :class:`~bortkit.model.BertNetwork`
(``encoder.3.attention.query.weight``); heads live under ``mlm_head.`` and ``head.``.
Each map goes from a bortkit name to the foreign name; weights need no transposition
(Gluon ``Dense`` and PyTorch ``Linear`` both store (out, in)).
"""
from __future__ import annotations

from ..config import ModelConfig

_HF_LAYER = {
    "attention.query": "attention.self.query",
    "attention.key": "attention.self.key",
    "attention.value": "attention.self.value",
    "attention.output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "ffn.ffn_1": "intermediate.dense",
    "ffn.ffn_2": "output.dense",
    "ffn_norm": "output.LayerNorm",
}

_GLUONNLP_LAYER = {
    "attention.query": "attention_cell.proj_query",
    "attention.key": "attention_cell.proj_key",
    "attention.value": "attention_cell.proj_value",
    "attention.output": "proj",
    "attention_norm": "layer_norm",
    "ffn.ffn_1": "ffn.ffn_1",
    "ffn.ffn_2": "ffn.ffn_2",
    "ffn_norm": "ffn.layer_norm",
}


def _is_norm(name: str) -> bool:
    return name.endswith("norm") or name.endswith("layer_norm")


def _suffixes(block: str):
    """Parameter suffixes of a Dense or LayerNorm in bortkit (Gluon) and torch naming."""
    if _is_norm(block):
        return (("gamma", "weight"), ("beta", "bias"))
    return (("weight", "weight"), ("bias", "bias"))


def huggingface_names(config: ModelConfig, mlm_head: bool = False) -> dict[str, str]:
    """bortkit name -> Hugging Face ``BertModel``/``RobertaModel`` name (no ``bert.`` prefix)."""
    names = {"embeddings.word_embed.weight": "embeddings.word_embeddings.weight",
             "embeddings.layer_norm.gamma": "embeddings.LayerNorm.weight",
             "embeddings.layer_norm.beta": "embeddings.LayerNorm.bias"}
    if config.position_embedding == "learned":
        names["embeddings.position_embed.weight"] = "embeddings.position_embeddings.weight"
    if config.type_vocab_size:
        names["embeddings.token_type_embed.weight"] = "embeddings.token_type_embeddings.weight"
    for i in range(config.num_layers):
        for ours, theirs in _HF_LAYER.items():
            for s_ours, s_theirs in _suffixes(ours):
                names[f"encoder.{i}.{ours}.{s_ours}"] = f"encoder.layer.{i}.{theirs}.{s_theirs}"
    if config.use_pooler:
        names["pooler.dense.weight"] = "pooler.dense.weight"
        names["pooler.dense.bias"] = "pooler.dense.bias"
    if mlm_head:
        names.update({"mlm_head.transform.weight": "cls.predictions.transform.dense.weight",
                      "mlm_head.transform.bias": "cls.predictions.transform.dense.bias",
                      "mlm_head.layer_norm.gamma": "cls.predictions.transform.LayerNorm.weight",
                      "mlm_head.layer_norm.beta": "cls.predictions.transform.LayerNorm.bias",
                      "mlm_head.decoder.bias": "cls.predictions.bias"})
    return names


def huggingface_head_names(config: ModelConfig, roberta: bool) -> dict[str, str]:
    """bortkit head name -> ``BertForSequenceClassification`` / ``RobertaForSequenceClassification``
    name (from the model's root, ``bert.`` included). BERT's head reads the pooler; a bortkit
    [CLS] head without a pooler has its own ``tanh(Dense)``, which is exactly BERT's pooler
    and is stored there. RoBERTa's head has that Dense (``classifier.dense``) itself."""
    if roberta:
        return {"head.dense.weight": "classifier.dense.weight",
                "head.dense.bias": "classifier.dense.bias",
                "head.out.weight": "classifier.out_proj.weight",
                "head.out.bias": "classifier.out_proj.bias"}
    names = {"head.out.weight": "classifier.weight", "head.out.bias": "classifier.bias"}
    if not config.use_pooler:
        names.update({"head.dense.weight": "bert.pooler.dense.weight",
                      "head.dense.bias": "bert.pooler.dense.bias"})
    return names


def gluonnlp_names(config: ModelConfig, mlm_head: bool = False) -> dict[str, str]:
    """bortkit name -> GluonNLP 0.8/0.10 ``BERTModel``/``RoBERTaModel`` parameter name."""
    names = {"embeddings.word_embed.weight": "word_embed.0.weight",
             "embeddings.position_embed.weight": "encoder.position_weight",
             "embeddings.layer_norm.gamma": "encoder.layer_norm.gamma",
             "embeddings.layer_norm.beta": "encoder.layer_norm.beta"}
    if config.type_vocab_size:
        names["embeddings.token_type_embed.weight"] = "token_type_embed.0.weight"
    for i in range(config.num_layers):
        for ours, theirs in _GLUONNLP_LAYER.items():
            for s_ours, _ in _suffixes(ours):
                names[f"encoder.{i}.{ours}.{s_ours}"] = \
                    f"encoder.transformer_cells.{i}.{theirs}.{s_ours}"
    if config.use_pooler:
        names["pooler.dense.weight"] = "pooler.weight"
        names["pooler.dense.bias"] = "pooler.bias"
    if mlm_head:
        names.update({"mlm_head.transform.weight": "decoder.0.weight",
                      "mlm_head.transform.bias": "decoder.0.bias",
                      "mlm_head.layer_norm.gamma": "decoder.2.gamma",
                      "mlm_head.layer_norm.beta": "decoder.2.beta",
                      "mlm_head.decoder.bias": "decoder.3.bias"})
    return names

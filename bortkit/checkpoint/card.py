"""The model card (``README.md``) of every checkpoint and export, with its metadata block.

Hugging Face's loaders (``huggingface_hub.ModelCard``) read the YAML block between the two
``---`` lines: ``base_model``, ``pipeline_tag`` (the task), ``library_name``, ``tags``,
``metrics`` and ``model-index`` (the scores), plus bortkit's own ``bortkit`` entry (labels,
the length the head was trained with, the command that made the model, the bortkit version).

What the card says comes from the checkpoint's ``config.json`` meta: its task head
(:meth:`~bortkit.checkpoint.TaskHead.from_meta`: task, labels, length), ``"_card"``
(``base_model`` and ``metrics``, written by the trainer that saved the weights, kept through
every later save and export) and the provenance of this write (command line, bortkit
version, time).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .heads import TaskHead

CARD = "README.md"
LIBRARIES = {"bortkit": "bortkit", "huggingface": "transformers", "onnx": "onnx"}


def card_meta(base_model: Optional[str] = None, metrics: Optional[dict] = None,
              **extra) -> dict:
    """The ``"_card"`` entry of a ``config.json``: what the card cannot learn from the weights
    (numbers only in ``metrics``)."""
    entry = {"base_model": base_model, **extra}
    if metrics:
        entry["metrics"] = {k: float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"_card": {k: v for k, v in entry.items() if v is not None}}


def metadata(meta: dict, provenance: dict, fmt: str, name: str) -> dict:
    """The YAML metadata block of a card, as a dict."""
    head = TaskHead.from_meta(meta)
    about = {"task": None, "kind": None, "labels": [], "max_length": None} if head is None \
        else {"task": head.task, "kind": head.kind, "labels": list(head.labels),
              "max_length": head.max_length}
    card = meta.get("_card") or {}
    base = card.get("base_model") or provenance.get("source")
    task = "text-classification" if head is not None else "feature-extraction"
    data = {"library_name": LIBRARIES[fmt]}
    if base:
        data["base_model"] = str(base)
    data["pipeline_tag"] = task
    data["tags"] = ["bortkit", fmt, task]
    metrics = card.get("metrics") or {}
    if metrics:
        data["metrics"] = sorted(k for k in metrics if k != "main")
        dataset = about["task"] or "unknown"
        data["model-index"] = [{"name": name, "results": [{
            "task": {"type": task},
            "dataset": {"name": dataset, "type": dataset, "split": "dev"},
            "metrics": [{"type": k, "value": v} for k, v in sorted(metrics.items())
                        if k != "main"]}]}]
    data["bortkit"] = {
        "version": provenance.get("bortkit_version"),
        "format": fmt,
        **about,
        "made_by": provenance.get("command"),
        "created": provenance.get("created"),
    }
    for key in ("step", "trainer"):
        if key in card:
            data["bortkit"][key] = card[key]
    return data


def render(meta: dict, provenance: dict, fmt: str, name: str) -> str:
    """The whole ``README.md``: the metadata block, then a short human-readable page."""
    import yaml
    data = metadata(meta, provenance, fmt, name)
    info = data["bortkit"]
    lines = ["---", yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip(), "---",
             "", f"# {name}", ""]
    what = (f"A {info['task'] or 'text'} classifier" if info["kind"] == "classification" else
            f"A {info['task'] or 'text'} regression model" if info["kind"] == "regression" else
            "A sentence encoder")
    lines.append(f"{what} made with bortkit {info['version']}"
                 + (f" from `{data['base_model']}`" if data.get("base_model") else "") + ".")
    if info["labels"]:
        lines += ["", "Labels: " + ", ".join(f"`{x}`" for x in info["labels"]) + "."]
    if data.get("model-index"):
        lines += ["", "| metric (dev) | value |", "|---|---|"]
        lines += [f"| {m['type']} | {m['value']:.4f} |"
                  for m in data["model-index"][0]["results"][0]["metrics"]]
    usage = {"bortkit": "bortkit.pipeline(PATH)(\"some text\")",
             "huggingface": "transformers.pipeline(\"text-classification\", model=PATH)"
                            "(\"some text\", truncation=True)",
             "onnx": "bortkit.pipeline(PATH)(\"some text\")   # ONNX Runtime"}[fmt]
    if info["kind"] is None:
        usage = "bortkit.from_pretrained(PATH).embed([\"some text\"])"
    lines += ["", "```python", usage, "```", "",
              f"Made by: `{info['made_by']}` ({info['created']}).", ""]
    return "\n".join(lines)


def write_card(directory: Path, meta: dict, provenance: dict, fmt: str,
               name: Optional[str] = None) -> None:
    """Write ``README.md`` into ``directory`` (a staging folder, renamed into place by the
    caller)."""
    from ..io import atomic_write
    with atomic_write(Path(directory) / CARD, "w", encoding="utf-8") as fh:
        fh.write(render(meta, provenance, fmt, name or Path(directory).name))

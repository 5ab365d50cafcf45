"""Which parts of an encoder layer the analyses tap and edit, and the checks of layer
indices: framework-free, so ``python -m bortkit.analyze --help`` answers without MXNet."""
from __future__ import annotations

from typing import Sequence

from ..errors import ConfigError

TAPS = ("input", "attention", "attention_block", "ffn", "output")

# part -> (input tap, output tap)
PARTS = {
    "attention": ("input", "attention"),              # the attention sub-layer alone
    "attention_block": ("input", "attention_block"),  # + residual + LayerNorm
    "ffn": ("attention_block", "ffn"),                # the FFN sub-layer alone
    "ffn_block": ("attention_block", "output"),       # + residual + LayerNorm
    "layer": ("input", "output"),                     # the whole layer
}


def check_layers(layers: Sequence[int], num_layers: int, option: str) -> None:
    """One-line error unless every index is in [0, num_layers)."""
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise ConfigError(f"{option}: layer index must be in [0, {num_layers - 1}] for this "
                          f"{num_layers}-layer model, got {bad[0]}")


def check_permutation(order: Sequence[int], num_layers: int, option: str) -> None:
    """One-line error unless ``order`` is a permutation of 0..num_layers-1."""
    if sorted(order) != list(range(num_layers)):
        raise ConfigError(f"{option}: a shuffle order must be a permutation of 0..{num_layers - 1} "
                          f"(each layer once), got {','.join(map(str, order))}")

"""Run an encoder layer by layer from its public sub-blocks, with every tap exposed and edits.

Composes :class:`~bortkit.model.blocks.EncoderLayer`'s sub-blocks (``attention``,
``attention_norm``, ``ffn``, ``ffn_norm``) imperatively, so the analyses need no change to
the encoder itself. Shapes: B = batch, T = length, U = ``units``; inside, time-major (T, B, U)
as the encoder.

Taps of one layer (post-LN, BERT; pre-LN in brackets):

====================  ==========================================================
``input``             the layer's input x
``attention``         multi-head attention output after W_O, before the residual
``attention_block``   h = LN(x + attention)              [x + attention(LN(x))]
``ffn``               FFN output, before the residual
``output``            LN(h + ffn)                        [h + ffn(LN(h))]
====================  ==========================================================

A *part* is named by the tap it produces; its input is the tap in :data:`PARTS`. Editing a
part sets its tap from its input tap:

- replace: tap = f(input tap), f an approximator;
- remove (true removal, not the original's random re-initialisation): a sub-layer inside a
  residual (``attention``, ``ffn``) contributes 0 (the residual and LayerNorm stay); a block
  (``attention_block``, ``ffn_block``) becomes the identity; a ``layer`` is left out of the
  layer order, which is exactly a model built without it;
- cancel skip: the layer's two residual connections are multiplied by 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import mxnet as mx

from .parts import PARTS, TAPS, check_layers, check_permutation  # noqa: F401

Approximator = Callable[[mx.nd.NDArray], mx.nd.NDArray]  # (..., U) -> (..., U)


@dataclass
class Edits:
    """What to change in a forward pass. Layer indices name weights (the pretrained layer i),
    not positions: ``order=(1, 0, 2)`` runs layer 1 first."""

    order: Optional[Sequence[int]] = None                 # None = all layers in order
    replace: Mapping[tuple, Approximator] = field(default_factory=dict)  # (layer, part) -> f
    remove: frozenset = frozenset()                       # {(layer, part)}
    cancel_skip: frozenset = frozenset()                  # layers without residuals

    def layer_order(self, num_layers: int) -> list[int]:
        """The layers to run, in order, removed layers left out."""
        order = range(num_layers) if self.order is None else self.order
        return [i for i in order if (i, "layer") not in self.remove]


def layer_taps(layer, x, mask, pre_norm: bool, index: int = 0,
               edits: Optional[Edits] = None) -> dict:
    """Every tap of ``layer`` (an :class:`EncoderLayer`) on x (T, B, U) with the (B, T) mask.
    Taps of an edited part hold the edited value; a part skipped wholesale has no inner taps."""
    edits = edits or Edits()
    keep = 0.0 if index in edits.cancel_skip else 1.0

    def edited(part):
        if (index, part) in edits.replace:
            return edits.replace[(index, part)](taps[PARTS[part][0]])
        return None

    def block(block_part, sub_part, x, sublayer, norm):
        """A residual block: x -> LN(x + f(x)) [x + f(LN(x))], with its edits."""
        y = edited(block_part)
        if y is None and (index, block_part) in edits.remove:
            y = x
        if y is None:
            f = edited(sub_part)
            if f is None:
                f = mx.nd.zeros_like(x) if (index, sub_part) in edits.remove else \
                    sublayer(norm(x) if pre_norm else x)
            taps[sub_part] = f
            f = layer.dropout(f)
            y = keep * x + f if pre_norm else norm(keep * x + f)
        taps[PARTS[block_part][1]] = y
        return y

    taps = {"input": x}
    if (index, "layer") in edits.replace:
        taps["output"] = edited("layer")
        return taps
    h = block("attention_block", "attention", x, lambda v: layer.attention(v, mask)[0],
              layer.attention_norm)
    block("ffn_block", "ffn", h, layer.ffn, layer.ffn_norm)
    return taps


def run_network(network, input_ids, token_type_ids, attention_mask,
                edits: Optional[Edits] = None, collect_taps: bool = False):
    """A :class:`~bortkit.model.BertNetwork`'s forward pass with ``edits``, imperatively on
    NDArrays (B, T). Returns (sequence (B, T, U), pooled (B, U) or None, taps) where taps is a
    list, per position in the layer order, of {tap: (T, B, U)} (empty unless collected)."""
    edits = edits or Edits()
    config = network.config
    pre_norm = config.layer_norm_position == "pre"
    x = mx.nd.transpose(network.embeddings(input_ids, token_type_ids), axes=(1, 0, 2))
    collected = []
    for index in edits.layer_order(config.num_layers):
        taps = layer_taps(network.encoder[index], x, attention_mask, pre_norm, index, edits)
        x = taps["output"]
        if collect_taps:
            collected.append(taps)
    if pre_norm:
        x = network.final_norm(x)
    sequence = mx.nd.transpose(x, axes=(1, 0, 2))                    # (B, T, U)
    pooled = network.pooler(sequence) if config.use_pooler else None
    return sequence, pooled, collected

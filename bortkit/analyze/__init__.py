"""Non-linearity and layer-commutativity analyses (Zhao et al., IJCNN 2021):
``python -m bortkit.analyze nonlinearity|replace|remove|freeze|swap|shuffle``.

MXNet loads when a piece is used, so ``--help`` answers without it."""
_LAZY = {**{name: "approximators" for name in (
    "LinearApproximator", "MLPApproximator", "fit_mlp", "nonlinearity", "one_minus_cosine",
    "real_tokens")},
    **{name: "taps" for name in ("Edits", "layer_taps", "run_network")},
    **{name: "parts" for name in ("PARTS", "TAPS")}}
__all__ = sorted(_LAZY)


def __getattr__(name):  # PEP 562
    if name not in _LAZY:
        raise AttributeError(f"module 'bortkit.analyze' has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)

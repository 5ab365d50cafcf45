"""Non-linearity and layer-commutativity analyses (Zhao et al., IJCNN 2021):
``python -m bortkit.analyze nonlinearity|replace|remove|freeze|swap|shuffle``."""
from .approximators import (LinearApproximator, MLPApproximator, fit_mlp,  # noqa: F401
                            nonlinearity, one_minus_cosine, real_tokens)
from .taps import PARTS, TAPS, Edits, layer_taps, run_network  # noqa: F401

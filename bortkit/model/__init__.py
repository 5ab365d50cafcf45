"""MXNet Gluon model code: the only part of bortkit that touches the framework."""
from .bert import (BertNetwork, EncoderOutput, MaskedLMModel, Model,  # noqa: F401
                   SequenceClassifier)
from . import composite  # noqa: F401  (registers the composite attention kinds)
from .multitask import MultiTaskClassifier, freeze_base  # noqa: F401

import warnings as _warnings

# Heads that skip a part of the network (an MLM model never reads the pooler; mean pooling
# never reads it either; models without token types never read token_type_ids) leave
# parameters and inputs out of the graph on purpose; Gluon warns about each one at the
# first call. Those parameters are frozen or simply unused.
_warnings.filterwarnings("ignore", message=r"Parameter .* is not used by any computation")
_warnings.filterwarnings("ignore", message=r"The .*-th input to HybridBlock is not used")

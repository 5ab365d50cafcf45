"""`python -m bortkit.search`: the FPTAS of the top-level `search` package on bortkit models."""
from __future__ import annotations


def load_space(path=None):
    """A search space whose named dimensions (``attention``) are checked against the family's
    kinds (:data:`bortkit.config.ATTENTIONS`); ``None`` loads the bundled default."""
    import search

    from ..config import ATTENTIONS, FIELDS, from_dict
    space = search.SearchSpace.from_yaml(path, choices={"attention": ATTENTIONS}, fields=FIELDS)
    from_dict(next(iter(space)), path=space.path)  # the fixed values, checked before any work
    return space

"""FLOP structured pruning (Wang, Wohlwend & Lei, EMNLP 2020): ``python -m bortkit.prune``.

- :mod:`.hard_concrete` — the hard-concrete gate (sample, deterministic gate, expected L0);
- :mod:`.factorize` — thin-SVD factorisation of every encoder matrix, gates between factors;
- :mod:`.lagrangian` — expected sparsity, the two-multiplier Lagrangian, Noam schedules;
- :mod:`.compact` — removing switched-off ranks, merging pairs back, the compacted state;
- :mod:`.args`, :mod:`.trainer`, :mod:`.run`, :mod:`.command` — the command and its run on
  the training runtime (``bortkit.train``); :mod:`.report` — plot and tables.

The compacted model is an ordinary family checkpoint: the config's ``low_rank`` lists the
matrices kept as two factors and their ranks (see :class:`bortkit.ModelConfig`).
"""

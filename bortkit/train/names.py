"""Registries of the runtime's choices, importable without MXNet (command lines read them)."""

OPTIMIZERS = ("bertadam", "adamw", "lamb")

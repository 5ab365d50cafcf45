"""Registries of the runtime's choices, importable without MXNet (command lines read them)."""

OPTIMIZERS = ("bertadam", "adamw", "lamb")

# Files of a training state directory (bortkit.train.state).
TRAINING_STATE = "state.json"
OPTIMIZER_STATES = "optimizer.states"

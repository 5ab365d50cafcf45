"""What a distillation objective mixes, framework-free: the loss weights, the layer maps of
intermediate-layer transfer, and a one-line description for logs (the losses themselves are
in ``losses.py``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..errors import ConfigError

KD_MODES = ("correct", "bort")

#: What each KD mode computes and what it means for Bort's weights (0.1 MLM, 0.5 KD, T = 2).
KD_MODE_MEANINGS = {
    "correct": "T^2 KL(teacher || student) summed over the vocabulary (Hinton et al.); with "
               "Bort's weights this is a loss the release never trained with",
    "bort": "the released Bort code's term: a second softmax on the student's probabilities "
            "and a mean over the vocabulary, about 1e-5 of the correct term at Bort's "
            "vocabulary of 50,265, so 0.1 MLM + 0.5 KD is in effect 0.1 MLM alone",
}

#: Loss presets (--loss-preset): mlm_weight, kd_weight, temperature, kd_mode.
LOSS_PRESETS = {
    "bort": {"mlm_weight": 0.1, "kd_weight": 0.5, "temperature": 2.0, "kd_mode": "correct"},
    "bort-release": {"mlm_weight": 0.1, "kd_weight": 0.5, "temperature": 2.0,
                     "kd_mode": "bort"},
}
LOSS_PRESET_MEANINGS = {
    "bort": "Bort's weights with the correct KD term (the default)",
    "bort-release": "Bort's weights with the release's KD term: the loss the released model "
                    "was trained with",
}


def apply_loss_preset(preset: Optional[str], given: dict) -> dict:
    """The four loss settings of ``preset`` (None: the defaults, Bort's weights with the
    correct term), with ``given`` (the ones set on the command line, None when not) checked
    against it: a preset and a different explicit value is an error, not a quiet mix."""
    if preset is not None and preset not in LOSS_PRESETS:
        raise ConfigError(f"--loss-preset must be one of {', '.join(LOSS_PRESETS)}, "
                          f"got {preset!r}")
    values = dict(LOSS_PRESETS[preset or "bort"])
    for name, value in given.items():
        if value is None:
            continue
        if preset is not None and value != values[name]:
            raise ConfigError(f"--{name.replace('_', '-')} {value} contradicts --loss-preset "
                              f"{preset} ({name.replace('_', '-')} {values[name]}); give one "
                              f"or the other")
        values[name] = value
    return values


# --------------------------------------------------------------------------- layer maps
def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Student layer i ↔ teacher layer round((i + 1) · Lt / Ls) − 1 (0-based, halves up):
    each student layer matches the teacher layer at the same relative depth, the last
    student layer the last teacher layer."""
    if student_layers <= 0 or teacher_layers <= 0:
        raise ConfigError("layer counts must be positive")
    return [(i, int((i + 1) * teacher_layers / student_layers + 0.5) - 1)
            for i in range(student_layers)]


def parse_layer_map(text: str, student_layers: int,
                    teacher_layers: int) -> list[tuple[int, int]]:
    """Parse ``"0:1,1:3,..."`` (student layer : teacher layer, 0-based) and check it."""
    pairs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ConfigError(f"--layer-map entries must look like STUDENT:TEACHER "
                              f"(e.g. 0:1,1:3), got {item.strip()!r}")
        s, t = int(parts[0]), int(parts[1])
        if s >= student_layers:
            raise ConfigError(f"--layer-map: student layer {s} does not exist "
                              f"(the student has {student_layers} layers, 0-{student_layers - 1})")
        if t >= teacher_layers:
            raise ConfigError(f"--layer-map: teacher layer {t} does not exist "
                              f"(the teacher has {teacher_layers} layers, 0-{teacher_layers - 1})")
        pairs.append((s, t))
    students = [s for s, _ in pairs]
    if len(set(students)) != len(students):
        raise ConfigError("--layer-map maps a student layer twice")
    return pairs


# --------------------------------------------------------------------------- objective
@dataclass(frozen=True)
class LossWeights:
    """How the losses are mixed (defaults: Bort's ``run_pretraining_distillation.sh``)."""

    mlm: float = 0.1
    kd: float = 0.5
    temperature: float = 2.0
    kd_mode: str = "correct"
    hidden: float = 0.0        # hidden-state MSE between mapped layers; 0 = off
    attention: float = 0.0     # attention-distribution KL between mapped layers; 0 = off

    def __post_init__(self):
        if self.kd_mode not in KD_MODES:
            raise ConfigError(f"--kd-mode must be one of {', '.join(KD_MODES)}, "
                              f"got {self.kd_mode!r}")
        if self.temperature <= 0:
            raise ConfigError(f"--temperature must be positive, got {self.temperature}")
        for name in ("mlm", "kd", "hidden", "attention"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss weight {name} must be >= 0, got {getattr(self, name)}")


def describe(weights: LossWeights, teacher: bool,
             layer_map: Optional[Sequence[tuple[int, int]]] = None) -> str:
    """One line saying what is optimised and what its KD mode means, for logs."""
    if not teacher:
        return "masked-LM cross entropy (no teacher)"
    parts = [f"{weights.mlm:g}·MLM",
             f"{weights.kd:g}·KD[{weights.kd_mode}, T={weights.temperature:g}]"]
    if weights.hidden > 0:
        parts.append(f"{weights.hidden:g}·hidden-MSE")
    if weights.attention > 0:
        parts.append(f"{weights.attention:g}·attention-KL")
    text = " + ".join(parts)
    if layer_map and (weights.hidden > 0 or weights.attention > 0):
        text += " with layers " + ",".join(f"{s}:{t}" for s, t in layer_map)
    if weights.kd > 0:
        text += f"; KD mode {weights.kd_mode}: {KD_MODE_MEANINGS[weights.kd_mode]}"
        if weights.kd_mode == "correct":
            text += " (--loss-preset bort-release: the release's loss)"
    return text

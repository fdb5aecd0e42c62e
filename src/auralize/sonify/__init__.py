"""Training sonification: telemetry records, value->sound mappings, sessions.

Layering: adapters (keras, torch, lightning) -> :class:`TrainingStep` records ->
:class:`Sonifier` (mappings -> timeline -> engine events) -> the audio engine.
No ML framework is imported here.
"""

from auralize.sonify.mappings import (
    Alarm,
    Earcons,
    GradientTones,
    LossTone,
    Speech,
    WeightChord,
    make_mapping,
)
from auralize.sonify.session import RunResult, Sonifier
from auralize.sonify.telemetry import TrainingStep
from auralize.sonify.timeline import SonifyConfig, Timeline, replay

__all__ = [
    "Alarm",
    "Earcons",
    "GradientTones",
    "LossTone",
    "RunResult",
    "Sonifier",
    "SonifyConfig",
    "Speech",
    "Timeline",
    "TrainingStep",
    "WeightChord",
    "make_mapping",
    "replay",
]

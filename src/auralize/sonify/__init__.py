"""Training sonification: telemetry records, value->sound mappings, sessions."""

from auralize.sonify.telemetry import TrainingStep

__all__ = ["TrainingStep"]

"""auralize: hear neural networks.

The sound engine lives in :mod:`auralize.audio`; it knows nothing about neural
networks.  Feature packages build on it.
"""

from auralize.errors import AuralizeError

__version__ = "0.1.0"

__all__ = ["AuralizeError", "Sonifier", "TrainingStep", "__version__"]


def __getattr__(name: str):
    # Lazy, so that `auralize --version` and the CLI's start stay fast.
    if name == "Sonifier":
        from auralize.sonify.session import Sonifier

        return Sonifier
    if name == "TrainingStep":
        from auralize.sonify.telemetry import TrainingStep

        return TrainingStep
    raise AttributeError(f"module 'auralize' has no attribute {name!r}")

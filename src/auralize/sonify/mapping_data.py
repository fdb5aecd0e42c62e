"""What a log holds for each ``render --mapping`` choice, and the error when it lacks it."""

from __future__ import annotations

from auralize.errors import AuralizeError
from auralize.sonify.telemetry import TrainingStep

# What each ``render --mapping`` needs from a log, and how to say it is missing.
MAPPING_NEEDS = {
    "loss": ("a loss value", lambda r: r.loss is not None or "val_loss" in r.metrics),
    "gradients": ("gradient norms", lambda r: bool(r.grad_norms)),
    "weights": ("per-unit weight means (unit_means, recorded by a WeightChord mapping)",
                lambda r: bool(r.unit_means)),
}


def mappings_with_data(records: list[TrainingStep]) -> list[str]:
    """The ``render --mapping`` choices (loss, gradients, weights) the records hold data for."""
    return [name for name, (_what, has) in MAPPING_NEEDS.items()
            if any(has(r) for r in records)]


def require_mapping_data(records: list[TrainingStep], mapping: str, source) -> None:
    """Raise a one-line error when ``mapping`` would sound nothing for these records.

    ``mapping`` is a ``render --mapping`` choice; ``"all"`` needs any one of the three.

    Raises
    ------
    AuralizeError
        Naming what the log lacks and which mappings it can play.
    """
    present = mappings_with_data(records)
    if mapping == "all":
        if not present:
            raise AuralizeError(f"{str(source)!r} holds no loss, gradient norms or weight "
                                "data to sonify")
        return
    if mapping in present:
        return
    what = MAPPING_NEEDS[mapping][0]
    hint = (f"use --mapping {' or --mapping '.join(present)}" if present
            else "it holds nothing auralize can sonify")
    raise AuralizeError(f"{str(source)!r} has no {what}, which --mapping {mapping} plays; {hint}")

"""Training telemetry: one plain record per step, no framework types.

Adapters (Keras, PyTorch, Lightning) translate their world into
:class:`TrainingStep`; everything above (mappings, sessions, files, the web
page) only ever sees these records.  A run's ``telemetry.jsonl`` holds one
record per line, so a run can be re-sonified later without the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field


@dataclass
class TrainingStep:
    """What happened in one optimisation step.

    Attributes
    ----------
    step : int
        Global step index (0-based), counted over the whole run.
    epoch : int
        Epoch index (0-based).
    wall_time_s : float or None
        Seconds since the run started (None: not recorded; a Sonifier on the
        wall clock stamps it with its arrival time).
    loss : float or None
        The step's own loss (not a running mean).  NaN/Inf allowed: a
        diverging run is data, not an error.
    metrics : dict
        Other per-step scalars (accuracy, val_loss at epoch ends...).
    grad_norms : dict
        Per-layer L2 norm of the gradient, layer name -> float, in model order.
    weight_stats : dict
        Per-layer weight statistics, layer name -> {"mean": .., "std": .., "norm": ..}.
    unit_means : dict
        Per-unit mean weight of selected layers (layer name -> list of floats,
        one per output unit), recorded when a mapping asks for it (WeightChord).
    lr : float or None
        Learning rate in effect.
    epoch_end : bool
        True for the last step of an epoch.
    skipped : bool
        The optimizer did not apply this step (``GradScaler`` found inf/NaN
        gradients); its ``grad_norms`` are left out and ``skip_reason`` says why.
    skip_reason : str or None
    clipped : bool or None
        ``clip_grad_norm_`` scaled this step's gradients down (None: no clipping
        seen).  ``grad_norms`` are the norms before clipping.
    loss_scale : float or None
        The ``GradScaler`` scale the loss was multiplied by (the gradient norms
        are already divided by it).
    micro_batches : int
        How many ``log_loss`` calls (micro-batches) this record's loss and
        metrics are the mean of.
    """

    step: int
    epoch: int = 0
    wall_time_s: float | None = None
    loss: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)
    weight_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    unit_means: dict[str, list[float]] = field(default_factory=dict)
    lr: float | None = None
    epoch_end: bool = False
    skipped: bool = False
    skip_reason: str | None = None
    clipped: bool | None = None
    loss_scale: float | None = None
    micro_batches: int = 1

    def to_json(self) -> str:
        """One line of JSON; NaN/Inf are written as strings so the line stays valid JSON
        (browsers' ``JSON.parse`` rejects bare NaN)."""
        doc = {name: getattr(self, name) for name in self.__dataclass_fields__}
        try:
            return json.dumps(doc, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a non-finite number somewhere: the rare, slower path
            return json.dumps(_encode(doc), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, obj: dict, *, finite: bool = False) -> TrainingStep:
        """A record from its JSON object; ``finite=True``: the object holds no ``"nan"``/``"inf"``
        strings (its line was checked: :func:`has_nonfinite_text`), so nothing needs decoding."""
        known = cls.__dataclass_fields__
        data = ({k: v for k, v in obj.items() if k in known} if finite
                else {k: _decode(v) for k, v in obj.items() if k in known})
        if "step" not in data:
            raise ValueError("record has no 'step'")
        data["step"] = int(data["step"])
        data["epoch"] = int(data.get("epoch") or 0)
        return cls(**data)


def has_nonfinite_text(line: str) -> bool:
    """Whether a telemetry line may hold a non-finite number (written as ``"nan"``/``"inf"``).

    Most lines hold none; for them :meth:`TrainingStep.from_dict` skips the
    recursive decode (three times faster on a line of a hundred gradient norms).
    """
    return '"nan"' in line or 'inf"' in line


def _encode(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value):
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value

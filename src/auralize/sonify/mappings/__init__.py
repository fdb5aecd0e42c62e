"""Mappings: training telemetry in, engine events out.

Each mapping is a small object with plain parameters; given the records of a
run in order, it produces the same events every time, so a run folder's
``telemetry.jsonl`` re-renders bit-for-bit.  No audio is made here, so
mappings are tested by looking at their events (as astronify tests its pitch
mapping).

A mapping provides

- ``events(record, t_s, step_s)``: events for one step starting at score time
  ``t_s`` (voices are created by ``"add"`` events the first time they are
  needed);
- ``preferred_step_s(record)``: how long a step wants to last in the step clock
  (``None``: no preference);
- ``unit_means_requests()``: layers whose per-unit weight means it needs;
- ``final_events(t_s)``: events when training ends (announcements), and
  ``sounding_until_s()``: score time until which its sounds last (a spoken
  sentence outlasts its event), so the recording is not cut short.

The mappings live in role modules (:mod:`~auralize.sonify.mappings.tones`,
:mod:`~auralize.sonify.mappings.chord`, :mod:`~auralize.sonify.mappings.alerts`,
the interface in :mod:`~auralize.sonify.mappings.base`); this module names
them (:data:`MAPPINGS`, :func:`make_mapping`) and plays several on one clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sonify.mappings.alerts import Alarm, Earcons, Speech
from auralize.sonify.mappings.base import Mapping
from auralize.sonify.mappings.chord import WeightChord
from auralize.sonify.mappings.tones import GradientTones, LossTone
from auralize.sonify.telemetry import TrainingStep

__all__ = ["MAPPINGS", "Alarm", "Earcons", "GradientTones", "LossTone", "Mapping",
           "MappingSet", "Speech", "WeightChord", "make_mapping"]

MAPPINGS: dict[str, type[Mapping]] = {
    cls.kind: cls for cls in (LossTone, GradientTones, WeightChord, Alarm, Earcons, Speech)
}


def make_mapping(spec) -> Mapping:
    """A mapping from its name (``"loss"``), its config dict, or a mapping object."""
    if isinstance(spec, Mapping):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    spec = dict(spec)
    kind = spec.pop("kind", None)
    cls = MAPPINGS.get(kind)
    if cls is None:
        raise AuralizeError(f"unknown mapping {kind!r}; choose from {', '.join(MAPPINGS)}")
    try:
        return cls(**spec)
    except TypeError as exc:
        raise AuralizeError(f"bad settings for the {kind!r} mapping: {exc}") from None


@dataclass
class MappingSet:
    """Several mappings sharing one step clock."""

    mappings: list[Mapping] = field(default_factory=list)

    def preferred_step_s(self, record: TrainingStep) -> float:
        wishes = [m.preferred_step_s(record) for m in self.mappings]
        wishes = [w for w in wishes if w]
        return max(wishes) if wishes else 0.05

    def events(self, record, t_s, step_s) -> list[Event]:
        out: list[Event] = []
        for mapping in self.mappings:
            out.extend(mapping.events(record, t_s, step_s))
        return out

    def final_events(self, t_s: float) -> list[Event]:
        return [e for mapping in self.mappings for e in mapping.final_events(t_s)]

    def sounding_until_s(self) -> float:
        return max((m.sounding_until_s() for m in self.mappings), default=0.0)

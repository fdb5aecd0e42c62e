"""The mapping interface every value -> sound mapping implements."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from auralize.audio.score import Event
from auralize.sonify.telemetry import TrainingStep


@dataclass
class Mapping:
    """Base class; subclasses are dataclasses whose fields are their whole config."""

    kind = "mapping"
    #: True when :meth:`events` reads ``record.weight_stats`` (adapters compute them only then)
    needs_weight_stats = False

    def __post_init__(self) -> None:
        self._started = False
        self.busy_until_s = 0.0

    def config(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def preferred_step_s(self, record: TrainingStep) -> float | None:
        return None

    def unit_means_requests(self) -> list[int | str]:
        return []

    def events(self, record: TrainingStep, t_s: float, step_s: float) -> list[Event]:
        raise NotImplementedError

    def final_events(self, t_s: float) -> list[Event]:
        return []

    def sounding_until_s(self) -> float:
        return self.busy_until_s


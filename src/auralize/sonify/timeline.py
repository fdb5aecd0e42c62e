"""Where each training step sits in score time, and which events it makes.

The :class:`Timeline` is shared by a live :class:`~auralize.sonify.session.Sonifier`
and by :func:`replay`, which re-sonifies a finished run from its telemetry.  One
piece of code decides the times, so a step-clock recording and its re-render
are bit-identical.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from auralize.audio.score import Event, Score
from auralize.errors import AuralizeError
from auralize.sonify.mappings import MappingSet, make_mapping
from auralize.sonify.telemetry import TrainingStep

CLOCKS = ("step", "wall")


@dataclass
class SonifyConfig:
    """Everything needed to turn telemetry into the same sound again.

    Saved as ``sonifier.json`` in the run folder.
    """

    mappings: list = field(default_factory=lambda: ["loss", "gradients", "weights", "alarm"])
    clock: str = "step"
    step_s: float | None = None
    sample_rate: int = 44100
    master_gain: float = 0.5
    chunk_size: int = 512
    tail_s: float = 0.5
    #: 2: stereo (each voice at its ``pan``, equal power); 1: mono (pans ignored)
    channels: int = 2

    def __post_init__(self) -> None:
        if self.clock not in CLOCKS:
            raise AuralizeError(f"clock must be 'step' or 'wall', not {self.clock!r}")
        if self.step_s is not None and not self.step_s > 0:
            raise AuralizeError(f"step_s must be positive, got {self.step_s}")
        if not 8000 <= int(self.sample_rate) <= 192000:
            raise AuralizeError(f"sample_rate must be 8000..192000 Hz, got {self.sample_rate}")
        if isinstance(self.channels, bool) or self.channels not in (1, 2):
            raise AuralizeError(f"channels must be 1 (mono) or 2 (stereo), got {self.channels!r}")

    def engine_kwargs(self) -> dict:
        return {"master_gain": self.master_gain, "chunk_size": self.chunk_size,
                "channels": int(self.channels)}

    def to_dict(self, mapping_set: MappingSet | None = None) -> dict:
        mappings = (
            [m.config() for m in mapping_set.mappings] if mapping_set else list(self.mappings)
        )
        return {
            "mappings": mappings, "clock": self.clock, "step_s": self.step_s,
            "sample_rate": int(self.sample_rate), "master_gain": self.master_gain,
            "chunk_size": self.chunk_size, "tail_s": self.tail_s, "channels": int(self.channels),
        }

    @classmethod
    def from_dict(cls, doc: dict) -> SonifyConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})


class Timeline:
    """Turns records into timed events under one clock.

    Parameters
    ----------
    config : SonifyConfig
        Clock, step length and mappings.
    """

    def __init__(self, config: SonifyConfig) -> None:
        self.config = config
        self.mappings = MappingSet([make_mapping(m) for m in config.mappings])
        self.step_s = config.step_s
        self.next_t_s = 0.0  # where the next step starts (step clock)
        self.last_event_s = 0.0
        self.steps = 0
        self.last_step_s = 0.0  # the slot of the latest step (score seconds)
        self._last_wall_s: float | None = None

    def unit_means_requests(self) -> list[int | str]:
        return [r for m in self.mappings.mappings for r in m.unit_means_requests()]

    def advance(self, record: TrainingStep) -> tuple[list[Event], float, float]:
        """Events of ``record``; returns ``(events, t_s, frontier_s)``.

        ``frontier_s`` is the score time before which no later record can add
        events, so audio up to it can be rendered now.
        """
        if self.step_s is None:
            self.step_s = self.mappings.preferred_step_s(record)
        if self.config.clock == "step":
            t_s = self.next_t_s
            step_s = self.step_s
            self.next_t_s = t_s + step_s
            frontier = self.next_t_s
        else:
            wall_s = record.wall_time_s  # None: no time recorded, so right after the last step
            t_s = self.next_t_s if wall_s is None else max(0.0, float(wall_s))
            # A step shorter than the mappings need still gets their length, so
            # that fast training does not squeeze gradient tones to nothing.
            step_s = self.step_s
            if self._last_wall_s is not None and t_s > self._last_wall_s:
                step_s = max(step_s, t_s - self._last_wall_s)
            self._last_wall_s = t_s
            self.next_t_s = t_s + step_s
            frontier = t_s
        self.last_step_s = step_s
        events = self.mappings.events(record, t_s, step_s)
        for event in events:
            if event.time_s is not None and event.time_s > self.last_event_s:
                self.last_event_s = event.time_s
        self.steps += 1
        return events, t_s, frontier

    def finish(self) -> list[Event]:
        """Events for the end of training (e.g. "training finished"), at the end of the last step."""
        events = self.mappings.final_events(self.next_t_s)
        for event in events:
            if event.time_s is not None and event.time_s > self.last_event_s:
                self.last_event_s = event.time_s
        return events

    def end_s(self) -> float:
        """Length of the recording: after the last step and its scheduled events (and
        sounds that outlast their event, such as speech), plus a tail."""
        return max(self.next_t_s, self.last_event_s, self.mappings.sounding_until_s()) \
            + self.config.tail_s


def replay(records: Iterable[TrainingStep], config: SonifyConfig) -> tuple[Score, float]:
    """Build the score a run's records make; return ``(score, duration_s)``."""
    timeline = Timeline(config)
    score = Score(sample_rate=int(config.sample_rate))
    for record in records:
        events, _, _ = timeline.advance(record)
        score.events.extend(events)
    if timeline.steps == 0:
        raise AuralizeError("the log holds no training steps to sonify")
    score.events.extend(timeline.finish())
    return score, timeline.end_s()

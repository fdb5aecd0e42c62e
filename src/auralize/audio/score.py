"""Scores: timestamped control events, saved as JSON and rendered offline.

A score is what a sonification session records once and can play live or
render to a file later, with bit-identical results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auralize.audio.engine import Engine
from auralize.errors import AuralizeError


@dataclass(frozen=True)
class Event:
    """One control change.

    Attributes
    ----------
    time_s : float or None
        Score time in seconds from the engine's start; ``None`` means "as soon
        as possible" (live use).
    voice : str
        Voice name, or ``"master"`` for the master gain.
    param : str
        Parameter name (see :class:`~auralize.audio.voices.sine_bank.SineBank`), or
        ``"add"`` (value: voice spec dict) / ``"remove"``.
    value : float, sequence or dict
        New value; a scalar broadcasts to every partial.
    glide_s : float or None
        Glide time in seconds; ``None`` uses the voice's default.
    """

    time_s: float | None
    voice: str
    param: str
    value: object = None
    glide_s: float | None = None

    def to_json(self) -> dict:
        value = self.value
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, dict):
            value = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in value.items()}
        out = {"t": self.time_s, "voice": self.voice, "param": self.param, "value": value}
        if self.glide_s is not None:
            out["glide_s"] = self.glide_s
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Event:
        return cls(obj["t"], obj["voice"], obj["param"], obj.get("value"), obj.get("glide_s"))


@dataclass
class Score:
    """An ordered list of events at one sample rate.

    Examples
    --------
    >>> score = Score(sample_rate=44100)
    >>> score.add_voice("tone", {"kind": "sines", "freq_hz": [440.0], "amp": [0.5]})
    >>> score.set(0.5, "tone", "freq_hz", 880.0, glide_s=0.05)
    >>> audio = render_score(score, duration_s=1.0)
    """

    sample_rate: int = 44100
    events: list[Event] = field(default_factory=list)

    def add(self, event: Event) -> None:
        self.events.append(event)

    def add_voice(self, name: str, spec: dict, time_s: float = 0.0) -> None:
        self.events.append(Event(time_s, name, "add", dict(spec)))

    def set(self, time_s: float, voice: str, param: str, value, glide_s: float | None = None):
        self.events.append(Event(time_s, voice, param, value, glide_s))

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    @property
    def end_s(self) -> float:
        """Time of the last timed event (0 for an empty score)."""
        times = [e.time_s for e in self.events if e.time_s is not None]
        return max(times, default=0.0)

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"sample_rate": self.sample_rate, "events": [e.to_json() for e in self.events]}
        path.write_text(json.dumps(doc))
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> Score:
        path = Path(path)
        try:
            doc = json.loads(path.read_text())
            return cls(int(doc["sample_rate"]), [Event.from_json(e) for e in doc["events"]])
        except FileNotFoundError:
            raise AuralizeError(f"score file not found: {str(path)!r}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise AuralizeError(f"{str(path)!r} is not an auralize score ({exc})") from None


def iter_blocks(
    events: Iterable[Event],
    duration_s: float,
    *,
    sample_rate: int = 44100,
    block_size: int = 1024,
    **engine_kwargs,
) -> Iterator[np.ndarray]:
    """Yield the rendering of ``events`` in blocks of ``block_size`` frames.

    The last block is shorter when ``duration_s`` is not a whole number of blocks.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    engine = Engine.from_events(events, sample_rate=sample_rate, **engine_kwargs)
    total = int(round(duration_s * sample_rate))
    done = 0
    while done < total:
        n = min(block_size, total - done)
        yield engine.render(n)
        done += n


def render_score(
    score: Score,
    duration_s: float | None = None,
    *,
    block_size: int = 1024,
    tail_s: float = 0.5,
    **engine_kwargs,
) -> np.ndarray:
    """Render ``score`` offline; return float32 samples, (frames,) or (frames, channels).

    Parameters
    ----------
    score : Score
        Events to play.
    duration_s : float, optional
        Length of the result; defaults to the last event plus ``tail_s``.
    block_size : int
        Frames per engine call.  The result is bit-identical for any value.
    **engine_kwargs
        Passed to :class:`~auralize.audio.engine.Engine` (``channels``,
        ``chunk_size``, ``master_gain``...).
    """
    if duration_s is None:
        duration_s = score.end_s + tail_s
    blocks = list(
        iter_blocks(
            score.events, duration_s, sample_rate=score.sample_rate, block_size=block_size,
            **engine_kwargs,
        )
    )
    if blocks:
        return np.concatenate(blocks)
    channels = int(engine_kwargs.get("channels", 1))
    return np.zeros((0,) if channels == 1 else (0, channels), dtype=np.float32)

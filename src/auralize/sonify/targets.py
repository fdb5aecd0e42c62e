"""Where a session's events go: the recording, the speaker, the page.

Every target has the same two methods:

- ``send(events, frontier_s)``: events of one step.  Recording targets get them
  in score time, with the frontier before which no later step adds events;
  live targets get them in wall-clock time (``time.perf_counter()`` seconds),
  placed by the session's :class:`~auralize.sonify.live_clock.LiveClock`, and
  also the step's record and score time (``record``, ``step_t_s``: the page
  charts them) and, when the step is heard, ``placed``: its live start, its
  events in score time and its slot (the page places the step frame by frame
  as the file has it);
- ``close(end_s) -> dict``: finish (score end for recordings, wall-clock end of
  the sound for live targets, which never wait past it) and report statistics;
  live targets name them (``stats_key``) and can be ``abandon``-ed (a session
  never closed).

None of them blocks the caller on audio work: the file is rendered in a worker
process, the speaker plays from one, the page is served from one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from auralize.audio.score import Event, Score
from auralize.sonify.timeline import SonifyConfig


class FileRecording:
    """The recording, rendered into a WAV by the recording worker (see :mod:`.render_worker`).

    Two ways to feed it:

    - ``telemetry`` (a training run): the worker reads the steps from the run
      folder's ``telemetry.jsonl`` (default: beside ``path``) and makes their
      events itself, so :meth:`send` costs nothing;
    - ``events=True`` (a sweep): :meth:`send` hands the worker each batch of
      events and its frontier (nothing is rendered past it).

    :meth:`close` hands it the last events.  ``spectrogram``: the PNG the worker
    draws from the samples as it writes them (its path in the closing stats).
    """

    def __init__(self, config: SonifyConfig, path: Path, telemetry: Path | None = None,
                 riff_limit_bytes: int | None = None, spectrogram: Path | None = None, *,
                 events: bool = False) -> None:
        from auralize.sonify.render_worker import RenderWorker
        from auralize.sonify.run_folder import TELEMETRY_NAME

        self.path = path
        self.events = bool(events)
        if not self.events:
            telemetry = telemetry or Path(path).parent / TELEMETRY_NAME
        self._worker = RenderWorker(config, path, None if self.events else telemetry,
                                    riff_limit_bytes, spectrogram).start(wait=False)

    def send(self, events: list[Event], frontier_s: float) -> None:
        """Events mode: to the worker.  Telemetry mode: nothing (the worker makes them)."""
        if self.events:
            self._worker.put(("events", list(events), float(frontier_s)))

    @property
    def error(self) -> str | None:
        return self._worker.error

    def close(self, end_s: float, steps: int = 0, final: list[Event] = ()) -> dict:
        return self._worker.finish(steps, list(final), end_s)

    def samples(self) -> np.ndarray:
        """The file's samples: ``(frames, channels)``, ``(frames,)`` when mono."""
        from auralize.audio.files import read_audio

        data = read_audio(self.path)[0]
        return data[:, 0] if data.shape[1] == 1 else data


class MemoryRecording:
    """The recording kept in memory (``Sonifier(None, ...)``): rendered in-process at close.

    Rendering the whole score at once gives the same samples as the file
    worker's step-by-step rendering (the engine is block-size independent) and
    costs the training loop nothing but a list append per step.
    """

    error = None

    def __init__(self, config: SonifyConfig) -> None:
        self.config = config
        self.score = Score(sample_rate=int(config.sample_rate))
        self._samples = np.zeros(0, np.float32)
        self.stats: dict = {}

    def send(self, events: list[Event], frontier_s: float) -> None:
        self.score.events.extend(events)

    def close(self, end_s: float, steps: int = 0, final: list[Event] = ()) -> dict:
        from auralize.audio.engine import Engine

        self.score.events.extend(final)
        kwargs = self.config.engine_kwargs()
        engine = Engine.from_events(self.score.events, sample_rate=int(self.config.sample_rate),
                                    **kwargs)
        frames = int(round(end_s * engine.sample_rate))
        self._samples = engine.render(frames) if frames > 0 else engine.render(0)
        self.stats = engine.stats.as_dict()
        return self.stats

    def samples(self) -> np.ndarray:
        return self._samples


class SpeakerTarget:
    """A :class:`~auralize.audio.live.output.LiveOutput` fed wall-clock events."""

    stats_key = "live"

    def __init__(self, config: SonifyConfig, device, lead_s: float) -> None:
        from auralize.audio.live.output import LiveOutput

        self.lead_s = lead_s
        self.live = LiveOutput(int(config.sample_rate), device=device, lead_s=lead_s,
                               engine_kwargs=config.engine_kwargs()).start()

    def send(self, events: list[Event], frontier_s: float, record=None,
             step_t_s: float | None = None, placed: tuple | None = None) -> None:
        self.live.send_at_wall(events)

    def close(self, end_s: float) -> dict:
        """Fade out as the last sound ends (``end_s``, wall clock), then stop."""
        fade_s = 0.05
        self.live.send_at_wall([Event(max(end_s - fade_s, time.perf_counter()), "master", "gain",
                                      0.0, fade_s)])
        wait_until(end_s + self.lead_s)
        return self.live.close().to_dict()

    def abandon(self) -> None:
        self.live.close(timeout_s=2.0)


class PageTarget:
    """A :class:`~auralize.web.bridge.WebSink` (the live page) fed wall-clock events and steps."""

    stats_key = "web"

    def __init__(self, config: SonifyConfig, title: str, host: str, port: int,
                 token: str | None) -> None:
        from auralize.web.bridge import WebSink

        self.sink = WebSink(int(config.sample_rate), host=host, port=port, token=token,
                            engine_kwargs=config.engine_kwargs(), title=title)
        self.url = self.sink.start()

    def send(self, events: list[Event], frontier_s: float, record=None,
             step_t_s: float | None = None, placed: tuple | None = None) -> None:
        if placed is not None and step_t_s is not None:
            start_s, score_events, step_s = placed
            self.sink.send_step(score_events, step_t_s, start_s, step_s)
        else:
            self.sink.send_events(events, step_t_s)
        if record is not None:
            self.sink.send_record(record, step_t_s)

    def close(self, end_s: float) -> dict:
        return self.sink.close(linger_s=max(0.0, end_s - time.perf_counter()) + 0.5)

    def abandon(self) -> None:
        self.sink.close(timeout_s=2.0, linger_s=0.0)


def wait_until(wall_s: float) -> None:
    """Sleep until ``time.perf_counter()`` reaches ``wall_s`` (no-op if past)."""
    left = wall_s - time.perf_counter()
    if left > 0:
        time.sleep(left)


__all__ = ["FileRecording", "MemoryRecording", "PageTarget", "SpeakerTarget", "wait_until"]

"""Replay of a finished run on the page, streamed from its log: memory that does not grow with it.

:class:`StreamedReplay` is a :class:`~auralize.web.sources.ReplaySource` that
holds no score: one pass over the log at start finds the length, the voices,
the captions and the chart history (decimated, :mod:`auralize.web.history`);
while playing, events are made from the log as the engine reaches them
(:class:`~auralize.sonify.stream.ScoreStream`).  A seek reads the log again
from the start, skipping synthesis up to a pre-roll as the score replay does,
so it costs time in proportion to the seek's target, and no memory.
"""

from __future__ import annotations

from auralize.audio.engine import Engine
from auralize.sonify.log_stream import LogStream
from auralize.sonify.stream import ScoreStream
from auralize.sonify.timeline import SonifyConfig, Timeline
from auralize.web.records import compact_record
from auralize.web.sources import ReplaySource, _Source

#: announcements kept for the page's captions (one per epoch end, best, divergence)
MAX_CAPTIONS = 10_000
#: frames skipped per piece during a seek (events are made just ahead of them)
_SEEK_PIECE = 1 << 18


class StreamedReplay(ReplaySource):
    """A run's log replayed with play, pause and seek.

    Parameters
    ----------
    log : LogStream
        The run (:func:`auralize.sonify.log_stream.open_log`).
    config : SonifyConfig
        The settings it is heard with.
    """

    def __init__(self, log: LogStream, config: SonifyConfig) -> None:
        _Source.__init__(self, int(config.sample_rate), config.engine_kwargs())
        self.log = log
        self.config = config
        self._playing = False
        self.ever_played = False
        self.events = []  # only the events that carry a caption (ReplaySource's captions())
        timeline = Timeline(config)
        for record in log.records():
            events, t_s, _ = timeline.advance(record)
            self.records.append(compact_record(record, t_s))
            self._note(events)
        if timeline.steps:
            self._note(timeline.finish())
        self.steps = timeline.steps
        self.duration_s = timeline.end_s() if timeline.steps else 0.0
        self._stream = ScoreStream(log.records(), config)
        self._pending: tuple | None = None
        self._feed(self.engine, self._stream, self.sample_rate)

    def _note(self, events) -> None:
        for ev in events:
            if ev.param == "add":
                self.mixer.add(ev.voice)
            elif (ev.param == "play" and isinstance(ev.value, dict) and ev.value.get("text")
                  and len(self.events) < MAX_CAPTIONS):
                self.events.append(ev)

    def _feed(self, engine: Engine, stream: ScoreStream, frames: int) -> None:
        """Make the events the engine needs to render ``frames`` more frames."""
        target = engine.synth_frame + int(frames) + engine.chunk_size
        if stream.done or stream.frontier_frame() >= target:
            return
        old, self.engine = self.engine, engine
        try:
            stream.schedule_until(target, lambda ev: self.schedule([ev], 0.0))
        finally:
            self.engine = old

    def render(self, frames: int):
        if self._pending is not None and self._pending[0] is self.engine:
            self._stream, self._pending = self._pending[1], None
        self._feed(self.engine, self._stream, frames)
        return self.engine.render(frames)

    def seek_engine(self, t_s: float) -> Engine:
        """A new engine at ``t_s``: the log read again up to there, synthesis skipped to a pre-roll."""
        t_s = min(max(0.0, float(t_s)), self.duration_s)
        engine = Engine(self.sample_rate, **self.engine_kwargs)
        stream = ScoreStream(self.log.records(), self.config)
        target = round(t_s * self.sample_rate)
        preroll_s = max(1.0, 4.0 * engine.limiter_release_s)
        skip_to = max(0, target - round(preroll_s * self.sample_rate))
        while engine.frames_rendered < skip_to:
            piece = min(_SEEK_PIECE, skip_to - engine.frames_rendered)
            self._feed(engine, stream, piece)
            engine.skip(piece)
        while engine.frames_rendered < target:
            piece = min(65536, target - engine.frames_rendered)
            self._feed(engine, stream, piece)
            engine.render(piece)
        for ev in self.mixer.events(None, glide_s=0.0):
            engine.schedule(ev)
        self._pending = (engine, stream)
        return engine


def load_streamed_replay(path: str) -> tuple[StreamedReplay, SonifyConfig]:
    """The replay of a run folder or log, and the settings it is heard with."""
    from auralize.sonify.log_stream import open_log

    log = open_log(path)
    config = log.config or SonifyConfig()
    if config.clock == "wall" and not log.any(lambda r: bool(r.wall_time_s)):
        config = SonifyConfig.from_dict(dict(config.to_dict(), clock="step"))
    return StreamedReplay(log, config), config


__all__ = ["StreamedReplay", "load_streamed_replay"]

"""Re-sonify a run as a stream: records in, audio out, in memory that does not grow with the run.

A :class:`ScoreStream` turns records into events one step at a time through
the same :class:`~auralize.sonify.timeline.Timeline` the live session uses,
and keeps the *frontier* (the score time before which no later record can add
events).  An engine rendered only up to the frontier (on its chunk grid) gives
the same samples as one that was given every event at once (the engine is
block-size independent), so :func:`render_stream` writes what
:func:`~auralize.sonify.timeline.replay` + ``iter_blocks`` wrote, bit for bit,
while holding only the events of the steps not yet rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator

from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sonify.telemetry import TrainingStep
from auralize.sonify.timeline import SonifyConfig, Timeline


class ScoreStream:
    """A run's events, made as rendering needs them.

    Parameters
    ----------
    records : iterable of TrainingStep
        Read lazily, once.
    config : SonifyConfig
        Clock, step length and mappings.
    """

    def __init__(self, records: Iterable[TrainingStep], config: SonifyConfig) -> None:
        self.config = config
        self.timeline = Timeline(config)
        self.sample_rate = int(config.sample_rate)
        self._records: Iterator[TrainingStep] = iter(records)
        self.frontier_s = 0.0
        self.done = False

    @property
    def steps(self) -> int:
        return self.timeline.steps

    def end_s(self) -> float:
        """Length of the rendering (known once :attr:`done`)."""
        if not self.timeline.steps:
            raise AuralizeError("the log holds no training steps to sonify")
        return self.timeline.end_s()

    def pull(self) -> list[Event]:
        """Events of the next record; after the last, the end-of-training events (then ``done``)."""
        if self.done:
            return []
        record = next(self._records, None)
        if record is None:
            self.done = True
            self.frontier_s = math.inf
            return self.timeline.finish() if self.timeline.steps else []
        events, _t_s, self.frontier_s = self.timeline.advance(record)
        return events

    def frontier_frame(self) -> float:
        """The engine frame (on the chunk grid) up to which rendering is final."""
        if self.done:
            return math.inf
        chunk = int(self.config.chunk_size)
        return int(self.frontier_s * self.sample_rate) // chunk * chunk

    def schedule_until(self, frame: int, schedule: Callable[[Event], None]) -> None:
        """Pull records until rendering up to ``frame`` is final; hand their events to ``schedule``."""
        while not self.done and self.frontier_frame() < frame:
            for event in self.pull():
                schedule(event)


def iter_stream_blocks(records: Iterable[TrainingStep], config: SonifyConfig,
                       block_frames: int | None = None):
    """Yield the rendering of ``records`` in blocks (the last one shorter); return the stream.

    The generator's return value (``StopIteration.value``) is the finished
    :class:`ScoreStream` and the engine's statistics.
    """
    from auralize.audio.engine import Engine

    sr = int(config.sample_rate)
    block = int(block_frames or sr // 2)
    stream = ScoreStream(records, config)
    engine = Engine(sr, **config.engine_kwargs())
    while True:
        stream.schedule_until(engine.frames_rendered + block, engine.schedule)
        target = int(round(stream.end_s() * sr)) if stream.done else int(stream.frontier_frame())
        while engine.frames_rendered < target:
            yield engine.render(min(block, target - engine.frames_rendered))
        if stream.done:
            return stream, engine.stats.as_dict()


def render_stream(records: Iterable[TrainingStep], config: SonifyConfig, sinks,
                  *, block_frames: int | None = None, progress=None) -> tuple[int, float, dict]:
    """Render ``records`` under ``config`` into ``sinks`` (closed at the end).

    Returns ``(steps, duration_s, engine_stats)``.  Memory holds one block and
    the events of the steps not yet rendered, whatever the run's length.

    Parameters
    ----------
    progress : callable, optional
        Called with the frames rendered after each block.
    """
    sinks = list(sinks)
    blocks = iter_stream_blocks(records, config, block_frames)
    try:
        while True:
            try:
                samples = next(blocks)
            except StopIteration as done:
                stream, stats = done.value
                return stream.steps, stream.end_s(), stats
            for sink in sinks:
                sink.write(samples)
            if progress is not None:
                progress(len(samples))
    finally:
        for sink in sinks:
            sink.close()


def count_lines(path, chunk_bytes: int = 1 << 22) -> int:
    """Complete lines in a file, counted in chunks (no line is parsed or kept)."""
    lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            lines += chunk.count(b"\n")
    return lines


__all__ = ["ScoreStream", "count_lines", "iter_stream_blocks", "render_stream"]

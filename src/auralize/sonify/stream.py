"""Re-sonify a run as a stream: records in, audio out, in memory that does not grow with the run.

A :class:`ScoreStream` turns records into events one step at a time through
the same :class:`~auralize.sonify.timeline.Timeline` the live session uses,
and keeps the *frontier* (the score time before which no later record can add
events).  An engine rendered only up to the frontier (on its chunk grid) gives
the same samples as one that was given every event at once (the engine is
block-size independent), so :func:`render_blocks` (one run, or several side by
side) gives what :func:`~auralize.sonify.timeline.replay` + ``iter_blocks``
gave, bit for bit, while holding only the events of the steps not yet rendered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence

import numpy as np

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


def _side_blocks(records: Iterable[TrainingStep], config: SonifyConfig, block: int):
    """Yield the rendering of ``records`` in blocks of at most ``block`` frames; return the
    finished :class:`ScoreStream` (``StopIteration.value``)."""
    from auralize.audio.engine import Engine

    sr = int(config.sample_rate)
    stream = ScoreStream(records, config)
    engine = Engine(sr, **config.engine_kwargs())
    while True:
        stream.schedule_until(engine.frames_rendered + block, engine.schedule)
        target = int(round(stream.end_s() * sr)) if stream.done else int(stream.frontier_frame())
        while engine.frames_rendered < target:
            yield engine.render(min(block, target - engine.frames_rendered))
        if stream.done:
            return stream


def _sample_rate(sides) -> int:
    rates = sorted({int(config.sample_rate) for _, config in sides})
    if len(rates) != 1:
        raise AuralizeError(f"the runs are rendered at {' and '.join(map(str, rates))} Hz; "
                            "give them one sample rate")
    return rates[0]


def render_blocks(sides: Sequence[tuple[Iterable[TrainingStep], SonifyConfig]],
                  block_frames: int | None = None) -> Generator[np.ndarray, None, list[ScoreStream]]:
    """Render runs side by side, streamed: ``(frames, channels)`` float32 blocks.

    The one re-rendering path (``auralize render``, ``compare``, the digest, a
    killed sweep run's repair): side ``i`` is ``records`` rendered under its
    ``config`` (``config.channels`` columns, after those of the sides before
    it), sample for sample what an engine given every event at once renders.
    A side that ends first is followed by silence.  Memory holds, per side, one
    or two blocks and the events of the steps not yet rendered, whatever the
    runs' length.

    Parameters
    ----------
    sides : sequence of (iterable of TrainingStep, SonifyConfig)
        Each run's records (read lazily, once) and settings, all at one sample rate.
    block_frames : int, optional
        Frames per block (default half a second; the last block is shorter).

    Returns
    -------
    list of ScoreStream
        As the generator's return value (``StopIteration.value``): each side's
        finished stream (``steps``, ``end_s()``).

    Raises
    ------
    AuralizeError
        Sides at different sample rates; a side without steps.
    """
    sides = list(sides)
    rate = _sample_rate(sides)
    block = int(block_frames or rate // 2)
    widths = [int(config.channels) for _, config in sides]
    blocks = [_side_blocks(records, config, block) for records, config in sides]
    pending = [np.zeros((0, width), np.float32) for width in widths]
    ended: list[ScoreStream | None] = [None] * len(sides)
    while True:
        for i, side in enumerate(blocks):  # each side a block ahead, or ended
            while ended[i] is None and len(pending[i]) < block:
                try:
                    samples = next(side)
                except StopIteration as end:
                    ended[i] = end.value
                else:
                    pending[i] = np.concatenate([pending[i],
                                                 samples.reshape(len(samples), widths[i])])
        running = [len(p) for p, e in zip(pending, ended) if e is None]
        n = min(block, *running) if running else min(block, max(len(p) for p in pending))
        if n == 0:
            return ended
        out = np.zeros((n, sum(widths)), np.float32)
        column = 0
        for i, width in enumerate(widths):
            take = pending[i][:n]
            out[:len(take), column:column + width] = take
            pending[i] = pending[i][n:]
            column += width
        yield out


def render_file(sides: Sequence[tuple[Iterable[TrainingStep], SonifyConfig]], out,
                *, progress: Callable[[int], None] | None = None) -> tuple[list[ScoreStream], int]:
    """:func:`render_blocks` written into the audio file ``out`` (its channels side by side).

    Returns each side's finished :class:`ScoreStream` and the frames written.

    Parameters
    ----------
    progress : callable, optional
        Called with the frames written after each block.
    """
    from auralize.audio.sinks import FileSink

    sides = list(sides)
    sample_rate = _sample_rate(sides)  # before the file is made
    channels = sum(int(config.channels) for _, config in sides)
    blocks = render_blocks(sides)
    frames = 0
    with FileSink(out, sample_rate, channels=channels) as sink:
        while True:
            try:
                samples = next(blocks)
            except StopIteration as done:
                return done.value, frames
            sink.write(samples)
            frames += len(samples)
            if progress is not None:
                progress(len(samples))


def count_lines(path, chunk_bytes: int = 1 << 22) -> int:
    """Complete lines in a file, counted in chunks (no line is parsed or kept)."""
    lines = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            lines += chunk.count(b"\n")
    return lines


__all__ = ["ScoreStream", "count_lines", "render_blocks", "render_file"]

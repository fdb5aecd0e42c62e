"""Replay of a finished run on the page, streamed from its log: memory that does not grow with it.

:class:`StreamedReplay` is a :class:`~auralize.web.sources.ReplaySource` that
holds no score: one pass over the log at start finds the length, the voices,
the captions and the chart history (decimated, :mod:`auralize.web.history`);
while playing, events are made from the log as the engine reaches them
(:class:`~auralize.sonify.stream.ScoreStream`).

A seek in a ``telemetry.jsonl`` costs a bounded number of reads whatever its
target: the start-up pass keeps an index of checkpoints, at most
:data:`MAX_CHECKPOINTS` of them, evenly spaced in steps (the line's byte
offset, its score time, the timeline's state pickled: a kilobyte or two, and
the voices alive).  A seek to ``t`` starts a fresh engine at the last
checkpoint :data:`SETTLE_S` before ``t`` (voices re-added there, synthesis
skipped), reads the log from that line only, and renders a pre-roll as the
score replay does: the same tones at the same levels from ``t`` on (oscillator
phases may differ).  Other logs (CSV, TensorBoard) are read again from the
start.
"""

from __future__ import annotations

import heapq
import math
import pickle
from dataclasses import dataclass

from auralize.audio.engine import Engine
from auralize.audio.score import Event
from auralize.sonify.log_stream import LogStream
from auralize.sonify.stream import ScoreStream
from auralize.sonify.timeline import SonifyConfig, Timeline
from auralize.web.records import compact_record
from auralize.web.sources import ReplaySource, _Source

#: announcements kept for the page's captions (one per epoch end, best, divergence)
MAX_CAPTIONS = 10_000
#: frames skipped per piece during a seek (events are made just ahead of them)
_SEEK_PIECE = 1 << 18
#: checkpoints a replay's seek index holds at most (spaced evenly in steps)
MAX_CHECKPOINTS = 512
#: steps between checkpoints at least
MIN_CHECKPOINT_STEPS = 100
#: score seconds between the checkpoint a seek starts from and its target: glides, the
#: limiter and sounds begun shortly before settle (longer sounds begun earlier are not heard)
SETTLE_S = 10.0
#: bytes a seek reads at a time from the checkpoint's line on
_SEEK_READ_BYTES = 1 << 16


@dataclass
class _Checkpoint:
    """Where a seek can start: before the record at byte ``offset`` (score time ``t_s``)."""

    offset: int
    t_s: float
    timeline: bytes  # the Timeline's state, pickled
    voices: tuple  # per voice alive: its "add" event, then the last value of each parameter
    pending: tuple  # events made before, due after (an alarm's release)


#: parameters that start a sound rather than set a state: not repeated at a checkpoint
_ONE_SHOT = frozenset({"play"})


class _VoiceState:
    """The engine's voices and parameters at a score time, from the events due by then."""

    def __init__(self) -> None:
        self.voices: dict[str, dict] = {}  # voice -> {"add": event, param: last event}
        self._future: list = []
        self._seq = 0

    def add(self, events) -> None:
        for ev in events:
            if ev.param not in _ONE_SHOT:
                self._seq += 1
                heapq.heappush(self._future, (ev.time_s or 0.0, self._seq, ev))

    def at(self, t_s: float) -> tuple[tuple, tuple]:
        """``(state events, pending events)`` at ``t_s``."""
        while self._future and self._future[0][0] <= t_s:
            ev = heapq.heappop(self._future)[2]
            if ev.param == "add":
                self.voices[ev.voice] = {"add": ev}
            elif ev.param == "remove":
                self.voices.pop(ev.voice, None)
            elif ev.voice in self.voices:
                self.voices[ev.voice][ev.param] = ev
        state = tuple(ev for params in self.voices.values() for ev in params.values())
        return state, tuple(item[2] for item in sorted(self._future))


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
        self.checkpoints: list[_Checkpoint] = []
        self.seek_lines = 0  # records the last seek read (what the index bounds)
        state = _VoiceState()
        for record, offset in self._indexed_records(log):
            if offset is not None and timeline.steps % self._every == 0 and timeline.steps:
                t0_s = float(timeline.next_t_s)
                self.checkpoints.append(_Checkpoint(offset, t0_s, pickle.dumps(timeline),
                                                    *state.at(t0_s)))
            events, t_s, _ = timeline.advance(record)
            self.records.append(compact_record(record, t_s))
            self._note(events)
            if offset is not None:
                state.add(events)
        if timeline.steps:
            self._note(timeline.finish())
        self.steps = timeline.steps
        self.duration_s = timeline.end_s() if timeline.steps else 0.0
        self._stream = ScoreStream(log.records(), config)
        self._pending: tuple | None = None
        self._feed(self.engine, self._stream, self.sample_rate)

    def _indexed_records(self, log: LogStream):
        """``(record, byte offset of its line)``; offsets only for a ``telemetry.jsonl``."""
        self._every = 0
        if log.telemetry is None:
            for record in log.records():
                yield record, None
            return
        from auralize.readers import parse_json_line
        from auralize.sonify.stream import count_lines
        from auralize.sonify.telemetry import TrainingStep, has_nonfinite_text

        self._every = max(MIN_CHECKPOINT_STEPS, math.ceil(count_lines(log.telemetry)
                                                          / MAX_CHECKPOINTS))
        offset = 0
        with open(log.telemetry, "rb") as handle:
            for raw in handle:
                start, offset = offset, offset + len(raw)
                if not raw.endswith(b"\n"):
                    return  # a line still being written (a killed run): as TelemetryTail
                line = raw.decode("utf-8", "replace")
                if line.strip():
                    doc = parse_json_line(line)
                    yield (TrainingStep.from_dict(doc, finite=not has_nonfinite_text(line)),
                           start)

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

    def _from_checkpoint(self, t_s: float) -> tuple[Engine, ScoreStream] | None:
        """A fresh engine and stream at the last checkpoint :data:`SETTLE_S` before ``t_s``."""
        usable = [cp for cp in self.checkpoints if cp.t_s <= t_s - SETTLE_S]
        if not usable:
            return None
        cp = usable[-1]
        from auralize.sonify.logs import TelemetryTail

        engine = Engine(self.sample_rate, **self.engine_kwargs)
        start = round(cp.t_s * self.sample_rate)
        while engine.frames_rendered < start:  # no voices yet: nothing to advance but time
            engine.skip(min(1 << 20, start - engine.frames_rendered))
        for ev in cp.voices:  # the state, at once; then what was still to come
            engine.schedule(Event(cp.t_s, ev.voice, ev.param, ev.value, 0.0))
        for ev in cp.pending:
            engine.schedule(ev)
        tail = TelemetryTail(self.log.telemetry, max_bytes=_SEEK_READ_BYTES)
        tail.offset = cp.offset

        def records():
            for record in tail:
                self.seek_lines += 1
                yield record

        stream = ScoreStream(records(), self.config)
        stream.timeline = pickle.loads(cp.timeline)
        return engine, stream

    def seek_engine(self, t_s: float) -> Engine:
        """A new engine at ``t_s``: from the index's checkpoint before it (or the log's start),
        synthesis skipped to a pre-roll."""
        t_s = min(max(0.0, float(t_s)), self.duration_s)
        self.seek_lines = 0
        start = self._from_checkpoint(t_s)
        if start is None:
            engine = Engine(self.sample_rate, **self.engine_kwargs)
            stream = ScoreStream(self.log.records(), self.config)
        else:
            engine, stream = start
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
    from auralize.sonify.rerender import render_config

    log = open_log(path)
    config = render_config(log)  # as `auralize render` hears it
    return StreamedReplay(log, config), config


__all__ = ["StreamedReplay", "load_streamed_replay"]

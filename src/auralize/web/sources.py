"""Where the page's sound comes from: a live training session or a finished run.

- :class:`LiveSource`: engine events forwarded from a training process (a
  :class:`~auralize.web.bridge.WebSink` in the parent, or ``auralize follow
  --web``), already placed in wall-clock time by the session's live clock;
- :class:`ReplaySource`: a finished run's score (:func:`auralize.sonify.timeline.replay`)
  with play, pause and seek (``auralize serve`` streams it from the run's log:
  :class:`~auralize.web.replay_stream.StreamedReplay`).

Each owns an :class:`~auralize.audio.engine.Engine`, the page's
:class:`~auralize.web.mixer.Mixer` and the chart history.
"""

from __future__ import annotations

import collections

import numpy as np

from auralize.audio.engine import Engine
from auralize.audio.live.frame_clock import FrameClock
from auralize.audio.score import Event
from auralize.web.history import ChartHistory
from auralize.web.mixer import Mixer

MAX_HISTORY = 200_000  # step starts kept to map engine time to score time


class _Source:
    """An engine plus the mixer; subclasses say where events come from."""

    mode = "live"

    def __init__(self, sample_rate: int, engine_kwargs: dict) -> None:
        self.sample_rate = int(sample_rate)
        self.engine_kwargs = dict(engine_kwargs)
        self.engine = Engine(self.sample_rate, **self.engine_kwargs)
        self.mixer = Mixer()
        self.offset_s = 0.0  # engine time = score time + offset
        self.records = ChartHistory()  # decimated: a fixed size for a run of any length

    @property
    def playing(self) -> bool:
        return True

    def schedule(self, events, offset_s: float) -> list[str]:
        """Schedule score events at score time + offset; return voices that appeared."""
        new = []
        for ev in events:
            t = None if ev.time_s is None else ev.time_s + offset_s
            self.engine.schedule(Event(t, ev.voice, ev.param, ev.value, ev.glide_s))
            if ev.param == "add":
                if self.mixer.add(ev.voice):
                    new.append(ev.voice)
                # the voice is (re)created at t: its mix follows it, same frame, after it
                for mix_ev in self.mixer.events(t, [ev.voice], glide_s=0.0):
                    self.engine.schedule(mix_ev)
        return new

    def apply_mix(self) -> None:
        for ev in self.mixer.events(None):
            self.engine.schedule(ev)

    def score_time_s(self) -> float:
        return self.engine.time_s - self.offset_s

    def render(self, frames: int) -> np.ndarray:
        return self.engine.render(frames)


class LiveSource(_Source):
    """Events forwarded from training, placed in wall-clock time by the session's clock.

    The session's :class:`~auralize.sonify.live_clock.LiveClock` decides when
    each step plays (the same decision the speaker gets); this source puts it
    at the frame it sends at that moment (``time.perf_counter()`` seconds),
    through a :class:`~auralize.audio.live.frame_clock.FrameClock` that the server's
    pacing keeps current.

    A step (:meth:`feed_step`: its events in score time and its live start) is
    placed whole, as the file has it: each event at the file's frame shifted by
    a whole number of frames, and a step that follows the previous one without a
    wait keeps the previous shift.  So while steps follow each other (training
    as fast as the step clock, within ``max_lag_s``) the stream is the file's
    samples, delayed.  A step that reaches the page after its first frame was
    synthesised is delayed whole (``late_steps`` counts them).  After a wait
    (training slower than the step clock: the sustained sound holds until the
    step comes) the step has the file's events at the file's offsets, but what
    sounded through the wait (an oscillator's phase, a glide) has run on: the
    step sounds as in the file, its samples are not the file's.  Events given
    in wall-clock time (:meth:`feed_at_wall`: a session's last events) go to
    the frame heard at that moment.
    """

    mode = "live"

    def __init__(self, sample_rate: int, engine_kwargs: dict, lead_s: float = 0.1) -> None:
        super().__init__(sample_rate, engine_kwargs)
        self.lead_s = float(lead_s)
        self.frame_clock = FrameClock(self.sample_rate)
        self.started = False
        self.last_event_s = 0.0  # engine time of the latest event placed
        self._shift = 0  # engine frame - file frame of the latest step placed
        self._planned: float | None = None  # the same, as the live clock placed it (frames)
        self._free = 0  # engine frame at which the latest step's slot ends
        self.late_steps = 0  # steps that came after their first frame and were delayed whole
        # (engine s, score s, slot s or None) of each step: engine time to score time
        self._steps: collections.deque = collections.deque(maxlen=MAX_HISTORY)

    def pace(self, wall_s: float, frame: int) -> None:
        """The server sends frame ``frame`` at ``wall_s`` (its pacing restarted)."""
        self.frame_clock = FrameClock(self.sample_rate)
        self.frame_clock.observe(wall_s, frame)

    def feed_at_wall(self, events, score_t_s: float | None = None) -> list[str]:
        """Schedule events whose ``time_s`` is a wall-clock moment; return new voices.

        ``score_t_s``: the score time of the step these events start (for the
        page's clock display).
        """
        placed = []
        for ev in events:
            t = None if ev.time_s is None else self.frame_clock.engine_time_s(ev.time_s)
            placed.append(Event(t, ev.voice, ev.param, ev.value, ev.glide_s))
        times = [ev.time_s for ev in placed if ev.time_s is not None]
        if times and score_t_s is not None:
            self._steps.append((min(times), float(score_t_s), None))
        return self._schedule_placed(placed, times)

    def feed_step(self, events, t_s: float, start_wall_s: float, step_s: float) -> list[str]:
        """Schedule a step heard live, as the file has it; return new voices.

        ``events`` are in score time, the step starts at score time ``t_s`` and
        lasts ``step_s`` (its slot; 0: open-ended); its sound starts at the
        wall-clock moment ``start_wall_s`` (the live clock's decision).  Each event
        goes to the frame the file has it at, plus a whole number of frames (see
        the class docstring); the score time shown holds at the slot's end while
        the next step is awaited.
        """
        sr = self.sample_rate
        engine_start = self.frame_clock.engine_time_s(start_wall_s)
        if engine_start is None:  # not paced yet: at once
            engine_start = self.engine.synth_frame / sr
        planned = engine_start * sr - t_s * sr  # engine frame - file frame, as the clock placed it
        # A step planned where the previous one ends (within a frame: wall times carry float
        # rounding) follows it without a wait: it keeps the previous shift.
        if self._planned is None or abs(planned - self._planned) >= 1.0:
            self._planned = planned
            self._shift = round(engine_start * sr) - round(t_s * sr)
        # A step that reaches the page after its first frame was synthesised (the pipe was
        # slow) plays whole, later, as the live clock moves a late step; the steps that
        # follow it keep that delay until a wait absorbs it.  None starts before the
        # previous one's slot has ended.
        late = max(self.engine.synth_frame, self._free) - (round(t_s * sr) + self._shift)
        if late > 0:
            self._shift += late
            self.late_steps += 1
        self._free = round((t_s + max(0.0, step_s)) * sr) + self._shift
        # whole frames: the engine rounds each time to the file's frame plus the shift
        placed = [Event(None if ev.time_s is None else (round(ev.time_s * sr) + self._shift) / sr,
                        ev.voice, ev.param, ev.value, ev.glide_s) for ev in events]
        begin = (round(t_s * sr) + self._shift) / sr
        self._steps.append((begin, float(t_s), float(step_s) if step_s > 0 else None))
        times = [begin] + [ev.time_s for ev in placed if ev.time_s is not None]
        return self._schedule_placed(placed, times)

    def _schedule_placed(self, placed: list[Event], times: list[float]) -> list[str]:
        if times:
            self.last_event_s = max(self.last_event_s, max(times))
        self.started = True
        return self.schedule(placed, 0.0)

    def score_time_s(self) -> float:
        """Score time now playing: the latest step started, plus the time since it started."""
        now = self.engine.time_s
        while len(self._steps) > 1 and self._steps[1][0] <= now:
            self._steps.popleft()
        return self.score_time_at(now)

    def score_time_at(self, engine_s: float) -> float:
        """Score time of engine time ``engine_s``: its step's score time plus the time since
        (at most its slot: while the next step is awaited, the score does not advance)."""
        for step_engine_s, step_score_s, slot_s in reversed(self._steps):
            if step_engine_s <= engine_s:
                since = engine_s - step_engine_s
                return step_score_s + (since if slot_s is None else min(since, slot_s))
        if not self._steps:
            return 0.0
        step_engine_s, step_score_s, _ = self._steps[0]
        return max(0.0, step_score_s - (step_engine_s - engine_s))

    def wall_to_score_s(self, wall_s: float) -> float | None:
        """Score time heard at wall-clock moment ``wall_s`` (None before the pacing started)."""
        engine_s = self.frame_clock.engine_time_s(wall_s)
        return None if engine_s is None else self.score_time_at(engine_s)

    def backlog_s(self) -> float:
        """Seconds of sound already scheduled but not yet played (at most the clock's lag)."""
        return max(0.0, self.last_event_s - self.engine.time_s) if self.started else 0.0


class ReplaySource(_Source):
    """A finished run's score with play / pause / seek.

    A seek builds a fresh engine with every event, skips synthesis up to a
    pre-roll and renders that: the samples match a render from the start to
    float rounding (the replay-seek figures are in BENCHMARKS.md).
    """

    mode = "replay"

    def __init__(self, score, duration_s: float, engine_kwargs: dict, records: list) -> None:
        super().__init__(int(score.sample_rate), engine_kwargs)
        self.events = list(score.events)
        self.duration_s = float(duration_s)
        self._playing = False
        self.ever_played = False
        self.records.extend(records)
        self.schedule(self.events, 0.0)

    @property
    def playing(self) -> bool:
        return self._playing and self.engine.time_s < self.duration_s

    def set_playing(self, playing: bool) -> None:
        self._playing = bool(playing) and self.engine.time_s < self.duration_s
        self.ever_played = self.ever_played or self._playing

    def seek_engine(self, t_s: float) -> Engine:
        """A new engine holding every event, rendered (and discarded) up to ``t_s``."""
        t_s = min(max(0.0, float(t_s)), self.duration_s)
        engine = Engine(self.sample_rate, **self.engine_kwargs)
        old, self.engine = self.engine, engine
        try:
            self.schedule(self.events, 0.0)
        finally:
            self.engine = old
        target = round(t_s * self.sample_rate)
        # Skip synthesis up to a pre-roll, then render it: the limiter (the only
        # state that depends on the samples) settles within its release time.
        preroll_s = max(1.0, 4.0 * engine.limiter_release_s)
        engine.skip(max(0, target - round(preroll_s * self.sample_rate)))
        while engine.frames_rendered < target:
            engine.render(min(65536, target - engine.frames_rendered))
        for ev in self.mixer.events(None, glide_s=0.0):
            engine.schedule(ev)
        return engine

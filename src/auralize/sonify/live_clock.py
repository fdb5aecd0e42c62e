"""When a training step plays live: one clock policy for the speaker and the page.

A recording can take its time: every step gets its slot on the step clock.  Live
sound cannot, because training does not run at the sound's pace:

- **slower training** (a step every 0.25 s, slots of 60 ms): a step's events
  arrive after their slot has been played.  Scheduled "now", a tone sequence
  collapses onto one frame and is never heard.  So the step is moved: it plays
  whole, in its own rhythm, as soon as it arrives (``margin_s`` later, so that
  its first event reaches the synthesis in time).  The wait between steps is
  filled by what is sustained (the loss tone, the chord);
- **faster training** (600 steps logged in a burst): playing every slot would
  make the sound lag training more and more.  A step whose slot would start
  more than ``max_lag_s`` after it was logged is not played; its events are
  merged: for every (voice, parameter) it touched, the last value is applied
  at the start of the next step that plays (voices it adds or removes are kept
  in order), so sustained sound still follows training.  The recording keeps
  every step on the step clock.

:class:`LiveClock` decides; it is pure (times are arguments), so the policy is
tested without audio.  Live times are ``time.perf_counter()`` seconds, the
system's monotonic clock, which every process of the session shares: the
speaker's child process and the web page's server each place an event at the
frame that plays at that moment (:class:`auralize.audio.live.frame_clock.FrameClock`).
"""

from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from auralize.audio.live.output import STEADY_LEAD_S
from auralize.audio.score import Event
from auralize.errors import AuralizeError

#: how long a step may wait before it is heard, by default (seconds)
DEFAULT_MAX_LAG_S = 0.5
#: how far ahead of "now" a step is placed when it plays at once: the live streams' lead
#: plus the pipe to them, so that its first event reaches the synthesis before its frame
LIVE_MARGIN_S = STEADY_LEAD_S + 0.05
#: lags kept for the median (the maximum is over all steps)
LAGS_KEPT = 4096


@dataclass
class FollowStats:
    """How live sound followed training.

    Attributes
    ----------
    steps_heard : int
        Steps played live in their own rhythm.
    steps_merged : int
        Steps not played (training ran ahead by more than ``max_lag_s``); their
        last values were applied with the next step heard.
    steps_moved : int
        Steps that arrived after their slot and were played as soon as they came
        (training slower than the step clock).
    lag_median_s, lag_max_s : float
        From a step's arrival to the start of its sound, over the steps heard
        (NaN before any).
    """

    steps_heard: int = 0
    steps_merged: int = 0
    steps_moved: int = 0
    lag_median_s: float = math.nan
    lag_max_s: float = math.nan

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Pending:
    """Events of merged steps, waiting for the next step heard."""

    lifecycle: list = field(default_factory=list)  # "add"/"remove" events, in order
    latest: dict = field(default_factory=dict)  # (voice, param) -> last event

    def add(self, events: list[Event]) -> None:
        for event in sorted(events, key=lambda e: -math.inf if e.time_s is None else e.time_s):
            if event.param in ("add", "remove"):
                self.lifecycle.append(event)
                # a re-created voice starts from its spec: older values do not apply
                self.latest = {k: v for k, v in self.latest.items() if k[0] != event.voice}
            else:
                self.latest[(event.voice, event.param)] = event

    def take(self, at_s: float) -> list[Event]:
        out = [Event(at_s, e.voice, e.param, e.value, e.glide_s)
               for e in (*self.lifecycle, *self.latest.values())]
        self.lifecycle, self.latest = [], {}
        return out


class LiveClock:
    """Place each step's events in live (wall-clock) time.

    Parameters
    ----------
    max_lag_s : float
        Longest a step may wait between being logged and being heard (s).  Steps
        that would wait longer are merged (see the module docstring).
    margin_s : float
        How far ahead of "now" a step is placed when it plays at once (s): at
        least the live output's lead, so its first event is not late.

    Examples
    --------
    >>> clock = LiveClock(max_lag_s=0.5, margin_s=0.1)
    >>> events = [Event(0.0, "tone", "amp", 0.3), Event(0.01, "tone", "amp", 0.0)]
    >>> [e.time_s for e in clock.place(events, t_s=0.0, step_s=0.06, now_s=10.0)]
    [10.1, 10.11]
    """

    def __init__(self, max_lag_s: float = DEFAULT_MAX_LAG_S, margin_s: float = 0.15) -> None:
        if not (isinstance(max_lag_s, (int, float)) and math.isfinite(max_lag_s) and max_lag_s > 0):
            raise AuralizeError(f"max_lag_s must be a positive number of seconds, got {max_lag_s!r}")
        if not 0 <= margin_s < max_lag_s:
            raise AuralizeError(f"margin_s must be in [0, max_lag_s={max_lag_s}) seconds, got {margin_s!r}"
                                " (the live output's lead must be shorter than the lag allowed)")
        self.max_lag_s = float(max_lag_s)
        self.margin_s = float(margin_s)
        self.next_slot_s: float | None = None  # live time at which the next step may start
        self.last_sound_s = -math.inf  # live time of the last event placed
        # the last step heard: its live start and its events in score time (what place()
        # returned, before placing), for a target that places the step itself (the page)
        self.last_start_s: float | None = None
        self.last_score_events: list[Event] = []
        self._counts = FollowStats()
        self._lags: collections.deque = collections.deque(maxlen=LAGS_KEPT)
        self._pending = _Pending()
        self._lag_max_s = -math.inf

    def place(self, events: list[Event], t_s: float, step_s: float, now_s: float) -> list[Event]:
        """Live events of one step, or ``[]`` if the step is merged.

        Parameters
        ----------
        events : list of Event
            The step's events in score time (``time_s=None``: at once).
        t_s : float
            Score time at which the step starts.
        step_s : float
            The step's length in score time (its slot).
        now_s : float
            ``time.perf_counter()`` when the step was logged.

        Returns
        -------
        list of Event
            Events whose ``time_s`` is the live time at which they play.
        """
        earliest = now_s + self.margin_s
        start = earliest if self.next_slot_s is None else max(self.next_slot_s, earliest)
        if start - now_s > self.max_lag_s:
            self._pending.add(events)
            self._counts.steps_merged += 1
            return []
        if self.next_slot_s is not None and self.next_slot_s < earliest:
            self._counts.steps_moved += 1
        out = self._pending.take(start)
        self.last_start_s = start
        self.last_score_events = [Event(t_s, e.voice, e.param, e.value, e.glide_s) for e in out]
        self.last_score_events.extend(events)
        for event in events:
            at = None if event.time_s is None else start + (event.time_s - t_s)
            out.append(Event(at, event.voice, event.param, event.value, event.glide_s))
        extent = max([e.time_s for e in out if e.time_s is not None], default=start)
        self.next_slot_s = start + max(float(step_s), 0.0)
        self.last_sound_s = max(self.last_sound_s, extent, self.next_slot_s)
        self._counts.steps_heard += 1
        self._lags.append(start - now_s)
        self._lag_max_s = max(self._lag_max_s, start - now_s)
        return out

    @property
    def stats(self) -> FollowStats:
        """Counts so far; the lag median is over the last :data:`LAGS_KEPT` steps heard."""
        stats = FollowStats(**self._counts.to_dict())
        if self._lags:
            stats.lag_median_s = float(np.median(self._lags))
            stats.lag_max_s = self._lag_max_s
        return stats

    def flush(self, now_s: float) -> list[Event]:
        """Merged events still waiting (training ended): play them now."""
        if not self._pending.lifecycle and not self._pending.latest:
            return []
        at = now_s + self.margin_s
        if self.next_slot_s is not None:
            at = min(max(self.next_slot_s, at), now_s + self.margin_s + self.max_lag_s)
        self.last_sound_s = max(self.last_sound_s, at)
        return self._pending.take(at)

    def end_s(self, tail_s: float) -> float:
        """Live time at which the sound of every step placed has ended, plus ``tail_s``."""
        return (self.last_sound_s if math.isfinite(self.last_sound_s) else 0.0) + tail_s

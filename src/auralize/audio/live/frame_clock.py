"""Which engine frame is heard at a wall-clock moment: :class:`FrameClock`.

Live times are ``time.perf_counter()`` seconds, the system's monotonic clock,
which every process shares: a live stream (the speaker's child, the page's
server) places an event given at a wall-clock moment at the frame heard then.
What decides those moments (:mod:`auralize.sonify.live_clock`, above this layer)
is not the engine's business.
"""

from __future__ import annotations

import math


class FrameClock:
    """Which engine time is heard at a given wall-clock moment, from observations.

    A live output observes "frame ``f`` is heard at ``wall_s``" (each device
    callback, or its own pacing without a device).  Each observation estimates
    when frame 0 was heard; late callbacks (scheduling jitter, a stalled host)
    make the estimate later, so the clock keeps the earliest estimate and lets
    it move later only at ``drift_per_s`` (device clocks drift by parts per
    million; an underrun shifts the stream by its length).

    Parameters
    ----------
    sample_rate : int
        Hz of the engine.
    drift_per_s : float
        How fast (seconds per second) the estimate may move later.
    """

    def __init__(self, sample_rate: int, drift_per_s: float = 0.002) -> None:
        self.sample_rate = int(sample_rate)
        self.drift_per_s = float(drift_per_s)
        self.frame0_wall_s: float | None = None
        self._last_wall_s = 0.0

    def observe(self, wall_s: float, frame: int) -> None:
        """Frame ``frame`` is heard at ``wall_s`` (``time.perf_counter()`` seconds)."""
        estimate = wall_s - frame / self.sample_rate
        if self.frame0_wall_s is None:
            self.frame0_wall_s = estimate
        else:
            allowed = self.frame0_wall_s + self.drift_per_s * max(0.0, wall_s - self._last_wall_s)
            self.frame0_wall_s = min(allowed, estimate)
        self._last_wall_s = wall_s

    def engine_time_s(self, wall_s: float) -> float | None:
        """Engine seconds heard at ``wall_s`` (None before any observation: at once)."""
        if self.frame0_wall_s is None or not math.isfinite(wall_s):
            return None
        return wall_s - self.frame0_wall_s

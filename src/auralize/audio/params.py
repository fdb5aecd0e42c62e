"""Control parameters that glide, and the checks every incoming value passes.

A :class:`Param` holds one value per partial (or one for the voice) and moves
linearly to a new target over a glide time counted in frames.  Frame counting,
not wall time, keeps offline renders bit-identical whatever block size renders
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class EngineStats:
    """Counters a user can read after (or during) a render.

    Attributes
    ----------
    nonfinite_params : int
        Parameter values that were NaN or +-Inf and were replaced.
    clipped_params : int
        Parameter values outside their legal range (negative or above-Nyquist
        frequencies, amplitudes above 1...) that were clamped.
    limited_samples : int
        Output samples the limiter had to hard-clip to stay within [-1, 1].
    limiter_engaged_blocks : int
        Internal chunks in which the limiter reduced the gain.
    unknown_events : int
        Events naming a voice or parameter that does not exist (ignored).
    """

    nonfinite_params: int = 0
    clipped_params: int = 0
    limited_samples: int = 0
    limiter_engaged_blocks: int = 0
    unknown_events: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Range:
    """Legal range of a parameter and the value that replaces NaN/Inf."""

    low: float
    high: float
    fallback: float


def sanitize(value, size: int, legal: Range, stats: EngineStats) -> np.ndarray:
    """Return ``value`` as a float64 array of ``size`` within ``legal``.

    Scalars broadcast; arrays of another length are truncated or padded with the
    fallback.  NaN/Inf are replaced by ``legal.fallback`` and counted; values out
    of range are clamped and counted.  Never raises on numeric garbage, because
    the data comes from training runs that may diverge.
    """
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 0:
        arr = np.full(size, float(arr))
    else:
        arr = arr.ravel()
        if arr.size != size:
            fixed = np.full(size, legal.fallback)
            n = min(size, arr.size)
            fixed[:n] = arr[:n]
            arr = fixed
        else:
            arr = arr.copy()
    bad = ~np.isfinite(arr)
    if bad.any():
        stats.nonfinite_params += int(bad.sum())
        arr[bad] = legal.fallback
    out_of_range = (arr < legal.low) | (arr > legal.high)
    if out_of_range.any():
        stats.clipped_params += int(out_of_range.sum())
        np.clip(arr, legal.low, legal.high, out=arr)
    return arr


@dataclass
class Param:
    """A gliding parameter: ``value`` moves linearly to ``target`` in ``remaining`` frames."""

    value: np.ndarray
    target: np.ndarray = field(init=False)
    start: np.ndarray = field(init=False)
    glide_frames: int = 0
    elapsed: int = 0

    def __post_init__(self) -> None:
        self.value = np.asarray(self.value, dtype=np.float64)
        self.target = self.value.copy()
        self.start = self.value.copy()

    @property
    def remaining(self) -> int:
        """Frames until the glide ends (0 when steady)."""
        return max(0, self.glide_frames - self.elapsed)

    def set(self, target: np.ndarray, glide_frames: int) -> None:
        """Glide from the present value to ``target`` over ``glide_frames`` frames."""
        self.start = self.value.copy()
        self.target = np.asarray(target, dtype=np.float64)
        if glide_frames <= 0:
            self.value = self.target.copy()
            self.glide_frames = 0
        else:
            self.glide_frames = int(glide_frames)
        self.elapsed = 0

    def advance(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Advance ``frames``; return the values at the start and at the end of that span.

        The engine never lets a span cross the end of a glide, so the path is
        exactly linear inside it.
        """
        begin = self.value
        if self.remaining == 0:
            return begin, begin
        self.elapsed += frames
        if self.elapsed >= self.glide_frames:
            self.value = self.target.copy()
            self.glide_frames = 0
            self.elapsed = 0
        else:
            frac = self.elapsed / self.glide_frames
            self.value = self.start + (self.target - self.start) * frac
        return begin, self.value

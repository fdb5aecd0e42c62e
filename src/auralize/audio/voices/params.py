"""Control parameters that glide, and the checks every incoming value passes.

A :class:`Param` holds one value per partial (or one for the voice) and moves
linearly to a new target over a glide time counted in frames.  Frame counting,
not wall time, keeps offline renders bit-identical whatever block size renders
them.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    the data may come from runs that diverge.
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


class Param:
    """A gliding parameter: ``value`` moves linearly to ``target`` in ``remaining`` frames.

    The state lives in two small arrays, ``store`` (rows: value, start, target)
    and ``clock`` (glide length, frames elapsed), so that a voice can pack the
    state of all its parameters into one array its compiled render loop
    advances in place (see :mod:`auralize.audio.kernels`).  Values written to a
    packed row broadcast: a voice-level gain stored in a per-partial row holds
    the same value in every column.

    Parameters
    ----------
    value : array_like
        Initial value(s).
    store : ndarray (3, size), optional
        Row storage to use (a view into a voice's packed state); allocated when
        omitted.
    clock : ndarray of int64 (2,), optional
        Glide length and elapsed frames; allocated when omitted.
    """

    def __init__(self, value, store: np.ndarray | None = None,
                 clock: np.ndarray | None = None) -> None:
        value = np.asarray(value, dtype=np.float64)
        if store is None:
            store = np.empty((3, max(1, value.size)))
        self.store = store
        self.clock = np.zeros(2, dtype=np.int64) if clock is None else clock
        self.store[:] = value.ravel() if value.ndim else value
        self.clock[:] = 0

    @property
    def value(self) -> np.ndarray:
        return self.store[0]

    @property
    def start(self) -> np.ndarray:
        return self.store[1]

    @property
    def target(self) -> np.ndarray:
        return self.store[2]

    @property
    def glide_frames(self) -> int:
        return int(self.clock[0])

    @property
    def remaining(self) -> int:
        """Frames until the glide ends (0 when steady)."""
        return max(0, int(self.clock[0] - self.clock[1]))

    def set(self, target: np.ndarray, glide_frames: int) -> None:
        """Glide from the present value to ``target`` over ``glide_frames`` frames."""
        store = self.store
        store[1] = store[0]
        store[2] = target
        if glide_frames <= 0:
            store[0] = store[2]
            self.clock[0] = 0
        else:
            # a glide longer than int64 frames (garbage times) never ends either way
            self.clock[0] = min(int(glide_frames), 1 << 62)
        self.clock[1] = 0

    def advance(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Advance ``frames``; return the values at the start and at the end of that span.

        The engine never lets a span cross the end of a glide, so the path is
        exactly linear inside it.  (Compiled voices do the same in
        :func:`auralize.audio.kernels.advance_params`.)
        """
        begin = self.value.copy()
        if self.remaining == 0:
            return begin, begin
        self.clock[1] += frames
        if self.clock[1] >= self.clock[0]:
            self.store[0] = self.store[2]
            self.clock[:] = 0
        else:
            frac = self.clock[1] / self.clock[0]
            self.store[0] = self.store[1] + (self.store[2] - self.store[1]) * frac
        return begin, self.value.copy()

"""Low-frequency oscillators for vibrato, tremolo and filter sweeps.

An LFO is evaluated only at the edges of each span the engine renders (control
rate); the voice interpolates between those values, so an LFO costs nothing per
sample.  Its phase is integrated in frames, so changing the rate never jumps.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("sine", "triangle", "saw_down", "saw_up", "square")


class LFO:
    """A bank of LFOs sharing one shape, each with its own rate.

    Parameters
    ----------
    sample_rate : int
        Audio sample rate in Hz (the phase advances per audio frame).
    rate_hz : float or array
        Oscillation rate(s) in Hz; 0 stops that LFO where it is.
    shape : str
        One of ``sine``, ``triangle``, ``saw_down`` (1 -> 0, as soNNify's filter
        sweep), ``saw_up`` or ``square``.

    Values are unipolar, in [0, 1].
    """

    def __init__(self, sample_rate: int, rate_hz=0.0, shape: str = "sine") -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown LFO shape {shape!r}; choose one of {', '.join(SHAPES)}")
        self.sample_rate = int(sample_rate)
        self.shape = shape
        self.rate_hz = np.atleast_1d(np.asarray(rate_hz, dtype=np.float64))
        self.cycles = np.zeros_like(self.rate_hz)  # phase in cycles, kept in [0, 1)
        self.active = bool(np.any(self.rate_hz != 0.0))

    def set_rate(self, rate_hz) -> None:
        rate = np.atleast_1d(np.asarray(rate_hz, dtype=np.float64))
        if rate.shape != self.rate_hz.shape:
            self.cycles = np.resize(self.cycles, rate.shape)
        self.rate_hz = rate
        self.active = bool(np.any(rate != 0.0))

    def _shape(self, cycles: np.ndarray) -> np.ndarray:
        if self.shape == "sine":
            return 0.5 - 0.5 * np.cos(2.0 * np.pi * cycles)
        if self.shape == "triangle":
            return 1.0 - np.abs(2.0 * cycles - 1.0)
        if self.shape == "saw_down":
            return 1.0 - cycles
        if self.shape == "saw_up":
            return cycles
        return (cycles < 0.5).astype(np.float64)

    def advance(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the values at the start and at the end of the next ``frames`` frames."""
        begin = self._shape(self.cycles)
        self.cycles = np.mod(self.cycles + self.rate_hz * (frames / self.sample_rate), 1.0)
        return begin, self._shape(self.cycles)

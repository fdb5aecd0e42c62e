"""Low-frequency oscillators for vibrato, tremolo and filter sweeps.

An LFO is evaluated only at the edges of each span the engine renders (control
rate); the voice interpolates between those values, so an LFO costs nothing per
sample.  Its phase is integrated in frames, so changing the rate never jumps.
"""

from __future__ import annotations

import numpy as np

SHAPES = ("sine", "triangle", "saw_down", "saw_up", "square")


#: shape name -> the code compiled render loops use (:mod:`auralize.audio.kernels`)
SHAPE_CODES = {name: code for code, name in enumerate(SHAPES)}


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
    store : ndarray (2, size), optional
        Rows (rate in Hz, phase in cycles) to keep the state in: a view into a
        voice's packed state that its compiled render loop advances.  Rates
        written to it broadcast over its columns.  Allocated when omitted.

    Values are unipolar, in [0, 1].
    """

    def __init__(self, sample_rate: int, rate_hz=0.0, shape: str = "sine",
                 store: np.ndarray | None = None) -> None:
        if shape not in SHAPES:
            raise ValueError(f"unknown LFO shape {shape!r}; choose one of {', '.join(SHAPES)}")
        self.sample_rate = int(sample_rate)
        self.shape = shape
        self.shape_code = SHAPE_CODES[shape]
        rate = np.atleast_1d(np.asarray(rate_hz, dtype=np.float64))
        self.store = np.zeros((2, rate.size)) if store is None else store
        self.store[0] = rate
        self.store[1] = 0.0  # phase in cycles, kept in [0, 1)

    @property
    def rate_hz(self) -> np.ndarray:
        return self.store[0]

    @property
    def cycles(self) -> np.ndarray:
        return self.store[1]

    @property
    def active(self) -> bool:
        return bool(np.any(self.store[0] != 0.0))

    def set_rate(self, rate_hz) -> None:
        rate = np.atleast_1d(np.asarray(rate_hz, dtype=np.float64))
        if rate.size not in (1, self.store.shape[1]):
            # a standalone bank of another size: keep the phases it has
            self.store = np.stack([rate, np.resize(self.store[1], rate.shape)])
        self.store[0] = rate

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
        cycles = self.cycles + self.rate_hz * (frames / self.sample_rate)
        self.store[1] = cycles - np.floor(cycles)
        return begin, self._shape(self.cycles)

"""Filtered noise: white noise through a band-pass whose centre can sweep."""

from __future__ import annotations

import numpy as np
from scipy import signal

from auralize.audio.voices.base import (
    AMP,
    TWO_PI,
    BandPass,
    Tremolo,
    Voice,
)
from auralize.audio.voices.params import EngineStats, Param, sanitize


class Noise(Voice):
    """White noise, optionally through a band-pass filter whose centre can sweep.

    Parameters (event names)
    ------------------------
    amp : float
        Level in [0, 1]; glides.
    bp_center_hz, bp_q : float
        Band-pass centre (glides) and Q; q 0 leaves the noise white.
    sweep_hz, sweep_lo_hz, sweep_hi_hz : float
        LFO moving the centre between lo and hi.
    tremolo_hz, tremolo_depth : float
        Amplitude LFO.
    seed : int
        Noise is reproducible: the same score gives the same samples.
    """

    kind = "noise"

    def __init__(
        self,
        sample_rate: int,
        stats: EngineStats,
        *,
        amp: float = 0.0,
        gain: float = 1.0,
        glide_s: float = 0.02,
        bp_center_hz: float = 1000.0,
        bp_q: float = 0.0,
        sweep_hz: float = 0.0,
        sweep_lo_hz: float = 200.0,
        sweep_hi_hz: float = 2200.0,
        sweep_shape: str = "saw_down",
        tremolo_hz: float = 0.0,
        tremolo_depth: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__(sample_rate, stats, glide_s, gain)
        self.amp = Param(sanitize(amp, 1, AMP, stats))
        self.bandpass = BandPass(sample_rate, stats, 1, center_hz=bp_center_hz, q=bp_q,
                                 sweep_hz=sweep_hz, lo_hz=sweep_lo_hz, hi_hz=sweep_hi_hz,
                                 shape=sweep_shape)
        self.tremolo = Tremolo(sample_rate, stats, tremolo_hz, tremolo_depth)
        self.rng = np.random.default_rng(int(seed))
        self.zi = np.zeros(2)

    def params(self) -> list[Param]:
        return [self.gain, self.pan, self.amp, self.bandpass.center]

    def set(self, param: str, value, glide_s: float | None) -> bool:
        frames = self.glide_frames(glide_s)
        if param == "amp":
            self.amp.set(sanitize(value, 1, AMP, self.stats), frames)
        elif not (self.tremolo.set(param, value) or self.bandpass.set(param, value, frames)):
            return super().set(param, value, glide_s)
        return True

    def _bandpass(self, x: np.ndarray, center_hz: float) -> np.ndarray:
        # RBJ cookbook band-pass, 0 dB peak; the filter state carries across
        # spans, so moving the centre does not restart the filter.
        nyquist = self.sample_rate / 2.0
        w = TWO_PI * min(max(center_hz, 1.0), 0.95 * nyquist) / self.sample_rate
        alpha = np.sin(w) / (2.0 * self.bandpass.q)
        b = np.array([alpha, 0.0, -alpha])
        a = np.array([1.0 + alpha, -2.0 * np.cos(w), 1.0 - alpha])
        y, self.zi = signal.lfilter(b / a[0], a / a[0], x, zi=self.zi)
        return y

    def _span_controls(self, frames: int) -> tuple[float, float, float]:
        """Advance every parameter and LFO over the span: (level0, level1, centre Hz)."""
        a0, a1 = self.amp.advance(frames)
        g0, g1 = self.gain.advance(frames)
        c0, _ = self.bandpass.advance(frames)
        level0, level1 = float(a0[0] * g0[0]), float(a1[0] * g1[0])
        if self.tremolo.active:
            t0, t1 = self.tremolo.advance(frames)
            level0 *= float(t0[0])
            level1 *= float(t1[0])
        return level0, level1, float(c0[0])

    def render(self, frames: int, span_frames: int = 512) -> np.ndarray | None:
        level0, level1, center_hz = self._span_controls(frames)
        x = self.rng.uniform(-1.0, 1.0, frames)
        if self.bandpass.enabled:
            x = self._bandpass(x, center_hz)
        if self.muted:
            level0 = level1 = 0.0
        return x * np.linspace(level0, level1, frames, endpoint=False)

    def skip(self, frames: int, span_frames: int = 512) -> None:
        """Advance as :meth:`render` would without making noise: parameters move, and
        the generator jumps ``frames`` draws ahead (PCG64: one 64-bit draw per
        uniform sample), so the noise after a seek is the same noise.  The
        band-pass state is not computed; it settles within milliseconds."""
        self._span_controls(frames)
        self.rng.bit_generator.advance(frames)

"""Sound sources: a bank of sine partials and filtered noise.

Voices render spans of frames handed to them by the engine; the engine makes
sure a span never crosses an event or the end of a glide, so inside a span every
parameter moves in a straight line.  It hands over all spans between two events
at once (:meth:`Voice.render_spans`).

The kinds: :class:`~auralize.audio.voices.sine_bank.SineBank` (``"sines"``),
:class:`~auralize.audio.voices.noise.Noise` (``"noise"``) and
:class:`~auralize.audio.voices.sampler.Sampler` (``"sampler"``), named in
:data:`auralize.audio.voices.kinds.VOICE_KINDS`, which
:func:`~auralize.audio.voices.kinds.make_voice` reads.  This module holds what they
share (the :class:`Voice` base, tremolo, band-pass) and imports none of them.
"""

from __future__ import annotations

import numpy as np

from auralize.audio import kernels
from auralize.audio.voices.lfo import LFO
from auralize.audio.voices.params import EngineStats, Param, Range, sanitize

TWO_PI = 2.0 * np.pi

AMP = Range(0.0, 1.0, 0.0)
GAIN = Range(0.0, 4.0, 0.0)
RATE = Range(0.0, 1000.0, 0.0)
DEPTH = Range(0.0, 1.0, 0.0)
CENTS = Range(0.0, 2400.0, 0.0)
PAN = Range(-1.0, 1.0, 0.0)
Q_RANGE = Range(0.0, 100.0, 0.0)


def wrap_phase(phase: np.ndarray) -> np.ndarray:
    """Phase modulo 2 pi; ``floor`` is several times faster than ``np.mod`` here."""
    return phase - TWO_PI * np.floor(phase * (1.0 / TWO_PI))


def unit_phasors(phase: np.ndarray) -> np.ndarray:
    """``exp(i phase)`` as complex64.

    Phases are wrapped in float64 first, then cos/sin run in float32, which
    numpy vectorises (float64 sin and complex exp are 5-10x slower); the error,
    about 1e-7, is far below 16-bit resolution.
    """
    wrapped = wrap_phase(phase).astype(np.float32)
    out = np.empty(wrapped.shape, dtype=np.complex64)
    out.real = np.cos(wrapped)
    out.imag = np.sin(wrapped)
    return out


def bandpass_gain(freq_hz: np.ndarray, center_hz: np.ndarray, q: float) -> np.ndarray:
    """Magnitude of a 2nd-order band-pass (0 dB at its centre) at ``freq_hz``.

    A sine through a slowly moving band-pass is the same sine scaled by this
    gain, so a filter on a sine bank costs one formula per partial per span
    instead of an IIR filter per partial per sample.
    """
    f = np.maximum(np.asarray(freq_hz, dtype=np.float64), 1e-3)
    fc = np.maximum(np.asarray(center_hz, dtype=np.float64), 1e-3)
    detune = f / fc - fc / f
    return 1.0 / np.sqrt(1.0 + (q * detune) ** 2)


class Tremolo:
    """Amplitude LFO shared by the voices: level x (1 - depth x lfo); depth 1 reaches silence."""

    def __init__(self, sample_rate: int, stats: EngineStats, rate_hz, depth,
                 store: np.ndarray | None = None) -> None:
        self.stats = stats
        self.lfo = LFO(sample_rate, sanitize(rate_hz, 1, RATE, stats), "sine", store)
        self.depth = float(sanitize(depth, 1, DEPTH, stats)[0])

    @property
    def active(self) -> bool:
        return self.lfo.active and self.depth > 0

    def set(self, param: str, value) -> bool:
        if param == "tremolo_hz":
            self.lfo.set_rate(sanitize(value, 1, RATE, self.stats))
        elif param == "tremolo_depth":
            self.depth = float(sanitize(value, 1, DEPTH, self.stats)[0])
        else:
            return False
        return True

    def advance(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Level factors at the start and end of the next span."""
        t0, t1 = self.lfo.advance(frames)
        return 1.0 - self.depth * t0, 1.0 - self.depth * t1


class BandPass:
    """Band-pass settings shared by the voices: a gliding centre, Q, and a sweep LFO.

    With a sweep rate above 0 (per element), the centre follows the LFO between
    ``lo_hz`` and ``hi_hz`` instead of ``center``.  Q 0 disables the filter.
    """

    CENTER = Range(1.0, 1e5, 1000.0)

    def __init__(self, sample_rate: int, stats: EngineStats, size: int, *, center_hz, q,
                 sweep_hz, lo_hz: float, hi_hz: float, shape: str,
                 center: Param | None = None, sweep_store: np.ndarray | None = None) -> None:
        self.stats = stats
        self.size = size
        value = sanitize(center_hz, size, self.CENTER, stats)
        self.center = Param(value) if center is None else center
        self.center.store[:] = value
        self.q = float(sanitize(q, 1, Q_RANGE, stats)[0])
        self.sweep = LFO(sample_rate, sanitize(sweep_hz, size, RATE, stats), shape, sweep_store)
        self.lo_hz = float(lo_hz)
        self.hi_hz = float(hi_hz)

    @property
    def enabled(self) -> bool:
        return self.q > 0

    @property
    def moving(self) -> bool:
        return self.enabled and self.sweep.active

    def set(self, param: str, value, glide_frames: int) -> bool:
        stats = self.stats
        if param == "bp_center_hz":
            self.center.set(sanitize(value, self.size, self.CENTER, stats), glide_frames)
        elif param == "bp_q":
            self.q = float(sanitize(value, 1, Q_RANGE, stats)[0])
        elif param == "sweep_hz":
            self.sweep.set_rate(sanitize(value, self.size, RATE, stats))
        elif param == "sweep_lo_hz":
            self.lo_hz = float(sanitize(value, 1, Range(1.0, 1e5, 200.0), stats)[0])
        elif param == "sweep_hi_hz":
            self.hi_hz = float(sanitize(value, 1, Range(1.0, 1e5, 2200.0), stats)[0])
        else:
            return False
        return True

    def advance(self, frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Centre frequencies (Hz) at the start and end of the next span."""
        c0, c1 = self.center.advance(frames)
        if self.sweep.active:
            w0, w1 = self.sweep.advance(frames)
            sweeping = self.sweep.rate_hz > 0
            span = self.hi_hz - self.lo_hz
            c0 = np.where(sweeping, self.lo_hz + span * w0, c0)
            c1 = np.where(sweeping, self.lo_hz + span * w1, c1)
        return c0, c1


class Voice:
    """Base class: a named sound source with a gliding output gain, pan and mute.

    ``pan`` (event and spec) places the voice from -1 (first channel, left) to
    +1 (last channel, right) by the equal-power law
    (:func:`auralize.audio.kernels.pan_gain`); it glides like any parameter.  A
    mono engine ignores it.
    """

    kind = "voice"
    #: partials whose phase follows the engine's clock (see SineBank ``clock_phase``)
    clock_phase = False

    def __init__(self, sample_rate: int, stats: EngineStats, glide_s: float, gain: float) -> None:
        self.sample_rate = int(sample_rate)
        self.stats = stats
        self.glide_s = float(glide_s)
        self.gain = Param(sanitize(gain, 1, GAIN, stats))
        self.pan = Param(0.0)
        self.muted = False

    def glide_frames(self, glide_s: float | None) -> int:
        seconds = self.glide_s if glide_s is None else glide_s
        if not np.isfinite(seconds) or seconds < 0:
            self.stats.nonfinite_params += 1
            seconds = self.glide_s
        return int(round(seconds * self.sample_rate))

    def params(self) -> list[Param]:
        """Every gliding parameter, so the engine can cut spans at glide ends."""
        return [self.gain, self.pan]

    def glide_remainders(self) -> list[int]:
        """Frames until each running glide ends, so the engine can cut spans there."""
        return [r for r in (p.remaining for p in self.params()) if r > 0]

    def set(self, param: str, value, glide_s: float | None) -> bool:
        """Apply one event; return False if ``param`` is unknown."""
        if param == "gain":
            self.gain.set(sanitize(value, 1, GAIN, self.stats), self.glide_frames(glide_s))
        elif param == "pan":
            self.pan.set(sanitize(value, 1, PAN, self.stats), self.glide_frames(glide_s))
        elif param == "mute":
            self.muted = bool(value)
        elif param == "glide_s":
            self.glide_s = float(sanitize(value, 1, Range(0.0, 60.0, self.glide_s), self.stats)[0])
        else:
            return False
        return True

    def align_phase(self, frame: int) -> None:
        """Set phases from the engine frame ``frame`` (only voices with ``clock_phase``)."""

    def render(self, frames: int, span_frames: int = 512) -> np.ndarray | None:  # pragma: no cover
        """Render one span of ``frames`` samples (mono); ``None`` when silent."""
        raise NotImplementedError

    def render_spans(self, lengths: np.ndarray, span_frames: int, out: np.ndarray) -> None:
        """Add consecutive spans of ``lengths`` frames to ``out`` (their sum long).

        The engine hands over every span between two events at once; this
        default renders them one by one, voices with a compiled loop override it.
        """
        offset = 0
        for frames in lengths.tolist():
            samples = self.render(frames, span_frames)
            if samples is not None:
                out[offset:offset + frames] += samples
            offset += frames

    def render_channels(self, lengths: np.ndarray, span_frames: int, outs: np.ndarray,
                        scratch: np.ndarray) -> None:
        """Add consecutive spans to ``outs`` (C, N), panned; ``scratch`` (N,) is free.

        ``C == 1``: the mono sum, as :meth:`render_spans` (the pan is ignored).
        This default renders mono and pans it; sine banks pan per partial.
        """
        if outs.shape[0] == 1:
            self.render_spans(lengths, span_frames, outs[0])
            self._advance_pan(lengths)
            return
        scratch[:] = 0.0
        self.render_spans(lengths, span_frames, scratch)
        kernels.pan_spans(scratch, lengths, self.pan.store[None], self.pan.clock[None], outs)

    def _advance_pan(self, lengths: np.ndarray) -> None:
        if self.pan.remaining:  # a glide no channel hears still ends on time
            kernels.advance_params_spans(self.pan.store[None], self.pan.clock[None], lengths)

    def skip_spans(self, lengths: np.ndarray, span_frames: int) -> None:
        """Advance over consecutive spans as :meth:`render_spans` would (seeking)."""
        for frames in lengths.tolist():
            self.skip(frames, span_frames)
        self._advance_pan(lengths)

    def skip(self, frames: int, span_frames: int = 512) -> None:
        """Advance ``frames`` as :meth:`render` would, output discarded (seeking).

        Voices whose state does not depend on their samples override this to
        skip the synthesis itself.
        """
        self.render(frames, span_frames)

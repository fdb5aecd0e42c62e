"""Sound sources: a bank of sine partials and filtered noise.

Voices render spans of frames handed to them by the engine; the engine makes
sure a span never crosses an event or the end of a glide, so inside a span every
parameter moves in a straight line.

Why the sine bank is fast
-------------------------
A partial whose frequency is steady over a span of ``Q * M`` frames satisfies
``exp(i w (q M + r)) = exp(i w q M) * exp(i w r)``.  The span's output is then
``Im(C @ R)``: ``C[q, k]`` (amplitude x phase at the start of sub-block ``q``)
times a table ``R[k, r] = exp(i w_k r)`` that depends only on the frequency and is
cached until it changes.  One BLAS matrix product replaces ``P * Q * M`` sines, so
thousands of partials render many times faster than real time.  A linear
amplitude ramp adds a second product.  Partials whose frequency glides are
synthesised directly with a quadratic phase (exact linear frequency ramp), the
phase split at sub-block starts so that it is float32 work; that is costlier but
only lasts as long as the glide.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from auralize.audio.lfo import LFO
from auralize.audio.params import EngineStats, Param, Range, sanitize

TWO_PI = 2.0 * np.pi

AMP = Range(0.0, 1.0, 0.0)
GAIN = Range(0.0, 4.0, 0.0)
RATE = Range(0.0, 1000.0, 0.0)
DEPTH = Range(0.0, 1.0, 0.0)
CENTS = Range(0.0, 2400.0, 0.0)
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

    def __init__(self, sample_rate: int, stats: EngineStats, rate_hz, depth) -> None:
        self.stats = stats
        self.lfo = LFO(sample_rate, sanitize(rate_hz, 1, RATE, stats), "sine")
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
                 sweep_hz, lo_hz: float, hi_hz: float, shape: str) -> None:
        self.stats = stats
        self.size = size
        self.center = Param(sanitize(center_hz, size, self.CENTER, stats))
        self.q = float(sanitize(q, 1, Q_RANGE, stats)[0])
        self.sweep = LFO(sample_rate, sanitize(sweep_hz, size, RATE, stats), shape)
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
    """Base class: a named sound source with a gliding output gain and mute."""

    kind = "voice"

    def __init__(self, sample_rate: int, stats: EngineStats, glide_s: float, gain: float) -> None:
        self.sample_rate = int(sample_rate)
        self.stats = stats
        self.glide_s = float(glide_s)
        self.gain = Param(sanitize(gain, 1, GAIN, stats))
        self.muted = False

    def glide_frames(self, glide_s: float | None) -> int:
        seconds = self.glide_s if glide_s is None else glide_s
        if not np.isfinite(seconds) or seconds < 0:
            self.stats.nonfinite_params += 1
            seconds = self.glide_s
        return int(round(seconds * self.sample_rate))

    def params(self) -> list[Param]:
        """Every gliding parameter, so the engine can cut spans at glide ends."""
        return [self.gain]

    def frames_to_glide_end(self) -> int:
        """Frames until the nearest glide ends (0 when nothing glides)."""
        remaining = [p.remaining for p in self.params() if p.remaining > 0]
        return min(remaining) if remaining else 0

    def set(self, param: str, value, glide_s: float | None) -> bool:
        """Apply one event; return False if ``param`` is unknown."""
        if param == "gain":
            self.gain.set(sanitize(value, 1, GAIN, self.stats), self.glide_frames(glide_s))
        elif param == "mute":
            self.muted = bool(value)
        elif param == "glide_s":
            self.glide_s = float(sanitize(value, 1, Range(0.0, 60.0, self.glide_s), self.stats)[0])
        else:
            return False
        return True

    def render(self, frames: int, span_frames: int = 512) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def skip(self, frames: int, span_frames: int = 512) -> None:
        """Advance ``frames`` as :meth:`render` would, output discarded (seeking).

        Voices whose state does not depend on their samples override this to
        skip the synthesis itself.
        """
        self.render(frames, span_frames)


class SineBank(Voice):
    """A bank of sine partials with per-partial frequency, amplitude and shift.

    Parameters (event names)
    ------------------------
    freq_hz : array (P,)
        Frequencies in Hz; glide.
    amp : array (P,)
        Amplitudes in [0, 1]; glide.
    shift_hz : float or array (P,)
        Frequency shift added to every partial (soNNify's detuning); glides.
    gain : float
        Voice level; glides.  ``mute`` silences without losing the level.
    vibrato_hz, vibrato_cents : float
        Sine LFO on frequency.
    tremolo_hz, tremolo_depth : float
        Sine LFO on amplitude (depth 1 reaches silence).
    bp_center_hz, bp_q : float or array, float
        Band-pass filter applied to each partial (q 0 disables).
    sweep_hz, sweep_lo_hz, sweep_hi_hz, sweep_shape : array/float, float, float, str
        Per-partial LFO moving the band-pass centre between lo and hi
        (soNNify's falling-saw filter sweep); a rate of 0 leaves the centre
        at ``bp_center_hz``.
    """

    kind = "sines"

    def __init__(
        self,
        sample_rate: int,
        stats: EngineStats,
        *,
        freq_hz=(440.0,),
        amp=None,
        shift_hz=0.0,
        gain: float = 1.0,
        glide_s: float = 0.02,
        vibrato_hz: float = 0.0,
        vibrato_cents: float = 0.0,
        tremolo_hz: float = 0.0,
        tremolo_depth: float = 0.0,
        bp_center_hz=1000.0,
        bp_q: float = 0.0,
        sweep_hz=0.0,
        sweep_lo_hz: float = 200.0,
        sweep_hi_hz: float = 2200.0,
        sweep_shape: str = "saw_down",
        sub_block: int = 32,
    ) -> None:
        super().__init__(sample_rate, stats, glide_s, gain)
        n = int(np.size(freq_hz))
        if n < 1:
            raise ValueError("a sine bank needs at least one partial")
        self.n_partials = n
        self.freq_range = Range(0.0, self.sample_rate / 2.0, 0.0)
        self.freq = Param(sanitize(freq_hz, n, self.freq_range, stats))
        self.amp = Param(sanitize(0.0 if amp is None else amp, n, AMP, stats))
        self.shift = Param(sanitize(shift_hz, n, Range(-1e5, 1e5, 0.0), stats))
        self.vibrato = LFO(sample_rate, vibrato_hz, "sine")
        self.vibrato_cents = float(sanitize(vibrato_cents, 1, CENTS, stats)[0])
        self.tremolo = Tremolo(sample_rate, stats, tremolo_hz, tremolo_depth)
        self.bandpass = BandPass(sample_rate, stats, n, center_hz=bp_center_hz, q=bp_q,
                                 sweep_hz=sweep_hz, lo_hz=sweep_lo_hz, hi_hz=sweep_hi_hz,
                                 shape=sweep_shape)
        self.phase = np.zeros(n)
        self.sub_block = int(sub_block)
        # Cached tables for steady partials.  ``_rt`` holds, interleaved per
        # partial k, rows sin(w_k r) and cos(w_k r) for r < M, so that a complex64
        # (Q x P) array of amplitude-weighted phasors, viewed as float32 (Q x 2P),
        # multiplies it directly: Im(z e^{iwr}) = Re(z) sin(wr) + Im(z) cos(wr).
        # Tables start out built for 0 rad/frame (sin 0, cos 1): always finite, so
        # the columns of silent partials multiply out to exact zeros.
        self._table_w = np.zeros(n)
        self._rt = np.zeros((2 * n, self.sub_block), dtype=np.float32)
        self._rt[1::2] = 1.0
        # While nothing changes (no event, glide or LFO), a span is one BLAS call
        # on the amplitude-weighted phasors of its sub-blocks, which are then
        # rotated in place by exp(i w L) for the next span.  Rebuilt from the
        # float64 phases every REBUILD_EVERY spans to bound float32 drift.
        self._static: tuple[np.ndarray, np.ndarray] | None = None  # (w, amp)
        self._weighted: np.ndarray | None = None
        self._rotation: np.ndarray | None = None
        self._rotations_left = 0

    # -- events -----------------------------------------------------------
    def params(self) -> list[Param]:
        return [self.gain, self.freq, self.amp, self.shift, self.bandpass.center]

    def set(self, param: str, value, glide_s: float | None) -> bool:
        self._static = self._weighted = None
        n, stats = self.n_partials, self.stats
        frames = self.glide_frames(glide_s)
        if param == "freq_hz":
            self.freq.set(sanitize(value, n, self.freq_range, stats), frames)
        elif param == "amp":
            self.amp.set(sanitize(value, n, AMP, stats), frames)
        elif param == "shift_hz":
            self.shift.set(sanitize(value, n, Range(-1e5, 1e5, 0.0), stats), frames)
        elif param == "vibrato_hz":
            self.vibrato.set_rate(sanitize(value, 1, RATE, stats))
        elif param == "vibrato_cents":
            self.vibrato_cents = float(sanitize(value, 1, CENTS, stats)[0])
        elif not (self.tremolo.set(param, value) or self.bandpass.set(param, value, frames)):
            return super().set(param, value, glide_s)
        return True

    # -- control rate -----------------------------------------------------
    def _span_controls(self, frames: int):
        """Frequencies (Hz) and amplitudes at the start and end of the next span."""
        f0, f1 = self.freq.advance(frames)
        s0, s1 = self.shift.advance(frames)
        a0, a1 = self.amp.advance(frames)
        g0, g1 = self.gain.advance(frames)
        c0, c1 = self.bandpass.advance(frames)
        fe0, fe1 = f0 + s0, f1 + s1
        if self.vibrato.active and self.vibrato_cents > 0:
            v0, v1 = self.vibrato.advance(frames)
            fe0 = fe0 * 2.0 ** (self.vibrato_cents / 1200.0 * (2.0 * v0 - 1.0))
            fe1 = fe1 * 2.0 ** (self.vibrato_cents / 1200.0 * (2.0 * v1 - 1.0))
        a0 = a0 * g0[0]
        a1 = a1 * g1[0]
        if self.tremolo.active:
            t0, t1 = self.tremolo.advance(frames)
            a0, a1 = a0 * t0, a1 * t1
        if self.bandpass.enabled:
            a0 = a0 * bandpass_gain(fe0, c0, self.bandpass.q)
            a1 = a1 * bandpass_gain(fe1, c1, self.bandpass.q)
        nyquist = self.sample_rate / 2.0
        # Shifts and vibrato may push a partial below 0 Hz or past Nyquist:
        # silence it there rather than let it alias or fold.
        if min(fe0.min(), fe1.min()) <= 0.0 or max(fe0.max(), fe1.max()) >= nyquist:
            a0 = np.where((fe0 > 0.0) & (fe0 < nyquist), a0, 0.0)
            a1 = np.where((fe1 > 0.0) & (fe1 < nyquist), a1, 0.0)
            fe0 = np.clip(fe0, 0.0, nyquist)
            fe1 = np.clip(fe1, 0.0, nyquist)
        return fe0, fe1, a0, a1

    # -- audio rate -------------------------------------------------------
    #: spans between exact rebuilds of the rotated phasors (bounds float32 drift)
    REBUILD_EVERY = 64

    def _retable(self, w: np.ndarray, columns: np.ndarray) -> None:
        ang = np.outer(w[columns], np.arange(self.sub_block, dtype=np.float64))
        self._rt[2 * columns] = np.sin(ang)
        self._rt[2 * columns + 1] = np.cos(ang)
        self._table_w[columns] = w[columns]

    def _phasors(self, q_count: int) -> np.ndarray:
        q_start = np.arange(q_count, dtype=np.float64)[:, None] * self.sub_block
        return unit_phasors(self.phase[None, :] + self._table_w[None, :] * q_start)

    def _render_steady(self, frames, w, a0, a1, steady) -> np.ndarray:
        m = self.sub_block
        q_count = -(-frames // m)
        stale = np.flatnonzero(steady & (w != self._table_w))
        if stale.size:
            self._retable(w, stale)
        phasors = self._phasors(q_count)
        base = np.where(steady, a0, 0.0)
        slope = np.where(steady, (a1 - a0) / frames, 0.0)
        q_start = np.arange(q_count, dtype=np.float64)[:, None] * m
        weighted = phasors * (base[None, :] + slope[None, :] * q_start).astype(np.float32)
        out = weighted.view(np.float32) @ self._rt
        if np.any(slope != 0.0):
            ramp = phasors * slope[None, :].astype(np.float32)
            out += (ramp.view(np.float32) @ self._rt) * np.arange(m, dtype=np.float32)
        return out.ravel()[:frames]

    def _render_static(self, frames: int) -> np.ndarray:
        w, amp = self._static
        if self._weighted is None or self._rotations_left <= 0:
            q_count = frames // self.sub_block
            self._weighted = self._phasors(q_count) * amp[None, :].astype(np.float32)
            self._rotation = unit_phasors(w * frames)
            self._rotations_left = self.REBUILD_EVERY
        out = (self._weighted.view(np.float32) @ self._rt).ravel()
        np.multiply(self._weighted, self._rotation[None, :], out=self._weighted)
        self._rotations_left -= 1
        self.phase = wrap_phase(self.phase + w * frames)
        return out

    def _is_silent(self) -> bool:
        return self.muted or any(
            param.remaining == 0 and not param.value.any() for param in (self.amp, self.gain)
        )

    def _advance_silently(self, frames: int) -> None:
        """Keep glides, LFOs and phases moving while nothing sounds; render nothing."""
        f0, f1 = self.freq.advance(frames)
        s0, s1 = self.shift.advance(frames)
        self.amp.advance(frames)
        self.gain.advance(frames)
        self.bandpass.advance(frames)
        for lfo in (self.vibrato, self.tremolo.lfo):
            if lfo.active:
                lfo.advance(frames)
        w = (f0 + s0 + f1 + s1) * (np.pi / self.sample_rate)
        self.phase = wrap_phase(self.phase + w * frames)
        return None

    def _is_static(self) -> bool:
        if any(p.remaining for p in self.params()):
            return False
        if self.vibrato.active and self.vibrato_cents > 0:
            return False
        return not (self.tremolo.active or self.bandpass.moving)

    def _render_gliding(self, frames, w0, w1, a0, a1, idx) -> np.ndarray:
        # Quadratic phase phi(n) = phase + w0 n + c n^2.  Split n = m q + b (m the
        # sub-block): phi = phi(m q) + w(m q) b + c b^2.  The sub-block starts'
        # phase and frequency are exact (float64, wrapped: N x frames/m values);
        # the local part stays below ~m pi radians, so float32 holds it to ~1e-5
        # rad and needs no wrapping.  4.6x faster than a float64 phase for every
        # sample, at the same error (~1e-7 of full scale).
        m = self.sub_block
        q_count = -(-frames // m)
        chirp = (w1[idx] - w0[idx]) / (2.0 * frames)
        q0 = np.arange(q_count, dtype=np.float64) * m
        start = wrap_phase(self.phase[idx, None] + w0[idx, None] * q0
                           + chirp[:, None] * (q0 * q0)).astype(np.float32)
        w_start = (w0[idx, None] + 2.0 * chirp[:, None] * q0).astype(np.float32)
        b = np.arange(m, dtype=np.float32)
        phase = w_start[:, :, None] * b
        phase += chirp.astype(np.float32)[:, None, None] * (b * b)
        phase += start[:, :, None]
        sines = np.sin(phase, out=phase).reshape(idx.size, q_count * m)[:, :frames]
        out = a0[idx].astype(np.float32) @ sines
        slope = (a1[idx] - a0[idx]) / frames
        if np.any(slope != 0.0):
            out = out + (slope.astype(np.float32) @ sines) * np.arange(frames, dtype=np.float32)
        return out.astype(np.float64)

    def render(self, frames: int, span_frames: int = 512, *,
               synthesize: bool = True) -> np.ndarray | None:
        """Render ``frames`` samples (mono); ``None`` when the voice is silent.

        ``span_frames`` is the engine's full span length; a full span while no
        parameter moves takes the cheapest path.  ``synthesize=False`` moves
        parameters, LFOs and phases exactly as rendering would and returns
        ``None`` (a sine's phase follows from its frequencies alone).
        """
        if self._static is not None and frames == span_frames and frames % self.sub_block == 0:
            if synthesize:
                return self._render_static(frames)
            self.phase = wrap_phase(self.phase + self._static[0] * frames)
            self._weighted = None  # rebuilt from the phase at the next render
            return None
        if self._is_silent():
            return self._advance_silently(frames)
        fe0, fe1, a0, a1 = self._span_controls(frames)
        if self.muted:
            a0 = a1 = np.zeros_like(a0)
        scale = TWO_PI / self.sample_rate
        w0, w1 = fe0 * scale, fe1 * scale
        sounding = (a0 > 0.0) | (a1 > 0.0)
        steady = (w0 == w1) & sounding
        gliding = np.flatnonzero((w0 != w1) & sounding)
        out = np.zeros(frames) if synthesize else None
        if synthesize and steady.any():
            out += self._render_steady(frames, w0, a0, a1, steady)
        if synthesize and gliding.size:
            out += self._render_gliding(frames, w0, w1, a0, a1, gliding)
        # Exact phase advance for a linear frequency ramp over the span.
        self.phase = wrap_phase(self.phase + 0.5 * (w0 + w1) * frames)
        if gliding.size == 0 and np.array_equal(a0, a1) and self._is_static():
            self._static = (w0, np.where(steady, a0, 0.0))
            self._weighted = None
        return out

    def skip(self, frames: int, span_frames: int = 512) -> None:
        self.render(frames, span_frames, synthesize=False)


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
        return [self.gain, self.amp, self.bandpass.center]

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


VOICE_KINDS: dict[str, type[Voice]] = {"sines": SineBank, "noise": Noise}


def make_voice(spec: dict, sample_rate: int, stats: EngineStats) -> Voice:
    """Build a voice from a plain, picklable spec such as ``{"kind": "sines", ...}``.

    Raises
    ------
    ValueError
        If the kind or a keyword is unknown (the message lists the valid ones).
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    cls = VOICE_KINDS.get(kind)
    if cls is None:
        raise ValueError(
            f"unknown voice kind {kind!r}; choose one of {', '.join(sorted(VOICE_KINDS))}"
        )
    try:
        return cls(sample_rate, stats, **spec)
    except TypeError as exc:
        raise ValueError(f"bad {kind!r} voice spec: {exc}") from None

"""Sound sources: a bank of sine partials and filtered noise.

Voices render spans of frames handed to them by the engine; the engine makes
sure a span never crosses an event or the end of a glide, so inside a span every
parameter moves in a straight line.  It hands over all spans between two events
at once (:meth:`Voice.render_spans`).

Why the sine bank is fast
-------------------------
Its control work (glides, LFOs, band-pass gains, phases) runs compiled, one call
for all spans between two events (:func:`auralize.audio.kernels.bank_spans`),
so a span costs no Python.  The same call synthesises each span with a complex
recurrence per partial (an exact linear chirp and amplitude ramp, float64,
restarted from the exact phase every span): for small banks and gliding spans
this beats everything else.  Big banks whose frequencies do not move over a
span use BLAS instead: a partial steady over ``Q * M`` frames satisfies
``exp(i w (q M + r)) = exp(i w q M) * exp(i w r)``, so the span's output is
``Im(C @ R)``: ``C[q, k]`` (amplitude x phase at the start of sub-block ``q``)
times a table ``R[k, r] = exp(i w_k r)`` that depends only on the frequency and
is cached until it changes.  One matrix product replaces ``P * Q * M`` sines; a
linear amplitude ramp adds a second product.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from auralize.audio import kernels
from auralize.audio.lfo import LFO
from auralize.audio.params import EngineStats, Param, Range, sanitize

TWO_PI = 2.0 * np.pi
_NO_ROWS = np.empty((0, 4, 0))  # a small bank defers no span to BLAS

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

    def glide_remainders(self) -> list[int]:
        """Frames until each running glide ends, so the engine can cut spans there."""
        return [r for r in (p.remaining for p in self.params()) if r > 0]

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

    def skip_spans(self, lengths: np.ndarray, span_frames: int) -> None:
        """Advance over consecutive spans as :meth:`render_spans` would (seeking)."""
        for frames in lengths.tolist():
            self.skip(frames, span_frames)

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

    Notes
    -----
    All control state (gliding parameters, LFO phases) is packed into arrays
    that :func:`auralize.audio.kernels.bank_spans` advances in compiled code,
    so a span costs no Python per voice.  That loop also synthesises each span
    (a complex recurrence per partial: exact linear chirps and amplitude ramps).
    Banks of at least :attr:`BLAS_MIN_PARTIALS` sounding partials render the
    spans in which nothing moves with BLAS instead (see the module docstring).
    """

    kind = "sines"

    #: spans between exact rebuilds of the rotated phasors (bounds float32 drift)
    REBUILD_EVERY = 64
    #: sounding partials from which a span in which nothing moves is one BLAS product
    #: (below it the compiled recurrence is faster)
    BLAS_MIN_PARTIALS = 256
    #: spans a big bank hands to one compiled call (its BLAS rows: spans x 4 x P floats)
    MAX_BIG_SPANS = 16

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
        # Packed state advanced by kernels.bank_spans; the Param and LFO objects
        # below are views into it (a voice-level value fills its whole row).
        self._params = np.zeros((kernels.N_PARAMS, 3, n))
        self._clocks = np.zeros((kernels.N_PARAMS, 2), dtype=np.int64)
        self._lfos = np.zeros((kernels.N_LFOS, 2, n))

        def packed(slot: int, value) -> Param:
            return Param(value, self._params[slot], self._clocks[slot])

        self.gain = packed(kernels.GAIN, self.gain.value)
        self.freq_range = Range(0.0, self.sample_rate / 2.0, 0.0)
        self.freq = packed(kernels.FREQ, sanitize(freq_hz, n, self.freq_range, stats))
        self.amp = packed(kernels.AMP, sanitize(0.0 if amp is None else amp, n, AMP, stats))
        self.shift = packed(kernels.SHIFT, sanitize(shift_hz, n, Range(-1e5, 1e5, 0.0), stats))
        self.vibrato = LFO(sample_rate, vibrato_hz, "sine", self._lfos[kernels.VIBRATO])
        self.vibrato_cents = float(sanitize(vibrato_cents, 1, CENTS, stats)[0])
        self.tremolo = Tremolo(sample_rate, stats, tremolo_hz, tremolo_depth,
                               self._lfos[kernels.TREMOLO])
        self.bandpass = BandPass(sample_rate, stats, n, center_hz=bp_center_hz, q=bp_q,
                                 sweep_hz=sweep_hz, lo_hz=sweep_lo_hz, hi_hz=sweep_hi_hz,
                                 shape=sweep_shape, center=packed(kernels.CENTER, 0.0),
                                 sweep_store=self._lfos[kernels.SWEEP])
        self.phase = np.zeros(n)
        self.sub_block = int(sub_block)
        # Cached tables for the BLAS path.  ``_rt`` holds, interleaved per
        # partial k, rows sin(w_k r) and cos(w_k r) for r < M, so that a complex64
        # (Q x P) array of amplitude-weighted phasors, viewed as float32 (Q x 2P),
        # multiplies it directly: Im(z e^{iwr}) = Re(z) sin(wr) + Im(z) cos(wr).
        # Tables start out built for 0 rad/frame (sin 0, cos 1): always finite, so
        # the columns of silent partials multiply out to exact zeros.
        self._table_w = np.zeros(n)
        self._rt = np.zeros((2 * n, self.sub_block), dtype=np.float32)
        self._rt[1::2] = 1.0
        # While nothing changes, consecutive full spans reuse their
        # amplitude-weighted phasors, rotated in place by exp(i w L) per span.
        # Rebuilt from the float64 phases every REBUILD_EVERY spans to bound
        # float32 drift.
        self._weighted: np.ndarray | None = None
        self._rotation: np.ndarray | None = None
        self._rotations_left = 0
        # 1 while the last span rendered had nothing moving (kernels.bank_spans)
        self._still = np.zeros(1, dtype=np.int64)
        self._last_controls = np.zeros((4, n))  # w0, w1, a0, a1 of the last span
        # per span: deferred, same; (w, a0, a1, phase) rows of deferred spans
        self._flags = np.zeros((2, 0), dtype=np.bool_)
        self._rows = _NO_ROWS
        self._consts: np.ndarray | None = None  # kernels.C_*, rebuilt after events

    # -- events -----------------------------------------------------------
    def params(self) -> list[Param]:
        return [self.gain, self.freq, self.amp, self.shift, self.bandpass.center]

    def glide_remainders(self) -> list[int]:
        return [glide - elapsed for glide, elapsed in self._clocks.tolist() if glide > elapsed]

    def set(self, param: str, value, glide_s: float | None) -> bool:
        self._still[0] = 0
        self._consts = None  # rebuilt at the next render
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

    # -- rendering --------------------------------------------------------
    def render_spans(self, lengths: np.ndarray, span_frames: int, out: np.ndarray,
                     *, synthesize: bool = True) -> None:
        """Add consecutive spans to ``out``: one compiled call for all of them.

        ``synthesize=False`` moves parameters, LFOs and phases exactly as
        rendering would (a sine's phase follows from its frequencies alone).
        """
        spans = lengths.size
        big = self.n_partials >= self.BLAS_MIN_PARTIALS
        if big and spans > self.MAX_BIG_SPANS:  # bound the per-span rows kept for BLAS
            offset = 0
            for start in range(0, spans, self.MAX_BIG_SPANS):
                part = lengths[start:start + self.MAX_BIG_SPANS]
                frames = int(part.sum())
                self.render_spans(part, span_frames,
                                  out[offset:offset + frames] if synthesize else out,
                                  synthesize=synthesize)
                offset += frames
            return
        if spans > self._flags.shape[1]:
            self._flags = np.zeros((2, 2 * spans), dtype=np.bool_)
            self._rows = np.empty((2 * spans, 4, self.n_partials)) if big else _NO_ROWS
        if self._consts is None:
            bp = self.bandpass
            self._consts = np.array([
                self.sample_rate, self.muted, self.vibrato_cents, self.tremolo.depth, bp.q,
                bp.lo_hz, bp.hi_hz, self.vibrato.shape_code, self.tremolo.lfo.shape_code,
                bp.sweep.shape_code])
        kernels.bank_spans(lengths, self._params, self._clocks, self._lfos, self._consts,
                           self.phase, self._last_controls, synthesize,
                           self.BLAS_MIN_PARTIALS if big else 1 << 62, out, self._flags,
                           self._still, self._rows)
        deferred, same = self._flags
        if not (big and synthesize and deferred[:spans].any()):
            self._weighted = None
            return
        offset = 0
        for s, frames in enumerate(lengths.tolist()):
            if deferred[s]:
                w, a0, a1, phase = self._rows[s]
                if same[s]:  # nothing moved: the kernel left w and a in _last_controls
                    w, _, a0, a1 = self._last_controls
                out[offset:offset + frames] += self._render_steady(
                    frames, span_frames, w, a0, a1, phase, same[s])
            else:
                self._weighted = None  # the rotated phasors no longer follow on
            offset += frames

    def skip_spans(self, lengths: np.ndarray, span_frames: int) -> None:
        self.render_spans(lengths, span_frames, np.empty(0), synthesize=False)

    def render(self, frames: int, span_frames: int = 512) -> np.ndarray:
        """Render one span of ``frames`` samples (mono)."""
        out = np.zeros(frames)
        self.render_spans(np.array([frames], dtype=np.int64), span_frames, out)
        return out

    def skip(self, frames: int, span_frames: int = 512) -> None:
        self.skip_spans(np.array([frames], dtype=np.int64), span_frames)

    # -- the BLAS path for big banks in which nothing moves ---------------
    def _retable(self, w: np.ndarray, columns: np.ndarray) -> None:
        ang = np.outer(w[columns], np.arange(self.sub_block, dtype=np.float64))
        self._rt[2 * columns] = np.sin(ang)
        self._rt[2 * columns + 1] = np.cos(ang)
        self._table_w[columns] = w[columns]

    def _phasors(self, q_count: int, phase: np.ndarray) -> np.ndarray:
        q_start = np.arange(q_count, dtype=np.float64)[:, None] * self.sub_block
        return unit_phasors(phase[None, :] + self._table_w[None, :] * q_start)

    def _render_steady(self, frames: int, span_frames: int, w: np.ndarray, a0: np.ndarray,
                       a1: np.ndarray, phase: np.ndarray, same: bool) -> np.ndarray:
        """One span of steady-frequency partials (``w`` rad/frame, amplitudes ramping
        linearly from ``a0`` to ``a1``, 0 where silent) from start phases ``phase``;
        ``same``: nothing changed since the previous span."""
        m = self.sub_block
        full = frames == span_frames and frames % m == 0
        if (same and full and self._weighted is not None and self._rotations_left > 0):
            out = (self._weighted.view(np.float32) @ self._rt).ravel()
            np.multiply(self._weighted, self._rotation[None, :], out=self._weighted)
            self._rotations_left -= 1
            return out
        stale = np.flatnonzero(((a0 > 0.0) | (a1 > 0.0)) & (w != self._table_w))
        if stale.size:
            self._retable(w, stale)
        q_count = -(-frames // m)
        phasors = self._phasors(q_count, phase)
        constant = np.array_equal(a0, a1)
        if constant:
            weighted = phasors * a0[None, :].astype(np.float32)
        else:
            slope = (a1 - a0) / frames
            q_start = np.arange(q_count, dtype=np.float64)[:, None] * m
            weighted = phasors * (a0[None, :] + slope[None, :] * q_start).astype(np.float32)
        out = (weighted.view(np.float32) @ self._rt).ravel()
        if not constant:
            ramp = phasors * slope[None, :].astype(np.float32)
            out += ((ramp.view(np.float32) @ self._rt) * np.arange(m, dtype=np.float32)).ravel()
        if full and constant:
            # the next full span with the same partials rotates these phasors on
            self._rotation = unit_phasors(w * frames)
            self._weighted = weighted
            np.multiply(weighted, self._rotation[None, :], out=weighted)
            self._rotations_left = self.REBUILD_EVERY
        else:
            self._weighted = None
        return out[:frames]


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

"""A bank of sine partials: the voice of every steady tone.

Why the sine bank is fast
-------------------------
Its control work (glides, LFOs, band-pass gains, phases) runs compiled, one call
for all spans between two events (:func:`auralize.audio.voices.bank_kernels.bank_spans`),
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

from auralize.audio import kernels
from auralize.audio.voices import bank_kernels
from auralize.audio.voices.base import (
    AMP,
    CENTS,
    PAN,
    RATE,
    TWO_PI,
    BandPass,
    Tremolo,
    Voice,
    unit_phasors,
    wrap_phase,
)
from auralize.audio.voices.lfo import LFO
from auralize.audio.voices.params import EngineStats, Param, Range, sanitize

_NO_ROWS = np.empty((0, 4, 0))  # a small bank defers no span to BLAS


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
    pan : float or array (P,)
        Position of each partial, -1 (left) .. +1 (right), equal-power; glides.
        Partials sharing one pan are synthesised once and panned; different
        pans cost one synthesis per channel.
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

    ``clock_phase=True`` (spec only): when the voice is created, and whenever a
    partial's frequency is set without a glide, its phase becomes that of a sine
    of its frequency running since frame 0.  Identical sounds (earcons) started a
    few frames apart then add up instead of cancelling: two 1760 Hz notes 12
    frames (half a period) apart at pans -0.25 and +0.25 vanish from the mono mix
    with phases that start at 0.

    Notes
    -----
    All control state (gliding parameters, LFO phases) is packed into arrays
    that :func:`auralize.audio.voices.bank_kernels.bank_spans` advances in compiled code,
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
        clock_phase: bool = False,
    ) -> None:
        super().__init__(sample_rate, stats, glide_s, gain)
        self.clock_phase = bool(clock_phase)
        n = int(np.size(freq_hz))
        if n < 1:
            raise ValueError("a sine bank needs at least one partial")
        self.n_partials = n
        # Packed state advanced by bank_kernels.bank_spans; the Param and LFO objects
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
        self.pan = packed(kernels.PAN, 0.0)
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
        # 1 while the last span rendered had nothing moving (bank_kernels.bank_spans)
        self._still = np.zeros(1, dtype=np.int64)
        self._last_controls = np.zeros((4, n))  # w0, w1, a0, a1 of the last span
        # per span: deferred, same; (w, a0, a1, phase) rows of deferred spans
        self._flags = np.zeros((2, 0), dtype=np.bool_)
        self._rows = _NO_ROWS
        self._consts: np.ndarray | None = None  # kernels.C_*, rebuilt after events

    # -- events -----------------------------------------------------------
    def params(self) -> list[Param]:
        return [self.gain, self.freq, self.amp, self.shift, self.bandpass.center, self.pan]

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
        elif param == "pan":
            self.pan.set(sanitize(value, n, PAN, stats), frames)
        elif param == "vibrato_hz":
            self.vibrato.set_rate(sanitize(value, 1, RATE, stats))
        elif param == "vibrato_cents":
            self.vibrato_cents = float(sanitize(value, 1, CENTS, stats)[0])
        elif not (self.tremolo.set(param, value) or self.bandpass.set(param, value, frames)):
            return super().set(param, value, glide_s)
        return True

    def align_phase(self, frame: int) -> None:
        """Phases of a sine of each steady partial's frequency running since frame 0."""
        if not self.clock_phase:
            return
        steady = self.freq.remaining == 0 and self.shift.remaining == 0
        if not steady:
            return
        hz = self.freq.value + self.shift.value
        # whole seconds of frames first: exact cycles for integer Hz, small products
        seconds, rest = divmod(int(frame), self.sample_rate)
        cycles = np.mod(hz * seconds, 1.0) + hz * (rest / self.sample_rate)
        self.phase[:] = wrap_phase(TWO_PI * cycles)
        self._weighted = None
        self._still[0] = 0

    # -- rendering --------------------------------------------------------
    def render_channels(self, lengths: np.ndarray, span_frames: int, outs: np.ndarray,
                        scratch: np.ndarray | None) -> None:
        """Add consecutive spans to ``outs`` (C, N), each partial at its own pan."""
        self.render_spans(lengths, span_frames, outs)

    def render_spans(self, lengths: np.ndarray, span_frames: int, out: np.ndarray,
                     *, synthesize: bool = True) -> None:
        """Add consecutive spans to ``out``: one compiled call for all of them.

        ``out`` is (N,) (mono) or (C, N) (channels, see
        :func:`auralize.audio.voices.bank_kernels.bank_spans`).  ``synthesize=False``
        moves parameters, LFOs and phases exactly as rendering would (a sine's
        phase follows from its frequencies alone).
        """
        outs = out if out.ndim == 2 else out.reshape(1, -1)
        spans = lengths.size
        big = self.n_partials >= self.BLAS_MIN_PARTIALS
        if big and spans > self.MAX_BIG_SPANS:  # bound the per-span rows kept for BLAS
            offset = 0
            for start in range(0, spans, self.MAX_BIG_SPANS):
                part = lengths[start:start + self.MAX_BIG_SPANS]
                frames = int(part.sum())
                self.render_spans(part, span_frames,
                                  outs[:, offset:offset + frames] if synthesize else out,
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
        if not synthesize:
            outs = np.empty((1, 0))
        bank_kernels.bank_spans(lengths, self._params, self._clocks, self._lfos, self._consts,
                           self.phase, self._last_controls, synthesize,
                           self.BLAS_MIN_PARTIALS if big else 1 << 62, outs, self._flags,
                           self._still, self._rows)
        deferred, same = self._flags
        if not (big and synthesize and deferred[:spans].any()):
            self._weighted = None
            return
        channels = outs.shape[0]
        gains = [kernels.pan_gain(float(self.pan.value[0]), c, channels) for c in range(channels)]
        offset = 0
        for s, frames in enumerate(lengths.tolist()):
            if deferred[s]:
                w, a0, a1, phase = self._rows[s]
                if same[s]:  # nothing moved: the kernel left w and a in _last_controls
                    w, _, a0, a1 = self._last_controls
                mono = self._render_steady(frames, span_frames, w, a0, a1, phase, same[s])
                if channels == 1:
                    outs[0, offset:offset + frames] += mono
                else:  # deferred spans have one steady pan: the last (constant gains)
                    for c, gain in enumerate(gains):
                        if gain != 0.0:
                            outs[c, offset:offset + frames] += mono * gain
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

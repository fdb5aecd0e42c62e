"""Compiled (numba) control and synthesis loops: the engine's per-span work.

The engine cuts time into spans (at its chunk grid, at every event and at every
glide end); inside a span every parameter moves in a straight line.  Doing the
per-span control work in Python cost ~70-80 µs per voice per span, more than
synthesising a small bank.  Here one call handles all spans between two events:

- :func:`~auralize.audio.voices.bank_kernels.bank_spans` advances a sine bank's packed
  parameters and LFOs span by span, computes each partial's frequency and
  amplitude at the span's edges and synthesises the span with a complex
  recurrence (exact linear chirp and amplitude ramp), or hands steady spans of
  big banks back to the BLAS path in :mod:`auralize.audio.voices.sine_bank`; it uses the
  parameter and LFO kernels here;
- :func:`finish_spans` applies the master gain, the limiter and the soft clip
  per span and converts to float32 (any channel count, mono included, one
  limiter gain linked across channels);
- :func:`pan_gain` is the equal-power pan law over any channel count and
  :func:`pan_spans` pans a voice's mono spans into the channels.

Every span is computed by the same arithmetic whatever the grouping of spans
into calls, so output stays bit-identical at any block size.  Functions are
compiled on first use and cached on disk (``cache=True``), so only the first
run on a machine pays the compile time.  Numba's cache checks only the
calling function's own file: after editing a kernel here that
:mod:`auralize.audio.voices.bank_kernels` calls, delete ``__pycache__/*.nb[ic]`` (or
touch bank_kernels.py), or its cached callers keep the old code.
"""

from __future__ import annotations

import math

import numba
import numpy as np

TWO_PI = 2.0 * math.pi

# Rows of a sine bank's packed parameter array (params[slot] = value, start, target).
GAIN, FREQ, AMP, SHIFT, CENTER, PAN = range(6)
N_PARAMS = 6
# Rows of its packed LFO array (lfos[slot] = rate Hz, phase cycles).
VIBRATO, TREMOLO, SWEEP = range(3)
N_LFOS = 3
# Entries of its constants vector.
(C_RATE, C_MUTED, C_CENTS, C_DEPTH, C_Q, C_LO, C_HI, C_VIB_SHAPE, C_TREM_SHAPE,
 C_SWEEP_SHAPE) = range(10)
N_CONSTS = 10

# error_model="numpy": division by zero gives inf/nan instead of raising, which
# spares the checks that keep loops from vectorising (inputs are sanitised).
jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# The synthesis sums over partials: letting LLVM reassociate that sum is what
# vectorises it.  The result still depends only on the inputs (never on how
# spans are grouped into calls).
jit_sum = numba.njit(cache=True, nogil=True, error_model="numpy",
                     fastmath={"reassoc", "contract"})


@jit
def advance_glide(params, clocks, j, frames, begin, end):
    """Advance packed parameter ``j`` if it glides; False (nothing written) if it is steady.

    ``params`` (K, 3, P): rows value, start, target; ``clocks`` (K, 2): glide
    length and elapsed frames.  Writes the values at the span's start and end
    into ``begin[j]`` and ``end[j]`` (as :meth:`Param.advance`).
    """
    glide = clocks[j, 0]
    if glide - clocks[j, 1] <= 0:
        return False
    size = params.shape[2]
    for k in range(size):
        begin[j, k] = params[j, 0, k]
    clocks[j, 1] += frames
    if clocks[j, 1] >= glide:
        for k in range(size):
            params[j, 0, k] = params[j, 2, k]
        clocks[j, 0] = 0
        clocks[j, 1] = 0
    else:
        frac = clocks[j, 1] / glide
        for k in range(size):
            params[j, 0, k] = params[j, 1, k] + (params[j, 2, k] - params[j, 1, k]) * frac
    for k in range(size):
        end[j, k] = params[j, 0, k]
    return True


@jit
def advance_params(params, clocks, frames, begin, end):
    """Advance all packed parameters ``frames`` frames; their start/end values into
    ``begin`` and ``end`` (K, P)."""
    for j in range(params.shape[0]):
        if not advance_glide(params, clocks, j, frames, begin, end):
            for k in range(params.shape[2]):
                begin[j, k] = params[j, 0, k]
                end[j, k] = params[j, 0, k]


@jit
def advance_params_spans(params, clocks, lengths):
    """Advance packed parameters over consecutive spans (seeking: values discarded)."""
    n_params, _, size = params.shape
    begin = np.empty((n_params, size))
    end = np.empty((n_params, size))
    for s in range(lengths.size):
        advance_params(params, clocks, lengths[s], begin, end)


@jit
def lfo_shape(code, cycles):
    """Unipolar LFO value in [0, 1] (codes: :data:`auralize.audio.voices.lfo.SHAPE_CODES`)."""
    if code == 0:
        return 0.5 - 0.5 * math.cos(TWO_PI * cycles)
    if code == 1:
        return 1.0 - abs(2.0 * cycles - 1.0)
    if code == 2:
        return 1.0 - cycles
    if code == 3:
        return cycles
    return 1.0 if cycles < 0.5 else 0.0


@jit
def advance_lfo(lfos, slot, seconds):
    """Advance every column of LFO row ``slot`` by ``seconds``; phases stay in [0, 1)."""
    for k in range(lfos.shape[2]):
        if lfos[slot, 0, k] != 0.0:
            c = lfos[slot, 1, k] + lfos[slot, 0, k] * seconds
            lfos[slot, 1, k] = c - math.floor(c)


@jit
def bandpass_gain(freq_hz, center_hz, q):
    """Scalar twin of :func:`auralize.audio.voices.base.bandpass_gain`."""
    f = max(freq_hz, 1e-3)
    fc = max(center_hz, 1e-3)
    detune = f / fc - fc / f
    return 1.0 / math.sqrt(1.0 + (q * detune) ** 2)


@jit
def wrap(phase):
    return phase - TWO_PI * math.floor(phase * (1.0 / TWO_PI))


@jit
def limiter_gain(g0, peak, knee, frames, release_frames):
    """The limiter's gain at a span's end: attack within the span, release over
    ``release_frames`` (the gain ramps linearly from ``g0`` to it across the span)."""
    wanted = knee / peak if peak > knee else 1.0
    if wanted < g0:
        return wanted
    release = min(1.0, frames / release_frames)
    return min(wanted, g0 + (1.0 - g0) * release)


@jit
def pan_gain(pan, channel, channels):
    """Equal-power gain of ``channel`` (of ``channels``) for ``pan`` in [-1, 1].

    The position runs from channel 0 (pan -1) to the last channel (pan +1); a
    sound between two neighbouring channels gets ``cos`` and ``sin`` of its
    fraction of the way x pi/2 (their squares sum to 1: constant power).  Two
    channels: left ``cos((pan + 1) pi / 4)``, right ``sin((pan + 1) pi / 4)``.
    One channel: 1.
    """
    if channels == 1:
        return 1.0
    p = min(max(pan, -1.0), 1.0)
    x = (p + 1.0) * 0.5 * (channels - 1)
    pair = min(int(math.floor(x)), channels - 2)
    frac = x - pair
    if frac >= 1.0:  # exactly on the next channel (cos(pi/2) is not exactly 0)
        return 1.0 if channel == pair + 1 else 0.0
    if channel == pair:
        return math.cos(frac * 0.5 * math.pi)
    if channel == pair + 1:
        return math.sin(frac * 0.5 * math.pi)
    return 0.0


@jit
def pan_spans(mono, lengths, pan, pan_clock, outs):
    """Add ``mono`` (N,) to ``outs`` (C, N) at the gliding pan ``pan`` (1, 3, 1).

    Each channel's gain is exact (:func:`pan_gain`) at every span's edges and
    moves linearly inside it (spans end at every glide end and at the chunk
    grid, so this depends on the events only, never on block sizes).
    """
    p_begin = np.empty((1, 1))
    p_end = np.empty((1, 1))
    channels = outs.shape[0]
    offset = 0
    for s in range(lengths.size):
        frames = lengths[s]
        advance_params(pan, pan_clock, frames, p_begin, p_end)
        for c in range(channels):
            g0 = pan_gain(p_begin[0, 0], c, channels)
            g1 = pan_gain(p_end[0, 0], c, channels)
            if g0 == 0.0 and g1 == 0.0:
                continue
            slope = (g1 - g0) / frames
            for n in range(frames):
                outs[c, offset + n] += mono[offset + n] * (g0 + slope * n)
        offset += frames


@jit
def finish_spans(mix, lengths, master, master_clock, limiter, counts, out):
    """Master gain, limiter and soft clip, span by span; float32 into ``out``.

    One limiter gain for all channels (from the peak over all of them), so a
    loud sound on one side does not move the stereo image; mono is one channel.

    Parameters
    ----------
    mix : float64 (C, N)
        The voices' sum per channel (modified in place).
    lengths : int64 (S,)
        Span lengths, summing to N.
    master, master_clock : float64 (1, 3, 1), int64 (1, 2)
        The master gain as a packed parameter.
    limiter : float64 (4,)
        Gain (updated), threshold, release time in frames, ceiling.
    counts : int64 (3,)
        Incremented: non-finite samples replaced, spans in which the limiter
        reduced the gain, samples the soft clip shaped.
    out : float32 (N, C), or (N,) for one channel
        Frame by frame (each frame's channels in order); a 1-D ``out`` spares the
        mono engine a reshape per call.
    """
    m_begin = np.empty((1, 1))
    m_end = np.empty((1, 1))
    knee, release_frames, ceiling = limiter[1], limiter[2], limiter[3]
    channels = mix.shape[0]
    frames_out = out.reshape(-1)  # a view: (N * C,), frame-major
    offset = 0
    for s in range(lengths.size):
        frames = lengths[s]
        advance_params(master, master_clock, frames, m_begin, m_end)
        m0, m1 = m_begin[0, 0], m_end[0, 0]
        peak = 0.0
        for c in range(channels):  # channel by channel: each row of ``mix`` in order
            for n in range(frames):
                x = mix[c, offset + n] * (m0 + (m1 - m0) * (n / frames))
                if not math.isfinite(x):  # defence in depth: voices sanitise their inputs
                    counts[0] += 1
                    x = 0.0
                mix[c, offset + n] = x
                peak = max(peak, abs(x))
        g0 = limiter[0]
        g1 = limiter_gain(g0, peak, knee, frames, release_frames)
        ramp = g1 < 1.0 or g0 < 1.0
        if ramp:
            counts[1] += 1
        limiter[0] = g1
        for c in range(channels):
            for n in range(frames):
                x = mix[c, offset + n]
                if ramp:
                    x *= g0 + (g1 - g0) * (n / frames)
                # The gain ramp can lag a sudden peak by one span: a soft clipper
                # above the threshold catches it without a hard edge.
                if abs(x) > knee:
                    counts[2] += 1
                    shaped = knee + (ceiling - knee) * math.tanh((abs(x) - knee) / (ceiling - knee))
                    x = shaped if x > 0 else -shaped
                frames_out[(offset + n) * channels + c] = x
        offset += frames

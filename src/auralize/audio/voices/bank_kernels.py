"""Compiled (numba) sine-bank kernels: a bank's control and synthesis for all spans between two events.

See :mod:`auralize.audio.kernels` for why the per-span work is compiled and how
output stays bit-identical at any block size; the bank's packed parameter, LFO
and constant layouts are defined there.
"""

from __future__ import annotations

import math

import numpy as np

from auralize.audio.kernels import (
    AMP,
    C_CENTS,
    C_DEPTH,
    C_HI,
    C_LO,
    C_MUTED,
    C_Q,
    C_RATE,
    C_SWEEP_SHAPE,
    C_TREM_SHAPE,
    C_VIB_SHAPE,
    CENTER,
    FREQ,
    GAIN,
    N_PARAMS,
    PAN,
    SHIFT,
    SWEEP,
    TREMOLO,
    TWO_PI,
    VIBRATO,
    advance_glide,
    advance_lfo,
    bandpass_gain,
    jit,
    jit_sum,
    lfo_shape,
    pan_gain,
    wrap,
)

# Rows of the per-span scratch ``sw`` (per sounding partial): start phase, w0, w1,
# a0, a1, four rows of recurrence state, pan at the span's start and end, and five
# rows for one channel's copy of w0, w1, a0, a1 (synth_span overwrites w1 and a1).
SW_ROWS = 15


@jit_sum
def synth_span(out, offset, frames, count, phase0, w0, w1, a0, a1, zr, zi, rr, ri):
    """Add ``count`` partials over one span to ``out[offset:offset + frames]``.

    Partial j: phase ``phase0 + w0 n + c n^2`` with ``c = (w1 - w0) / (2 frames)``
    (frequency ramps linearly from w0 to w1 rad/frame), amplitude ramping
    linearly from a0 to a1.  The phasor is advanced by a complex rotation per
    sample, the rotation itself by ``exp(2 i c)`` when the partial glides;
    float64 throughout, restarted from the exact phase every span, so the
    error stays ~1e-13 (far below 16-bit resolution).
    """
    gliding = False
    for j in range(count):
        chirp = (w1[j] - w0[j]) / (2.0 * frames)
        if chirp != 0.0:
            gliding = True
        zr[j] = math.cos(phase0[j])
        zi[j] = math.sin(phase0[j])
        rr[j] = math.cos(w0[j] + chirp)
        ri[j] = math.sin(w0[j] + chirp)
        w1[j] = chirp  # reused below: the per-sample rotation of the rotation
        a1[j] = (a1[j] - a0[j]) / frames  # reused below: the amplitude slope
    cr = np.empty(count if gliding else 0)
    ci = np.empty(count if gliding else 0)
    for j in range(cr.size):
        cr[j] = math.cos(2.0 * w1[j])
        ci[j] = math.sin(2.0 * w1[j])
    for n in range(frames):
        acc = 0.0
        for j in range(count):
            acc += (a0[j] + a1[j] * n) * zi[j]
            t = zr[j] * rr[j] - zi[j] * ri[j]
            zi[j] = zr[j] * ri[j] + zi[j] * rr[j]
            zr[j] = t
        out[offset + n] += acc
        if gliding:  # the rotation turns too: the frequency ramps
            for j in range(count):
                t = rr[j] * cr[j] - ri[j] * ci[j]
                ri[j] = rr[j] * ci[j] + ri[j] * cr[j]
                rr[j] = t


@jit
def _emit(outs, offset, frames, count, sw, scratch):
    """Synthesise the ``count`` compacted partials of ``sw`` into the channels ``outs``.

    One channel: the partials' sum (``pan`` ignored).  More: a bank whose
    partials share one pan is synthesised once and panned (gains exact at the
    span's edges, linear inside); partials at different pans are synthesised
    per channel with amplitudes scaled by their channel gains.
    """
    channels = outs.shape[0]
    if channels == 1:
        synth_span(outs[0], offset, frames, count, sw[0], sw[1], sw[2], sw[3], sw[4], sw[5],
                   sw[6], sw[7], sw[8])
        return
    uniform = True
    for j in range(1, count):
        if sw[9, j] != sw[9, 0] or sw[10, j] != sw[10, 0]:
            uniform = False
            break
    if uniform:
        for n in range(frames):
            scratch[n] = 0.0
        synth_span(scratch, 0, frames, count, sw[0], sw[1], sw[2], sw[3], sw[4], sw[5], sw[6],
                   sw[7], sw[8])
        for c in range(channels):
            g0 = pan_gain(sw[9, 0], c, channels)
            g1 = pan_gain(sw[10, 0], c, channels)
            if g0 == 0.0 and g1 == 0.0:
                continue
            slope = (g1 - g0) / frames
            for n in range(frames):
                outs[c, offset + n] += scratch[n] * (g0 + slope * n)
        return
    for c in range(channels):
        for j in range(count):
            sw[11, j] = sw[1, j]
            sw[12, j] = sw[2, j]
            sw[13, j] = sw[3, j] * pan_gain(sw[9, j], c, channels)
            sw[14, j] = sw[4, j] * pan_gain(sw[10, j], c, channels)
        synth_span(outs[c], offset, frames, count, sw[0], sw[11], sw[12], sw[13], sw[14], sw[5],
                   sw[6], sw[7], sw[8])


@jit
def _synth_compact(outs, offset, frames, phase0, last, pan, sw, scratch):
    """Synthesise the sounding partials of a span whose controls are ``last``."""
    count = 0
    for k in range(phase0.size):
        if last[2, k] > 0.0 or last[3, k] > 0.0:
            sw[0, count] = phase0[k]
            sw[1, count] = last[0, k]
            sw[2, count] = last[1, k]
            sw[3, count] = last[2, k]
            sw[4, count] = last[3, k]
            sw[9, count] = pan[k]
            sw[10, count] = pan[k]
            count += 1
    _emit(outs, offset, frames, count, sw, scratch)


@jit
def bank_spans(lengths, params, clocks, lfos, consts, phase, last, synthesize, blas_min,
               outs, flags, state, rows):
    """Advance a sine bank over consecutive spans and synthesise them into ``outs``.

    Parameters
    ----------
    lengths : int64 (S,)
        Span lengths in frames; ``outs`` (C, N) holds their sum per channel
        (C = 1: mono, the pan row ignored; see :func:`_emit`).
    params : float64 (6, 3, P)
        Packed gliding parameters (rows :data:`GAIN` ... :data:`PAN`).
    clocks : int64 (6, 2)
        Their glide clocks.
    lfos : float64 (3, 2, P)
        Vibrato, tremolo and band-pass sweep LFOs (rate Hz, phase cycles).
    consts : float64 (10,)
        Sample rate, muted, vibrato cents, tremolo depth, band-pass Q, sweep
        low/high Hz and the three LFO shape codes.
    phase : float64 (P,)
        Phases (rad) at the first span's start; left at the last span's end.
    last : float64 (4, P)
        The last span's w0, w1 (rad/frame), a0, a1: reused while nothing moves.
    synthesize : bool
        False: move parameters, LFOs and phases only (seeking).
    blas_min : int
        A span in which at least this many partials sound and no frequency
        moves is not synthesised here but "deferred" to the caller's BLAS
        path: its frequencies (rad/frame), amplitudes at both ends and start
        phases go to ``rows[s]`` (S, 4, P; (0, 4, 0) for banks below
        ``blas_min`` partials); for a span in which nothing moved only the
        phases (the rest is ``last``).  With channels, only spans in which all
        partials share one steady pan are deferred.
    flags : bool (2, >= S)
        Written for each span: [0] deferred, [1] its frequencies and
        amplitudes equal the previous span's (nothing glides or modulates),
        so the BLAS path can reuse its work.
    state : int64 (1,)
        1 when the last span rendered so far was such a span (0 after events).
    """
    deferred = flags[0]
    same = flags[1]
    sample_rate = consts[C_RATE]
    muted = consts[C_MUTED] != 0.0
    cents, depth, q = consts[C_CENTS], consts[C_DEPTH], consts[C_Q]
    sweep_lo, sweep_hi = consts[C_LO], consts[C_HI]
    vib_shape, trem_shape = int(consts[C_VIB_SHAPE]), int(consts[C_TREM_SHAPE])
    sweep_shape = int(consts[C_SWEEP_SHAPE])
    size = phase.size
    nyquist = 0.5 * sample_rate
    scale = TWO_PI / sample_rate
    pb = np.empty((N_PARAMS, size))
    pe = np.empty((N_PARAMS, size))
    # Rows of steady parameters are copied into pb/pe only when they changed.
    refresh = np.ones(N_PARAMS, dtype=np.bool_)
    sweeping = False
    for k in range(size):
        if lfos[SWEEP, 0, k] != 0.0:
            sweeping = True
    modulated = ((cents > 0.0 and lfos[VIBRATO, 0, 0] != 0.0)
                 or (depth > 0.0 and lfos[TREMOLO, 0, 0] != 0.0) or (q > 0.0 and sweeping))
    previous_still = state[0] == 1
    sw = np.empty((SW_ROWS, size))  # per sounding partial (see SW_ROWS)
    longest = 0
    for s in range(lengths.size):
        longest = max(longest, lengths[s])
    scratch = np.empty(longest if outs.shape[0] > 1 else 0)
    dense = blas_min <= size
    dw1 = np.empty(size if dense else 0)
    offset = 0
    for s in range(lengths.size):
        frames = lengths[s]
        still = not modulated
        for j in range(N_PARAMS):
            if advance_glide(params, clocks, j, frames, pb, pe):
                still = False
                refresh[j] = True  # the next span starts where this one ends
            elif refresh[j]:
                refresh[j] = False
                for k in range(size):
                    pb[j, k] = params[j, 0, k]
                    pe[j, k] = params[j, 0, k]
        same[s] = still and previous_still
        previous_still = still
        count = 0
        steady = True
        # Vibrato and tremolo are voice-level: their rows hold one value in
        # every column, so they are evaluated once per span.
        vib_rate = lfos[VIBRATO, 0, 0]
        vibrato = cents > 0.0 and vib_rate != 0.0
        if vibrato:
            vib0 = 2.0 ** (cents / 1200.0 * (2.0 * lfo_shape(vib_shape, lfos[VIBRATO, 1, 0]) - 1.0))
        advance_lfo(lfos, VIBRATO, frames / sample_rate)
        if vibrato:
            vib1 = 2.0 ** (cents / 1200.0 * (2.0 * lfo_shape(vib_shape, lfos[VIBRATO, 1, 0]) - 1.0))
        trem_rate = lfos[TREMOLO, 0, 0]
        tremolo = depth > 0.0 and trem_rate != 0.0
        if tremolo:
            trem0 = 1.0 - depth * lfo_shape(trem_shape, lfos[TREMOLO, 1, 0])
        advance_lfo(lfos, TREMOLO, frames / sample_rate)
        if tremolo:
            trem1 = 1.0 - depth * lfo_shape(trem_shape, lfos[TREMOLO, 1, 0])
        repeat = same[s]
        deferred[s] = False
        # BLAS renders one mono sum: with channels, only while all partials share one
        # steady pan (the caller pans it); decided per span, never per call
        blas_ok = True
        if outs.shape[0] > 1:
            for k in range(size):
                if pb[PAN, k] != pb[PAN, 0] or pe[PAN, k] != pb[PAN, 0]:
                    blas_ok = False
                    break
        if repeat and dense and synthesize and not sweeping:
            # The steady state of a big bank: only phases move (a tight loop).
            for k in range(size):
                start = phase[k]
                phase[k] = wrap(start + last[0, k] * frames)  # = the general update, w0 == w1
                rows[s, 3, k] = start
                count += last[2, k] > 0.0
            if count >= blas_min and blas_ok:
                deferred[s] = True
            elif count > 0:
                _synth_compact(outs, offset, frames, rows[s, 3], last, pb[PAN], sw, scratch)
            offset += frames
            continue
        for k in range(size):
            sweep_rate = lfos[SWEEP, 0, k]
            sweep_c0 = lfos[SWEEP, 1, k]
            if sweep_rate != 0.0:
                c = sweep_c0 + sweep_rate * (frames / sample_rate)
                lfos[SWEEP, 1, k] = c - math.floor(c)
            if repeat:  # nothing moved: the previous span's controls hold
                w0 = last[0, k]
                w1 = last[1, k]
                a0 = last[2, k]
                a1 = last[3, k]
            else:
                fe0 = pb[FREQ, k] + pb[SHIFT, k]
                fe1 = pe[FREQ, k] + pe[SHIFT, k]
                if vibrato:
                    fe0 *= vib0
                    fe1 *= vib1
                a0 = pb[AMP, k] * pb[GAIN, k]
                a1 = pe[AMP, k] * pe[GAIN, k]
                if tremolo:
                    a0 *= trem0
                    a1 *= trem1
                if q > 0.0:
                    if sweep_rate > 0.0:
                        c0 = sweep_lo + (sweep_hi - sweep_lo) * lfo_shape(sweep_shape, sweep_c0)
                        c1 = sweep_lo + (sweep_hi - sweep_lo) * lfo_shape(sweep_shape,
                                                                          lfos[SWEEP, 1, k])
                    else:
                        c0 = pb[CENTER, k]
                        c1 = pe[CENTER, k]
                    a0 *= bandpass_gain(fe0, c0, q)
                    a1 *= bandpass_gain(fe1, c1, q)
                # Shifts and vibrato may push a partial below 0 Hz or past Nyquist:
                # silence it there rather than let it alias or fold.
                if not (0.0 < fe0 < nyquist):
                    a0 = 0.0
                    fe0 = min(max(fe0, 0.0), nyquist)
                if not (0.0 < fe1 < nyquist):
                    a1 = 0.0
                    fe1 = min(max(fe1, 0.0), nyquist)
                if muted:
                    a0 = a1 = 0.0
                w0 = fe0 * scale
                w1 = fe1 * scale
                last[0, k] = w0
                last[1, k] = w1
                last[2, k] = a0
                last[3, k] = a1
            start = phase[k]
            # exact phase advance for a linear frequency ramp over the span
            phase[k] = wrap(start + 0.5 * (w0 + w1) * frames)
            sounding = synthesize and (a0 > 0.0 or a1 > 0.0)
            if dense and repeat:  # the caller takes w and a from ``last``
                rows[s, 3, k] = start
                if sounding:
                    count += 1
            elif dense:  # big bank: dense rows, for BLAS if no frequency moves
                if sounding:
                    rows[s, 3, k] = start
                    rows[s, 0, k] = w0
                    rows[s, 1, k] = a0
                    rows[s, 2, k] = a1
                    count += 1
                    if w0 != w1:
                        steady = False
                        dw1[k] = w1
                    else:
                        dw1[k] = w0
                else:
                    rows[s, 3, k] = 0.0
                    rows[s, 0, k] = 0.0
                    rows[s, 1, k] = 0.0
                    rows[s, 2, k] = 0.0
            elif sounding:
                sw[0, count] = start
                sw[1, count] = w0
                sw[2, count] = w1
                sw[3, count] = a0
                sw[4, count] = a1
                sw[9, count] = pb[PAN, k]
                sw[10, count] = pe[PAN, k]
                count += 1
        if count > 0:
            if dense and steady and count >= blas_min and blas_ok:
                deferred[s] = True
            else:
                if dense:  # compact the sounding partials for the recurrence
                    count = 0
                    for k in range(size):
                        if rows[s, 1, k] > 0.0 or rows[s, 2, k] > 0.0:
                            sw[0, count] = rows[s, 3, k]
                            sw[1, count] = rows[s, 0, k]
                            sw[2, count] = dw1[k]
                            sw[3, count] = rows[s, 1, k]
                            sw[4, count] = rows[s, 2, k]
                            sw[9, count] = pb[PAN, k]
                            sw[10, count] = pe[PAN, k]
                            count += 1
                _emit(outs, offset, frames, count, sw, scratch)
        offset += frames
    state[0] = 1 if previous_still else 0



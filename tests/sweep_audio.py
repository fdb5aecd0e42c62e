"""Finding a sweep's voices and earcons in the driver's stereo recording."""

from __future__ import annotations

import numpy as np

from auralize.sweeps.earcons import EARCON_AMP, EARCONS, SIGNATURE_HZ
from auralize.sweeps.trial_voices import pan_gains


def voice_at(stereo: np.ndarray, sr: int, t0_s: float, t1_s: float, base_hz: float):
    """(frequency Hz, right/left amplitude ratio) of the strongest partial within a
    semitone of ``base_hz`` between ``t0_s`` and ``t1_s``."""
    seg = stereo[int(t0_s * sr):int(t1_s * sr)].astype(np.float64)
    n_fft = 1 << int(np.ceil(np.log2(len(seg) * 4)))
    window = np.hanning(len(seg))[:, None]
    spec = np.abs(np.fft.rfft(seg * window, n_fft, axis=0))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    band = (freqs > base_hz * 2 ** (-1 / 12)) & (freqs < base_hz * 2 ** (1 / 12))
    k = np.flatnonzero(band)[np.argmax(spec[band].sum(axis=1))]
    return float(freqs[k]), float(spec[k, 1] / max(spec[k, 0], 1e-12))


def expected_ratio(pan: float) -> float:
    left, right = pan_gains(pan)
    return right / left


def signature_offset_s(kind: str) -> float:
    """Seconds from the start of earcon ``kind`` to its signature note."""
    offset = 0.0
    for freqs, dur in EARCONS[kind]:
        if SIGNATURE_HZ[kind] in freqs:
            return offset
        offset += dur
    raise ValueError(kind)


def signature_length_s(kind: str) -> float:
    return next(dur for freqs, dur in EARCONS[kind] if SIGNATURE_HZ[kind] in freqs)


def earcon_onsets(stereo: np.ndarray, sr: int, kind: str, merge_s: float = 0.05) -> list[float]:
    """Start times (s) of earcon ``kind``: where its signature note starts sounding,
    less the signature note's offset in the earcon ("best" signs with its third note)."""
    mono = stereo.mean(axis=1).astype(np.float64)
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    starts = np.arange(0, len(mono) - frame, hop)
    t = np.arange(frame) / sr
    probe = np.exp(-2j * np.pi * SIGNATURE_HZ[kind] * t) * np.hanning(frame)
    level = np.abs(np.array([mono[s:s + frame] @ probe for s in starts]))
    # the quietest the signature partial gets in the mono mix: master gain 0.5, a hard
    # pan (mono mean of cos/sin gains >= 0.5); a sine of amplitude A gives A/2 * sum(window)
    partials = max(len(freqs) for freqs, _ in EARCONS[kind])
    quietest = EARCON_AMP / partials * 0.5 * 0.5
    on = level > 0.3 * quietest / 2 * np.hanning(frame).sum()
    onsets: list[float] = []
    for i in np.flatnonzero(on[1:] & ~on[:-1]) + 1:
        time_s = (starts[i] + frame / 2) / sr - signature_offset_s(kind)
        if not onsets or time_s - onsets[-1] > merge_s:
            onsets.append(time_s)
    return onsets


def assert_earcons_at(stereo, sr, kind: str, times_s: list[float], tol_s: float = 0.08) -> None:
    """Earcon ``kind`` starts within ``tol_s`` of each time, and nowhere else.

    Onsets and times are paired in order, one to one, with no merging threshold on
    either side (a threshold both sides must agree on fails whenever two earcons
    fall near it: two trials' starts three 0.1 s storage polls apart were 0.30 s
    apart in the log and 0.29 s in the audio).  The one allowance: an earcon that
    starts while an earlier one of its kind still sounds its signature note (plus
    the 40 ms analysis window and the release) may be heard as that one.
    """
    found = earcon_onsets(stereo, sr, kind)
    want = sorted(times_s)
    overlap_s = signature_length_s(kind) + 0.1
    used = [False] * len(found)
    for i, w in enumerate(want):
        match = next((j for j, f in enumerate(found) if not used[j] and abs(f - w) < tol_s), None)
        if match is not None:
            used[match] = True
            continue
        heard_as_one = i > 0 and w - want[i - 1] < overlap_s
        assert heard_as_one, (f"earcon {kind!r} expected at {w:.3f} s is not in the audio",
                              found, want)
    spurious = [f for f, u in zip(found, used) if not u]
    assert not spurious, (f"earcon {kind!r} sounds where none was played", spurious, want)

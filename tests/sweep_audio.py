"""Finding a sweep's voices and earcons in the driver's stereo recording."""

from __future__ import annotations

import numpy as np

from auralize.audio.voices.sampler import midi_to_hz, motif_samples
from auralize.sonify.earcons import EARCONS
from auralize.sweeps.trial_voices import MAX_PARTIAL_HZ, pan_gains

#: earcon -> (note index, partial): the note partial that finds it.  Each is above the trial
#: voices (under MAX_PARTIAL_HZ) and more than 100 Hz from every other sweep earcon's partials.
SIGNATURES = {"start": (0, 1), "stopped": (0, 1), "error": (1, 1), "best": (3, 2)}


def signature_hz(kind: str) -> float:
    note, partial = SIGNATURES[kind]
    return midi_to_hz(EARCONS[kind][note][0]) * partial


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
    return EARCONS[kind][SIGNATURES[kind][0]][1]


def signature_length_s(kind: str) -> float:
    return EARCONS[kind][SIGNATURES[kind][0]][2]


def _levels(mono: np.ndarray, sr: int, freq_hz: float) -> tuple[np.ndarray, int]:
    """Level of ``freq_hz`` in 40 ms Hann windows every 10 ms; and the window length."""
    frame, hop = int(0.04 * sr), int(0.01 * sr)
    starts = np.arange(0, len(mono) - frame, hop)
    t = np.arange(frame) / sr
    probe = np.exp(-2j * np.pi * freq_hz * t) * np.hanning(frame)
    return np.abs(np.array([mono[s:s + frame] @ probe for s in starts])), frame


def earcon_onsets(stereo: np.ndarray, sr: int, kind: str, merge_s: float = 0.05) -> list[float]:
    """Start times (s) of earcon ``kind``: where its signature note starts sounding,
    less the signature note's offset in the earcon ("best" signs with its fourth note)."""
    mono = stereo.mean(axis=1).astype(np.float64)
    level, frame = _levels(mono, sr, signature_hz(kind))
    # the quietest an earcon gets in the mono mix: master gain 0.5, a hard pan (mono mean
    # of the cos/sin gains >= 0.5), the sampler's buffer as the table makes it
    alone, _ = _levels(motif_samples(EARCONS[kind], sr), sr, signature_hz(kind))
    quietest = alone.max() * 0.5 * 0.5
    on = level > 0.3 * quietest
    hop = int(0.01 * sr)
    onsets: list[float] = []
    for i in np.flatnonzero(on[1:] & ~on[:-1]) + 1:
        time_s = (i * hop + frame / 2) / sr - signature_offset_s(kind)
        if not onsets or time_s - onsets[-1] > merge_s:
            onsets.append(time_s)
    return onsets


assert all(signature_hz(kind) > MAX_PARTIAL_HZ for kind in SIGNATURES)


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

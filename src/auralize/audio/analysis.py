"""Measuring rendered audio: dominant frequency, pitch track, largest step.

Used by tests to assert what a listener would hear, and by users to check that
a sonification carries the data it should.
"""

from __future__ import annotations

import numpy as np


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """Frequency in Hz of the strongest spectral peak (Hann window, parabolic refinement).

    Accurate to a small fraction of a bin for a steady tone.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.size < 4 or not np.any(x):
        return 0.0
    n_fft = 1 << int(np.ceil(np.log2(len(x) * 4)))
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    k = int(np.argmax(spec[1:-1])) + 1
    a, b, c = np.log(spec[k - 1 : k + 2] + 1e-30)
    denom = a - 2 * b + c
    offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
    return (k + offset) * sample_rate / n_fft


def pitch_track(
    samples: np.ndarray, sample_rate: int, frame_s: float, hop_s: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Dominant frequency per frame.

    Returns
    -------
    times_s, freqs_hz : ndarray
        Frame centres in seconds and the dominant frequency of each frame.
    """
    frame = max(8, int(round(frame_s * sample_rate)))
    hop = max(1, int(round((hop_s or frame_s) * sample_rate)))
    starts = range(0, max(0, len(samples) - frame + 1), hop)
    freqs = np.array([dominant_frequency(samples[s : s + frame], sample_rate) for s in starts])
    times = (np.array(list(starts), dtype=np.float64) + frame / 2) / sample_rate
    return times, freqs


def max_step(samples: np.ndarray) -> float:
    """Largest absolute difference between consecutive samples (clicks show up here)."""
    x = np.asarray(samples, dtype=np.float64)
    return float(np.max(np.abs(np.diff(x)))) if x.size > 1 else 0.0

"""Measuring rendered audio for the tests: dominant frequency, pitch track, largest step.

The tests assert with these what a listener would hear (the package does not use
them).  Every function takes mono samples ``(frames,)`` or multichannel
``(frames, channels)``, measured on the mono mix (the channels' mean, what a mono
device plays).
"""

from __future__ import annotations

import numpy as np


def mono_mix(samples: np.ndarray) -> np.ndarray:
    """float64 ``(frames,)``: the samples, or the mean of their channels."""
    x = np.asarray(samples, dtype=np.float64)
    return x.mean(axis=1) if x.ndim == 2 else x


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """Frequency in Hz of the strongest spectral peak (Hann window, parabolic refinement).

    Accurate to a small fraction of a bin for a steady tone.
    """
    x = mono_mix(samples)
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
    samples = mono_mix(samples)
    frame = max(8, int(round(frame_s * sample_rate)))
    hop = max(1, int(round((hop_s or frame_s) * sample_rate)))
    starts = range(0, max(0, len(samples) - frame + 1), hop)
    freqs = np.array([dominant_frequency(samples[s : s + frame], sample_rate) for s in starts])
    times = (np.array(list(starts), dtype=np.float64) + frame / 2) / sample_rate
    return times, freqs


def max_step(samples: np.ndarray) -> float:
    """Largest absolute difference between consecutive samples (clicks show up here)."""
    x = mono_mix(samples)
    return float(np.max(np.abs(np.diff(x)))) if x.size > 1 else 0.0


def band_envelope(samples: np.ndarray, sample_rate: int, lo_hz: float, hi_hz: float,
                  frame_s: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """RMS level per frame of the band ``lo_hz``..``hi_hz`` (e.g. speech: 300-3400 Hz).

    Returns
    -------
    times_s, rms : ndarray
        Frame starts in seconds and the band's RMS in each frame (FFT brick-wall
        band, so a tone outside the band contributes nothing).
    """
    x = mono_mix(samples)
    spec = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    spec[(freqs < lo_hz) | (freqs > hi_hz)] = 0.0
    band = np.fft.irfft(spec, len(x))
    frame = max(1, int(round(frame_s * sample_rate)))
    n = len(band) // frame
    rms = np.sqrt(np.mean(band[:n * frame].reshape(n, frame) ** 2, axis=1))
    return np.arange(n) * frame / sample_rate, rms


def band_spectrum(samples: np.ndarray, sample_rate: int, bands_per_octave: int = 3,
                  lo_hz: float = 50.0, hi_hz: float = 16000.0) -> np.ndarray:
    """Energy share per fractional-octave band (sums to 1): a timbre-and-register fingerprint."""
    x = mono_mix(samples)
    power = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    freqs = np.fft.rfftfreq(len(x), 1.0 / sample_rate)
    n_bands = int(np.ceil(np.log2(hi_hz / lo_hz) * bands_per_octave))
    edges = lo_hz * 2.0 ** (np.arange(n_bands + 1) / bands_per_octave)
    energy = np.array([power[(freqs >= a) & (freqs < b)].sum() for a, b in zip(edges, edges[1:])])
    return energy / max(energy.sum(), 1e-30)


def spectral_distance(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """How different two sounds' spectra are: 0 (same band energies) .. 1 (no band shared).

    Half the L1 distance between :func:`band_spectrum` fingerprints (total variation).
    """
    return 0.5 * float(np.abs(band_spectrum(a, sample_rate) - band_spectrum(b, sample_rate)).sum())

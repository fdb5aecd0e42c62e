"""Pictures of sound: spectrogram (dB, log-frequency) and waveform PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import signal


def pyplot():
    """matplotlib.pyplot on the Agg backend (PNG files; no display needed)."""
    # Agg: no display on servers; imported lazily so the engine starts fast.
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def spectrogram_db(
    samples: np.ndarray, sample_rate: int, nperseg: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """STFT magnitude in dB re full scale.

    Returns
    -------
    freqs_hz, times_s, power_db : ndarray
        ``power_db`` has shape ``(len(freqs_hz), len(times_s))`` and a floor of -120 dB.
    """
    x = np.nan_to_num(np.asarray(samples, dtype=np.float64))
    if x.ndim > 1:
        x = x.mean(axis=1)
    nperseg = int(max(16, min(nperseg, len(x)))) if len(x) else 16
    if len(x) < nperseg:
        x = np.pad(x, (0, nperseg - len(x)))
    freqs, times, spec = signal.stft(
        x, fs=sample_rate, nperseg=nperseg, noverlap=nperseg * 3 // 4, boundary=None
    )
    # Scale so that a full-scale sine reads about 0 dB.
    mag = np.abs(spec) * 2.0
    return freqs, times, 20.0 * np.log10(np.maximum(mag, 1e-6))


def save_spectrogram(
    samples: np.ndarray,
    sample_rate: int,
    path: str | Path,
    *,
    title: str | None = None,
    nperseg: int = 1024,
    min_freq_hz: float = 20.0,
    dynamic_range_db: float = 90.0,
) -> Path:
    """Save a log-frequency spectrogram in dB with a colour bar as a PNG."""
    freqs, times, db = spectrogram_db(samples, sample_rate, nperseg)
    return save_spectrogram_db(freqs, times, db, path, title=title, min_freq_hz=min_freq_hz,
                               dynamic_range_db=dynamic_range_db)


def save_spectrogram_db(freqs: np.ndarray, times: np.ndarray, db: np.ndarray, path: str | Path,
                        *, title: str | None = None, min_freq_hz: float = 20.0,
                        dynamic_range_db: float = 90.0, figsize=(10, 4.5)) -> Path:
    """Draw a computed spectrogram (``db``: frequencies x times, dB FS) as a PNG, log frequency.

    A bare ``Figure`` (no pyplot state), so it is safe off the main thread (tracker uploads).
    """
    from matplotlib.figure import Figure

    keep = freqs >= min(min_freq_hz, freqs[1] if len(freqs) > 1 else 0.0)
    fig = Figure(figsize=figsize, dpi=100)
    ax = fig.add_subplot()
    vmax = float(db.max()) if db.size else 0.0
    mesh = ax.pcolormesh(
        times, freqs[keep], db[keep], shading="auto", cmap="magma",
        vmin=vmax - dynamic_range_db, vmax=vmax,
    )
    ax.set_yscale("log")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title or "spectrogram")
    fig.colorbar(mesh, ax=ax, label="level (dB FS)")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def save_waveform(
    samples: np.ndarray, sample_rate: int, path: str | Path, *, title: str | None = None
) -> Path:
    """Save a waveform plot (amplitude against seconds) as a PNG.

    Long signals are drawn as a min/max envelope per pixel column, so a minute of
    audio plots as fast as a second.
    """
    plt = pyplot()
    x = np.nan_to_num(np.asarray(samples, dtype=np.float64))
    if x.ndim > 1:
        x = x.mean(axis=1)
    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    columns = 2000
    if len(x) > 2 * columns:
        usable = len(x) // columns * columns
        chunks = x[:usable].reshape(columns, -1)
        t = (np.arange(columns) + 0.5) * (usable / columns) / sample_rate
        ax.fill_between(t, chunks.min(axis=1), chunks.max(axis=1), linewidth=0, color="tab:blue")
    else:
        ax.plot(np.arange(len(x)) / sample_rate, x, linewidth=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    ax.set_title(title or "waveform")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

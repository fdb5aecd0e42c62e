"""The spectrogram of an audio file of any length, in memory that does not grow with it.

The file is read in chunks; its STFT frames (the same window and hop as
:func:`auralize.audio.plots.spectrogram_db`) are averaged in power into a fixed
number of time columns, so a week of audio makes the same size of picture, and
of memory, as a minute.  A file with fewer frames than columns keeps one column
per frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: time columns of a picture (a 10-inch figure at 100 dpi has fewer pixels)
DEFAULT_COLUMNS = 1600


def file_spectrogram_db(path: str | Path, *, nperseg: int = 1024, columns: int = DEFAULT_COLUMNS,
                        chunk_frames: int = 1 << 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """STFT power of a file in dB re full scale, averaged into at most ``columns`` time columns.

    Returns
    -------
    freqs_hz, times_s, power_db : ndarray
        ``power_db`` has shape ``(len(freqs_hz), len(times_s))``, a floor of
        -120 dB; ``times_s`` are the columns' centres.  A full-scale sine reads
        about 0 dB.
    """
    import soundfile as sf

    with sf.SoundFile(str(path)) as f:
        sample_rate, total = int(f.samplerate), int(f.frames)
        nperseg = int(max(16, min(nperseg, total))) if total else 16
        hop = nperseg // 4
        n_frames = 1 + max(0, -(-(total - nperseg) // hop))  # the last one zero-padded
        n_cols = max(1, min(int(columns), n_frames))
        window = np.hanning(nperseg + 1)[:-1]  # periodic Hann, as scipy's stft
        scale = 2.0 / window.sum()
        power = np.zeros((nperseg // 2 + 1, n_cols))
        count = np.zeros(n_cols)
        carry = np.zeros(0)
        frame = 0  # index of the next STFT frame
        while frame < n_frames:
            block = f.read(chunk_frames, dtype="float64", always_2d=True)
            x = np.concatenate([carry, np.nan_to_num(block.mean(axis=1))])
            if len(block) == 0:  # the end: pad the last frame as spectrogram_db does
                x = np.pad(x, (0, max(0, (n_frames - frame - 1) * hop + nperseg - len(x))))
            usable = 0 if len(x) < nperseg else 1 + (len(x) - nperseg) // hop
            usable = min(usable, n_frames - frame)
            if usable:
                starts = np.arange(usable) * hop
                segments = x[starts[:, None] + np.arange(nperseg)] * window
                spec = np.abs(np.fft.rfft(segments, axis=1)) * scale
                cols = (frame + np.arange(usable)) * n_cols // n_frames  # non-decreasing
                used, starts = np.unique(cols, return_index=True)
                power[:, used] += np.add.reduceat(spec ** 2, starts, axis=0).T
                count[used] += np.diff(np.r_[starts, usable])
                frame += usable
                x = x[usable * hop:]
            carry = x
            if len(block) == 0:
                break
    mean = power / np.maximum(count, 1)
    freqs = np.fft.rfftfreq(nperseg, 1.0 / sample_rate)
    first = (np.arange(n_cols) * n_frames + n_cols - 1) // n_cols  # first frame of each column
    last = ((np.arange(n_cols) + 1) * n_frames + n_cols - 1) // n_cols - 1
    times = ((first + last) / 2.0 * hop + nperseg / 2.0) / sample_rate
    return freqs, times, 10.0 * np.log10(np.maximum(mean, 1e-12))


def save_file_spectrogram(path: str | Path, png: str | Path, *, title: str | None = None,
                          columns: int = DEFAULT_COLUMNS, min_freq_hz: float = 20.0,
                          dynamic_range_db: float = 90.0) -> Path:
    """Save the spectrogram of the audio file ``path`` as a PNG (see :func:`file_spectrogram_db`)."""
    from auralize.audio.plots import save_spectrogram_db

    freqs, times, db = file_spectrogram_db(path, columns=columns)
    return save_spectrogram_db(freqs, times, db, png, title=title, min_freq_hz=min_freq_hz,
                               dynamic_range_db=dynamic_range_db)


__all__ = ["DEFAULT_COLUMNS", "file_spectrogram_db", "save_file_spectrogram"]

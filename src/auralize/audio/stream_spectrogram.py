"""The spectrogram of audio as it is written, of unknown length, in fixed memory.

:func:`~auralize.audio.file_spectrogram.file_spectrogram_db` reads a finished
file back; a recording's worker has the samples in hand as it writes them, so a
:class:`StreamSpectrogram` fed those blocks gives the picture at close without
reading hours of audio again.  Its STFT frames are those of the file version
(same window, hop and zero-padded last frame).  The length is unknown while it
runs, so frames are summed in power into *bins* of ``width`` frames, at most
``max_bins`` of them (two neighbours merge and the width doubles when they
fill).  At the end the bins are averaged into ``columns`` time columns: while
the audio has at most ``max_bins`` frames (about 45 s at 44.1 kHz) every bin is
one frame and the result equals the file version's; beyond, a bin belongs to
the column holding its centre frame, so column edges move by at most half a
bin, a quarter of a column at most (``max_bins >= 4 * columns``), and a bin
wider than :data:`FRAMES_PER_BIN` frames averages that many evenly spaced
frames (a 14-hour recording costs what a 5-minute one does; a sound shorter
than the spacing, 1.5 s at 14 hours, can fall between them: the digest, not
the picture, is what keeps every alarm).
"""

from __future__ import annotations

import numpy as np

from auralize.audio.file_spectrogram import DEFAULT_COLUMNS

#: frames a bin averages at most (evenly spaced): beyond 8 x 4 x 1600 frames (5 min at
#: 44.1 kHz) the STFT is taken of a sample of the frames, so its cost stops growing
FRAMES_PER_BIN = 8
#: samples gathered before their frames are taken
PENDING_FRAMES = 1 << 16


class StreamSpectrogram:
    """Add blocks with :meth:`write`; :meth:`result` gives ``(freqs_hz, times_s, power_db)``.

    Parameters
    ----------
    sample_rate : int
        Hz.
    nperseg : int
        STFT window (frames); the hop is a quarter of it.
    columns : int
        Time columns of the result.
    max_bins : int, optional
        Bins kept while running (default ``4 * columns``, 26 MB for 1600 columns).
    """

    def __init__(self, sample_rate: int, *, nperseg: int = 1024, columns: int = DEFAULT_COLUMNS,
                 max_bins: int | None = None) -> None:
        self.sample_rate = int(sample_rate)
        self.nperseg = int(nperseg)
        self.hop = self.nperseg // 4
        self.columns = int(columns)
        self.max_bins = int(max_bins or 4 * self.columns) // 2 * 2
        self.width = 1  # frames per bin
        self.power = np.zeros((self.nperseg // 2 + 1, self.max_bins))
        self.count = np.zeros(self.max_bins)
        self.frames = 0  # STFT frames summed so far
        self.samples = 0  # audio frames written
        self._window = np.hanning(self.nperseg + 1)[:-1]  # periodic Hann, as the file version
        self._scale = 2.0 / self._window.sum()
        self._carry = np.zeros(0, np.float32)
        self._pending: list = []
        self._pending_len = 0

    def write(self, block: np.ndarray) -> None:
        """Samples ``(n,)`` or ``(n, channels)`` (channels averaged)."""
        block = np.asarray(block)
        mono = block.mean(axis=1) if block.ndim == 2 else block
        self.samples += len(mono)
        self._pending.append(np.array(mono, copy=True))  # the caller may reuse its buffer
        self._pending_len += len(mono)
        if self._pending_len >= PENDING_FRAMES:  # few, large pieces: the per-call cost is fixed
            self._take()

    def _take(self) -> None:
        x = np.concatenate([self._carry, *self._pending])  # only the frames used become float64
        self._pending, self._pending_len = [], 0
        usable = 0 if len(x) < self.nperseg else 1 + (len(x) - self.nperseg) // self.hop
        if usable:
            self._add(x, usable)
            x = x[usable * self.hop:]
        self._carry = x

    def _add(self, x: np.ndarray, usable: int) -> None:
        """Sum the power of ``usable`` frames starting at ``x[0]`` into their bins."""
        for first in range(0, usable, 512):  # bounded temporaries
            n = min(512, usable - first)
            frame = self.frames
            while (frame + n - 1) // self.width >= self.max_bins:
                self._halve()
            # a wide bin averages FRAMES_PER_BIN evenly spaced frames, not all of them
            stride = max(1, self.width // FRAMES_PER_BIN)
            local = np.arange(-frame % stride, n, stride)
            self.frames += n
            if not len(local):
                continue
            starts = (first + local) * self.hop
            segments = np.nan_to_num(x[starts[:, None] + np.arange(self.nperseg)]
                                     .astype(np.float64)) * self._window
            spec = np.abs(np.fft.rfft(segments, axis=1)) * self._scale
            bins = (frame + local) // self.width  # non-decreasing
            used, idx = np.unique(bins, return_index=True)
            self.power[:, used] += np.add.reduceat(spec ** 2, idx, axis=0).T
            self.count[used] += np.diff(np.r_[idx, len(local)])

    def _halve(self) -> None:
        half = self.max_bins // 2
        self.power[:, :half] = self.power[:, 0::2] + self.power[:, 1::2]
        self.power[:, half:] = 0.0
        self.count[:half] = self.count[0::2] + self.count[1::2]
        self.count[half:] = 0.0
        self.width *= 2

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The spectrogram so far, its last frame zero-padded as the file version pads it.

        Call once, at the end (the padded frame is added to the sums).
        """
        self._take()
        total, nperseg = self.samples, self.nperseg
        if total < nperseg and nperseg > 16:  # shorter than a window: the file version shrinks it
            return _short(self._carry, self.sample_rate, nperseg)
        n_frames = 1 + max(0, -(-(total - nperseg) // self.hop))
        if n_frames > self.frames:
            x = np.pad(self._carry, (0, max(0, (n_frames - self.frames - 1) * self.hop + nperseg
                                           - len(self._carry))))
            self._add(x, n_frames - self.frames)
        n_cols = max(1, min(self.columns, n_frames))
        n_bins = -(-n_frames // self.width)
        centre = np.minimum(np.arange(n_bins) * self.width + self.width // 2, n_frames - 1)
        if self.width == 1:
            centre = np.arange(n_bins)
        cols = centre * n_cols // n_frames
        power = np.zeros((self.power.shape[0], n_cols))
        count = np.zeros(n_cols)
        np.add.at(count, cols, self.count[:n_bins])
        used, idx = np.unique(cols, return_index=True)
        power[:, used] = np.add.reduceat(self.power[:, :n_bins], idx, axis=1)
        mean = power / np.maximum(count, 1)
        freqs = np.fft.rfftfreq(nperseg, 1.0 / self.sample_rate)
        first = (np.arange(n_cols) * n_frames + n_cols - 1) // n_cols
        last = ((np.arange(n_cols) + 1) * n_frames + n_cols - 1) // n_cols - 1
        times = ((first + last) / 2.0 * self.hop + nperseg / 2.0) / self.sample_rate
        return freqs, times, 10.0 * np.log10(np.maximum(mean, 1e-12))


def _short(x: np.ndarray, sample_rate: int, nperseg: int):
    """Less audio than a window: what the file version computes (one shrunken, padded frame)."""
    n = int(max(16, min(nperseg, len(x)))) if len(x) else 16
    stream = StreamSpectrogram(sample_rate, nperseg=n, columns=1)
    stream.write(x)
    return stream.result()


__all__ = ["StreamSpectrogram"]

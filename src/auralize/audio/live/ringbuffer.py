"""A single-producer single-consumer float32 ring buffer (numpy).

The live output's synthesis thread writes finished samples; the device callback
only copies them out.  Each side moves only its own index, and an index is
advanced only after the samples are copied, so one writer thread and one reader
thread need no lock (CPython reads and writes an ``int`` attribute atomically).
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Single-producer single-consumer ring of float32 frames (mono or interleaved channels).

    Parameters
    ----------
    capacity_frames : int
        Number of frames the ring can hold; rounded up to a power of two.
    channels : int
        Samples per frame: 1 takes and gives ``(frames,)`` arrays, more
        ``(frames, channels)``.

    Attributes
    ----------
    underruns : int
        Number of :meth:`read_into` calls that found fewer samples than asked.
    frames_written, frames_read : int
        Totals since creation (they only grow; their difference is the fill).
    """

    def __init__(self, capacity_frames: int, channels: int = 1) -> None:
        if capacity_frames < 1:
            raise ValueError("capacity_frames must be >= 1")
        cap = 1 << (int(capacity_frames) - 1).bit_length()
        self.channels = int(channels)
        self._frame_shape = () if self.channels == 1 else (self.channels,)
        self._buf = np.zeros((cap, *self._frame_shape), dtype=np.float32)
        self._mask = cap - 1
        self.capacity = cap
        self.frames_written = 0  # producer-owned
        self.frames_read = 0  # consumer-owned
        self.underruns = 0  # consumer-owned
        self.frames_missing = 0  # consumer-owned: zeros output for lack of data

    @property
    def fill(self) -> int:
        """Samples ready to be read."""
        return self.frames_written - self.frames_read

    @property
    def space(self) -> int:
        """Samples that can be written without overwriting unread ones."""
        return self.capacity - self.fill

    def write(self, samples: np.ndarray) -> int:
        """Append as many of ``samples`` as fit; return how many were written."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1, *self._frame_shape)
        n = min(samples.shape[0], self.space)
        if n <= 0:
            return 0
        start = self.frames_written & self._mask
        first = min(n, self.capacity - start)
        self._buf[start : start + first] = samples[:first]
        if n > first:
            self._buf[: n - first] = samples[first:n]
        self.frames_written += n  # publish after the copy
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` samples into ``out``; zero the rest.

        Returns the number of real samples copied.  A short read counts one
        underrun and fades the last few real samples out to avoid a click.
        """
        want = out.shape[0]
        n = min(want, self.fill)
        if n > 0:
            start = self.frames_read & self._mask
            first = min(n, self.capacity - start)
            out[:first] = self._buf[start : start + first]
            if n > first:
                out[first:n] = self._buf[: n - first]
            self.frames_read += n  # release after the copy
        if n < want:
            out[n:] = 0.0
            self.underruns += 1
            self.frames_missing += want - n
            fade = min(n, 32)
            if fade:
                ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
                out[n - fade : n] *= ramp.reshape(fade, *(1,) * (out.ndim - 1))
        return n

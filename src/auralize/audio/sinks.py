"""Where rendered audio goes: files, memory, and (in :mod:`auralize.audio.live.output`) devices.

Every sink has the same two methods, ``write(block)`` and ``close()``, so a
session can fan one stream of blocks out to any mix of them: what you hear is
what you record.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from auralize.audio.files import DEFAULT_SUBTYPES, format_for_path, open_for_writing, safe_samples
from auralize.audio.wav64 import RIFF_LIMIT_BYTES, Wav64Writer


@runtime_checkable
class Sink(Protocol):
    """Anything that takes blocks of float32 samples, shape ``(frames,)`` or ``(frames, ch)``."""

    def write(self, block: np.ndarray) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """Stream audio to a WAV/FLAC/OGG file, flushed to disk at least once a second; WAVs of any length.

    A process killed mid-run leaves a readable file holding all audio up to at
    most ``flush_interval_s`` before the kill: each flush rewrites the header's
    length (libsndfile's ``sf_write_sync``).

    Parameters
    ----------
    path : str or Path
        Output file; the extension picks the format.  Parent folders are created.
    sample_rate : int
        Sample rate in Hz.
    channels : int
        Channels in the file; mono blocks are duplicated to fill them.
    subtype : str, optional
        libsndfile subtype (default 16-bit PCM for WAV/FLAC, Vorbis for OGG).
    flush_interval_s : float
        Longest time between flushes, in seconds.
    riff_limit_bytes : int
        16-bit WAV files (the default) that pass this size become RF64
        (:mod:`auralize.audio.wav64`): a recording has no length limit.
        Other subtypes are written by libsndfile (a float WAV stops at 4 GiB:
        libsndfile's RF64 would stamp each file with its writing time).
    """

    def __init__(
        self,
        path: str | Path,
        sample_rate: int,
        *,
        channels: int = 1,
        subtype: str | None = None,
        flush_interval_s: float = 0.5,
        riff_limit_bytes: int = RIFF_LIMIT_BYTES,
    ) -> None:
        self.path = Path(path)
        container = format_for_path(self.path)  # a bad extension fails before any folder is made
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.flush_interval_s = float(flush_interval_s)
        self.frames_written = 0
        self.frames_flushed = 0  # frames on disk with their header length: survive a kill
        if container == "WAV" and (subtype or DEFAULT_SUBTYPES["WAV"]) == "PCM_16":
            self._file = Wav64Writer(self.path, self.sample_rate, self.channels,
                                     riff_limit_bytes=riff_limit_bytes)
        else:
            self._file = open_for_writing(self.path, self.sample_rate, self.channels, subtype)
        self._last_flush = time.monotonic()
        self._file.flush()  # a valid (empty) header from the first moment

    @property
    def closed(self) -> bool:
        return self._file.closed

    def write(self, block: np.ndarray) -> None:
        data = safe_samples(block)
        if data.ndim == 1 and self.channels > 1:
            data = np.repeat(data[:, None], self.channels, axis=1)
        self._file.write(data)
        self.frames_written += len(data)
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        self._file.flush()
        self._last_flush = time.monotonic()
        self.frames_flushed = self.frames_written

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> FileSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MemorySink:
    """Keep rendered audio in memory; :meth:`audio` shows a player in a notebook."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self._blocks: list[np.ndarray] = []

    def write(self, block: np.ndarray) -> None:
        self._blocks.append(np.array(block, dtype=np.float32, copy=True))

    def close(self) -> None:
        pass

    @property
    def samples(self) -> np.ndarray:
        """Everything written so far, concatenated (float32)."""
        if not self._blocks:
            return np.zeros(0, dtype=np.float32)
        if len(self._blocks) > 1:
            self._blocks = [np.concatenate(self._blocks)]
        return self._blocks[0]

    def audio(self):
        """Return an ``IPython.display.Audio`` player of the samples (needs IPython)."""
        try:
            from IPython.display import Audio
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("MemorySink.audio() needs IPython (pip install ipython)") from exc
        samples = self.samples
        return Audio(samples.T if samples.ndim == 2 else samples, rate=self.sample_rate,
                     normalize=False)


def write_blocks(blocks: Iterable[np.ndarray], sinks: Iterable[Sink]) -> int:
    """Send every block to every sink, close them, and return the frames written."""
    sinks = list(sinks)
    frames = 0
    try:
        for block in blocks:
            for sink in sinks:
                sink.write(block)
            frames += len(block)
    finally:
        for sink in sinks:
            sink.close()
    return frames


class BackgroundWriter:
    """Hands blocks to a sink on its own thread: a flush (fsync) that stalls on a
    busy disk must never stall a real-time producer and starve the device.

    ``write`` copies the block and returns at once; ``close`` drains the queue,
    closes the sink and raises the first write error, if any.
    """

    def __init__(self, sink) -> None:
        self.sink = sink
        self.error: Exception | None = None
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="auralize-live-file", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Same scheduling as the synthesis thread (inherited): a thread that can be
        # preempted while it holds the GIL would stall synthesis.  The disk wait
        # itself happens in C without the GIL.
        while True:
            block = self._q.get()
            if block is None:
                return
            if self.error is None:
                try:
                    self.sink.write(block)
                except Exception as exc:  # noqa: BLE001
                    self.error = exc

    def write(self, block: np.ndarray) -> None:
        self._q.put(np.array(block, dtype=np.float32, copy=True))

    def close(self, timeout_s: float = 30.0) -> None:
        self._q.put(None)
        self._thread.join(timeout_s)
        self.sink.close()
        if self.error is not None:
            raise self.error

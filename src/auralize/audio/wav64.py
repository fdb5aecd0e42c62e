"""16-bit PCM WAV files that turn into RF64 when they pass the RIFF limit (4 GiB).

A RIFF/WAVE file states its size in 32 bits, so it cannot pass 4 GiB: about
6.7 hours of 44.1 kHz 16-bit stereo, 13.5 hours of mono, and a long
run's recording gets there.  RF64 (EBU Tech 3306) is the same file with 64-bit
sizes in a ``ds64`` chunk.  Following its recommendation, every WAV written
here starts with a ``JUNK`` chunk the size of a ``ds64`` chunk: while the file
is below the limit it is a plain WAV that every reader opens; the header update
that finds it past the limit turns ``RIFF`` into ``RF64`` and the ``JUNK``
chunk into ``ds64``, in place, without moving a sample.  libsndfile (and so
soundfile), ffmpeg, sox and Audacity read RF64.

The header is rewritten on every :meth:`Wav64Writer.flush`, so a process killed
mid-run leaves a readable file, as with libsndfile.  Samples are converted as
libsndfile converts floats to 16-bit (rounded to 32 bits, ``lrintf(x * 2^31)``
clipped, then the top 16 bits; checked by a test), so the samples do not depend
on which writer made the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

#: the largest size a RIFF header can state (bytes after the first 8)
RIFF_LIMIT_BYTES = 0xFFFFFFFF
_HEADER_BYTES = 80
_DS64 = struct.Struct("<4sI QQQI")  # id, 28, riff size, data size, sample count, table length
_FMT = struct.Struct("<4sIHHIIHH")


class Wav64Writer:
    """Write 16-bit PCM WAV; past ``riff_limit_bytes`` the header becomes RF64.

    Parameters
    ----------
    path : str or Path
        Output file (truncated).
    sample_rate : int
        Hz.
    channels : int
        Channels per frame.
    riff_limit_bytes : int
        The RIFF size (file size minus 8) above which the file is RF64; the
        format's own limit by default, lower in tests.
    """

    def __init__(self, path: str | Path, sample_rate: int, channels: int = 1,
                 riff_limit_bytes: int = RIFF_LIMIT_BYTES) -> None:
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.riff_limit_bytes = min(int(riff_limit_bytes), RIFF_LIMIT_BYTES)
        self.data_bytes = 0
        self.rf64 = False
        self._file = open(self.path, "wb")  # noqa: SIM115
        self._write_header()

    @property
    def closed(self) -> bool:
        return self._file.closed

    def _write_header(self) -> None:
        riff_size = _HEADER_BYTES - 8 + self.data_bytes
        self.rf64 = self.rf64 or riff_size > self.riff_limit_bytes
        block_align = 2 * self.channels
        frames = self.data_bytes // block_align
        if self.rf64:
            head = (b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
                    + _DS64.pack(b"ds64", 28, riff_size, self.data_bytes, frames, 0))
            data_size = 0xFFFFFFFF
        else:
            head = (b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
                    + struct.pack("<4sI", b"JUNK", 28) + bytes(28))
            data_size = self.data_bytes
        head += _FMT.pack(b"fmt ", 16, 1, self.channels, self.sample_rate,
                          self.sample_rate * block_align, block_align, 16)
        head += struct.pack("<4sI", b"data", data_size)
        position = self._file.tell()
        self._file.seek(0)
        self._file.write(head)
        self._file.seek(max(position, _HEADER_BYTES))

    def write(self, samples: np.ndarray) -> None:
        """Append float samples in [-1, 1], shape ``(frames,)`` or ``(frames, channels)``."""
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {data.shape[1]}")
        # libsndfile's way: to 32 bits rounded (lrintf(x * 2^31), clipped), then the top 16
        wide = np.clip(np.rint(data.astype(np.float64) * 2.0 ** 31), -2.0 ** 31, 2.0 ** 31 - 1)
        pcm = (wide.astype(np.int64) >> 16).astype("<i2")
        self._file.write(pcm.tobytes())
        self.data_bytes += pcm.nbytes

    def flush(self) -> None:
        """Rewrite the header for the samples written so far and flush them to the OS."""
        self._write_header()
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self.flush()
            self._file.close()

    def __enter__(self) -> Wav64Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["RIFF_LIMIT_BYTES", "Wav64Writer"]

"""Reading and writing audio files (WAV/FLAC/OGG via libsndfile).

Every file auralize writes has a header that matches its data: float audio is
written as 16-bit PCM by default (after clipping to [-1, 1]) or as 32-bit float
WAV on request, never float data under an integer header.  A file's bytes depend
only on its samples: the same audio gives the same file (no write time inside).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from auralize.errors import AuralizeError

#: Container format by file extension.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
#: Default sample format per container (OGG is always Vorbis).
DEFAULT_SUBTYPES = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}
#: libsndfile's command (sndfile.h) for the PEAK chunk, which soundfile does not name.
_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def open_for_writing(path: str | Path, sample_rate: int, channels: int = 1,
                     subtype: str | None = None) -> sf.SoundFile:
    """Open ``path`` for writing (format from the extension; default subtype per container).

    libsndfile adds a PEAK chunk to float WAVs that holds the time of writing, so
    the same samples written a second later made a different file (seen as a
    flaky "same seed, same files" test).  It is switched off here, before any
    sample is written; where soundfile's internals differ, the chunk stays.
    """
    container = format_for_path(path)
    f = sf.SoundFile(str(path), mode="w", samplerate=int(sample_rate), channels=int(channels),
                     subtype=subtype or DEFAULT_SUBTYPES[container], format=container)
    try:
        sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, sf._snd.SF_FALSE)
    except AttributeError:  # pragma: no cover - a soundfile without these internals
        pass
    return f


def format_for_path(path: str | Path) -> str:
    """Return libsndfile's container name for ``path`` from its extension.

    Raises
    ------
    AuralizeError
        If the extension is not .wav, .flac or .ogg.
    """
    suffix = Path(path).suffix.lower()
    try:
        return FORMATS[suffix]
    except KeyError:
        raise AuralizeError(
            f"cannot write audio to {str(path)!r}: use a .wav, .flac or .ogg file name"
        ) from None


def safe_samples(samples: np.ndarray) -> np.ndarray:
    """Return float32 samples with NaN/Inf replaced by 0 and clipped to [-1, 1]."""
    out = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(out, -1.0, 1.0, out=out)


def write_audio(
    path: str | Path,
    samples: np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
) -> Path:
    """Write ``samples`` (frames, or frames x channels; float in [-1, 1]) to ``path``.

    Parameters
    ----------
    path : str or Path
        Destination; the extension picks the container (.wav, .flac, .ogg).
        Parent folders are created.
    samples : ndarray
        Float audio.  Non-finite values become 0; values are clipped to [-1, 1].
    sample_rate : int
        Sample rate in Hz.
    subtype : str, optional
        libsndfile subtype such as ``"PCM_16"`` or ``"FLOAT"``; defaults to 16-bit
        PCM for WAV/FLAC.

    Returns
    -------
    Path
        The path written.
    """
    path = Path(path)
    format_for_path(path)  # a bad extension fails before any folder is made
    path.parent.mkdir(parents=True, exist_ok=True)
    data = safe_samples(samples)
    with open_for_writing(path, sample_rate, 1 if data.ndim == 1 else data.shape[1],
                          subtype) as f:
        f.write(data)
    return path


def read_audio(
    path: str | Path, *, mono: bool = False, dtype: str = "float32"
) -> tuple[np.ndarray, int]:
    """Read an audio file; return ``(samples, sample_rate)``.

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads (WAV of any bit depth, FLAC, OGG, AIFF...).
    mono : bool
        Average channels into one (result shape ``(frames,)``).
    dtype : str
        NumPy dtype of the result.

    Raises
    ------
    AuralizeError
        If the file is missing, empty or not audio.
    """
    path = Path(path)
    if not path.exists():
        raise AuralizeError(f"audio file not found: {str(path)!r}")
    try:
        data, rate = sf.read(str(path), dtype=dtype, always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AuralizeError(
            f"cannot read {str(path)!r} as audio ({exc}); is it a WAV/FLAC/OGG file?"
        ) from None
    if data.shape[0] == 0:
        raise AuralizeError(f"audio file {str(path)!r} holds no samples")
    if mono:
        return data.mean(axis=1).astype(dtype, copy=False), int(rate)
    return data, int(rate)

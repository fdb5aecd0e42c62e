"""What every tracker shares: a background uploader and the recording's pieces as files.

A :class:`Tracker` turns a session's recording into files (an epoch's WAV and
spectrogram; at close the whole recording, its spectrogram and
``sonifier.json``) and hands them to its tracker (:meth:`Tracker.send`) on its
own thread.  Its first failure is kept and said once, in the training thread
(:meth:`Tracker.take_warning`); from then on nothing more is sent to that
tracker, so a tracking server that went away costs one warning, not one per
epoch.
"""

from __future__ import annotations

import json
import queue
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: how long an epoch's upload waits for the recording worker to render that epoch (s)
RENDER_WAIT_S = 60.0


@dataclass
class RecordingSource:
    """Where a tracker finds a session's sound.

    Attributes
    ----------
    sample_rate : int
        Hz.
    wav_path : Path, optional
        The growing ``sonification.wav`` (None: the recording is in memory and
        only the whole of it is logged, at close).
    config : callable
        Returns the ``sonifier.json`` document (None before the first step).
    samples : callable
        Returns the whole recording, float32 ``(frames, channels)`` or ``(frames,)``
        (valid once the session closed).
    spectrogram_path : Path, optional
        The run folder's ``spectrogram.png`` (set at close, when written).
    title : str
        Names the run in captions.
    """

    sample_rate: int
    wav_path: Path | None
    config: object
    samples: object
    spectrogram_path: Path | None = None
    title: str = "training"

    def segment(self, start_s: float, end_s: float, wait_s: float = RENDER_WAIT_S) -> np.ndarray:
        """Samples ``start_s``..``end_s`` (score seconds) of the growing WAV, once rendered."""
        import soundfile

        first, last = (int(round(t * self.sample_rate)) for t in (start_s, end_s))
        deadline = time.monotonic() + wait_s
        while True:
            try:
                frames = soundfile.info(str(self.wav_path)).frames
            except (RuntimeError, OSError):  # a header between two writes
                frames = 0
            if frames >= last or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        data, _ = soundfile.read(str(self.wav_path), start=first, stop=min(last, frames),
                                 dtype="float32", always_2d=True)
        if not data.size:
            return np.zeros(0, np.float32)
        return data[:, 0] if data.shape[1] == 1 else data  # the file's channels


def spectrogram_png(samples: np.ndarray, sample_rate: int, path: Path, title: str) -> Path:
    """A small log-frequency spectrogram PNG, safe off the main thread (no pyplot state)."""
    from auralize.audio.plots import save_spectrogram_db, spectrogram_db

    freqs, times, db = spectrogram_db(samples, sample_rate, 1024)
    return save_spectrogram_db(freqs, times, db, path, title=title, figsize=(8, 3.5))


def write_wav(samples: np.ndarray, sample_rate: int, path: Path) -> Path:
    from auralize.audio.files import write_audio

    write_audio(path, samples, sample_rate)
    return path


@dataclass
class UploadStats:
    epochs: int = 0
    final: bool = False
    skipped: int = 0
    error: str | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs, "final": self.final, "skipped": self.skipped,
                "error": self.error, "upload_s": round(self.seconds, 3), **self.extra}


class Tracker:
    """One tracker's uploads on one daemon thread, in order; subclasses implement :meth:`send`."""

    label = "tracker"

    def __init__(self) -> None:
        self.stats = UploadStats()
        self._jobs: queue.Queue = queue.Queue()
        self._warning: str | None = None
        self._warned = False
        self._tmp = Path(tempfile.mkdtemp(prefix="auralize-tracker-"))
        self._thread = threading.Thread(target=self._run, name=f"auralize-{self.label}",
                                        daemon=True)
        self._thread.start()

    # -- what subclasses implement ------------------------------------------------
    def send(self, kind: str, epoch: int | None, wav: Path, png: Path, config: Path | None,
             samples: np.ndarray, sample_rate: int) -> None:
        """Log one recording (``kind``: ``"epoch"`` or ``"final"``) to the tracker."""
        raise NotImplementedError

    # -- the training side ----------------------------------------------------------
    def epoch_end(self, source: RecordingSource, epoch: int, start_s: float, end_s: float) -> None:
        if source.wav_path is None or end_s <= start_s:
            return  # an in-memory recording exists only at close
        self._jobs.put(lambda: self._epoch_job(source, epoch, start_s, end_s))

    def final(self, source: RecordingSource) -> None:
        self._jobs.put(lambda: self._final_job(source))

    def take_warning(self) -> str | None:
        """The first failure's one-line message, once (to be warned in the training thread)."""
        if self._warning is not None and not self._warned:
            self._warned = True
            return self._warning
        return None

    def close(self, timeout_s: float) -> dict:
        """Wait up to ``timeout_s`` for the queued uploads; the thread is left behind if late."""
        self._jobs.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive() and self._warning is None:
            self._warning = (f"auralize: {self.label} did not answer within {timeout_s:g} s: the "
                             "recording may be missing there; the run folder is complete")
            self.stats.error = "timeout"
        else:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return self.stats.to_dict()

    # -- the upload thread ------------------------------------------------------------
    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self.stats.error is not None:
                self.stats.skipped += 1
                continue
            started = time.monotonic()
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - a tracker never breaks training
                message = " ".join(str(exc).split())[:300] or type(exc).__name__
                self.stats.error = message
                self._warning = (f"auralize: {self.label} did not take the recording ({message}); "
                                 "nothing more is sent to it, training goes on and the run "
                                 "folder is complete")
            self.stats.seconds += time.monotonic() - started

    def _epoch_job(self, source: RecordingSource, epoch: int, start_s: float, end_s: float) -> None:
        samples = source.segment(start_s, end_s)
        if not samples.size:
            return
        name = f"epoch_{epoch:04d}"
        folder = self._tmp / name
        folder.mkdir(exist_ok=True)
        wav = write_wav(samples, source.sample_rate, folder / f"{name}.wav")
        png = spectrogram_png(samples, source.sample_rate, folder / f"{name}.png",
                              f"{source.title}: epoch {epoch}")
        self.send("epoch", epoch, wav, png, None, samples, source.sample_rate)
        self.stats.epochs += 1
        shutil.rmtree(folder, ignore_errors=True)

    def _final_job(self, source: RecordingSource) -> None:
        samples = np.asarray(source.samples(), np.float32)
        folder = self._tmp / "final"
        folder.mkdir(exist_ok=True)
        wav = (source.wav_path if source.wav_path is not None and source.wav_path.exists()
               else write_wav(samples, source.sample_rate, folder / "sonification.wav"))
        png = source.spectrogram_path
        if png is None or not Path(png).exists():
            png = spectrogram_png(samples, source.sample_rate, folder / "spectrogram.png",
                                  f"{source.title}: training sonification")
        doc = source.config()
        config = None
        if doc is not None:
            config = folder / "sonifier.json"
            config.write_text(json.dumps(doc, indent=1, default=str))
        self.send("final", None, Path(wav), Path(png), config, samples, source.sample_rate)
        self.stats.final = True

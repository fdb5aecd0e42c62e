"""A voice that plays sample buffers: spoken sentences and short motifs (earcons).

Events carry what to play, never audio: ``{"speech": "step 3, value 0.42",
"rate_wpm": 175}`` or ``{"motif": ((84, 0.0, 0.09, 3), ...)}``.  The buffer is made
where the event is rendered, by the local text-to-speech program ``espeak-ng`` (run
as a program; its output is the same for the same text and settings) or by the
motif formula below, and cached.  So a score or a run folder stays a list of
small events and ``auralize render`` reproduces the recording.

Speech made once is also cached on disk (``$XDG_CACHE_HOME/auralize/speech``):
whoever writes the event can have it synthesised beforehand
(:func:`speech_duration_s`; the sonify layer does it on a background thread), so
the live and file renderers (child processes) load it in about a millisecond
instead of starting espeak-ng inside an audio callback's time budget.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from auralize.audio.voices.base import Voice
from auralize.audio.voices.params import EngineStats, Range, sanitize

log = logging.getLogger("auralize")

ESPEAK = "espeak-ng"
#: espeak-ng's own output rate (Hz)
ESPEAK_RATE_HZ = 22050
#: words per minute espeak-ng accepts
SPEECH_RATE_WPM = Range(80.0, 500.0, 175.0)
#: speech level: peak of a spoken buffer before the voice's gain
SPEECH_PEAK = 0.7
#: a buffer's leading samples quieter than this are trimmed, so speech starts on time
SILENCE_LEVEL = 0.01

_warned_no_tts = False


def speech_available() -> bool:
    """True when the ``espeak-ng`` program can be run."""
    return shutil.which(ESPEAK) is not None


def warn_no_speech() -> None:
    """One warning per process: no espeak-ng, so announcements become earcons only."""
    global _warned_no_tts
    if not _warned_no_tts:
        _warned_no_tts = True
        log.warning("espeak-ng is not installed, so announcements are earcons only "
                    "(Debian/Ubuntu: apt-get install espeak-ng)")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "auralize" / "speech"


def _resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    if from_hz == to_hz:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(int(from_hz), int(to_hz))
    return resample_poly(samples, int(to_hz) // g, int(from_hz) // g)


def _trim_leading_silence(samples: np.ndarray) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) > SILENCE_LEVEL * max(1e-9, np.abs(samples).max()))
    return samples[max(0, loud[0] - 64):] if loud.size else samples[:0]


def _espeak(text: str, rate_wpm: int, voice: str, pitch: int) -> np.ndarray:
    import soundfile as sf

    try:
        done = subprocess.run(
            [ESPEAK, "--stdout", "-s", str(rate_wpm), "-v", voice, "-p", str(pitch), "--", text],
            capture_output=True, timeout=30, check=True,
        )
        samples, rate = sf.read(io.BytesIO(done.stdout), dtype="float64")
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        log.warning("espeak-ng failed on %r (%s); the announcement is silent", text, exc)
        return np.zeros(0)
    if samples.ndim > 1:
        samples = samples.mean(axis=1)
    return _resample(samples, int(rate), ESPEAK_RATE_HZ)


@lru_cache(maxsize=256)
def speech_native(text: str, rate_wpm: int = 175, voice: str = "en",
                  pitch: int = 50) -> np.ndarray:
    """``text`` spoken by espeak-ng at its own rate, :data:`ESPEAK_RATE_HZ` (float64).

    Parameters
    ----------
    text : str
        What to say.
    rate_wpm : int
        Speaking rate in words per minute (espeak-ng ``-s``; 80..500).
    voice : str
        espeak-ng voice (language), e.g. ``"en"``, ``"en-us"``, ``"de"``.
    pitch : int
        espeak-ng base pitch, 0..99.

    Leading silence is trimmed and the peak set to :data:`SPEECH_PEAK`.  Returns
    an empty array when espeak-ng is missing (after one warning).
    """
    if not speech_available():
        warn_no_speech()
        return np.zeros(0)
    key = hashlib.sha256(repr((text, rate_wpm, voice, pitch)).encode()).hexdigest()
    path = _cache_dir() / f"{key[:32]}.npy"
    try:
        samples = np.load(path)
    except (OSError, ValueError):
        samples = _trim_leading_silence(_espeak(text, rate_wpm, voice, pitch))
        if not samples.size:
            return samples  # a failed run is not cached: the next render tries again
        try:  # atomic: renderers in other processes may read it at the same moment
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy",
                                             delete=False) as tmp:
                np.save(tmp, samples)
            os.replace(tmp.name, path)
        except OSError:
            pass  # no writable cache: the renderer synthesises again (same samples)
    peak = float(np.abs(samples).max()) if samples.size else 0.0
    return samples * (SPEECH_PEAK / peak) if peak > 0 else samples


def speech_duration_s(text: str, rate_wpm: int = 175, voice: str = "en",
                      pitch: int = 50) -> float:
    """Seconds ``text`` takes to say (0 without espeak-ng); caches the speech for renderers."""
    return len(speech_native(text, rate_wpm, voice, pitch)) / ESPEAK_RATE_HZ


@lru_cache(maxsize=256)
def speech_samples(text: str, sample_rate: int, rate_wpm: int = 175, voice: str = "en",
                   pitch: int = 50) -> np.ndarray:
    """:func:`speech_native` resampled to ``sample_rate`` Hz."""
    return _resample(speech_native(text, rate_wpm, voice, pitch), ESPEAK_RATE_HZ, sample_rate)


# -- motifs -------------------------------------------------------------------------
# A motif is a few notes, each ``(MIDI note, start s, length s, partial count)``: a
# plucked harmonic tone (a decaying sum of partials); the partial count makes its
# timbre.  What a motif means (the package's earcon table) is decided above audio/.
Motif = tuple[tuple[float, float, float, int], ...]


def as_motif(notes) -> Motif:
    """``notes`` (any sequence of 4-sequences, e.g. read back from JSON) as a hashable motif."""
    motif = tuple((float(n), float(s), float(d), int(k)) for n, s, d, k in notes)
    if not motif or any(d <= 0 or s < 0 or k < 1 for _, s, d, k in motif):
        raise ValueError("a motif is one or more (midi, start_s > =0, length_s > 0, partials >= 1)")
    return motif


def motif_duration_s(notes) -> float:
    """Seconds the motif lasts (its buffer's length at any rate)."""
    return max(start + length for _, start, length, _ in notes) + 0.05


def midi_to_hz(note: float) -> float:
    """Frequency of MIDI note ``note`` in Hz (69 = A4 = 440 Hz)."""
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _motif(motif: Motif, sample_rate: int, start_frame: int | None) -> np.ndarray:
    """The motif's notes summed (unscaled); ``start_frame``: partials' phases follow the
    engine's clock from that frame (None: every note starts at phase 0)."""
    out = np.zeros(int(round(motif_duration_s(motif) * sample_rate)))
    for note, start_s, length_s, partials in motif:
        n = int(round(length_s * sample_rate))
        t = np.arange(n) / sample_rate
        f0 = midi_to_hz(note)
        first = int(round(start_s * sample_rate))
        tone = np.zeros(n)
        for k in range(1, partials + 1):
            if k * f0 >= 0.45 * sample_rate:
                continue
            cycles0 = 0.0  # cycles of a sine of this frequency running since frame 0
            if start_frame is not None:
                seconds, rest = divmod(int(start_frame) + first, int(sample_rate))
                cycles0 = np.mod(k * f0 * seconds, 1.0) + k * f0 * rest / sample_rate
            tone += np.sin(2 * np.pi * (k * f0 * t + cycles0)) / k
        attack = np.minimum(1.0, t / 0.004)  # 4 ms: audible onset, no click
        release = np.minimum(1.0, (length_s - t) / 0.01)
        envelope = attack * release * np.exp(-t * 4.0 / length_s)
        out[first:first + n] += tone * envelope
    return out


@lru_cache(maxsize=64)
def motif_samples(motif: Motif, sample_rate: int) -> np.ndarray:
    """The motif (see :func:`as_motif`) at ``sample_rate`` Hz, peak 0.5."""
    out = _motif(motif, sample_rate, None)
    return out * (0.5 / np.abs(out).max())


def motif_samples_at(motif: Motif, sample_rate: int, start_frame: int) -> np.ndarray:
    """:func:`motif_samples` with the partials' phases of the engine's clock at ``start_frame``.

    The same motif started a fraction of a period apart by two voices then adds
    up instead of cancelling in a mono mix.  The level is :func:`motif_samples`'
    (its scale), whatever the phases.
    """
    plain = _motif(motif, sample_rate, None)
    return _motif(motif, sample_rate, start_frame) * (0.5 / np.abs(plain).max())


def play_samples(spec: dict, sample_rate: int) -> np.ndarray:
    """The buffer a ``play`` event's value asks for (speech or a motif)."""
    if spec.get("speech"):
        return speech_samples(str(spec["speech"]), int(sample_rate),
                              int(sanitize(spec.get("rate_wpm", 175), 1, SPEECH_RATE_WPM,
                                           EngineStats())[0]),
                              str(spec.get("voice", "en")), int(spec.get("pitch", 50)))
    if spec.get("motif"):
        return motif_samples(as_motif(spec["motif"]), int(sample_rate))
    return np.zeros(0)


class Sampler(Voice):
    """Plays sample buffers on ``play`` events; several may overlap.

    Parameters (event names)
    ------------------------
    play : dict
        ``{"speech": text, "rate_wpm": 175, "voice": "en", "pitch": 50}`` or
        ``{"motif": ((midi, start_s, length_s, partials), ...)}``; optional
        ``"level"`` (0..1, default 1) and
        ``"cut"`` (True: stop what this voice is playing first, as a screen
        reader interrupts itself).  Other keys (``"text"``, a caption; ``"earcon"``,
        the motif's name above) are ignored.
    gain : float
        Voice level; glides.  ``mute`` silences.

    ``clock_phase=True`` (spec only): a motif's partials take the phase of a
    sine running since frame 0 (:func:`motif_samples_at`), so two voices playing
    the same motif a few frames apart add up instead of cancelling.
    """

    kind = "sampler"

    def __init__(self, sample_rate: int, stats: EngineStats, *, gain: float = 1.0,
                 glide_s: float = 0.02, clock_phase: bool = False) -> None:
        super().__init__(sample_rate, stats, glide_s, gain)
        self.clock_phase = bool(clock_phase)
        self.playing: list[list] = []  # [buffer, position, level]
        self._unaligned: tuple | None = None  # (playing item, motif): waits for its frame

    def set(self, param: str, value, glide_s: float | None) -> bool:
        if param != "play":
            return super().set(param, value, glide_s)
        if not isinstance(value, dict):
            self.stats.unknown_events += 1
            return True
        try:
            buffer = play_samples(value, self.sample_rate)
        except ValueError:
            self.stats.unknown_events += 1
            return True
        if value.get("cut"):
            self.playing = []
        level = float(sanitize(value.get("level", 1.0), 1, Range(0.0, 1.0, 1.0), self.stats)[0])
        if buffer.size and level > 0:
            self.playing.append([buffer, 0, level])
            if self.clock_phase and not value.get("speech") and value.get("motif"):
                self._unaligned = (self.playing[-1], as_motif(value["motif"]))
        return True

    def align_phase(self, frame: int) -> None:
        """The motif just played (at engine frame ``frame``) takes the clock's phases."""
        if self._unaligned is not None:
            (item, motif), self._unaligned = self._unaligned, None
            item[0] = motif_samples_at(motif, self.sample_rate, frame)

    def _advance(self, frames: int, out: np.ndarray | None) -> None:
        still = []
        for item in self.playing:
            buffer, pos, level = item
            part = buffer[pos:pos + frames]
            if out is not None:
                out[:len(part)] += part * level
            item[1] = pos + frames
            if item[1] < len(buffer):
                still.append(item)
        self.playing = still

    def render(self, frames: int, span_frames: int = 512) -> np.ndarray | None:
        g0, g1 = self.gain.advance(frames)
        if not self.playing:
            return None
        out = np.zeros(frames)
        self._advance(frames, out)
        if self.muted:
            return None
        if g0[0] == g1[0]:
            return out * g0[0]
        return out * np.linspace(g0[0], g1[0], frames, endpoint=False)

    def skip(self, frames: int, span_frames: int = 512) -> None:
        self.gain.advance(frames)
        self._advance(frames, None)

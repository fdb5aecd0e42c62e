"""A procedural stand-in for UrbanSound8K, written to disk in the real layout.

Ten classes of environmental-like sounds with UrbanSound8K's names and class IDs
(air_conditioner ... street_music).  Every clip is drawn from its own random
generator seeded by ``(seed, class, fold, index)``, so the same arguments always
give the same files.  Files are written as ``audio/fold1..fold10/*.wav`` plus
``metadata/UrbanSound8K.csv`` with the official columns, in a rotation of sample
rates (8 - 48 kHz), bit depths (8/16/24-bit PCM, 32-bit float) and channel counts
(mono/stereo), so that the real loader's resampling and conversions are exercised.
Some clips are shorter than 4 s, as in the real data.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from auralize.audio.files import write_audio

#: UrbanSound8K's class names in classID order.
CLASSES = [
    "air_conditioner",
    "car_horn",
    "children_playing",
    "dog_bark",
    "drilling",
    "engine_idling",
    "gun_shot",
    "jackhammer",
    "siren",
    "street_music",
]

#: (sample rate, libsndfile subtype, channels) rotated over the generated files.
FILE_FORMATS = [
    (22050, "PCM_16", 1),
    (44100, "PCM_16", 2),
    (8000, "PCM_U8", 1),
    (16000, "PCM_24", 1),
    (48000, "FLOAT", 2),
    (11025, "PCM_16", 1),
    (32000, "PCM_24", 2),
    (22050, "FLOAT", 1),
]

CSV_COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]


# ----------------------------------------------------------------------------- helpers


def _phase(freq_hz: np.ndarray | float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    f = np.broadcast_to(np.asarray(freq_hz, dtype=np.float64), (n,))
    return 2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 2 * np.pi)


def _harmonic(
    freq_hz: np.ndarray | float,
    n: int,
    sr: int,
    rng: np.random.Generator,
    n_harm: int = 6,
    rolloff: float = 1.0,
) -> np.ndarray:
    """Sum of harmonics 1..n_harm with amplitude k**-rolloff, each below 0.45 * sr."""
    phi = _phase(freq_hz, n, sr, rng)
    fmax = float(np.max(freq_hz))
    out = np.zeros(n)
    for k in range(1, n_harm + 1):
        if k * fmax >= 0.45 * sr:
            break
        out += np.sin(k * phi) / k**rolloff
    return out


def _noise(n: int, rng: np.random.Generator, sr: int, band: tuple[float, float] | None = None):
    x = rng.standard_normal(n)
    if band is None:
        return x
    lo, hi = band
    nyq = sr / 2
    hi = min(hi, 0.45 * sr)
    if lo <= 0:
        sos = signal.butter(2, hi / nyq, "lowpass", output="sos")
    else:
        sos = signal.butter(2, [lo / nyq, hi / nyq], "bandpass", output="sos")
    y = signal.sosfilt(sos, x)
    return y / (np.std(y) + 1e-9)


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    y = np.fft.irfft(spec / np.sqrt(f), n)
    return y / (np.std(y) + 1e-9)


def _bursts(
    n: int, sr: int, onsets_s: np.ndarray, attack_s: float, decay_s: float, length_s: float
) -> np.ndarray:
    """An envelope of bursts starting at ``onsets_s``."""
    env = np.zeros(n)
    m = int(length_s * sr)
    t = np.arange(m) / sr
    shape = np.minimum(t / max(attack_s, 1e-4), 1.0) * np.exp(-t / decay_s)
    for on in onsets_s:
        i = int(on * sr)
        if i >= n:
            continue
        j = min(n, i + m)
        env[i:j] = np.maximum(env[i:j], shape[: j - i])
    return env


def _gate(n: int, sr: int, segments: list[tuple[float, float]], ramp_s: float = 0.01):
    env = np.zeros(n)
    for a, b in segments:
        i, j = int(a * sr), min(n, int(b * sr))
        if j > i:
            env[i:j] = 1.0
    k = max(1, int(ramp_s * sr))
    return np.convolve(env, np.ones(k) / k, mode="same")


# ----------------------------------------------------------------------------- classes


def _air_conditioner(n, sr, rng):
    t = np.arange(n) / sr
    hum_f = rng.choice([50.0, 60.0]) * rng.uniform(0.98, 1.02)
    hum = _harmonic(hum_f, n, sr, rng, n_harm=5, rolloff=1.5)
    blade = 1 + 0.25 * np.sin(2 * np.pi * rng.uniform(15, 30) * t)
    air = _noise(n, rng, sr, (0, rng.uniform(600, 1200))) * blade
    return 0.4 * hum + air


def _car_horn(n, sr, rng):
    f0 = rng.uniform(330, 480)
    tone = _harmonic(f0, n, sr, rng, 10, 0.8) + 0.7 * _harmonic(f0 * 1.26, n, sr, rng, 10, 0.8)
    dur = n / sr
    segs, t = [], rng.uniform(0.0, 0.8)
    for _ in range(int(rng.integers(1, 4))):
        length = rng.uniform(0.25, 1.2)
        segs.append((t, t + length))
        t += length + rng.uniform(0.1, 0.5)
        if t > dur:
            break
    return tone * _gate(n, sr, segs)


def _children_playing(n, sr, rng):
    out = np.zeros(n)
    dur = n / sr
    for _ in range(int(rng.integers(3, 6))):  # several voices
        t, segs, pitches = rng.uniform(0, 0.5), [], np.zeros(n)
        while t < dur:
            length = rng.uniform(0.1, 0.45)
            i, j = int(t * sr), min(n, int((t + length) * sr))
            f = rng.uniform(260, 520)
            pitches[i:j] = f * (1 + 0.15 * np.linspace(0, rng.uniform(-1, 1), max(j - i, 0)))
            segs.append((t, t + length))
            t += length + rng.uniform(0.05, 0.35)
        pitches[pitches == 0] = 300.0
        voice = _harmonic(pitches, n, sr, rng, 8, 1.2) * _gate(n, sr, segs, 0.02)
        out += voice * rng.uniform(0.4, 1.0)
    return out + 0.3 * _noise(n, rng, sr, (300, 3000))


def _dog_bark(n, sr, rng):
    dur = n / sr
    onsets = np.sort(rng.uniform(0, max(dur - 0.3, 0.1), int(rng.integers(2, 6))))
    f0 = rng.uniform(450, 850)
    t = np.arange(n) / sr
    # each bark's pitch falls quickly from its onset
    since = np.full(n, 10.0)
    for on in onsets:
        i = int(on * sr)
        since[i:] = np.minimum(since[i:], t[i:] - on)
    pitch = f0 * (0.6 + 0.4 * np.exp(-since / 0.08))
    voiced = _harmonic(pitch, n, sr, rng, 8, 0.7) + 0.6 * _noise(n, rng, sr, (400, 3500))
    env = _bursts(n, sr, onsets, 0.005, rng.uniform(0.05, 0.1), 0.35)
    return voiced * env


def _drilling(n, sr, rng):
    t = np.arange(n) / sr
    f = rng.uniform(900, 2200) * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 8) * t))
    whine = _harmonic(f, n, sr, rng, 4, 1.0)
    grind = _noise(n, rng, sr, (1500, 3800))
    start, stop = rng.uniform(0, 0.5), rng.uniform(0.7, 1.0) * n / sr
    return (whine + 0.5 * grind) * _gate(n, sr, [(start, stop)], 0.05)


def _engine_idling(n, sr, rng):
    fire = rng.uniform(22, 45)
    t = np.arange(n) / sr
    pulses = np.maximum(0, np.sin(2 * np.pi * fire * t + rng.uniform(0, 6.28))) ** 8
    rumble = signal.sosfilt(signal.butter(2, 300 / (sr / 2), output="sos"), pulses)
    rumble /= np.std(rumble) + 1e-9
    return rumble + 0.3 * _noise(n, rng, sr, (0, 500))


def _gun_shot(n, sr, rng):
    dur = n / sr
    onsets = np.sort(rng.uniform(0, max(dur * 0.6, 0.1), int(rng.integers(1, 3))))
    crack = _noise(n, rng, sr) * _bursts(n, sr, onsets, 0.0005, 0.02, 0.2)
    boom = _noise(n, rng, sr, (0, 400)) * _bursts(n, sr, onsets, 0.002, rng.uniform(0.15, 0.4), 1.5)
    return 1.5 * crack + boom


def _jackhammer(n, sr, rng):
    rate = rng.uniform(12, 25)
    dur = n / sr
    onsets = np.arange(rng.uniform(0, 0.1), dur, 1 / rate)
    env = _bursts(n, sr, onsets, 0.001, 0.015, 0.06)
    ring = _noise(n, rng, sr, (rng.uniform(600, 1500), 4000))
    metal = _harmonic(rng.uniform(700, 1300), n, sr, rng, 3, 1.0)
    stop = rng.uniform(0.6, 1.0) * dur
    return (ring + 0.6 * metal) * env * _gate(n, sr, [(0, stop)])


def _siren(n, sr, rng):
    t = np.arange(n) / sr
    fc = rng.uniform(650, 1100)
    if rng.random() < 0.5:  # wail
        rate, dev = rng.uniform(0.2, 0.5), rng.uniform(0.25, 0.4)
    else:  # yelp
        rate, dev = rng.uniform(2.5, 4.5), rng.uniform(0.15, 0.3)
    f = fc * (1 + dev * np.sin(2 * np.pi * rate * t + rng.uniform(0, 6.28)))
    return _harmonic(f, n, sr, rng, 4, 1.3)


def _street_music(n, sr, rng):
    tonic = rng.uniform(110, 260)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    tempo = rng.uniform(2.0, 5.0)
    dur = n / sr
    onsets = np.arange(0, dur, 1 / tempo)
    out = np.zeros(n)
    notes = tonic * 2 ** (rng.choice(scale, len(onsets)) / 12)
    pitch = np.repeat(notes, int(np.ceil(n / len(onsets))))[:n]
    tone = _harmonic(pitch, n, sr, rng, 6, 1.0)
    out += tone * _bursts(n, sr, onsets, 0.01, 0.6 / tempo, 1.0 / tempo)
    bass = _harmonic(tonic / 2, n, sr, rng, 3, 1.0) * 0.5
    kick = _noise(n, rng, sr, (0, 150)) * _bursts(n, sr, onsets[::2], 0.001, 0.05, 0.2)
    return out + bass + kick


GENERATORS: dict[str, Callable[[int, int, np.random.Generator], np.ndarray]] = {
    "air_conditioner": _air_conditioner,
    "car_horn": _car_horn,
    "children_playing": _children_playing,
    "dog_bark": _dog_bark,
    "drilling": _drilling,
    "engine_idling": _engine_idling,
    "gun_shot": _gun_shot,
    "jackhammer": _jackhammer,
    "siren": _siren,
    "street_music": _street_music,
}


def synth_clip(
    class_name: str,
    sample_rate: int = 22050,
    duration_s: float = 4.0,
    seed: int | tuple = 0,
) -> np.ndarray:
    """One clip of ``class_name`` (float32, mono, peak <= 0.9), deterministic by seed.

    Each clip also gets a pink-noise background at a random level (20 - 40 dB
    below the foreground) and a random overall gain (-12 to 0 dB).
    """
    if class_name not in GENERATORS:
        from auralize.errors import AuralizeError

        raise AuralizeError(
            f"unknown sound class {class_name!r}; choose one of: {', '.join(CLASSES)}"
        )
    seq = seed if isinstance(seed, tuple) else (seed,)
    rng = np.random.default_rng([*map(int, seq), CLASSES.index(class_name)])
    n = round(duration_s * sample_rate)
    fg = GENERATORS[class_name](n, sample_rate, rng)
    fg = fg / (np.sqrt(np.mean(fg**2)) + 1e-9)
    bg = _pink(n, rng) * 10 ** (-rng.uniform(20, 40) / 20)
    x = fg + bg
    x = x / (np.max(np.abs(x)) + 1e-9) * 0.9 * 10 ** (-rng.uniform(0, 12) / 20)
    return x.astype(np.float32)


@dataclass
class SynthSummary:
    root: Path
    n_files: int
    classes: list[str]
    folds: list[int]


def generate_dataset(
    root: str | Path,
    per_class_per_fold: int = 8,
    folds: int = 10,
    classes: list[str] | None = None,
    seed: int = 0,
    short_fraction: float = 0.15,
    duration_s: float = 4.0,
    max_rate: int | None = None,
    progress: bool = False,
) -> SynthSummary:
    """Write a procedural UrbanSound8K look-alike under ``root``.

    Parameters
    ----------
    root : str or Path
        Output folder; receives ``metadata/UrbanSound8K.csv`` and ``audio/foldN/``.
    per_class_per_fold : int
        Clips of each class in each fold (10 classes x 10 folds x 8 = 800 clips).
    folds : int
        Number of folds (UrbanSound8K has 10).
    classes : list of str, optional
        Subset of :data:`CLASSES` (class IDs stay UrbanSound8K's).
    seed : int
        Same seed, same files.
    short_fraction : float
        Share of clips shorter than ``duration_s`` (1 s up to it), as in the real data.
    duration_s : float
        Length of a full clip (UrbanSound8K: at most 4 s).
    max_rate : int, optional
        Cap on the files' sample rates (smaller, faster data sets for tests).
    """
    root = Path(root)
    classes = list(classes or CLASSES)
    rows = []
    items = [(f, c, i) for f in range(1, folds + 1) for c in classes for i in range(per_class_per_fold)]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="generating clips", unit="clip")
    for k, (fold, cname, i) in enumerate(items):
        cid = CLASSES.index(cname)
        sr, subtype, channels = FILE_FORMATS[k % len(FILE_FORMATS)]
        if max_rate:
            sr = min(sr, int(max_rate))
        rng = np.random.default_rng([seed, cid, fold, i, 7])
        full = float(duration_s)
        dur = full if rng.random() >= short_fraction else float(rng.uniform(min(1.0, full), full))
        x = synth_clip(cname, sr, dur, seed=(seed, fold, i))
        if channels == 2:
            pan = rng.uniform(0.6, 1.0)
            x = np.stack([x * pan, x * (1.6 - pan)], axis=1)
        fs_id = 100000 + cid * 10000 + fold * 100 + i
        name = f"{fs_id}-{cid}-0-{i}.wav"
        write_audio(root / "audio" / f"fold{fold}" / name, x, sr, subtype=subtype)
        rows.append([name, fs_id, 0.0, round(dur, 6), 1, fold, cid, cname])
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    tmp = meta / "UrbanSound8K.csv.tmp"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        w.writerows(rows)
    tmp.replace(meta / "UrbanSound8K.csv")
    return SynthSummary(root, len(rows), classes, list(range(1, folds + 1)))

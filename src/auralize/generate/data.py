"""Datasets for generation: any folder of recordings -> normalised block features.

``convert`` reads every WAV/FLAC/OGG under a folder (any rate, channel count, 8/16/24
bit or float), mixes to mono, resamples to the config's rate
(``scipy.signal.resample_poly``), cuts blocks, computes features and per-feature
normalisation statistics, and stores training sequences of ``seq_len + 1`` blocks
(input = blocks 0..n-1, target = blocks 1..n).  Unreadable files are skipped and
counted.

With no folder, a named dataset's recordings are read from boii's place for them,
``datasets/<name>/wave/``.  Generated data never stands in for recordings unless
asked for: with ``demo_data=True``, :func:`make_piano_dataset` writes a procedural
piano-like dataset (random notes, decaying harmonics, deterministic by seed) as
WAV files first.

Layout under a root folder (default ``auralize-out/generate``)::

    datasets/<name>/wave/*.wav                your recordings (boii's layout)
    datasets/<name>/wave_<rate>hz/*.wav       the procedural demo set, per rate
    datasets/<name>/<features tag>/data.npz   x: (n_seq, seq_len + 1, feature_size), normalised
    datasets/<name>/<features tag>/norm.npz   mean, std per feature (applied; undone at generation)
    datasets/<name>/<features tag>/meta.json  config audio fields, files used / skipped
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auralize.audio.files import read_audio, write_audio
from auralize.errors import AuralizeError
from auralize.generate.config import GenConfig
from auralize.generate.features import Normalizer
from auralize.readers import load_npz, read_json

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
DEFAULT_ROOT = Path("auralize-out/generate")


def make_piano_dataset(
    out_dir: str | Path,
    *,
    n_files: int = 6,
    seconds: float = 10.0,
    sample_rate: int = 8000,
    block_size: int | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write ``n_files`` procedural piano-like WAVs (16-bit mono) to ``out_dir``.

    Random notes of a C-major scale (two octaves from C3), each with 8 harmonics
    (amplitude 1/k, decaying faster for higher partials and higher notes), a
    5 ms attack and a release; up to two notes sound at once.  The same seed
    gives the same files.

    Parameters
    ----------
    block_size : int, optional
        Snap note onsets to multiples of ``block_size`` samples and fundamentals
        to multiples of ``sample_rate / block_size``: every block of a note then
        holds whole periods starting in the same phase, so a block-wise model
        learns the data in a short training (at 8 kHz / 512, pitches move by at
        most 7.8 Hz).
    """
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    midi = np.concatenate([48 + scale, 60 + scale, [72]])
    n = round(seconds * sample_rate)
    t_all = np.arange(n) / sample_rate
    paths = []
    for i in range(n_files):
        y = np.zeros(n)
        t0 = 0.0
        while t0 < seconds:
            note = int(rng.choice(midi))
            f0 = 440.0 * 2 ** ((note - 69) / 12)
            if block_size:
                grid_hz = sample_rate / block_size
                f0 = max(grid_hz, round(f0 / grid_hz) * grid_hz)
                t0 = round(t0 * sample_rate / block_size) * block_size / sample_rate
            dur = float(rng.uniform(0.4, 1.2))
            vel = float(rng.uniform(0.25, 0.45))
            s0 = round(t0 * sample_rate)
            if s0 >= n:
                break
            s1 = min(n, int((t0 + dur + 0.3) * sample_rate))
            t = t_all[: s1 - s0]
            env = np.minimum(1.0, t / 0.005) * np.where(t < dur, 1.0, np.exp(-(t - dur) / 0.05))
            note_sig = np.zeros_like(t)
            for k in range(1, 9):
                fk = k * f0
                if fk >= 0.45 * sample_rate:
                    break
                decay = (0.6 + 0.01 * (note - 48)) * k
                note_sig += np.sin(2 * np.pi * fk * t) * np.exp(-decay * t) / k
            y[s0:s1] += vel * env * note_sig
            t0 += dur * float(rng.choice([0.5, 1.0]))
        y *= 0.8 / max(1e-9, np.abs(y).max())
        paths.append(write_audio(out_dir / f"piano_{i:03d}.wav", y, sample_rate))
    return paths


def find_audio_files(folder: str | Path) -> list[Path]:
    """WAV/FLAC/OGG files under ``folder`` (recursive, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AuralizeError(f"dataset folder not found: {str(folder)!r}")
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and p.suffix.lower() in AUDIO_SUFFIXES)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``), float32."""
    if int(rate_in) == int(rate_out):
        return np.asarray(samples, np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(np.asarray(samples, np.float64), rate_out // g, rate_in // g).astype(
        np.float32)


@dataclass
class Dataset:
    """A converted dataset: normalised sequences and what is needed to undo them."""

    folder: Path
    x: np.ndarray  # (n_seq, seq_len + 1, feature_size) float32, normalised
    norm: Normalizer
    meta: dict

    @property
    def name(self) -> str:
        return str(self.meta["dataset"])

    @classmethod
    def load(cls, folder: str | Path) -> Dataset:
        folder = Path(folder)
        if not (folder / "data.npz").is_file():
            raise AuralizeError(f"no converted dataset in {str(folder)!r}; run "
                                "`auralize generate convert` first")
        x = load_npz(folder / "data.npz", ("x",), "converted data")["x"].astype(np.float32)
        meta = read_json(folder / "meta.json", "dataset meta data")
        if x.ndim != 3 or not isinstance(meta, dict) or "dataset" not in meta:
            raise AuralizeError(f"the converted dataset in {str(folder)!r} is damaged; run "
                                "`auralize generate convert` again")
        return cls(folder, x, Normalizer.load(folder / "norm.npz"), meta)


def dataset_folder(root: str | Path, dataset: str, cfg: GenConfig) -> Path:
    return Path(root) / "datasets" / dataset / cfg.data_tag()


def recordings_folder(root: str | Path, dataset: str) -> Path:
    """Where a dataset's own recordings go: ``<root>/datasets/<dataset>/wave`` (boii's layout)."""
    return Path(root) / "datasets" / dataset / "wave"


def _source_folder(cfg: GenConfig, root: Path, dataset: str | None, demo_data: bool,
                   seed: int, piano_files: int, piano_seconds: float) -> tuple[Path, str]:
    """The folder ``convert`` reads when given none, and the dataset name."""
    wave = recordings_folder(root, dataset) if dataset else None
    if not demo_data:
        if wave is None:
            raise AuralizeError(
                "no recordings given: pass their folder (`generate convert DIR`), or "
                f"--dataset NAME with them in {str(recordings_folder(root, 'NAME'))!r}; "
                "--demo-data converts the procedural piano set instead")
        if not wave.is_dir():
            raise AuralizeError(
                f"no recordings for dataset {dataset!r}: put WAV/FLAC/OGG files in "
                f"{str(wave)!r} (boii's layout) or pass their folder; --demo-data converts "
                "the procedural piano set instead")
        return wave, dataset
    dataset = dataset or "piano"
    if wave is not None and wave.is_dir() and find_audio_files(wave):
        raise AuralizeError(
            f"{str(wave)!r} holds recordings of dataset {dataset!r}: drop --demo-data to "
            "convert them, or give the demo set another --dataset name")
    src = root / "datasets" / dataset / f"wave_{cfg.sample_rate}hz"
    if src.is_dir():  # a previous procedural set (maybe of other size): rewrite it
        for old in src.glob("piano_*.wav"):
            old.unlink()
    make_piano_dataset(src, n_files=piano_files, seconds=piano_seconds,
                       sample_rate=cfg.sample_rate, block_size=cfg.block_size, seed=seed)
    return src, dataset


def convert(
    cfg: GenConfig,
    src: str | Path | None = None,
    *,
    root: str | Path = DEFAULT_ROOT,
    dataset: str | None = None,
    demo_data: bool = False,
    seed: int = 0,
    piano_files: int = 30,
    piano_seconds: float = 10.0,
    progress: bool = False,
) -> Dataset:
    """Convert a folder of recordings (or, when asked, the procedural piano set) for ``cfg``.

    Parameters
    ----------
    src : path, optional
        Folder of WAV/FLAC/OGG files.  ``None``: the recordings of ``dataset`` in
        ``<root>/datasets/<dataset>/wave/`` (boii's layout), or with ``demo_data``
        the procedural piano set.
    dataset : str, optional
        Dataset name (run folders end with it); default: the folder's name (its
        parent's for a boii ``wave`` folder), or ``"piano"`` for the demo set.
    demo_data : bool
        With no ``src``: write the procedural piano dataset
        (``datasets/<dataset>/wave_<rate>hz``; ``piano_files`` files of
        ``piano_seconds`` s) and convert it.  Never implied: generated data must
        not stand in for a user's recordings unasked.

    Raises
    ------
    AuralizeError
        No recordings where they should be, no audio files, or none readable.
    """
    root = Path(root)
    if src is None:
        src, dataset = _source_folder(cfg, root, dataset, demo_data, seed, piano_files,
                                      piano_seconds)
    elif demo_data:
        raise AuralizeError("--demo-data writes the procedural set: give no folder with it")
    src = Path(src)
    if dataset is None:
        dataset = src.name if src.name not in ("wave", "") else src.parent.name
    files = find_audio_files(src)
    if not files:
        raise AuralizeError(f"no WAV/FLAC/OGG files in {str(src)!r}")
    per_file: list[np.ndarray] = []
    used, skipped = [], []
    seconds = 0.0
    it = files
    if progress:
        from tqdm import tqdm

        it = tqdm(files, desc="convert", unit="file")
    for path in it:
        try:
            samples, rate = read_audio(path, mono=True)
        except AuralizeError as exc:
            skipped.append({"file": str(path), "reason": str(exc)})
            continue
        samples = np.nan_to_num(samples)
        mono = resample(samples, rate, cfg.sample_rate)
        seconds += mono.shape[0] / cfg.sample_rate
        per_file.append(cfg.codec.audio_to_features(mono, cfg.block_size))
        used.append(str(path))
    if not per_file:
        raise AuralizeError(f"none of the {len(files)} audio files in {str(src)!r} could be "
                            f"read (first: {skipped[0]['reason']})")
    norm = Normalizer.fit(np.concatenate(per_file))
    L = cfg.seq_len + 1
    seqs = []
    for feats in per_file:
        z = norm.apply(feats)
        if z.shape[0] < L:  # short file: one sequence padded with (normalised) silence
            pad = np.repeat(norm.apply(np.zeros((1, z.shape[1]), np.float32)), L - z.shape[0], 0)
            z = np.concatenate([z, pad])
        for s in range(0, z.shape[0] - L + 1, cfg.seq_len):
            seqs.append(z[s : s + L])
    x = np.stack(seqs).astype(np.float32)
    folder = dataset_folder(root, dataset, cfg)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "data.npz", "wb") as f:
        np.savez(f, x=x)
    norm.save(folder / "norm.npz")
    meta = {
        "dataset": dataset, "source": str(src), "sample_rate": cfg.sample_rate,
        "block_size": cfg.block_size, "features": cfg.features, "mu": cfg.mu,
        "quantize_bits": cfg.quantize_bits,
        "seq_len": cfg.seq_len, "feature_size": cfg.feature_size, "sequences": int(x.shape[0]),
        "seconds": round(seconds, 3), "files_used": len(used), "files_skipped": len(skipped),
        "skipped": skipped,
    }
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return Dataset(folder, x, norm, meta)

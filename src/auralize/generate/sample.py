"""Offline generation: seed from a dataset example or a file, stream with cached state."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from auralize.audio.files import read_audio
from auralize.errors import AuralizeError
from auralize.generate.data import Dataset, resample
from auralize.generate.model import generate, with_precision
from auralize.generate.train import Run


def seed_features(run: Run, seed_file: str | Path | None = None, *, example: int | None = None,
                  seed: int = 0) -> np.ndarray:
    """Normalised seed blocks ``(n, feature)``: from ``seed_file``, else a dataset example.

    A file is read (any format/rate/channels), resampled to the run's rate and cut
    into at most ``seq_len`` blocks; an example is one training sequence of the
    run's dataset (``example`` index, else chosen by ``seed``).
    """
    cfg = run.cfg
    if seed_file is not None:
        samples, rate = read_audio(seed_file, mono=True)
        mono = resample(np.nan_to_num(samples), rate, cfg.sample_rate)
        feats = cfg.codec.audio_to_features(mono, cfg.block_size)
        return run.norm.apply(feats[: cfg.seq_len])
    folder = run.dataset_meta.get("folder")
    if not folder:
        raise AuralizeError(f"run {str(run.run_dir)!r} names no dataset to seed from; "
                            "pass a seed file (--seed-file)")
    ds = Dataset.load(folder)
    idx = int(np.random.default_rng(seed).integers(len(ds.x))) if example is None else example
    if not 0 <= idx < len(ds.x):
        raise AuralizeError(f"example {idx} out of range: the dataset has {len(ds.x)}")
    return ds.x[idx, :-1]


def sample_audio(run: Run, seconds: float, seed_blocks: np.ndarray,
                 precision: str = "fp32", progress: bool = False) -> np.ndarray:
    """Generate ``seconds`` of audio after ``seed_blocks``; finite, in [-1, 1], float32.

    ``precision="int8"`` runs an int8 copy of the model (faster on a CPU,
    :func:`~auralize.generate.model.with_precision`).
    """
    cfg = run.cfg
    if not seconds > 0:
        raise AuralizeError(f"--seconds must be positive, got {seconds}")
    n_blocks = math.ceil(seconds * cfg.sample_rate / cfg.block_size)
    z = generate(with_precision(run.model, precision), seed_blocks, n_blocks, progress=progress)
    audio = cfg.codec.features_to_audio(run.norm.undo(z))
    return audio[: round(seconds * cfg.sample_rate)]

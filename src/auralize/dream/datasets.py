"""Loading UrbanSound8K-style data into fixed-length clips at the model's rate.

Two layouts are understood:

* the official one: ``metadata/UrbanSound8K.csv`` (columns slice_file_name, fsID,
  start, end, salience, fold, classID, class) and ``audio/fold1..fold10/``; splits
  are folds (use the official 10-fold protocol: random splits inflate accuracy);
* the deepdreaming-sounds seed's modified copy: per-class folders (under ``audio/``
  or directly under the root) holding ``TRAIN-*.wav``, ``VALIDATE-*.wav`` and
  ``TEST-*.wav``; splits are ``"train"``, ``"validate"``, ``"test"``.

Every file is read with :func:`auralize.audio.files.read_audio` (any bit depth or
channel count), mixed to mono, resampled with :func:`scipy.signal.resample_poly`
to the model's rate and zero-padded or cropped to the clip length.  Files that
cannot be used (missing, empty, corrupt, not audio, non-finite) are skipped and
counted; the summary lists them.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from auralize.audio.files import read_audio
from auralize.errors import AuralizeError

REQUIRED_COLUMNS = ["slice_file_name", "fold", "classID", "class"]
SPLIT_PREFIXES = {"TRAIN-": "train", "VALIDATE-": "validate", "TEST-": "test"}
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aif", ".aiff"}


@dataclass
class ClipSet:
    """Fixed-length mono clips with labels, as float32 arrays."""

    waves: np.ndarray  # (n, samples) float32
    labels: np.ndarray  # (n,) int64
    splits: list  # fold number (official layout) or split name (modified layout)
    files: list[str]
    class_names: list[str]
    sample_rate: int
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, keys) -> ClipSet:
        """The clips whose split (fold number or split name) is in ``keys``."""
        keys = set(keys)
        idx = [i for i, s in enumerate(self.splits) if s in keys]
        return ClipSet(
            self.waves[idx],
            self.labels[idx],
            [self.splits[i] for i in idx],
            [self.files[i] for i in idx],
            self.class_names,
            self.sample_rate,
            [],
        )

    def summary(self) -> str:
        counts = Counter(self.labels.tolist())
        per_class = ", ".join(f"{c}={counts.get(i, 0)}" for i, c in enumerate(self.class_names))
        line = f"{len(self)} clips at {self.sample_rate} Hz ({per_class})"
        if self.skipped:
            line += f"; skipped {len(self.skipped)} unusable file(s)"
        return line


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling of a 1-D signal from ``rate_in`` to ``rate_out`` Hz."""
    if rate_in == rate_out:
        return x.astype(np.float32, copy=False)
    g = math.gcd(int(rate_in), int(rate_out))
    return signal.resample_poly(x, rate_out // g, rate_in // g).astype(np.float32)


def fix_length(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad at the end or crop to ``n`` samples."""
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def load_clip(path: str | Path, sample_rate: int, clip_samples: int) -> np.ndarray:
    """Read one file as a mono clip at ``sample_rate`` of exactly ``clip_samples``.

    Raises
    ------
    AuralizeError
        If the file is missing, empty, not audio or holds non-finite samples.
    """
    x, rate = read_audio(path, mono=True)
    if not np.all(np.isfinite(x)):
        raise AuralizeError(f"{str(path)!r} holds NaN or infinite samples")
    return fix_length(resample(x, rate, sample_rate), clip_samples)


def detect_layout(root: str | Path) -> str:
    """``"urbansound8k"`` or ``"modified"``; raises AuralizeError if neither."""
    root = Path(root)
    if not root.exists():
        raise AuralizeError(f"data folder not found: {str(root)!r}")
    if not root.is_dir():
        # the deepdreaming-sounds seed trained from `UrbanSound8K_modified/urbansound.pkl`
        raise AuralizeError(
            f"{str(root)!r} is a file, not a data folder: auralize reads the audio files "
            f"themselves (no pickle); give the folder that holds audio/, e.g. {str(root.parent)!r}"
        )
    if (root / "metadata" / "UrbanSound8K.csv").exists():
        return "urbansound8k"
    if _modified_files(root):
        return "modified"
    raise AuralizeError(
        f"no UrbanSound8K metadata CSV at {str(root / 'metadata' / 'UrbanSound8K.csv')!r} and "
        f"no TRAIN-/VALIDATE-/TEST- files in class folders under {str(root)!r}"
    )


def _modified_files(root: Path) -> list[tuple[Path, str, str]]:
    base = root / "audio" if (root / "audio").is_dir() else root
    out = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        for f in sorted(folder.iterdir()):
            for prefix, split in SPLIT_PREFIXES.items():
                if f.name.upper().startswith(prefix):
                    out.append((f, folder.name, split))
    return out


def read_metadata(csv_path: str | Path) -> list[dict]:
    """Rows of an UrbanSound8K metadata CSV; one-line AuralizeError when unusable."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise AuralizeError(
            f"UrbanSound8K metadata not found: {str(csv_path)!r} "
            "(expected DATA/metadata/UrbanSound8K.csv; `auralize dream data` makes a generated set)"
        )
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise AuralizeError(
                f"{str(csv_path)!r} lacks column(s) {', '.join(missing)}; "
                f"found: {', '.join(columns) or '(none)'}"
            )
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in reader]
    return rows


def load_dataset(
    root: str | Path,
    sample_rate: int,
    clip_s: float = 4.0,
    splits=None,
    progress: bool = False,
) -> ClipSet:
    """Load every usable clip of an UrbanSound8K-style folder.

    Parameters
    ----------
    root : str or Path
        Dataset folder (official or modified layout, detected).
    sample_rate : int
        The model's rate; every file is resampled to it.
    clip_s : float
        Clip length in seconds (UrbanSound8K clips are <= 4 s; shorter ones are
        zero-padded).
    splits : iterable, optional
        Only these folds (official layout, ints) or split names (modified layout).
    progress : bool
        Show a progress bar.
    """
    root = Path(root)
    layout = detect_layout(root)
    n = round(clip_s * sample_rate)
    want = set(splits) if splits is not None else None
    items: list[tuple[Path, int, object]] = []
    if layout == "urbansound8k":
        rows = read_metadata(root / "metadata" / "UrbanSound8K.csv")
        names: dict[int, str] = {}
        for r in rows:
            try:
                cid, fold = int(r["classID"]), int(r["fold"])
            except ValueError:
                continue
            names.setdefault(cid, r["class"])
            if want is None or fold in want:
                items.append((root / "audio" / f"fold{fold}" / r["slice_file_name"], cid, fold))
        n_classes = max(names) + 1 if names else 0
        class_names = [names.get(i, f"class{i}") for i in range(n_classes)]
    else:
        found = _modified_files(root)
        class_names = sorted({c for _, c, _ in found})
        for f, c, split in found:
            if want is None or split in want:
                items.append((f, class_names.index(c), split))
    waves = np.zeros((len(items), n), dtype=np.float32)
    labels, used_splits, files, skipped = [], [], [], []
    it = items
    if progress:
        from tqdm import tqdm

        it = tqdm(items, desc="loading clips", unit="clip")
    k = 0
    for path, cid, split in it:
        try:
            waves[k] = load_clip(path, sample_rate, n)
        except AuralizeError as exc:
            skipped.append((str(path), str(exc)))
            continue
        labels.append(cid)
        used_splits.append(split)
        files.append(str(path))
        k += 1
    return ClipSet(
        waves[:k].copy() if k < len(items) else waves,
        np.asarray(labels, dtype=np.int64),
        used_splits,
        files,
        class_names,
        int(sample_rate),
        skipped,
    )


def parse_folds(text: str | None) -> list:
    """``"1-8"`` -> [1..8]; ``"9,10"`` -> [9, 10]; split names pass through."""
    if text is None or str(text).strip() == "":
        return []
    out: list = []
    for part in str(text).split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            out.extend(range(a, b + 1))
        elif part.isdigit():
            out.append(int(part))
        elif part:
            out.append(part.lower())
    return out

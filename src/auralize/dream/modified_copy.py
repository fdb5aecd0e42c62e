"""The deepdreaming-sounds seed's "modified" UrbanSound8K, made from a local UrbanSound8K.

The seed trained on a copy of UrbanSound8K it made with its ``datatools`` scripts:
8 kHz mono 16-bit WAV, only the clips of exactly 4 s, the ``gun_shot`` class
dropped (9 classes), files in per-class folders named with ``TRAIN-``,
``VALIDATE-`` and ``TEST-`` prefixes.  :func:`make_modified_copy` makes that copy
from the official layout (``metadata/UrbanSound8K.csv``, ``audio/fold1..10``);
which folds become which split is a choice (default: folds 1-8 train, 9 validate,
10 test, so that no clip of one recording lands in two splits).  The copy loads
with :func:`auralize.dream.datasets.load_dataset` (its "modified" layout).

Layout written::

    OUT/audio/<class>/TRAIN-<slice name>.wav   (and VALIDATE-, TEST-)
    OUT/README.txt                              what was changed, with the counts
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auralize.audio.files import read_audio, write_audio
from auralize.dream.datasets import detect_layout, fix_length, read_metadata, resample
from auralize.errors import AuralizeError

#: Tolerance on "exactly 4 s": files are cut from longer recordings at whole samples.
LENGTH_TOLERANCE_S = 0.01


@dataclass
class CopyReport:
    """What :func:`make_modified_copy` wrote and left out."""

    written: Counter = field(default_factory=Counter)  # (split, class) -> files
    dropped_class: int = 0  # rows of a dropped class
    wrong_length: int = 0  # clips not of the wanted length
    other_folds: int = 0  # rows of folds in no split
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_written(self) -> int:
        return sum(self.written.values())

    def summary(self) -> str:
        per_split = Counter()
        for (split, _), n in self.written.items():
            per_split[split] += n
        splits = ", ".join(f"{s}={per_split.get(s, 0)}" for s in ("TRAIN", "VALIDATE", "TEST"))
        classes = len({c for _, c in self.written})
        line = (f"wrote {self.n_written} clips of {classes} classes ({splits}); left out: "
                f"{self.dropped_class} of dropped classes, {self.wrong_length} of another length")
        if self.other_folds:
            line += f", {self.other_folds} of folds in no split"
        if self.unreadable:
            line += f", {len(self.unreadable)} unreadable"
        return line


def make_modified_copy(
    source: str | Path,
    out: str | Path,
    *,
    sample_rate: int = 8000,
    clip_s: float = 4.0,
    drop=("gun_shot",),
    splits: dict | None = None,
    progress: bool = False,
) -> CopyReport:
    """Copy UrbanSound8K as the seed's modified set.

    Parameters
    ----------
    source : str or Path
        UrbanSound8K folder in the official layout.
    out : str or Path
        New folder (must not hold an ``audio/`` folder yet).
    sample_rate : int
        Rate of the copy in Hz (the seed: 8000); mono, 16-bit PCM.
    clip_s : float
        Only clips this long (within :data:`LENGTH_TOLERANCE_S`) are kept, cut or
        padded to exactly ``round(clip_s * sample_rate)`` samples.
    drop : iterable of str
        Class names left out (the seed: ``gun_shot``).
    splits : dict, optional
        ``{"TRAIN": folds, "VALIDATE": folds, "TEST": folds}``; default 1-8, 9, 10.
    progress : bool
        Show a progress bar.

    Raises
    ------
    AuralizeError
        Source not in the official layout, an unknown class in ``drop``, a fold in
        two splits, or ``out`` already holding a copy.  Nothing is written then.
    """
    source, out = Path(source), Path(out)
    splits = splits or {"TRAIN": list(range(1, 9)), "VALIDATE": [9], "TEST": [10]}
    if sample_rate < 1 or clip_s <= 0:
        raise AuralizeError("sample rate and clip length must be positive")
    if detect_layout(source) != "urbansound8k":
        raise AuralizeError(
            f"{str(source)!r} is not in UrbanSound8K's official layout "
            "(metadata/UrbanSound8K.csv and audio/foldN)"
        )
    rows = read_metadata(source / "metadata" / "UrbanSound8K.csv")
    classes = {r["class"] for r in rows}
    unknown = sorted(set(drop) - classes)
    if unknown:
        raise AuralizeError(
            f"--drop names no class of the data: {', '.join(unknown)}; classes: {', '.join(sorted(classes))}"
        )
    fold_split: dict[int, str] = {}
    for split, folds in splits.items():
        for f in folds:
            if f in fold_split:
                raise AuralizeError(f"fold {f} is in both {fold_split[f]} and {split}")
            fold_split[int(f)] = split
    if (out / "audio").exists():
        raise AuralizeError(f"{str(out / 'audio')!r} exists already: choose another --out")

    n = round(clip_s * sample_rate)
    rep = CopyReport()
    it = rows
    if progress:
        from tqdm import tqdm

        it = tqdm(rows, desc="copying clips", unit="clip")
    for r in it:
        if r["class"] in drop:
            rep.dropped_class += 1
            continue
        try:
            split = fold_split.get(int(r["fold"]))
        except ValueError:
            split = None
        if split is None:
            rep.other_folds += 1
            continue
        path = source / "audio" / f"fold{r['fold']}" / r["slice_file_name"]
        try:
            x, rate = read_audio(path, mono=True)
        except AuralizeError as exc:
            rep.unreadable.append((str(path), str(exc)))
            continue
        if not np.all(np.isfinite(x)):
            rep.unreadable.append((str(path), "holds NaN or infinite samples"))
            continue
        if abs(len(x) / rate - clip_s) > LENGTH_TOLERANCE_S:
            rep.wrong_length += 1
            continue
        y = fix_length(resample(x, rate, sample_rate), n)
        name = f"{split}-{Path(r['slice_file_name']).stem}.wav"
        write_audio(out / "audio" / r["class"] / name, y, sample_rate, subtype="PCM_16")
        rep.written[(split, r["class"])] += 1
    if rep.n_written == 0:
        raise AuralizeError(f"no clip of {clip_s:g} s outside the dropped classes in {str(source)!r}")
    _write_readme(out, source, rep, sample_rate, clip_s, drop, splits)
    return rep


def _write_readme(out: Path, source: Path, rep: CopyReport, sample_rate: int, clip_s: float,
                  drop, splits: dict) -> None:
    fold_text = "; ".join(f"{s}: folds {', '.join(map(str, f))}" for s, f in splits.items())
    per_class = Counter()
    for (_, c), k in rep.written.items():
        per_class[c] += k
    lines = [
        "UrbanSound8K, modified as in the deepdreaming-sounds project (made by auralize).",
        "",
        f"Source: {source}",
        f"- mono, {sample_rate} Hz, 16-bit PCM WAV",
        f"- only clips of {clip_s:g} s ({rep.wrong_length} clips of another length left out)",
        f"- classes left out: {', '.join(drop) or 'none'} ({rep.dropped_class} clips)",
        f"- splits by the official folds ({fold_text}), named by file prefix",
        "",
        "Clips per class: " + ", ".join(f"{c}={k}" for c, k in sorted(per_class.items())),
        "",
        "UrbanSound8K: J. Salamon, C. Jacoby and J. P. Bello, 'A Dataset and Taxonomy for",
        "Urban Sound Research', ACM Multimedia 2014. Licence CC BY-NC 3.0 (as the original).",
    ]
    (out / "README.txt").write_text("\n".join(lines) + "\n")

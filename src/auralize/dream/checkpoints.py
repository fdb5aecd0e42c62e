"""A dream run's files on disk: atomic checkpoints, their listing, and the step ledger.

Checkpoints are written to a temporary file, fsynced and renamed, so a reader (or
a resume after a crash) sees either the old file or the new one, never half of
one.  ``steps.csv`` (the ledger) has one row per optimiser step.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import torch


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename.

    A reader never sees a half-written file: either the old one or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - directories cannot be fsynced everywhere
        pass


def checkpoint_io():
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            atomic_torch_save(checkpoint, path)

    return AtomicCheckpointIO()


def list_checkpoints(run: str | Path) -> list[Path]:
    """Complete checkpoints of a run folder, oldest first (temporary files ignored)."""
    d = Path(run) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("step*.ckpt") if not p.name.startswith("."))


def latest_checkpoint(run: str | Path) -> Path | None:
    ckpts = list_checkpoints(run)
    return ckpts[-1] if ckpts else None


def truncate_ledger(run: Path, before_step: int) -> None:
    """Drop ledger rows of steps the checkpoint did not include (they will be redone)."""
    path = run / "steps.csv"
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < before_step]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(keep)
    os.replace(tmp, path)


def read_ledger(run: str | Path) -> list[dict]:
    path = Path(run) / "steps.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))

"""A session's run folder: what it holds and who writes it.

``sonification.wav`` is written by the recording target
(:mod:`auralize.sonify.targets`); everything else a run folder holds is written
here: ``telemetry.jsonl`` (a line per step, line-buffered so a killed run keeps
its steps), ``sonifier.json`` (how to re-render), and at the end
``metrics.csv``, ``spectrogram.png`` and the optional TensorBoard summaries.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auralize.sonify.telemetry import TrainingStep

WAV_NAME = "sonification.wav"
SPECTROGRAM_NAME = "spectrogram.png"
TELEMETRY_NAME = "telemetry.jsonl"
METRICS_NAME = "metrics.csv"
CONFIG_NAME = "sonifier.json"


@dataclass
class RunResult:
    """What a session wrote and how it went."""

    out_dir: Path | None
    wav_path: Path | None = None
    spectrogram_path: Path | None = None
    telemetry_path: Path | None = None
    metrics_path: Path | None = None
    tensorboard_dir: Path | None = None
    steps: int = 0
    duration_s: float = 0.0
    stats: dict = field(default_factory=dict)

    def paths(self) -> list[Path]:
        return [p for p in (self.wav_path, self.spectrogram_path, self.telemetry_path,
                            self.metrics_path) if p is not None]


class RunFolder:
    """Writes one run folder (``out_dir=None``: keeps only the metrics rows in memory).

    Parameters
    ----------
    out_dir : Path, optional
        Created if missing.
    """

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self.rows: list[dict] = []
        self._telemetry = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._telemetry = open(out_dir / TELEMETRY_NAME, "w", buffering=1)  # noqa: SIM115

    @property
    def wav_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / WAV_NAME

    def write_config(self, doc: dict) -> None:
        """``sonifier.json``: the mappings and clock that re-render this run."""
        if self.out_dir is not None:
            (self.out_dir / CONFIG_NAME).write_text(json.dumps(doc, indent=1, default=_jsonable))

    def add_step(self, record: TrainingStep) -> None:
        if self._telemetry is not None:
            self._telemetry.write(record.to_json() + "\n")
        self.rows.append(metrics_row(record))

    def finish(self, result: RunResult, samples, sample_rate: int, *, plot: bool,
               tensorboard) -> RunResult:
        """Close the telemetry and write the end-of-run files into ``result``.

        ``samples`` is a callable returning the recording (read only if needed).
        """
        if self._telemetry is not None:
            self._telemetry.close()
            self._telemetry = None
        if self.out_dir is not None:
            result.wav_path = self.wav_path
            result.telemetry_path = self.out_dir / TELEMETRY_NAME
            result.metrics_path = write_metrics_csv(self.out_dir / METRICS_NAME, self.rows)
            if plot and result.steps:
                from auralize.audio.plots import save_spectrogram

                result.spectrogram_path = save_spectrogram(
                    samples(), sample_rate, self.out_dir / SPECTROGRAM_NAME,
                    title="training sonification")
        if tensorboard and result.steps:
            from auralize.sonify.tensorboard import write_tensorboard

            logdir = (Path(tensorboard) if not isinstance(tensorboard, bool)
                      else (self.out_dir or Path(".")) / "tensorboard")
            result.tensorboard_dir = write_tensorboard(logdir, self.rows, samples(), sample_rate)
        return result

    def abandon(self) -> None:
        if self._telemetry is not None:
            self._telemetry.close()
            self._telemetry = None


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def metrics_row(record: TrainingStep) -> dict:
    """One ``metrics.csv`` row: step, epoch, time, loss, lr, metrics, gradient norms."""
    row = {"step": record.step, "epoch": record.epoch, "wall_time_s": record.wall_time_s,
           "loss": record.loss, "lr": record.lr}
    row.update({k: v for k, v in record.metrics.items() if isinstance(v, (int, float))})
    row.update({f"grad_norm/{k}": v for k, v in record.grad_norms.items()})
    return row


def write_metrics_csv(path: Path, rows: list[dict]) -> Path:
    """Write rows (dicts) as CSV with the union of their keys as columns."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns) or ["step"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path

"""A session's run folder: what it holds and who writes it.

``sonification.wav`` is written by the recording target
(:mod:`auralize.sonify.targets`); everything else a run folder holds is written
here: ``telemetry.jsonl`` (a line per step, line-buffered so a killed run keeps
its steps), ``sonifier.json`` (how to re-render), and at the end
``metrics.csv``, ``spectrogram.png`` and the optional TensorBoard summaries.

Nothing here grows with the run's length, and nothing but the telemetry line
is done per step: ``metrics.csv`` is made at the end from ``telemetry.jsonl``
in one streamed pass (its columns are the union of all rows'), and the
spectrogram is computed from the WAV in chunks
(:mod:`auralize.audio.file_spectrogram`).  Without a folder the rows wait in
an anonymous spool file (for the TensorBoard summary).
"""

from __future__ import annotations

import csv
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from auralize.sonify.telemetry import TrainingStep

WAV_NAME = "sonification.wav"
SPECTROGRAM_NAME = "spectrogram.png"
TELEMETRY_NAME = "telemetry.jsonl"
METRICS_NAME = "metrics.csv"
CONFIG_NAME = "sonifier.json"
DIGEST_NAME = "digest.wav"


@dataclass
class RunResult:
    """What a session wrote and how it went."""

    out_dir: Path | None
    wav_path: Path | None = None
    spectrogram_path: Path | None = None
    telemetry_path: Path | None = None
    metrics_path: Path | None = None
    tensorboard_dir: Path | None = None
    digest_path: Path | None = None
    steps: int = 0
    duration_s: float = 0.0
    stats: dict = field(default_factory=dict)

    def paths(self) -> list[Path]:
        return [p for p in (self.wav_path, self.spectrogram_path, self.telemetry_path,
                            self.metrics_path, self.digest_path) if p is not None]


class MetricsSpool:
    """Metrics rows kept on disk until the end (one JSON line each), with their columns.

    ``folder=None`` spools into an anonymous temporary file.
    """

    def __init__(self, folder: Path | None) -> None:
        self.path = None if folder is None else folder / (".~" + METRICS_NAME + ".rows")
        self._file = (tempfile.TemporaryFile("w+") if self.path is None  # noqa: SIM115
                      else open(self.path, "w+"))  # noqa: SIM115
        self.columns: dict[str, None] = {}
        self.count = 0

    def append(self, row: dict) -> None:
        self.columns.update(dict.fromkeys(row))
        self._file.write(json.dumps(row, default=float) + "\n")
        self.count += 1

    def __iter__(self):
        self._file.flush()
        self._file.seek(0)
        for line in self._file:
            yield json.loads(line)
        self._file.seek(0, 2)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class RunFolder:
    """Writes one run folder (``out_dir=None``: spools only the metrics rows, to a temporary file).

    Parameters
    ----------
    out_dir : Path, optional
        Created if missing.
    """

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self._telemetry = None
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            self._telemetry = open(out_dir / TELEMETRY_NAME, "w", buffering=1)  # noqa: SIM115
        self.rows = MetricsSpool(None) if out_dir is None else None

    @property
    def wav_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / WAV_NAME

    @property
    def spectrogram_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / SPECTROGRAM_NAME

    def write_config(self, doc: dict) -> None:
        """``sonifier.json``: the mappings and clock that re-render this run."""
        if self.out_dir is not None:
            (self.out_dir / CONFIG_NAME).write_text(json.dumps(doc, indent=1, default=_jsonable))

    def add_step(self, record: TrainingStep) -> None:
        if self._telemetry is not None:
            self._telemetry.write(record.to_json() + "\n")
        else:
            self.rows.append(metrics_row(record))

    def close_telemetry(self) -> None:
        """Close ``telemetry.jsonl`` (complete on disk from here on)."""
        if self._telemetry is not None:
            self._telemetry.close()
            self._telemetry = None

    def finish(self, result: RunResult, samples, sample_rate: int, *, plot: bool,
               tensorboard, metrics_path: Path | None = None,
               spectrogram_path: str | None = None) -> RunResult:
        """Close the telemetry and write the end-of-run files into ``result``.

        ``samples`` is a callable returning the recording, read only for a
        TensorBoard summary (which gets the digest instead when there is one);
        the spectrogram is computed from the WAV in chunks.  ``metrics_path``:
        ``metrics.csv`` already written (:mod:`auralize.sonify.close_pass`);
        ``spectrogram_path``: the PNG the recording's worker drew as it wrote.
        """
        if self._telemetry is not None:
            self._telemetry.close()
            self._telemetry = None
        try:
            if self.out_dir is not None:
                result.wav_path = self.wav_path
                result.telemetry_path = self.out_dir / TELEMETRY_NAME
                result.metrics_path = metrics_path or metrics_csv_from_telemetry(
                    self.out_dir / METRICS_NAME, self.out_dir / TELEMETRY_NAME)
                if plot and result.steps and spectrogram_path and Path(spectrogram_path).exists():
                    result.spectrogram_path = Path(spectrogram_path)
                elif plot and result.steps:
                    from auralize.audio.file_spectrogram import save_file_spectrogram

                    result.spectrogram_path = save_file_spectrogram(
                        self.wav_path, self.out_dir / SPECTROGRAM_NAME,
                        title="training sonification")
            if tensorboard and result.steps:
                from auralize.sonify.tensorboard import write_tensorboard

                if result.digest_path is not None:  # a long run: its digest, not hours of audio
                    from auralize.audio.files import read_audio

                    audio = read_audio(result.digest_path, mono=True)[0]
                else:
                    audio = samples()
                logdir = (Path(tensorboard) if not isinstance(tensorboard, bool)
                          else (self.out_dir or Path(".")) / "tensorboard")
                rows = self.rows if self.rows is not None else _telemetry_rows(
                    self.out_dir / TELEMETRY_NAME)
                result.tensorboard_dir = write_tensorboard(logdir, rows, audio, sample_rate)
        finally:
            if self.rows is not None:
                self.rows.close()
        return result

    def abandon(self) -> None:
        if self._telemetry is not None:
            self._telemetry.close()
            self._telemetry = None
        if self.rows is not None:
            self.rows.close()


def _telemetry_rows(path: Path):
    from auralize.sonify.logs import TelemetryTail

    return (metrics_row(record) for record in TelemetryTail(path))


def metrics_csv_from_telemetry(path: Path, telemetry: Path) -> Path:
    """``metrics.csv`` from ``telemetry.jsonl`` in one streamed pass (what :func:`write_metrics_csv`
    writes for the same rows, byte for byte)."""
    with MetricsCsvSpool() as spool:
        for row in _telemetry_rows(telemetry):
            spool.add(row)
        return spool.write(path)


class MetricsCsvSpool:
    """``metrics.csv`` rows added one at a time, the file written at the end.

    Rows go to a spool file with the columns known so far (new ones are appended
    at the end, so earlier rows keep their places); the CSV is the header of all
    columns and each spooled row padded to its width.
    """

    def __init__(self) -> None:
        self.columns: dict[str, int] = {}
        self._spool = tempfile.TemporaryFile("w+", newline="")  # noqa: SIM115
        self._writer = csv.writer(self._spool)

    def add(self, row: dict) -> None:
        columns = self.columns
        values = [""] * len(columns)
        for key, value in row.items():
            index = columns.setdefault(key, len(columns))
            if index == len(values):
                values.append("")
            values[index] = "" if value is None else value
        self._writer.writerow(values)

    def write(self, path: Path) -> Path:
        self._spool.seek(0)
        with open(path, "w", newline="") as handle:
            csv.writer(handle).writerow(list(self.columns) or ["step"])
            width = len(self.columns)
            for line in self._spool:  # numbers only: a comma always separates fields
                body = line.rstrip("\r\n")
                handle.write(body + "," * (width - 1 - body.count(",")) + "\r\n")
        return path

    def __enter__(self) -> MetricsCsvSpool:
        return self

    def __exit__(self, *exc) -> None:
        self._spool.close()


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


def write_metrics_csv(path: Path, rows, columns=None) -> Path:
    """Write rows (dicts) as CSV with the union of their keys as columns.

    ``rows`` may be any iterable; with ``columns`` given it is read once.
    """
    if columns is None:
        rows = list(rows)
        columns = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns) or ["step"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return path

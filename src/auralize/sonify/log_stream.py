"""A training log opened for streaming: its settings now, its records as often as needed.

:func:`load_log` (:mod:`auralize.sonify.logs`) returns every record as a list;
for a run of a million steps that list alone takes gigabytes.  :func:`open_log`
returns a :class:`LogStream` instead: ``records()`` reads the log again from the
start each time it is called, a piece at a time (telemetry: 4 MB of lines per
read; CSV: a row at a time), so ``render``, ``serve``, ``compare`` and the
digest hold only what they are working on.  TensorBoard event folders are read
whole (tensorboard's reader keeps every scalar).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

from auralize.errors import AuralizeError
from auralize.readers import read_json
from auralize.sonify.logs import LOSS_COLUMNS, CsvTail, TelemetryTail, read_tensorboard
from auralize.sonify.mapping_data import MAPPING_NEEDS, mappings_with_data
from auralize.sonify.telemetry import TrainingStep
from auralize.sonify.timeline import SonifyConfig


class LogStream:
    """A log whose records can be read, streamed, any number of times.

    Attributes
    ----------
    path : Path
        What was opened.
    config : SonifyConfig or None
        The settings a run folder was recorded with (``sonifier.json``).
    """

    def __init__(self, path: Path, reader: Callable[[], Iterator[TrainingStep]],
                 config: SonifyConfig | None, kind: str = "telemetry") -> None:
        self.path = path
        self.kind = kind
        self.telemetry: Path | None = None  # the telemetry.jsonl read, if that is the kind
        self._reader = reader
        self.config = config

    def records(self) -> Iterator[TrainingStep]:
        """The log's records from the first, read lazily."""
        return self._reader()

    def first(self) -> TrainingStep:
        return next(self.records())

    def count(self) -> int:
        """Steps in the log: a telemetry file's lines (counted, not parsed), else the records."""
        if self.telemetry is not None:
            from auralize.sonify.stream import count_lines

            return count_lines(self.telemetry)
        return sum(1 for _ in self.records())

    def any(self, has: Callable[[TrainingStep], bool]) -> bool:
        """Whether some record satisfies ``has`` (reads only until the first that does)."""
        return any(has(r) for r in self.records())

    def require_mapping_data(self, mapping: str) -> None:
        """:func:`auralize.sonify.mapping_data.require_mapping_data`, streaming (stops at the first hit)."""
        wanted = list(MAPPING_NEEDS) if mapping == "all" else [mapping]
        if any(self.any(MAPPING_NEEDS[name][1]) for name in wanted):
            return
        from auralize.sonify.mapping_data import require_mapping_data

        require_mapping_data(_Present(self), mapping, self.path)


class _Present(list):
    """One representative record per mapping with data, so the list-based check words its error."""

    def __init__(self, log: LogStream) -> None:
        super().__init__()
        for _name, (_what, has) in MAPPING_NEEDS.items():
            found = next((r for r in log.records() if has(r)), None)
            if found is not None:
                self.append(found)


def _csv_records(path: Path) -> Iterator[TrainingStep]:
    tail = CsvTail(path)
    with open(path, newline="", errors="replace") as handle:
        try:
            reader = csv.DictReader(handle)
            for index, row in enumerate(reader):
                if tail.loss_col is None:
                    tail.columns = [c for c in row if c is not None]
                    tail.loss_col = next((c for c in LOSS_COLUMNS if c in tail.columns), None)
                record = tail._record(row, index)
                if record is not None:
                    yield record
        except csv.Error as exc:
            raise AuralizeError(f"cannot read {str(path)!r} as CSV ({exc})") from None


def _check_csv(path: Path) -> None:
    try:
        with open(path, newline="", errors="replace") as handle:
            header = next(csv.reader(handle), None)
    except csv.Error as exc:
        raise AuralizeError(f"cannot read {str(path)!r} as CSV ({exc})") from None
    if not header:
        raise AuralizeError(f"{str(path)!r} holds no rows")
    if not any(c in header for c in LOSS_COLUMNS):
        raise AuralizeError(f"{str(path)!r} has no loss column (looked for "
                            f"{', '.join(LOSS_COLUMNS)}; found {', '.join(header)})")


def _config(folder: Path) -> SonifyConfig | None:
    settings = folder / "sonifier.json"
    if not settings.exists():
        return None
    try:
        return SonifyConfig.from_dict(read_json(settings, "auralize settings"))
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise AuralizeError(f"{str(settings)!r} is corrupt ({exc})") from None


def open_log(path: str | Path) -> LogStream:
    """Open a run folder, ``telemetry.jsonl``, metrics CSV or TensorBoard folder for streaming.

    Raises
    ------
    AuralizeError
        Missing path, unknown kind, CSV without a loss column, a log without steps.
    """
    path = Path(path)
    if not path.exists():
        raise AuralizeError(f"log not found: {str(path)!r}")
    if path.is_dir():
        telemetry = path / "telemetry.jsonl"
        if telemetry.exists():
            config = _config(path)
            log = LogStream(path, lambda: iter(TelemetryTail(telemetry)), config)
            log.telemetry = telemetry
        elif any(path.rglob("events.out.tfevents.*")):
            records = read_tensorboard(path)
            log = LogStream(path, lambda: iter(records), None, "tensorboard")
        elif (path / "metrics.csv").exists():
            _check_csv(path / "metrics.csv")
            log = LogStream(path, lambda: _csv_records(path / "metrics.csv"), None, "csv")
        else:
            raise AuralizeError(
                f"{str(path)!r} holds no telemetry.jsonl, metrics.csv or TensorBoard event files")
    elif path.suffix.lower() == ".csv":
        _check_csv(path)
        log = LogStream(path, lambda: _csv_records(path), None, "csv")
    elif path.suffix.lower() == ".jsonl":
        log = LogStream(path, lambda: iter(TelemetryTail(path)), None)
        log.telemetry = path
    else:
        raise AuralizeError(f"cannot tell what {str(path)!r} is: give a run folder, a .csv, "
                            "a .jsonl or a TensorBoard log folder")
    if next(log.records(), None) is None:
        if log.kind == "csv":
            raise AuralizeError(f"{str(path)!r} has no rows with a loss value")
        raise AuralizeError(f"{str(path)!r} holds no training steps")
    return log


__all__ = ["LogStream", "mappings_with_data", "open_log"]

"""Reading training logs back as records: run folders, metrics CSVs, TensorBoard.

``auralize render`` re-sonifies any of them; a run folder also brings the
settings it was recorded with (``sonifier.json``), so its re-render is
bit-identical.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path

from auralize.errors import AuralizeError
from auralize.readers import parse_json_line, read_json
from auralize.sonify.telemetry import TrainingStep, has_nonfinite_text
from auralize.sonify.timeline import SonifyConfig

LOSS_COLUMNS = ("loss", "train_loss", "train/loss", "loss_step", "train_loss_step", "epoch_loss")
GRAD_PREFIXES = ("grad_norm/", "gradient_norm_", "grad_2.0_norm/", "grad_norm_")


def _float(text) -> float | None:
    if text is None or text == "":
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


TIME_COLUMNS = ("step", "epoch", "wall_time_s")


class TelemetryTail:
    """A ``telemetry.jsonl`` read as it grows: :meth:`poll` returns the new records.

    Only complete lines are read; a line still being written waits for the next
    poll (and, in a killed run, is never read).  One poll reads at most
    ``max_bytes`` (whole lines; at least one), so a long run's history comes in
    pieces of bounded size.
    """

    def __init__(self, path: Path, max_bytes: int = 1 << 22) -> None:
        self.path = Path(path)
        self.offset = 0
        self.line = 0
        self.max_bytes = int(max_bytes)

    def poll(self) -> list[TrainingStep]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                data = handle.read(self.max_bytes)
                while data and b"\n" not in data:  # a line longer than max_bytes
                    more = handle.read(self.max_bytes)
                    if not more:
                        break
                    data += more
        except FileNotFoundError:
            return []
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        records = []
        for line in complete.decode("utf-8", "replace").splitlines():
            self.line += 1
            if not line.strip():
                continue
            try:
                records.append(TrainingStep.from_dict(parse_json_line(line),
                                                      finite=not has_nonfinite_text(line)))
            except (ValueError, TypeError, KeyError) as exc:
                raise AuralizeError(f"{str(self.path)!r} line {self.line} is not a telemetry "
                                    f"record ({exc})") from None
        return records

    def skip_to_end(self) -> int:
        """Move past every complete line now in the file without parsing it; return how many."""
        skipped, pos = 0, self.offset
        try:
            with open(self.path, "rb") as handle:
                handle.seek(pos)
                while chunk := handle.read(1 << 22):
                    lines = chunk.count(b"\n")
                    if lines:
                        skipped += lines
                        self.offset = pos + chunk.rfind(b"\n") + 1
                    pos += len(chunk)
        except FileNotFoundError:
            return 0
        self.line += skipped
        return skipped

    def __iter__(self) -> Iterator[TrainingStep]:
        """Every record now in the file, read piece by piece."""
        while True:
            before = self.offset
            yield from self.poll()
            if self.offset == before:
                return


def read_telemetry(path: Path) -> list[TrainingStep]:
    """Records of a ``telemetry.jsonl``; a truncated last line (killed run) is skipped.

    The whole run as a list: for long runs iterate a :class:`TelemetryTail` instead.
    """
    return list(TelemetryTail(path))


class CsvTail:
    """A metrics CSV read as it grows (appended, or rewritten as Lightning's CSVLogger does).

    Rows become records: the loss column (:data:`LOSS_COLUMNS`), ``step``,
    ``epoch``, ``wall_time_s``, ``lr``, gradient-norm columns
    (:data:`GRAD_PREFIXES`) and every other number as a metric.  A row without a
    loss but with ``val_*`` numbers (Lightning's validation rows) is an epoch end;
    in a CSV with an ``epoch`` column and no ``step`` column (Keras' CSVLogger)
    every row is one.
    """

    def __init__(self, path: Path, max_rows: int = 20000) -> None:
        self.path = Path(path)
        self.max_rows = int(max_rows)  # rows one poll returns at most
        self.rows_seen = 0
        self.columns: list[str] = []
        self.loss_col: str | None = None
        self._stamp = None

    def _rows(self, complete_only: bool) -> list[dict]:
        """Rows after the ``rows_seen`` first (at most ``max_rows``), read line by line."""
        stat = self.path.stat()
        if (stat.st_size, stat.st_mtime_ns) == self._stamp:
            return []
        new: list[dict] = []
        total = 0
        with open(self.path, newline="", errors="replace") as handle:
            reader = csv.DictReader(_complete_lines(handle) if complete_only else handle)
            try:
                for row in reader:
                    total += 1
                    if total > self.rows_seen:
                        new.append(row)
                        if len(new) >= self.max_rows:
                            break
            except csv.Error as exc:
                raise AuralizeError(f"cannot read {str(self.path)!r} as CSV ({exc})") from None
            fieldnames = reader.fieldnames
        if complete_only and total and len(new) < self.max_rows:
            self._stamp = (stat.st_size, stat.st_mtime_ns)
        if total and fieldnames:
            self.columns = [c for c in fieldnames if c is not None]
        if total and self.loss_col is None:
            self.loss_col = next((c for c in LOSS_COLUMNS if c in self.columns), None)
        self.rows_seen = self.rows_seen + len(new) if new else max(self.rows_seen, total)
        return new

    def _record(self, row: dict, index: int) -> TrainingStep | None:
        row = {k: v for k, v in row.items() if k is not None}  # cells beyond the header
        grad_cols = {c: c[len(p):] for c in row for p in GRAD_PREFIXES if c.startswith(p)}
        loss = _float(row.get(self.loss_col)) if self.loss_col else None
        metrics = {c: v for c in row if c not in TIME_COLUMNS and c != self.loss_col
                   and c not in grad_cols and c != "lr" and (v := _float(row.get(c))) is not None}
        per_epoch = "epoch" in row and "step" not in row
        validation = loss is None and any(is_validation(c) for c in metrics)
        grads = {name: v for c, name in grad_cols.items() if (v := _float(row.get(c))) is not None}
        if loss is None and not grads and not validation:
            return None  # e.g. a row of another logger's bookkeeping
        step = _float(row.get("step"))
        return TrainingStep(
            step=int(step) if step is not None and math.isfinite(step) else index,
            epoch=int(_float(row.get("epoch")) or 0),
            wall_time_s=_float(row.get("wall_time_s")),
            loss=loss, metrics=metrics, grad_norms=grads, lr=_float(row.get("lr")),
            epoch_end=per_epoch or validation,
        )

    def poll(self, complete_only: bool = True) -> list[TrainingStep]:
        """Records of the rows added since the last poll (none while no loss column exists)."""
        try:
            first = self.rows_seen
            rows = self._rows(complete_only)
        except FileNotFoundError:
            return []
        except UnicodeDecodeError as exc:
            raise AuralizeError(f"cannot read {str(self.path)!r} as CSV ({exc})") from None
        records = [self._record(row, first + i) for i, row in enumerate(rows)]
        return [r for r in records if r is not None]


def _complete_lines(handle):
    """The lines of ``handle`` that end with a newline (a line being written waits)."""
    for line in handle:
        if not line.endswith(("\n", "\r")):
            return
        yield line


def read_metrics_csv(path: Path) -> list[TrainingStep]:
    """Records from a CSV with a loss column (and optional step, epoch, grad-norm columns)."""
    tail = CsvTail(path)
    records: list[TrainingStep] = []
    while True:
        seen = tail.rows_seen
        records += tail.poll(complete_only=False)
        if tail.rows_seen == seen:
            break
    if not tail.columns:
        raise AuralizeError(f"{str(path)!r} holds no rows")
    if tail.loss_col is None:
        raise AuralizeError(
            f"{str(path)!r} has no loss column (looked for {', '.join(LOSS_COLUMNS)}; "
            f"found {', '.join(tail.columns)})"
        )
    if not any(r.loss is not None or r.grad_norms for r in records):
        raise AuralizeError(f"{str(path)!r} has no rows with a loss value")
    return records


#: names of validation runs' folders (Keras' TensorBoard callback writes train/ and validation/)
VALIDATION_DIRS = ("validation", "val", "eval")


def tensorboard_dir(path: Path) -> Path | None:
    """The folder holding ``path``'s newest training event file (None: no events yet).

    A validation run's folder is taken only when there is nothing else.
    """
    files = sorted(Path(path).rglob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    training = [f for f in files if f.parent.name not in VALIDATION_DIRS]
    return (training or files)[-1].parent if files else None


def is_validation(name: str) -> bool:
    """A metric measured on held-out data: ``val_loss``, ``val/acc``, ``eval/loss``..."""
    return name.lower().startswith(("val", "eval"))


class TensorBoardTail:
    """TensorBoard scalars read as they are written (EventAccumulator reloads incrementally).

    Scalars are grouped by step: the loss tag, gradient norms (:data:`GRAD_PREFIXES`)
    and every other tag as a metric; a step with validation scalars (``val*``,
    ``eval*``: Hugging Face's ``eval/loss``) is an epoch end.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.acc = None
        self.seen: dict[str, int] = {}
        self.t0: float | None = None
        self.loss_tag: str | None = None
        self.tags: list[str] = []

    def poll(self) -> list[TrainingStep]:
        if self.acc is None:
            folder = tensorboard_dir(self.path)
            if folder is None:
                return []
            from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

            self.acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        try:
            self.acc.Reload()
        except Exception as exc:  # noqa: BLE001 - tensorboard raises many kinds
            raise AuralizeError(f"cannot read TensorBoard logs in {str(self.path)!r} "
                                f"({exc})") from None
        self.tags = self.acc.Tags().get("scalars", [])
        if self.loss_tag is None:
            self.loss_tag = next((t for t in LOSS_COLUMNS if t in self.tags), None)
        by_step: dict[int, TrainingStep] = {}
        for tag in self.tags:
            events = self.acc.Scalars(tag)
            fresh, self.seen[tag] = events[self.seen.get(tag, 0):], len(events)
            for event in fresh:
                self.t0 = event.wall_time if self.t0 is None else min(self.t0, event.wall_time)
                record = by_step.setdefault(event.step, TrainingStep(
                    step=event.step, wall_time_s=event.wall_time - self.t0))
                prefix = next((p for p in GRAD_PREFIXES if tag.startswith(p)), None)
                if tag == self.loss_tag:
                    record.loss = event.value
                elif prefix is not None:
                    record.grad_norms[tag[len(prefix):]] = event.value
                elif tag == "epoch" or tag.endswith("/epoch"):  # HF: "train/epoch", 0.5..
                    record.epoch = int(event.value)
                else:
                    record.metrics[tag] = event.value
                    record.epoch_end = record.epoch_end or is_validation(tag)
        return [by_step[s] for s in sorted(by_step)]


def read_tensorboard(path: Path) -> list[TrainingStep]:
    """Records from TensorBoard event files: the loss scalar and gradient-norm scalars."""
    tail = TensorBoardTail(path)
    records = tail.poll()
    if tail.loss_tag is None:
        raise AuralizeError(f"no loss scalar in TensorBoard logs {str(path)!r} "
                            f"(tags: {', '.join(tail.tags) or 'none'})")
    return records


class LogTail:
    """Any log auralize reads, followed as it grows: a run folder (``telemetry.jsonl``),
    a TensorBoard event folder, a metrics CSV, or a ``.jsonl`` file.

    A folder may start empty: the kind is decided when its first log file appears.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise AuralizeError(f"log not found: {str(self.path)!r}")
        self.reader = None if self.path.is_dir() else self._file_reader(self.path)

    @staticmethod
    def _file_reader(path: Path):
        if path.suffix.lower() == ".csv":
            return CsvTail(path)
        if path.suffix.lower() == ".jsonl":
            return TelemetryTail(path)
        raise AuralizeError(f"cannot tell what {str(path)!r} is: give a run folder, a .csv, "
                            "a .jsonl or a TensorBoard log folder")

    def _choose(self):
        if (self.path / "telemetry.jsonl").exists():
            return TelemetryTail(self.path / "telemetry.jsonl")
        if tensorboard_dir(self.path) is not None:
            return TensorBoardTail(self.path)
        if (self.path / "metrics.csv").exists():
            return CsvTail(self.path / "metrics.csv")
        return None

    @property
    def kind(self) -> str | None:
        """``"telemetry"``, ``"tensorboard"``, ``"csv"``, or None while nothing was found."""
        return {TelemetryTail: "telemetry", TensorBoardTail: "tensorboard",
                CsvTail: "csv"}.get(type(self.reader))

    def poll(self) -> list[TrainingStep]:
        """Records that appeared since the last poll."""
        if self.reader is None:
            self.reader = self._choose()
            if self.reader is None:
                return []
        return self.reader.poll()


def load_log(path: str | Path) -> tuple[list[TrainingStep], SonifyConfig | None]:
    """Records (and the recorded settings, if any) from a run folder, CSV, or TensorBoard dir.

    Raises
    ------
    AuralizeError
        Missing path, empty or corrupt log, CSV without a loss column.
    """
    path = Path(path)
    if not path.exists():
        raise AuralizeError(f"log not found: {str(path)!r}")
    config = None
    if path.is_dir():
        telemetry = path / "telemetry.jsonl"
        if telemetry.exists():
            records = read_telemetry(telemetry)
            settings = path / "sonifier.json"
            if settings.exists():
                try:
                    config = SonifyConfig.from_dict(read_json(settings, "auralize settings"))
                except (ValueError, TypeError, AttributeError, KeyError) as exc:
                    raise AuralizeError(f"{str(settings)!r} is corrupt ({exc})") from None
        elif any(path.rglob("events.out.tfevents.*")):
            records = read_tensorboard(path)
        elif (path / "metrics.csv").exists():
            records = read_metrics_csv(path / "metrics.csv")
        else:
            raise AuralizeError(
                f"{str(path)!r} holds no telemetry.jsonl, metrics.csv or TensorBoard event files"
            )
    elif path.suffix.lower() == ".csv":
        records = read_metrics_csv(path)
    elif path.suffix.lower() == ".jsonl":
        records = read_telemetry(path)
    else:
        raise AuralizeError(
            f"cannot tell what {str(path)!r} is: give a run folder, a .csv, a .jsonl "
            "or a TensorBoard log folder"
        )
    if not records:
        raise AuralizeError(f"{str(path)!r} holds no training steps")
    return records, config

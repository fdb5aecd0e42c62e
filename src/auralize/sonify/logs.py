"""Reading training logs back as records: run folders, metrics CSVs, TensorBoard.

``auralize render`` re-sonifies any of them; a run folder also brings the
settings it was recorded with (``sonifier.json``), so its re-render is
bit-identical.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from auralize.errors import AuralizeError
from auralize.readers import parse_json_line, read_json
from auralize.sonify.telemetry import TrainingStep
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


def read_telemetry(path: Path) -> list[TrainingStep]:
    """Records of a ``telemetry.jsonl``; a truncated last line (killed run) is skipped."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise AuralizeError(f"{str(path)!r} is not a telemetry file (not text)") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(TrainingStep.from_dict(parse_json_line(line)))
        except (ValueError, TypeError, KeyError) as exc:
            if number == len(lines):
                break  # the run was killed while writing its last line
            raise AuralizeError(f"{str(path)!r} line {number} is not a telemetry record "
                                f"({exc})") from None
    return records


def read_metrics_csv(path: Path) -> list[TrainingStep]:
    """Records from a CSV with a loss column (and optional step, epoch, grad-norm columns)."""
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AuralizeError(f"cannot read {str(path)!r} as CSV ({exc})") from None
    if not rows:
        raise AuralizeError(f"{str(path)!r} holds no rows")
    columns = list(rows[0])
    loss_col = next((c for c in LOSS_COLUMNS if c in columns), None)
    if loss_col is None:
        raise AuralizeError(
            f"{str(path)!r} has no loss column (looked for {', '.join(LOSS_COLUMNS)}; "
            f"found {', '.join(columns)})"
        )
    grad_cols = {c: c[len(p):] for c in columns for p in GRAD_PREFIXES if c.startswith(p)}
    records = []
    for i, row in enumerate(rows):
        step = _float(row.get("step"))
        loss = _float(row.get(loss_col))
        if loss is None and not grad_cols:
            continue  # e.g. Lightning's validation-only rows
        records.append(TrainingStep(
            step=int(step) if step is not None and math.isfinite(step) else i,
            epoch=int(_float(row.get("epoch")) or 0),
            wall_time_s=_float(row.get("wall_time_s")) or 0.0,
            loss=loss,
            grad_norms={name: v for c, name in grad_cols.items()
                        if (v := _float(row.get(c))) is not None},
        ))
    if not records:
        raise AuralizeError(f"{str(path)!r} has no rows with a loss value")
    return records


def read_tensorboard(path: Path) -> list[TrainingStep]:
    """Records from TensorBoard event files: the loss scalar and gradient-norm scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    try:
        acc.Reload()
    except Exception as exc:  # noqa: BLE001 - tensorboard raises many kinds
        raise AuralizeError(f"cannot read TensorBoard logs in {str(path)!r} ({exc})") from None
    tags = acc.Tags().get("scalars", [])
    loss_tag = next((t for t in LOSS_COLUMNS if t in tags), None)
    if loss_tag is None:
        raise AuralizeError(
            f"no loss scalar in TensorBoard logs {str(path)!r} (tags: {', '.join(tags) or 'none'})"
        )
    by_step: dict[int, TrainingStep] = {}
    t0 = None
    for event in acc.Scalars(loss_tag):
        t0 = event.wall_time if t0 is None else t0
        by_step[event.step] = TrainingStep(step=event.step, loss=event.value,
                                           wall_time_s=event.wall_time - t0)
    for tag in tags:
        for prefix in GRAD_PREFIXES:
            if tag.startswith(prefix):
                for event in acc.Scalars(tag):
                    if event.step in by_step:
                        by_step[event.step].grad_norms[tag[len(prefix):]] = event.value
    return [by_step[s] for s in sorted(by_step)]


# What each ``render --mapping`` needs from a log, and how to say it is missing.
MAPPING_NEEDS = {
    "loss": ("a loss value", lambda r: r.loss is not None or "val_loss" in r.metrics),
    "gradients": ("gradient norms", lambda r: bool(r.grad_norms)),
    "weights": ("per-unit weight means (unit_means, recorded by a WeightChord mapping)",
                lambda r: bool(r.unit_means)),
}


def mappings_with_data(records: list[TrainingStep]) -> list[str]:
    """The ``render --mapping`` choices (loss, gradients, weights) the records hold data for."""
    return [name for name, (_what, has) in MAPPING_NEEDS.items()
            if any(has(r) for r in records)]


def require_mapping_data(records: list[TrainingStep], mapping: str, source) -> None:
    """Raise a one-line error when ``mapping`` would sound nothing for these records.

    ``mapping`` is a ``render --mapping`` choice; ``"all"`` needs any one of the three.

    Raises
    ------
    AuralizeError
        Naming what the log lacks and which mappings it can play.
    """
    present = mappings_with_data(records)
    if mapping == "all":
        if not present:
            raise AuralizeError(f"{str(source)!r} holds no loss, gradient norms or weight "
                                "data to sonify")
        return
    if mapping in present:
        return
    what = MAPPING_NEEDS[mapping][0]
    hint = (f"use --mapping {' or --mapping '.join(present)}" if present
            else "it holds nothing auralize can sonify")
    raise AuralizeError(f"{str(source)!r} has no {what}, which --mapping {mapping} plays; {hint}")


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

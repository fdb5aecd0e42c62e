"""What is worth announcing in a run, and the words for it.

An :class:`Announcer` watches :class:`~auralize.sonify.telemetry.TrainingStep`
records and reports the moments a practitioner who cannot see the charts wants
to hear about: an epoch ended (with its numbers), a new best validation value,
the loss became NaN/Inf, training ended.  The same text is spoken (the
``speech`` mapping), shown in the page's live region, and captioned on the
``earcons`` mapping's sounds.  Pure logic: no audio, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from auralize.errors import AuralizeError
from auralize.sonify.telemetry import TrainingStep

#: the moments an announcer reports, in order of importance
KINDS = ("diverge", "best", "epoch", "end")
VERBOSITY = ("brief", "normal", "full")
#: metrics spoken at an epoch end (verbosity "normal"), those present, in this order
DEFAULT_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "eval_loss", "eval_accuracy")
#: validation losses watched for a "new best" when ``monitor`` is absent (Keras,
#: Lightning, Hugging Face), before falling back to the training loss
MONITOR_FALLBACKS = ("val_loss", "val/loss", "eval/loss", "eval_loss", "validation/loss")
#: words for metric-name parts, so "val_acc" is said "validation accuracy"
WORDS = {"val": "validation", "eval": "evaluation", "acc": "accuracy", "lr": "learning rate", "mse": "M S E",
         "mae": "M A E", "auc": "A U C", "f1": "F 1", "train": "training"}


@dataclass(frozen=True)
class Announcement:
    """One moment to announce: ``kind`` (see :data:`KINDS`) and the sentence for it."""

    kind: str
    text: str


def spoken_name(name: str) -> str:
    """``"val_accuracy"`` -> ``"validation accuracy"``; ``"train/loss"`` -> ``"training loss"``."""
    parts = [p for p in name.replace("/", "_").replace("-", "_").split("_") if p]
    return " ".join(WORDS.get(p.lower(), p) for p in parts)


def spoken_value(name: str, value: float) -> str:
    """A number as a listener wants it: accuracies in percent, two significant digits else."""
    if value is None or not math.isfinite(value):
        return "not a number" if value is None or math.isnan(value) else "infinite"
    if "acc" in name.lower() and 0.0 <= value <= 1.0:
        return f"{round(value * 100)} percent"
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = np.format_float_positional(value, precision=2, unique=True, fractional=False,
                                      trim="-")
    return text.rstrip(".")


def lower_is_better(name: str) -> bool:
    """Losses and errors improve downwards, accuracies and scores upwards."""
    low = name.lower()
    return not any(word in low for word in ("acc", "auc", "f1", "precision", "recall", "score"))


class Announcer:
    """Decides what to say at each step.

    Parameters
    ----------
    verbosity : {"brief", "normal", "full"}
        What an epoch end says: its number only; with ``metrics``; with every
        metric the record has.
    metrics : sequence of str, optional
        Metrics spoken at epoch ends (verbosity "normal"); default: those of
        :data:`DEFAULT_METRICS` present.
    monitor : str
        Metric whose improvement is a "new best" (default ``val_loss``; else
        one of :data:`MONITOR_FALLBACKS`; else the epoch's loss).
    kinds : sequence of str
        Which of :data:`KINDS` to announce.
    """

    def __init__(self, verbosity: str = "normal", metrics=None, monitor: str = "val_loss",
                 kinds=KINDS) -> None:
        if verbosity not in VERBOSITY:
            raise AuralizeError(f"verbosity must be one of {', '.join(VERBOSITY)}, "
                                f"not {verbosity!r}")
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise AuralizeError(f"cannot announce {unknown[0]!r}; choose from {', '.join(KINDS)}")
        self.verbosity = verbosity
        self.metrics = list(metrics) if metrics else list(DEFAULT_METRICS)
        self.monitor = monitor
        self.kinds = set(kinds)
        self.epochs = 0
        self.best: tuple[str, float] | None = None
        self.last_loss: float | None = None
        self._broken = False

    def epoch_values(self, record: TrainingStep) -> dict[str, float]:
        """The record's numbers by name, the epoch's loss under ``"loss"``."""
        values = {k: float(v) for k, v in record.metrics.items() if isinstance(v, (int, float))}
        if "loss" not in values and record.loss is not None:
            values["loss"] = float(record.loss)
        return values

    def _epoch_text(self, record: TrainingStep, values: dict[str, float]) -> str:
        words = [f"epoch {record.epoch + 1}"]
        if self.verbosity == "normal":
            names = [m for m in self.metrics if m in values]
        elif self.verbosity == "full":
            names = sorted(values, key=lambda n: (n.startswith("val"), n))
        else:
            names = []
        words += [f"{spoken_name(n)} {spoken_value(n, values[n])}" for n in names]
        return ", ".join(words)

    def _best(self, values: dict[str, float]) -> Announcement | None:
        name = next((n for n in (self.monitor, *MONITOR_FALLBACKS) if n in values), "loss")
        value = values.get(name)
        if value is None or not math.isfinite(value):
            return None
        previous = self.best
        if previous is not None and previous[0] != name:
            previous = None  # the monitored metric appeared later: start over
        better = previous is None or (value < previous[1] if lower_is_better(name)
                                      else value > previous[1])
        if not better:
            return None
        self.best = (name, value)
        if previous is None:
            return None  # the first epoch is trivially the best: nothing to celebrate
        return Announcement("best", f"new best {spoken_name(name)} {spoken_value(name, value)}")

    def step(self, record: TrainingStep) -> list[Announcement]:
        """What to announce for ``record`` (most important first)."""
        out = []
        loss = record.loss
        broken = loss is not None and not math.isfinite(loss)
        if broken and not self._broken:
            out.append(Announcement("diverge", f"warning: loss is {spoken_value('loss', loss)}"))
        self._broken = broken
        if loss is not None and math.isfinite(loss):
            self.last_loss = float(loss)
        if record.epoch_end:
            self.epochs += 1
            values = self.epoch_values(record)
            best = self._best(values)
            if best is not None:
                out.append(best)
            out.append(Announcement("epoch", self._epoch_text(record, values)))
        return [a for a in out if a.kind in self.kinds]

    def end(self) -> Announcement | None:
        """The training-end announcement (None when not wanted)."""
        if "end" not in self.kinds:
            return None
        words = ["training finished"]
        if self.epochs:
            words.append(f"{self.epochs} epoch{'s' if self.epochs != 1 else ''}")
        if self.best is not None:
            name, value = self.best
            words.append(f"best {spoken_name(name)} {spoken_value(name, value)}")
        elif self.last_loss is not None:
            words.append(f"last loss {spoken_value('loss', self.last_loss)}")
        return Announcement("end", ", ".join(words))

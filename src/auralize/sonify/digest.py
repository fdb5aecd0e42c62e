"""A digest: a whole run heard in a chosen length, with nothing alarming merged away.

A run of a million steps is a recording of many hours.  Its digest plays it in
a few minutes: the steps are merged into equal spans, one step-clock slot per
span, under the run's own mappings and step length.  What a span plays:

- its **alarming step**, when it has one: a non-finite loss or gradient norm
  (scored highest), or a spike: a loss (or the total gradient norm) more than
  ``spike_factor`` times the median of the ``window`` steps before it (the
  :class:`~auralize.sonify.mappings.Alarm` rule, judged on every step of the
  full run).  The most alarming step of a span wins, so a NaN or a x1000 spike
  anywhere in the run is heard in its slot: the loss tone jumps and the alarm
  sounds;
- otherwise its **last step** (the values the run had reached);
- in both cases with the span's metrics (the last value of each, so an epoch's
  ``val_loss`` is not lost) and ``epoch_end`` if any step of it ended an epoch.

:func:`render_log_digest` counts the log's steps (telemetry: its lines, without
parsing them), then reads it once through a :class:`DigestBuilder`, which holds
one record per slot: memory depends on the digest's length, not the run's.  A
session writes ``digest.wav`` at close the same way from its own telemetry, so
it equals ``auralize render RUN --digest``.
"""

from __future__ import annotations

import copy
import logging
import math
import statistics
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from auralize.errors import AuralizeError
from auralize.sonify.telemetry import TrainingStep
from auralize.sonify.timeline import SonifyConfig

log = logging.getLogger("auralize")

#: a recording longer than this (s) gets a digest at close (``Sonifier(digest_after_s=)``)
DIGEST_AFTER_S = 600.0
#: length of the digest written at close (s) (``Sonifier(digest_s=)``)
DIGEST_S = 180.0


@dataclass
class _Span:
    """Consecutive steps merged into one slot."""

    record: TrainingStep  # the step that plays: the most alarming, else the last
    score: float  # how alarming ``record`` is (0: not at all; inf: non-finite)
    steps: int = 1
    metrics: dict = field(default_factory=dict)
    epoch_end: bool = False

    def merge(self, later: _Span) -> _Span:
        """This span followed by ``later``: the more alarming step plays (ties: the later)."""
        metrics = dict(self.metrics)
        metrics.update(later.metrics)
        record = later.record if later.score >= self.score else self.record
        return _Span(record, max(self.score, later.score), self.steps + later.steps, metrics,
                     self.epoch_end or later.epoch_end)

    def as_record(self) -> TrainingStep:
        out = copy.copy(self.record)
        out.metrics = dict(self.metrics)
        out.epoch_end = self.epoch_end
        if isinstance(out.grad_norms, tuple):  # packed by DigestBuilder
            keys, values = out.grad_norms
            out.grad_norms = dict(zip(keys, values))
        return out

    def pack(self, key_cache: dict) -> None:
        """Hold the gradient norms as one array under a shared tuple of names (a closed span
        of a 1000-layer run: 8 KB instead of 100)."""
        norms = self.record.grad_norms
        if isinstance(norms, dict) and len(norms) > 8:
            keys = tuple(norms)
            keys = key_cache.setdefault(keys, keys)
            self.record = copy.copy(self.record)
            self.record.grad_norms = (keys, array("d", norms.values()))


class _Judge:
    """How alarming a step is, judged on the full-resolution run (the Alarm's spike rule)."""

    def __init__(self, spike_factor: float, window: int) -> None:
        self.spike_factor = float(spike_factor)
        self.losses: deque = deque(maxlen=int(window))
        self.grads: deque = deque(maxlen=int(window))

    def _ratio(self, value: float | None, recent: deque) -> float:
        if value is None or len(recent) < 5:
            return 0.0
        median = statistics.median(recent)
        ratio = value / median if median > 0 else 0.0
        return ratio if ratio > self.spike_factor else 0.0

    def score(self, record: TrainingStep) -> float:
        loss = record.loss
        norms = list(record.grad_norms.values())
        if (loss is not None and not math.isfinite(loss)) or any(
                v is None or not math.isfinite(v) for v in norms):
            return math.inf
        total = math.sqrt(sum(v * v for v in norms)) if norms else None
        score = max(self._ratio(loss, self.losses), self._ratio(total, self.grads))
        if loss is not None:
            self.losses.append(loss)
        if total is not None:
            self.grads.append(total)
        return score


class DigestBuilder:
    """Merges a run's steps, as they come, into at most ``slots`` spans of equal width.

    Parameters
    ----------
    slots : int
        Slots the digest has (its length over the step length).
    total_steps : int
        Steps in the run (a telemetry file's lines, counted beforehand): each
        span is ``ceil(total_steps / slots)`` steps, the last one possibly fewer.
    spike_factor, window : float, int
        The spike rule (as :class:`~auralize.sonify.mappings.Alarm`'s defaults).
    """

    def __init__(self, slots: int, total_steps: int, spike_factor: float = 3.0,
                 window: int = 20) -> None:
        if slots < 1:
            raise AuralizeError(f"a digest needs at least one slot, got {slots}")
        self.slots = int(slots)
        self.width = max(1, math.ceil(int(total_steps) / self.slots))  # steps per span
        self.spans: list[_Span] = []
        self._open: _Span | None = None
        self.steps = 0
        self._judge = _Judge(spike_factor, window)
        self._keys: dict = {}  # one tuple of gradient-norm names per distinct set

    def add(self, record: TrainingStep) -> None:
        span = _Span(record, self._judge.score(record), 1, dict(record.metrics),
                     bool(record.epoch_end))
        self.steps += 1
        self._open = span if self._open is None else self._open.merge(span)
        if self._open.steps >= self.width:
            self._open.pack(self._keys)
            self.spans.append(self._open)
            self._open = None

    def records(self) -> list[TrainingStep]:
        """The digest's records, one per span (more than ``slots`` only if the run grew)."""
        return list(self.iter_records())

    def iter_records(self):
        """:meth:`records`, made one at a time (what :func:`write_digest` streams)."""
        for span in self.spans + ([self._open] if self._open is not None else []):
            yield span.as_record()

    @property
    def steps_per_slot(self) -> int:
        return self.width


def digest_config(config: SonifyConfig, step_s: float) -> SonifyConfig:
    """The run's settings on the step clock with its step length (merged steps have no wall time)."""
    return SonifyConfig.from_dict(dict(config.to_dict(), clock="step", step_s=float(step_s)))


def slots_for(length_s: float, step_s: float, tail_s: float) -> int:
    """How many step slots fit in ``length_s`` seconds of digest."""
    if not length_s > 0:
        raise AuralizeError(f"the digest length must be positive, got {length_s:g} s")
    return max(1, int((length_s - tail_s) // step_s))


def parse_duration_s(text: str) -> float:
    """``"3min"``, ``"90s"``, ``"1h"``, ``"2.5m"`` or plain seconds -> seconds.

    Raises
    ------
    AuralizeError
        For anything else, or a length that is not positive.
    """
    units = {"h": 3600.0, "hour": 3600.0, "min": 60.0, "m": 60.0, "s": 1.0, "sec": 1.0, "": 1.0}
    raw = str(text).strip().lower()
    number = raw.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = raw[len(number):].strip()
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise AuralizeError(f"cannot read {text!r} as a length: write e.g. 3min, 90s or 1h") \
            from None
    if not (math.isfinite(value) and value > 0):
        raise AuralizeError(f"the digest length must be positive, got {text!r}")
    return value


class _Quiet(logging.Filter):
    """The digest's own alarm lines repeat what the run already said: keep them out of the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "the alarm sounds" not in record.getMessage()


def write_digest(path: str | Path, records, config: SonifyConfig,
                 step_s: float) -> tuple[Path, float]:
    """Render the digest's records (:meth:`DigestBuilder.iter_records`, read once) into ``path``.

    Returns ``(path, duration_s)``.
    """
    from auralize.sonify.stream import render_file

    cfg = digest_config(config, step_s)
    quiet = _Quiet()
    log.addFilter(quiet)
    try:
        (stream,), _frames = render_file([(records, cfg)], path)
    finally:
        log.removeFilter(quiet)
    return Path(path), stream.end_s()


def digest_builder(config: SonifyConfig, first: TrainingStep, total_steps: int,
                   length_s: float) -> tuple[DigestBuilder, float]:
    """A :class:`DigestBuilder` for a log of ``total_steps`` whose first record is ``first``,
    about ``length_s`` seconds long, and the step length it is played with (s)."""
    from auralize.sonify.timeline import Timeline

    timeline = Timeline(config)
    timeline.advance(first)
    step_s = float(timeline.step_s)
    return DigestBuilder(slots_for(length_s, step_s, config.tail_s), total_steps), step_s


def render_log_digest(log, config: SonifyConfig, out: str | Path,
                      length_s: float) -> tuple[int, float, int]:
    """The digest of ``log`` (a :class:`~auralize.sonify.log_stream.LogStream`), about
    ``length_s`` seconds long, into ``out``.

    Returns ``(steps, duration_s, steps_per_slot)``.
    """
    builder, step_s = digest_builder(config, log.first(), log.count(), length_s)
    for record in log.records():
        builder.add(record)
    _, duration_s = write_digest(out, builder.iter_records(), config, step_s)
    return builder.steps, duration_s, builder.steps_per_slot


__all__ = ["DIGEST_AFTER_S", "DIGEST_S", "DigestBuilder", "digest_builder", "digest_config",
           "parse_duration_s", "render_log_digest", "slots_for", "write_digest"]

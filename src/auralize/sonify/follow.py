"""Follow a training log as it grows and sonify each new step as it appears.

Any run can be heard this way, instrumented with auralize or not: a run folder
(``telemetry.jsonl``), a metrics CSV (appended, or rewritten as Lightning does),
or a TensorBoard event folder written by anything (``SummaryWriter``, Keras,
Lightning, Hugging Face's Trainer), also one synced from another machine.

Steps are placed on the wall clock at the moment they are read, so the sound
follows training; a burst (a CSV rewritten with many rows, history) is spread
``min_gap_s`` apart instead of sounding all at once.  The session's own
``telemetry.jsonl`` records those times, so its folder re-renders bit for bit.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from auralize.sonify.logs import LogTail
from auralize.sonify.telemetry import TrainingStep


class ArrivalClock:
    """Wall times for records as they arrive: now, but at least ``min_gap_s`` after the last.

    Times count from the first record (a hair above 0: the Sonifier treats 0 as
    "not set"), so live sound starts at once whenever following starts.
    """

    def __init__(self, min_gap_s: float = 0.05) -> None:
        self.min_gap_s = float(min_gap_s)
        self.t0: float | None = None
        self.last_s: float | None = None

    def stamp(self, record: TrainingStep, now: float | None = None) -> TrainingStep:
        now = time.monotonic() if now is None else now
        if self.t0 is None:
            self.t0 = now
        t_s = now - self.t0
        if self.last_s is not None:
            t_s = max(t_s, self.last_s + self.min_gap_s)
        self.last_s = t_s
        record.wall_time_s = t_s
        return record


def skip_history(tail: LogTail) -> int:
    """Move ``tail`` past what the log holds now; return how many steps that was.

    A ``telemetry.jsonl`` is skipped by counting lines, without parsing any; the
    others are read through in pieces (nothing is kept).
    """
    from auralize.sonify.logs import TelemetryTail

    if isinstance(tail.reader, TelemetryTail) or tail.reader is None and tail.kind is None \
            and (tail.path / "telemetry.jsonl").exists():
        if tail.reader is None:
            tail.reader = TelemetryTail(tail.path / "telemetry.jsonl")
        return tail.reader.skip_to_end()
    skipped = 0
    while batch := tail.poll():
        skipped += len(batch)
    return skipped


@dataclass
class FollowResult:
    """How following went: steps heard, history skipped, the kind of log."""

    steps: int = 0
    skipped: int = 0
    kind: str | None = None


def follow(path, sonifier, *, poll_s: float = 0.2, from_start: bool = False,
           min_gap_s: float = 0.05, idle_exit_s: float | None = None,
           stop: threading.Event | None = None, on_step=None,
           on_started=None) -> FollowResult:
    """Feed ``sonifier`` (clock ``"wall"``) every step that appears in the log at ``path``.

    Parameters
    ----------
    path : str or Path, or a tail
        Run folder, metrics CSV, ``.jsonl``, or TensorBoard event folder; or an
        object with ``poll() -> list[TrainingStep]`` and ``kind`` (an MLflow run:
        :class:`~auralize.trackers.mlflow_tail.MlflowTail`; following ends when
        its ``finished`` turns true and nothing new came).
    sonifier : Sonifier
        Receives the records (not closed here).
    poll_s : float
        Seconds between looks at the log.
    from_start : bool
        Also play what the log held when following began (spread ``min_gap_s``
        apart); default: only new steps, as ``tail -f``.
    idle_exit_s : float, optional
        Stop this many seconds after the last new step, once one was heard
        (None: run until ``stop`` is set or Ctrl-C).
    stop : threading.Event, optional
        Set it to end following.
    on_step : callable, optional
        Called with each record after it was logged.
    on_started : callable, optional
        Called once the log is open and its history read (skipped or queued):
        a step appended after that call is heard as a new step.
    """
    tail = path if hasattr(path, "poll") else LogTail(path)
    clock = ArrivalClock(min_gap_s)
    result = FollowResult()
    if not from_start:
        result.skipped = skip_history(tail)
    if on_started is not None:
        on_started()
    last_new = None  # the idle timer starts with the first step heard
    while stop is None or not stop.is_set():
        records = tail.poll()
        now = time.monotonic()
        for record in records:
            sonifier.log(clock.stamp(record, now))
            result.steps += 1
            if on_step is not None:
                on_step(record)
        if records:
            last_new = now
        elif idle_exit_s is not None and last_new is not None and now - last_new > idle_exit_s:
            break
        elif getattr(tail, "finished", False):  # the run ended and all of it was heard
            result.kind = tail.kind
            break
        result.kind = tail.kind
        if stop is not None:
            stop.wait(poll_s)
        else:
            time.sleep(poll_s)
    return result

"""The end of a run folder in one pass over its telemetry, while the recording finishes.

At close a session has three things to make from ``telemetry.jsonl``:
``metrics.csv``, and for a long run ``digest.wav`` (:mod:`auralize.sonify.digest`).
Each used to read the whole log; a :class:`ClosePass` reads it once for both,
on a thread that runs while the recording's worker renders what synthesis has
not caught up with yet (a fast run's backlog), so closing a long run costs the
longer of the two rather than their sum.  Both files are what
``metrics_csv_from_telemetry`` and ``auralize render RUN --digest`` write,
byte for byte; memory holds one digest record per slot.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

from auralize.sonify.run_folder import (
    DIGEST_NAME,
    METRICS_NAME,
    TELEMETRY_NAME,
    MetricsCsvSpool,
    metrics_row,
)


class ClosePass:
    """``metrics.csv`` and (``digest_s`` given) ``digest.wav`` of a run folder, on a thread.

    Parameters
    ----------
    out_dir : Path
        The run folder; its ``telemetry.jsonl`` is complete (closed).
    digest_s : float or None
        Length of the digest (s); ``None``: no digest.
    """

    def __init__(self, out_dir: Path, digest_s: float | None) -> None:
        self.out_dir = Path(out_dir)
        self.digest_s = digest_s
        self.metrics_path: Path | None = None
        self.digest_path: Path | None = None
        self.digest_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="auralize-close-pass", daemon=True)

    def start(self) -> ClosePass:
        self._thread.start()
        return self

    def result(self) -> tuple[Path | None, Path | None]:
        """Wait; ``(metrics_path, digest_path)``, ``None`` for what was not written.

        A digest that failed warns (the run's own files come first); a
        ``metrics.csv`` that failed is left to the caller to make (and report).
        """
        self._thread.join()
        if self.digest_error is not None:
            warnings.warn(f"auralize: the digest was not written ({self.digest_error})",
                          stacklevel=3)
        return self.metrics_path, self.digest_path

    def _run(self) -> None:
        from auralize.sonify.digest import digest_builder, write_digest
        from auralize.sonify.log_stream import open_log

        builder = step_s = log = None
        try:
            if self.digest_s is not None:
                log = open_log(self.out_dir)
                builder, step_s = digest_builder(log.config, log.first(), log.count(),
                                                 self.digest_s)
        except Exception as exc:  # noqa: BLE001 - reported by result()
            self.digest_error = f"{type(exc).__name__}: {exc}"
        try:
            from auralize.sonify.logs import TelemetryTail

            with MetricsCsvSpool() as spool:
                for record in TelemetryTail(self.out_dir / TELEMETRY_NAME):
                    spool.add(metrics_row(record))
                    if builder is not None:
                        builder.add(record)
                self.metrics_path = spool.write(self.out_dir / METRICS_NAME)
        except Exception as exc:  # noqa: BLE001 - the caller makes metrics.csv itself
            if builder is not None:
                self.digest_error = f"{type(exc).__name__}: {exc}"
            return
        if builder is not None:
            try:
                path = self.out_dir / DIGEST_NAME
                write_digest(path, builder.iter_records(), log.config, step_s)
                self.digest_path = path
            except Exception as exc:  # noqa: BLE001 - reported by result()
                self.digest_error = f"{type(exc).__name__}: {exc}"


__all__ = ["ClosePass"]

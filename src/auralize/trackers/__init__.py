"""Experiment trackers: a session's sound logged to the MLflow or W&B run in progress.

A :class:`~auralize.sonify.session.Sonifier` asks :func:`start_trackers` for the
trackers its ``log_to`` allows; each one found active (``mlflow.active_run()``,
``wandb.run``) gets, at every epoch end, that epoch's recording and spectrogram,
and at close the whole recording, its spectrogram and ``sonifier.json``.
Uploads run on one background thread per tracker (:mod:`.uploader`): training
never waits on a tracking server, and one that does not answer costs one
warning (the run folder is complete either way).

``auralize follow mlflow:RUN_ID`` and ``auralize render mlflow:RUN_ID`` read a
run's metrics back through :mod:`.mlflow_tail`.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings

from auralize.errors import AuralizeError

#: tracker names ``log_to`` accepts, with their extra
TRACKERS = {"mlflow": "mlflow", "wandb": "wandb"}
MLFLOW_PREFIX = "mlflow:"


def require_extra(module: str, extra: str) -> None:
    """A one-line error naming ``pip install auralize[extra]`` when ``module`` is missing."""
    if sys.modules.get(module) is not None:
        return
    try:
        spec = importlib.util.find_spec(module)
    except ValueError:  # an entry of None in sys.modules: the module is blocked
        spec = None
    if spec is None:
        raise AuralizeError(f"{module} is not installed: pip install auralize[{extra}]")


def resolve_log_to(log_to) -> tuple[tuple[str, ...], bool]:
    """``(names, explicit)`` from a ``log_to`` argument.

    ``"auto"`` (the default): every tracker whose run is active, looked for only
    when its package was already imported (a run cannot be active otherwise, and
    a session must not pay for importing MLflow).  A name or a sequence of names
    (``"mlflow"``, ``("mlflow", "wandb")``): those only, their packages required.
    ``()``, ``None`` or ``False``: none.
    """
    if log_to == "auto":
        return tuple(TRACKERS), False
    if log_to is None or log_to is False:
        return (), True
    names = (log_to,) if isinstance(log_to, str) else tuple(log_to)
    for name in names:
        if name not in TRACKERS:
            raise AuralizeError(f"log_to: unknown tracker {name!r} (choose from "
                                f"{', '.join(TRACKERS)}, or () for none)")
        require_extra(name, TRACKERS[name])
    return names, True


def _active(name: str, explicit: bool):
    """The tracker object for ``name`` if its run is active, else None."""
    if not explicit and name not in sys.modules:
        return None
    if name == "mlflow":
        from auralize.trackers.mlflow_tracker import MlflowTracker

        return MlflowTracker.if_active()
    from auralize.trackers.wandb_tracker import WandbTracker

    return WandbTracker.if_active()


class TrackerSet:
    """The trackers one session logs to, found when the session starts or later.

    A run started after the session (``watch(...)`` first, ``mlflow.start_run()``
    inside) is found at the next epoch end or at close.
    """

    def __init__(self, log_to="auto") -> None:
        self.names, self.explicit = resolve_log_to(log_to)
        self.trackers: dict = {}
        self.refresh()

    def refresh(self) -> list:
        for name in self.names:
            if name not in self.trackers:
                try:
                    tracker = _active(name, self.explicit)
                except Exception as exc:  # noqa: BLE001 - a tracker never breaks training
                    warnings.warn(f"auralize: cannot log to {name} ({exc}); training goes on",
                                  stacklevel=3)
                    tracker = None
                    self.names = tuple(n for n in self.names if n != name)
                if tracker is not None:
                    self.trackers[name] = tracker
        return list(self.trackers.values())

    def epoch_end(self, source, epoch: int, start_s: float, end_s: float) -> None:
        """Queue one epoch's recording (score seconds ``start_s``..``end_s``) for every tracker."""
        for tracker in self.refresh():
            tracker.epoch_end(source, epoch, start_s, end_s)
        self._say_warnings()

    def close(self, source, timeout_s: float = 30.0, final: bool = True) -> dict:
        """Queue the whole recording (``final``: there is one), wait up to ``timeout_s`` for the
        uploads; per-tracker stats."""
        trackers = self.refresh()
        if self.explicit:
            for name in self.names:
                if name not in self.trackers:
                    warnings.warn(f"auralize: log_to names {name} but no {name} run was active: "
                                  "nothing logged to it", stacklevel=3)
        for tracker in trackers if final else ():
            tracker.final(source)
        stats = {name: tracker.close(timeout_s) for name, tracker in self.trackers.items()}
        self._say_warnings()
        return stats

    def _say_warnings(self) -> None:
        """Each tracker's first failure, once, in the caller's (training) thread."""
        for tracker in self.trackers.values():
            message = tracker.take_warning()
            if message is not None:
                warnings.warn(message, TrackerWarning, stacklevel=4)


class TrackerWarning(UserWarning):
    """A tracker did not take the recording; training and the run folder are unaffected."""


__all__ = ["MLFLOW_PREFIX", "TRACKERS", "TrackerSet", "TrackerWarning", "require_extra", "resolve_log_to"]

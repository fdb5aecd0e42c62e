"""The session's sound as artifacts of the active MLflow run.

Layout in the run's artifacts (``auralize/``):

- ``auralize/epochs/epoch_NNNN.wav`` and ``.png``: each epoch's recording and
  spectrogram, uploaded at its end (each file once: the upload per epoch does
  not grow with the run);
- ``auralize/sonification.wav``, ``auralize/spectrogram.png``,
  ``auralize/sonifier.json``: at close, the whole recording as in the run folder
  (``auralize render mlflow:RUN_ID`` re-renders it bit for bit from the run's
  metrics only when they are auralize's telemetry; see :mod:`.mlflow_tail`).
"""

from __future__ import annotations

from pathlib import Path

from auralize.trackers.uploader import Tracker

ARTIFACT_DIR = "auralize"


class MlflowTracker(Tracker):
    """Uploads to one MLflow run through its own ``MlflowClient`` (thread-safe, no active-run state).

    Parameters
    ----------
    run_id : str
        The run to log to.
    tracking_uri : str
        Where its tracking server (or store) is, as MLflow resolved it when the
        session found the run.
    """

    label = "MLflow"

    def __init__(self, run_id: str, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.run_id = run_id
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        super().__init__()
        self.stats.extra["run_id"] = run_id

    @classmethod
    def if_active(cls) -> MlflowTracker | None:
        """A tracker for ``mlflow.active_run()`` (None when no run is active)."""
        import mlflow

        run = mlflow.active_run()
        if run is None:
            return None
        return cls(run.info.run_id, mlflow.get_tracking_uri())

    def send(self, kind, epoch, wav: Path, png: Path, config, samples, sample_rate) -> None:
        if kind == "epoch":
            for path in (wav, png):
                self.client.log_artifact(self.run_id, str(path), f"{ARTIFACT_DIR}/epochs")
            return
        # the names are the run folder's: sonification.wav, spectrogram.png, sonifier.json
        for path in (wav, png, config):
            if path is not None:
                self.client.log_artifact(self.run_id, str(path), ARTIFACT_DIR)

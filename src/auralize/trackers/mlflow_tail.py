"""An MLflow run's metrics read as training steps, once or as they arrive.

``auralize follow mlflow:RUN_ID`` and ``auralize render mlflow:RUN_ID`` read a
run that any process or machine logs to a tracking server (or a local store):
its metrics become :class:`~auralize.sonify.telemetry.TrainingStep` records by
the same rules as TensorBoard scalars (:mod:`auralize.sonify.logs`): the loss
key (``loss``, ``train_loss``...), gradient norms (``grad_norm/...``), ``epoch``,
and every other key as a metric; a step with ``val*``/``eval*`` metrics is an
epoch end.

Cost per poll: one ``GetRun`` (the latest value and step of every key).  Only
keys whose latest step moved are read further, and on a tracking server only
their new steps (the server's ``get-history-bulk-interval`` endpoint, from the
step after the last one read); a local store is read whole per changed key.
"""

from __future__ import annotations

import os

from auralize.errors import AuralizeError
from auralize.sonify.logs import GRAD_PREFIXES, LOSS_COLUMNS, is_validation
from auralize.sonify.telemetry import TrainingStep
from auralize.trackers import MLFLOW_PREFIX, require_extra

#: steps one history request asks for (the server's own cap is 2500 values)
PAGE_STEPS = 1000
BULK_ENDPOINT = "/api/2.0/mlflow/metrics/get-history-bulk-interval"
FINISHED = ("FINISHED", "FAILED", "KILLED")


def run_id_of(spec: str) -> str:
    """``RUN_ID`` from ``mlflow:RUN_ID`` (a one-line error when it is empty)."""
    run_id = spec[len(MLFLOW_PREFIX):].strip() if spec.startswith(MLFLOW_PREFIX) else spec
    if not run_id:
        raise AuralizeError("give the run as mlflow:RUN_ID (the ID shown in MLflow's run page)")
    return run_id


class MlflowTail:
    """One MLflow run's metrics as records: :meth:`poll` returns the steps new since the last.

    Parameters
    ----------
    run_id : str
        The run (``mlflow:`` prefix allowed).
    tracking_uri : str, optional
        Tracking server or store; default ``MLFLOW_TRACKING_URI`` (then MLflow's own default).

    Raises
    ------
    AuralizeError
        MLflow missing (names the extra), or the run not found / server not answering.
    """

    kind = "mlflow"

    def __init__(self, run_id: str, tracking_uri: str | None = None) -> None:
        require_extra("mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        self.run_id = run_id_of(run_id)
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or None
        self.client = MlflowClient(self.tracking_uri)
        self.last_step: dict[str, int] = {}
        self.latest: dict[str, tuple[int, int]] = {}
        self.loss_key: str | None = None
        self.keys: list[str] = []
        self.t0_ms: int | None = None
        self.finished = False
        self.polls = 0
        self.requests = 0
        self._get_run()  # a wrong ID or a dead server fails here, in one line

    def _get_run(self):
        self.requests += 1
        try:
            return self.client.get_run(self.run_id)
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds
            where = self.client.tracking_uri
            message = " ".join(str(exc).split())[:200]
            raise AuralizeError(f"cannot read MLflow run {self.run_id!r} at {where} "
                                f"({message})") from None

    def _history(self, key: str) -> list:
        """Values of ``key`` after ``self.last_step[key]``, in step order."""
        after = self.last_step.get(key, -1)
        store = self.client._tracking_client.store
        get_creds = getattr(store, "get_host_creds", None)
        if get_creds is None:  # a local store: its whole history (cheap on the same disk)
            self.requests += 1
            values = self.client.get_metric_history(self.run_id, key)
            return sorted((m for m in values if m.step > after), key=lambda m: (m.step, m.timestamp))
        from mlflow.entities import Metric
        from mlflow.utils.rest_utils import http_request

        out = []
        latest_step = self.latest[key][0]
        start = after + 1
        while start <= latest_step:
            self.requests += 1
            response = http_request(get_creds(), BULK_ENDPOINT, "GET", params={
                "run_ids": self.run_id, "metric_key": key, "start_step": start,
                "end_step": start + PAGE_STEPS - 1, "max_results": PAGE_STEPS})
            response.raise_for_status()
            out.extend(Metric(m["key"], float(m["value"]), int(m.get("timestamp", 0)),
                              int(m.get("step", 0))) for m in response.json().get("metrics", []))
            start += PAGE_STEPS
        return sorted(out, key=lambda m: (m.step, m.timestamp))

    def poll(self) -> list[TrainingStep]:
        """Records of the steps logged since the last poll, in step order."""
        self.polls += 1
        run = self._get_run()
        self.finished = run.info.status in FINISHED
        latest = {m.key: (int(m.step), int(m.timestamp)) for m in run.data._metric_objs}
        self.keys = sorted(latest)
        if self.loss_key is None:
            self.loss_key = next((k for k in LOSS_COLUMNS if k in latest), None)
        by_step: dict[int, TrainingStep] = {}
        for key, (step, stamp) in latest.items():
            if self.latest.get(key) == (step, stamp) or step <= self.last_step.get(key, -1):
                continue
            self.latest[key] = (step, stamp)
            try:
                values = self._history(key)
            except Exception as exc:  # noqa: BLE001
                raise AuralizeError(f"cannot read metric {key!r} of MLflow run {self.run_id!r} "
                                    f"({' '.join(str(exc).split())[:200]})") from None
            for metric in values:
                self._add(by_step, key, metric)
            if values:
                self.last_step[key] = max(self.last_step.get(key, -1), values[-1].step)
        return [by_step[s] for s in sorted(by_step)]

    def _add(self, by_step: dict, key: str, metric) -> None:
        if self.t0_ms is None:
            self.t0_ms = metric.timestamp
        record = by_step.setdefault(metric.step, TrainingStep(
            step=int(metric.step), wall_time_s=max(0.0, (metric.timestamp - self.t0_ms) / 1000.0)))
        prefix = next((p for p in GRAD_PREFIXES if key.startswith(p)), None)
        if key == self.loss_key:
            record.loss = metric.value
        elif prefix is not None:
            record.grad_norms[key[len(prefix):]] = metric.value
        elif key == "epoch" or key.endswith("/epoch"):
            record.epoch = int(metric.value)
        else:
            record.metrics[key] = metric.value
            record.epoch_end = record.epoch_end or is_validation(key)


def read_mlflow(spec: str, tracking_uri: str | None = None):
    """Records of a (finished or running) MLflow run, and its ``sonifier.json`` if auralize logged one.

    Raises
    ------
    AuralizeError
        No such run, server not answering, or a run without a loss metric.
    """
    from auralize.sonify.timeline import SonifyConfig
    from auralize.trackers.mlflow_tracker import ARTIFACT_DIR

    tail = MlflowTail(spec, tracking_uri)
    records = tail.poll()
    if tail.loss_key is None:
        raise AuralizeError(f"MLflow run {tail.run_id!r} has no loss metric (looked for "
                            f"{', '.join(LOSS_COLUMNS)}; found {', '.join(tail.keys) or 'none'})")
    config = None
    try:
        import json
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = tail.client.download_artifacts(tail.run_id, f"{ARTIFACT_DIR}/sonifier.json", tmp)
            with open(path) as handle:
                config = SonifyConfig.from_dict(json.load(handle))
    except Exception:  # noqa: BLE001 - a run auralize did not log has no settings: defaults
        config = None
    return records, config

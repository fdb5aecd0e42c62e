"""Ray Tune: the sweep's engine, a driver callback and a worker-side reporter.

Needs the ``ray`` extra (``pip install 'auralize[ray]'``); importing this module
without Ray raises a one-line :class:`~auralize.errors.AuralizeError` naming it.

In the style of Ray's own Keras / Lightning integrations, two pieces:

- **worker side**, :class:`TuneReporter`: a :class:`~auralize.sonify.session.Sonifier`
  (file only: workers need no sound card) that also calls ``tune.report`` every
  ``report_every`` steps and at every epoch end, with ``loss`` (mean over the
  steps since the last report), ``grad_norm`` (mean total gradient L2 norm),
  ``step``, ``epoch`` and the epoch's metrics (``val_loss``...);
- **driver side**, :class:`SweepSoundCallback`: a ``tune.Callback`` that turns
  the trials' lives into one piece of sound (:class:`~auralize.sweeps.sound.SweepSound`).

Complete example (a torch loop; ``auralize.torch.watch`` feeds the reporter)::

    import torch
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from auralize.sweeps.ray_tune import SweepSoundCallback, TuneReporter
    from auralize.torch import watch

    def trainable(config):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
        x, y = torch.randn(256, 8), torch.randn(256, 1)
        # leaving the blocks writes the trial's run folder
        with TuneReporter(f"/tmp/sweep/lr{config['lr']:g}", report_every=5,
                          mappings=["gradients", "alarm"]) as reporter, \
                watch(model, opt, sonifier=reporter) as w:
            for step in range(100):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                w.log_loss(loss)

    tuner = tune.Tuner(
        trainable,
        param_space={"lr": tune.grid_search([0.3, 0.1, 0.01, 0.001])},
        tune_config=tune.TuneConfig(metric="loss", mode="min",
                                    scheduler=ASHAScheduler(max_t=20, grace_period=2)),
        run_config=tune.RunConfig(callbacks=[SweepSoundCallback("/tmp/sweep/sweep.wav",
                                                                metric="loss", max_iterations=20)]),
    )
    tuner.fit()             # hear it live; /tmp/sweep/sweep.wav holds the whole sweep

``auralize sweep --engine ray`` runs the digits grid this way
(:func:`run_ray_sweep`, :func:`digits_trainable`).
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from dataclasses import asdict
from pathlib import Path

from auralize.errors import AuralizeError
from auralize.sonify.session import Sonifier
from auralize.sweeps.sound import SweepSound

RAY_MISSING = ("Ray Tune is not installed; install the extra: pip install 'auralize[ray]' "
               "(or pip install 'ray[tune]')")
CONNECT_TIMEOUT_S = 20.0
# A reused worker waits this long for a stopped trial's thread to finish closing its
# run folder (Tune's default, 2 s, is shorter than writing the WAV and spectrogram).
WORKER_ENV = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": "60"}
SUMMARY_NAME = "summary.json"

try:
    import ray
    from ray import tune
except ImportError:  # one line for the user, not a traceback
    raise AuralizeError(RAY_MISSING) from None


# -- worker side -------------------------------------------------------------------------
class TuneReporter(Sonifier):
    """A Sonifier that also reports to Ray Tune (worker side).

    Parameters
    ----------
    out_dir : str or Path, optional
        The trial's run folder (absolute: Tune changes the working directory).
    report_every : int
        Steps per ``tune.report`` (one Tune ``training_iteration``); an epoch end
        always reports, and starts the count again.
    live : bool
        Default ``False``: workers write files only.
    **kwargs
        Passed to :class:`~auralize.sonify.session.Sonifier`.

    Notes
    -----
    When the scheduler stops the trial, ``tune.report`` raises ``SystemExit`` in
    the training thread and Ray ends the worker right after: its telemetry
    (written line by line) is complete, but the renderer child is usually killed
    before the WAV is written.  :func:`auralize.sweeps.repair_run_folder` (what
    ``auralize sweep --engine ray`` does for every stopped trial) or ``auralize
    render`` rebuild it from the telemetry, identical to what it would have been.
    """

    def __init__(self, out_dir=None, *, report_every: int = 10, live: bool | str = False,
                 **kwargs) -> None:
        if int(report_every) < 1:
            raise AuralizeError(f"report_every must be at least 1, got {report_every}")
        super().__init__(out_dir, live=live, **kwargs)
        self.report_every = int(report_every)
        self._losses: list[float] = []
        self._grads: list[float] = []
        self.reports = 0

    def log(self, record) -> None:
        super().log(record)
        if record.loss is not None and math.isfinite(record.loss):
            self._losses.append(float(record.loss))
        elif record.loss is not None:
            self._losses.append(float("nan"))
        if record.grad_norms:
            self._grads.append(math.sqrt(sum(g * g for g in record.grad_norms.values())))
        if record.epoch_end or len(self._losses) >= self.report_every:
            self.report(record)

    def report(self, record) -> None:
        """``tune.report`` the steps since the last report (a no-op outside Tune)."""
        metrics = {"loss": _mean(self._losses), "grad_norm": _mean(self._grads),
                   "step": record.step, "epoch": record.epoch}
        metrics.update({k: float(v) for k, v in record.metrics.items()
                        if isinstance(v, (int, float))})
        self._losses, self._grads = [], []
        self.reports += 1
        if _in_tune():
            tune.report(metrics)


def _in_tune() -> bool:
    import warnings

    with warnings.catch_warnings():  # Ray warns when asked outside a trial
        warnings.simplefilter("ignore")
        return tune.get_context().get_trial_id() is not None


def _mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


# -- driver side -------------------------------------------------------------------------
class SweepSoundCallback(tune.Callback):
    """Hear a Tune run on the driver: one voice per running trial, earcons for events.

    Parameters
    ----------
    out : str or Path, optional
        Stereo WAV of the whole sweep (``<stem>.json`` beside it lists trials and
        event times).  Ignored when ``sound`` is given.
    metric, mode : str
        Result key and direction for the "new best" earcon.
    max_iterations : int, optional
        The scheduler's ``max_t`` (in ``training_iteration``): a trial stopped at
        it finished, one stopped before it was cut short (falling earcon).
        ``None``: every scheduler stop counts as early.
    sound : SweepSound, optional
        Share one sound with other code; else one is made at experiment setup.
    **sound_kwargs
        Passed to :class:`~auralize.sweeps.sound.SweepSound` (``live``, ``device``,
        ``loss_key``, ``grad_key``...).

    Attributes
    ----------
    summary : dict
        What :meth:`SweepSound.close` returned (after the experiment ended).
    """

    def __init__(self, out="sweep.wav", *, metric: str = "val_loss", mode: str = "min",
                 max_iterations: int | None = None, sound: SweepSound | None = None,
                 **sound_kwargs) -> None:
        self.sound = sound
        self._make = dict(out=out, metric=metric, mode=mode, **sound_kwargs)
        self.max_iterations = max_iterations
        self.summary: dict = {}
        self._cut: set[str] = set()

    def setup(self, **info) -> None:
        if self.sound is None:
            self.sound = SweepSound(**self._make)

    def _sound(self) -> SweepSound:
        self.setup()
        return self.sound

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._sound().trial_started(trial.trial_id, name=str(trial))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._sound().trial_result(trial.trial_id, result)
        # Tune marks a result "done" before callbacks see it when the scheduler or
        # a stopper ends the trial there; a trial that returns on its own is never
        # marked on a result callbacks see.
        reached = result.get("training_iteration", 0)
        if result.get("done") and (self.max_iterations is None or reached < self.max_iterations):
            self._cut.add(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if trial.trial_id in self._cut:
            self._sound().trial_stopped(trial.trial_id)
        else:
            self._sound().trial_completed(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._sound().trial_failed(trial.trial_id)

    def on_experiment_end(self, trials, **info) -> None:
        self.summary = self._sound().close()


class _ProgressCallback(tune.Callback):
    def __init__(self, bar) -> None:
        self.bar = bar

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.bar.update(1)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.bar.update(1)


# -- the digits grid on Tune -----------------------------------------------------------------
def digits_trainable(config: dict) -> None:
    """Tune trainable: one run of the digits grid (``auralize sweep``'s settings).

    ``config``: ``spec`` (a :class:`~auralize.sweeps.grid.RunSpec` as a dict), ``out_dir``
    (absolute), ``epochs``, ``batch_size``, ``seed``, ``report_every``.  Writes the
    run folder ``out_dir/<run name>`` and its ``summary.json`` (the results row).
    """
    from auralize.sweeps.grid import RUN_MAPPINGS, RunSpec, run_one

    spec = RunSpec(**config["spec"])
    run_dir = Path(config["out_dir"]) / spec.name
    reporter = TuneReporter(run_dir, report_every=config.get("report_every", 5),
                            mappings=list(RUN_MAPPINGS))
    try:
        row = run_one(spec, config["out_dir"], config["epochs"], config["batch_size"],
                      config["seed"], sonifier=reporter)
    finally:
        reporter.close()
    (run_dir / SUMMARY_NAME).write_text(json.dumps(row))


def reports_per_trial(epochs: int, batch_size: int, report_every: int, n_train: int) -> int:
    """Tune iterations one digits run reports (every ``report_every`` steps + epoch ends)."""
    steps = math.ceil(n_train / batch_size)
    return epochs * math.ceil(steps / report_every)


def _check_reachable(address: str, timeout_s: float) -> None:
    """Fail fast (one line) when nothing listens at ``host:port``."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms: Ray decides
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise AuralizeError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); "
                            f"start one with `ray start --head` or drop --address") from None


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address``, or start a local one; returns whether we started Ray.

    A cluster that does not answer raises :class:`AuralizeError` within
    ``CONNECT_TIMEOUT_S`` (+ the TCP check's 5 s).
    """
    if ray.is_initialized():
        return False
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
              "runtime_env": {"env_vars": WORKER_ENV}}
    if address is None:
        ray.init(num_cpus=num_cpus, **kwargs)
        return True
    _check_reachable(address, 5.0)
    failure: list[BaseException] = []

    def join() -> None:
        try:
            ray.init(address=address, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)

    thread = threading.Thread(target=join, name="auralize-ray-connect", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if thread.is_alive() or failure:
        why = f"{type(failure[0]).__name__}: {failure[0]}" if failure else (
            f"no answer in {CONNECT_TIMEOUT_S:.0f} s")
        raise AuralizeError(f"cannot join the Ray cluster at {address} ({why.splitlines()[0]})")
    return True


def run_ray_sweep(specs, out_dir: Path, *, jobs: int, epochs: int, batch_size: int,
                  seed: int = 0, address: str | None = None, scheduler: str = "asha",
                  report_every: int = 5, sound_out: Path | None = None,
                  live: bool | str = "auto", web: bool = False, progress: bool = True,
                  trainable=None, callbacks=()) -> tuple[list[dict], dict]:
    """Run the grid ``specs`` as Tune trials; return (results rows, driver sound summary).

    ``scheduler``: ``"asha"`` (ASHA on ``loss``, ``max_t`` = a full run's reports)
    or ``"fifo"`` (every trial runs to its end).  ``live``, ``web``: the driver's
    sweep sound on the speaker, on the live page.  ``trainable``: a function wrapping
    :func:`digits_trainable` (default: it); ``callbacks``: more ``tune.Callback`` s.
    """
    from tqdm import tqdm

    from auralize.digits import load_digits_data
    from auralize.sweeps.grid import RunSpec, error_row, repair_run_folder, stopped_row

    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    n_train = len(load_digits_data(seed=seed).x_train)
    max_t = reports_per_trial(epochs, batch_size, report_every, n_train)
    if scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # max_t one past a full run's reports: a run that gets to its end returns on
        # its own (writing its summary) instead of being stopped on its last report
        sched = ASHAScheduler(time_attr="training_iteration", max_t=max_t + 1,
                              grace_period=max(1, max_t // 4), reduction_factor=2)
    elif scheduler == "fifo":
        sched = None
    else:
        raise AuralizeError(f"unknown scheduler {scheduler!r}; choose asha or fifo")
    # Tune's own tables would interleave with the progress bar; results are in OUT/tune
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = connect(address, num_cpus=jobs)
    sound = SweepSoundCallback(sound_out, metric="val_loss", mode="min", max_iterations=max_t,
                               live=live, web=web)
    try:
        with tqdm(total=len(specs), desc="sweep (ray)", unit="run", disable=not progress) as bar:
            tuner = tune.Tuner(
                tune.with_resources(trainable or digits_trainable, {"cpu": 1}),
                param_space={"spec": tune.grid_search([asdict(s) for s in specs]),
                             "out_dir": str(out_dir), "epochs": epochs,
                             "batch_size": batch_size, "seed": seed,
                             "report_every": report_every},
                # reuse_actors: a worker imports torch and auralize once, not once per
                # trial (seconds each on a small machine)
                tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=sched,
                                            max_concurrent_trials=max(1, jobs),
                                            reuse_actors=True),
                run_config=tune.RunConfig(name="tune", storage_path=str(out_dir), verbose=0,
                                          callbacks=[sound, _ProgressCallback(bar),
                                                     *callbacks]),
            )
            grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    errors = {}
    for result in grid:
        if result.error is not None:
            cause = getattr(result.error, "cause", None) or result.error  # a RayTaskError's
            errors[RunSpec(**result.config["spec"]).name] = f"{type(cause).__name__}: {cause}"
    rows = []
    for spec in specs:
        run_dir = out_dir / spec.name
        summary = run_dir / SUMMARY_NAME
        if spec.name in errors:
            rows.append(error_row(spec, errors[spec.name].splitlines()[0]))
        elif summary.exists():
            rows.append(json.loads(summary.read_text()))
        else:  # stopped by the scheduler before its end: the folder holds what it did
            rows.append(stopped_row(spec, repair_run_folder(run_dir)))
    return rows, sound.summary

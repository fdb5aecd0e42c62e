"""Optuna: hear a study's trials on the driver (:class:`StudySound`).

Optuna calls a study's callbacks only when a trial ends, so :class:`StudySound`
also watches the study's storage from a thread (every ``poll_s``): a trial that
appears RUNNING starts its voice, each new intermediate value
(``trial.report(loss, step)``) moves it (a ``grad_norm`` user attribute, when
the objective sets one, sets its brightness), and the end state plays its
earcon: PRUNED -> "stopped", FAIL -> "error"; a COMPLETE value better than every
earlier one -> "best".  It works for in-process studies (``n_jobs``) and for
studies whose workers share an RDB storage.

Needs the ``sweep`` extra (``pip install 'auralize[sweep]'``).

Example::

    import optuna
    from auralize.sweeps.optuna_study import StudySound

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        loss = 1.0
        for step in range(50):
            loss *= 1 - min(lr, 0.5) * 0.1            # your training step here
            trial.set_user_attr("grad_norm", lr * 10)  # optional: brightness
            trial.report(loss, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return loss

    study = optuna.create_study(pruner=optuna.pruners.MedianPruner())
    with StudySound(study, "study.wav") as sound:
        study.optimize(objective, n_trials=8, n_jobs=2, callbacks=[sound])
"""

from __future__ import annotations

import threading

from auralize.errors import AuralizeError
from auralize.sweeps.sound import SweepSound

OPTUNA_MISSING = ("Optuna is not installed; install the extra: pip install 'auralize[sweep]' "
                  "(or pip install optuna)")

try:
    import optuna
except ImportError:
    raise AuralizeError(OPTUNA_MISSING) from None

GRAD_ATTR = "grad_norm"


class StudySound:
    """Study callback and storage watcher feeding a :class:`SweepSound`.

    Parameters
    ----------
    study : optuna.Study
        The study to hear (single objective).
    out : str or Path, optional
        Stereo WAV of the study (``<stem>.json`` beside it).
    poll_s : float
        How often the storage is read for running trials' reports.
    sound : SweepSound, optional
        Share one sound; else one is made (``**sound_kwargs``: ``live``, ``device``...).
    """

    def __init__(self, study, out="study.wav", *, poll_s: float = 0.1,
                 sound: SweepSound | None = None, **sound_kwargs) -> None:
        self.study = study
        mode = "max" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "min"
        self.sound = sound or SweepSound(out, metric="value", mode=mode, **sound_kwargs)
        self.poll_s = float(poll_s)
        self._seen: dict[int, int] = {}  # trial number -> intermediate values heard
        self._ended: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.summary: dict = {}
        self._thread = threading.Thread(target=self._watch, name="auralize-study-sound",
                                        daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll()

    def poll(self) -> None:
        """Bring the sound up to date with the study's storage."""
        with self._lock:
            for trial in self.study.get_trials(deepcopy=False):
                self._follow(trial)

    def _follow(self, trial) -> None:
        states = optuna.trial.TrialState
        number = trial.number
        if number in self._ended or trial.state == states.WAITING:
            return
        if number not in self._seen:
            self._seen[number] = 0
            self.sound.trial_started(number, name=f"trial {number}")
        steps = sorted(trial.intermediate_values)
        for step in steps[self._seen[number]:]:
            self.sound.trial_result(number, {"loss": trial.intermediate_values[step],
                                             "grad_norm": trial.user_attrs.get(GRAD_ATTR)})
        self._seen[number] = len(steps)
        if trial.state == states.RUNNING:
            return
        self._ended.add(number)
        if trial.state == states.COMPLETE:
            if trial.value is not None:
                self.sound.trial_result(number, {"value": trial.value})
            self.sound.trial_completed(number)
        elif trial.state == states.PRUNED:
            self.sound.trial_stopped(number)
        else:
            self.sound.trial_failed(number)

    def __call__(self, study, trial) -> None:
        """Optuna callback: the trial ended; sound its end now rather than at the next poll."""
        with self._lock:
            self._follow(trial)

    def close(self) -> dict:
        """Stop watching, sound what is left, finish the recording; returns its summary."""
        self._stop.set()
        self._thread.join(5)
        self.poll()
        self.summary = self.sound.close()
        return self.summary

    def __enter__(self) -> StudySound:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

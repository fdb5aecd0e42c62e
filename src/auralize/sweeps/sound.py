"""The sweep as one piece of sound on the driver: :class:`SweepSound`.

Integrations (the Ray Tune callback, the Optuna study callback, or your own
loop) tell a :class:`SweepSound` what happens to the trials: started, reported
a loss / gradient norm, stopped early, failed, completed.  It turns that into
events (:mod:`~auralize.sweeps.trial_voices`; earcons from the package's one
table, :data:`auralize.sonify.earcons.EARCONS`, played by a sampler voice per
trial) on the driver's clock and sends them to the same outputs a training
session has (:class:`~auralize.sonify.outputs.Outputs`):

- the **stereo** recording, rendered by the recording worker process: every
  event is scheduled ``LEAD_S`` after the moment it was reported and sent with
  that moment as the frontier, so nothing lands in audio already written: the
  file equals an offline render of ``events`` (:func:`render_events`);
- the speaker and the page, placed by the session's live clock: each trial at
  its position as in the file (a mono device gets the mix);
- ``<wav stem>.json`` next to the WAV: the trials (voice, register, position)
  and every trial event with its time, to find them in the audio.

Nothing waits on audio: each call costs a few event objects and a lock.
"""

from __future__ import annotations

import json
import math
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from auralize.audio.engine import Engine
from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sonify.earcons import earcon_duration_s, earcon_play
from auralize.sonify.outputs import Outputs
from auralize.sonify.timeline import SonifyConfig
from auralize.sweeps.trial_voices import TrialVoice

LEAD_S = 0.05
TAIL_S = 1.0
BEST_REPEAT_S = 2.0
BEST_MIN_GAIN = 0.01
EVENT_KINDS = ("start", "stopped", "error", "best", "complete")
#: the earcons a sweep plays (names in :data:`auralize.sonify.earcons.EARCONS`)
SWEEP_EARCONS = ("start", "stopped", "error", "best")


def _placed(event: Event, pan: float) -> Event:
    """``event`` with a voice it creates placed at ``pan``."""
    if event.param != "add":
        return event
    return replace(event, value={**event.value, "pan": float(pan)})


def earcon_events(kind: str, t_s: float, voice: str) -> list[Event]:
    """Earcon ``kind`` played from ``t_s`` by the sampler voice ``voice``."""
    return [Event(t_s, voice, "play", earcon_play(kind))]


def sweep_config(sample_rate: int = 44100, master_gain: float = 0.5) -> SonifyConfig:
    """The outputs' settings of a sweep: stereo, no mappings (events come from the trials)."""
    return SonifyConfig(mappings=[], sample_rate=int(sample_rate), master_gain=float(master_gain),
                        tail_s=TAIL_S, channels=2)


def render_events(events: list[tuple[Event, float]], duration_s: float, *, sample_rate: int = 44100,
                  master_gain: float = 0.5) -> np.ndarray:
    """Offline stereo render of ``(event, pan)`` pairs: float32 array (frames, 2)."""
    engine = Engine(sample_rate, **sweep_config(sample_rate, master_gain).engine_kwargs())
    for event, pan in events:
        engine.schedule(_placed(event, pan))
    return engine.render(int(round(duration_s * sample_rate)))


class SweepSound:
    """Hear a sweep: one voice per running trial, earcons for trial events.

    Parameters
    ----------
    out : str or Path, optional
        Stereo WAV to record (and ``<stem>.json`` beside it); ``None``: no file.
    live : bool or "auto"
        Also play on a sound device (``"auto"``: when one exists).
    device : int or str, optional
        Output device for ``live``.
    metric, mode : str
        The result key that decides "new best" (e.g. ``"val_loss"``, ``"min"``).
    loss_key, grad_key : str
        Result keys the voices follow (pitch, brightness).
    sample_rate : int
        Hz.
    master_gain : float
        Engine gain in [0, 1] before the limiter.
    web, web_host, web_port, web_token
        Also serve the live page (:class:`~auralize.web.bridge.WebSink`, in stereo
        like the speaker): its mixer lists every trial's voice (``trial<k>``) and its
        earcons (``trial<k>.events``), to mute or solo.  ``web_url`` holds its URL.

    Examples
    --------
    >>> with SweepSound("sweep.wav", live=False) as sound:   # doctest: +SKIP
    ...     sound.trial_started("a")
    ...     sound.trial_result("a", {"loss": 2.3, "grad_norm": 1.0})
    ...     sound.trial_completed("a")
    """

    def __init__(self, out: str | Path | None = "sweep.wav", *, live: bool | str = "auto",
                 device: int | str | None = None, metric: str = "val_loss", mode: str = "min",
                 loss_key: str = "loss", grad_key: str = "grad_norm", sample_rate: int = 44100,
                 master_gain: float = 0.5, web: bool = False, web_host: str = "127.0.0.1",
                 web_port: int = 8765, web_token: str | None = None) -> None:
        if mode not in ("min", "max"):
            raise AuralizeError(f"mode must be 'min' or 'max', not {mode!r}")
        self.out = Path(out) if out is not None else None
        self.metric, self.mode = metric, mode
        self.loss_key, self.grad_key = loss_key, grad_key
        self.sample_rate = int(sample_rate)
        self.master_gain = float(master_gain)
        self.voices: dict[str, TrialVoice] = {}
        self.events: list[tuple[Event, float]] = []  # (event, pan): what the file holds
        self.log: list[dict] = []  # trial events with times, for the JSON sidecar
        self.best: float | None = None
        self.best_trial: str | None = None
        self._best_heard: tuple[float, float] = (math.nan, -math.inf)  # (value, time)
        self._lock = threading.Lock()
        self._closed = False
        self._earcon_voices: set[str] = set()
        self._warned = False
        self.config = sweep_config(self.sample_rate, self.master_gain)
        recording = None
        if self.out is not None:
            from auralize.sonify.targets import FileRecording

            self.out.parent.mkdir(parents=True, exist_ok=True)
            recording = FileRecording(self.config, self.out, events=True)
        self.outputs = Outputs(self.config, recording)
        if live:
            self.outputs.start_speaker(device, required=live is True)
        if web:
            self.web_url = self.outputs.start_page("sweep", web_host, web_port, web_token)
            if self.web_url is not None:
                print(f"auralize: live page of the sweep at {self.web_url}", flush=True)
        else:
            self.web_url = None
        self.t0_wall = time.time()
        self._t0 = time.perf_counter()

    # -- clock and output -----------------------------------------------------------
    def now_s(self) -> float:
        """Seconds since the sweep sound started (the recording's time axis)."""
        return time.perf_counter() - self._t0

    def _emit(self, events: list[Event], pan: float, t_s: float) -> None:
        """Events of one report (from ``t_s`` on the sweep clock, ``LEAD_S`` after it was
        reported) at ``pan``: to the file (rendered up to the report's moment) and live."""
        placed = [_placed(e, pan) for e in events]
        self.events.extend((e, pan) for e in events)
        try:
            self.outputs.send(placed, t_s, t_s - LEAD_S, 0.0, self._t0 + t_s - LEAD_S)
        except AuralizeError as exc:  # the recording failed: warn once, the sweep goes on
            if not self._warned:
                self._warned = True
                warnings.warn(f"auralize: {exc}", stacklevel=4)

    # -- what integrations call ------------------------------------------------------------
    def _voice(self, trial_id) -> TrialVoice:
        key = str(trial_id)
        if key not in self.voices:
            self.voices[key] = TrialVoice(key, len(self.voices))
        return self.voices[key]

    def _earcon(self, kind: str, t_s: float, voice: TrialVoice) -> list[Event]:
        """Earcon ``kind`` at the trial's place: played by its sampler voice, made on first use."""
        events = []
        if voice.events_name not in self._earcon_voices:
            self._earcon_voices.add(voice.events_name)
            # clock phase: two trials' earcons a fraction of a period apart add up
            events.append(Event(t_s, voice.events_name, "add", {"kind": "sampler",
                                                                "clock_phase": True}))
        return events + earcon_events(kind, t_s, voice.events_name)

    def _note(self, kind: str, trial_id, t_s: float, **extra) -> None:
        self.log.append({"t_s": round(t_s, 4), "event": kind, "trial_id": str(trial_id), **extra})

    def trial_started(self, trial_id, name: str | None = None) -> None:
        """A trial began: its voice fades in, the start earcon plays at its position."""
        with self._lock:
            if self._closed:
                return
            t = self.now_s() + LEAD_S
            voice = self._voice(trial_id)
            self._note("start", trial_id, t, name=name or str(trial_id))
            self._emit(voice.start_events(t) + self._earcon("start", t, voice), voice.pan, t)

    def trial_result(self, trial_id, result: dict) -> None:
        """A trial reported: its voice follows ``loss_key`` and ``grad_key``; a better
        ``metric`` than any before plays the "best" earcon (see :meth:`_is_news`)."""
        with self._lock:
            if self._closed:
                return
            t = self.now_s() + LEAD_S
            voice = self._voice(trial_id)
            events = voice.report_events(t, result.get(self.loss_key), result.get(self.grad_key))
            value = result.get(self.metric)
            if (isinstance(value, (int, float)) and math.isfinite(value)
                    and self._is_news(float(value), str(trial_id), t)):
                self._note("best", trial_id, t, value=float(value))
                events += self._earcon("best", t, voice)
            if events:
                self._emit(events, voice.pan, t)

    def _is_news(self, value: float, trial_id: str, t_s: float) -> bool:
        """Record a new best ``value``; whether it earns the "best" earcon.

        The first value is no news.  A record taken from another trial always is;
        a trial bettering its own record is when ``BEST_REPEAT_S`` have passed since
        the last "best" earcon and it beats the value heard then by
        ``BEST_MIN_GAIN`` (relative): a training loss falling every report must
        not ring every report.
        """
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is not None and not sign * value < sign * self.best:
            return False
        previous, holder = self.best, self.best_trial
        self.best, self.best_trial = value, trial_id
        if previous is None:
            self._best_heard = (value, -math.inf)
            return False
        heard_value, heard_t = self._best_heard
        news = holder != trial_id or (
            t_s - heard_t >= BEST_REPEAT_S
            and sign * (heard_value - value) >= BEST_MIN_GAIN * abs(heard_value))
        if news:
            self._best_heard = (value, t_s)
        return news

    def _end(self, trial_id, kind: str, earcon: str | None) -> None:
        with self._lock:
            if self._closed or str(trial_id) not in self.voices:
                return
            t = self.now_s() + LEAD_S
            voice = self.voices[str(trial_id)]
            self._note(kind, trial_id, t)
            events = voice.end_events(t)
            if earcon:
                events += self._earcon(earcon, t, voice)
            if voice.events_name in self._earcon_voices:
                # the trial's earcon voice goes once its last earcon has sounded
                self._earcon_voices.discard(voice.events_name)
                longest_s = max(earcon_duration_s(kind) for kind in SWEEP_EARCONS)
                events.append(Event(t + longest_s + 0.1, voice.events_name, "remove"))
            self._emit(events, voice.pan, t)

    def trial_stopped(self, trial_id) -> None:
        """A scheduler or pruner stopped the trial early: falling earcon, voice fades."""
        self._end(trial_id, "stopped", "stopped")

    def trial_failed(self, trial_id) -> None:
        """The trial raised: error earcon, voice fades."""
        self._end(trial_id, "error", "error")

    def trial_completed(self, trial_id) -> None:
        """The trial ran to its end: its voice fades out (no earcon)."""
        self._end(trial_id, "complete", None)

    # -- the end -------------------------------------------------------------------------
    def close(self) -> dict:
        """Finish the recording (``TAIL_S`` after the last event) and write the sidecar.

        Returns
        -------
        dict
            ``wav``, ``json`` (paths or None), ``duration_s``, ``trials`` and
            ``live`` (LiveOutput statistics: ``underruns``...; empty without a device),
            ``web`` (the page's) and ``engine`` (the recording's).
        """
        with self._lock:
            if self._closed:
                return self.summary
            last = max((e.time_s for e, _ in self.events if e.time_s is not None), default=0.0)
            end_s = max(self.now_s(), last) + TAIL_S
            self._closed = True
        engine, outputs = self.outputs.close(end_s)
        if self.outputs.error is not None:  # warned, not raised: the sweep's results come first
            warnings.warn(f"auralize: the sweep's recording failed: {self.outputs.error}",
                          stacklevel=2)
        live, web = outputs.get("live", {}), outputs.get("web", {})
        self.summary = {"wav": str(self.out) if self.out else None, "json": None,
                        "duration_s": end_s, "t0_wall": self.t0_wall,
                        "sample_rate": self.sample_rate,
                        "trials": [v.describe() for v in self.voices.values()],
                        "events": self.log, "live": live, "web": web, "engine": engine}
        if self.out is not None:
            sidecar = self.out.with_suffix(".json")
            self.summary["json"] = str(sidecar)
            sidecar.write_text(json.dumps(self.summary, indent=1, default=str))
        return self.summary

    def __enter__(self) -> SweepSound:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

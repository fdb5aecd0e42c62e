"""The sweep as one piece of sound on the driver: :class:`SweepSound`.

Integrations (the Ray Tune callback, the Optuna study callback, or your own
loop) tell a :class:`SweepSound` what happens to the trials: started, reported
a loss / gradient norm, stopped early, failed, completed.  It turns that into
events (:mod:`~auralize.sweeps.trial_voices`, :mod:`~auralize.sweeps.earcons`)
on the driver's wall clock and

- records them as a **stereo** WAV: one two-channel engine, each trial's voice
  and earcons at its own position (the voices' ``pan``, equal-power); a thread
  renders up to "now" every ``RENDER_EVERY_S``, and every event is scheduled
  ``LEAD_S`` after the moment it was reported, under one lock, so nothing lands
  in audio already written: the file equals an offline render of ``events``
  (:func:`render_events`);
- plays the same events live, when a sound device exists, through
  :class:`~auralize.audio.live.LiveOutput` with a two-channel engine: the
  speaker pans like the file (a mono device gets the mix);
- writes ``<wav stem>.json`` next to the WAV: the trials (voice, register,
  position) and every trial event with its time, to find them in the audio.

Nothing waits on audio: each call costs a few event objects and a lock.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from auralize.audio.engine import Engine
from auralize.audio.live import LIVE_MARGIN_S, STEADY_LEAD_S
from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sweeps.earcons import EARCONS, duration_s, earcon_events
from auralize.sweeps.trial_voices import TrialVoice

LEAD_S = 0.05
RENDER_EVERY_S = 0.1
TAIL_S = 1.0
BEST_REPEAT_S = 2.0
BEST_MIN_GAIN = 0.01
EVENT_KINDS = ("start", "stopped", "error", "best", "complete")


def _placed(event: Event, pan: float) -> Event:
    """``event`` with a voice it creates placed at ``pan``."""
    if event.param != "add":
        return event
    return replace(event, value={**event.value, "pan": float(pan)})


def render_events(events: list[tuple[Event, float]], duration_s: float, *, sample_rate: int = 44100,
                  master_gain: float = 0.5) -> np.ndarray:
    """Offline stereo render of ``(event, pan)`` pairs: float32 array (frames, 2)."""
    engine = Engine(sample_rate, channels=2, master_gain=master_gain)
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
        self._engine = Engine(self.sample_rate, channels=2, master_gain=self.master_gain)
        self._sink = None
        self._closed = False
        self._live = None
        self._web = None
        self.web_url: str | None = None
        self.t0_wall = time.time()
        self._t0 = time.perf_counter()
        if self.out is not None:
            from auralize.audio.sinks import FileSink

            self.out.parent.mkdir(parents=True, exist_ok=True)
            self._sink = FileSink(self.out, self.sample_rate, channels=2)
        if live:
            self._start_live(device, required=live is True)
        if web:
            self._start_web(web_host, web_port, web_token)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._render_loop, name="auralize-sweep-sound",
                                        daemon=True)
        self._thread.start()

    # -- clock and output -----------------------------------------------------------
    def now_s(self) -> float:
        """Seconds since the sweep sound started (the recording's time axis)."""
        return time.perf_counter() - self._t0

    def _start_live(self, device, required: bool) -> None:
        from auralize.audio import devices

        if devices.load_sounddevice(warn=required) is None:
            return
        if devices.choose_output_device(device, warn=required) is None:
            return
        from auralize.audio.live import LiveOutput

        self._live = LiveOutput(self.sample_rate, device=device, lead_s=STEADY_LEAD_S,
                                engine_kwargs={"master_gain": self.master_gain,
                                               "channels": 2}).start()

    def _start_web(self, host: str, port: int, token: str | None) -> None:
        from auralize.web.bridge import WebSink

        self._web = WebSink(self.sample_rate, host=host, port=port, token=token,
                            engine_kwargs={"master_gain": self.master_gain, "channels": 2},
                            title="sweep")
        self.web_url = self._web.start()
        if self.web_url is None:
            self._web = None
        else:
            print(f"auralize: live page of the sweep at {self.web_url}", flush=True)

    def _emit(self, events: list[Event], pan: float) -> None:
        """Schedule ``events`` (times on the sweep clock) at ``pan``, in the file and live."""
        placed = [_placed(e, pan) for e in events]
        self.events.extend((e, pan) for e in events)
        for event in placed:
            self._engine.schedule(event)
        if self._web is None and self._live is None:
            return
        # Live: each event at its wall-clock moment (sweep time + start), a lead later so
        # that it reaches the synthesis in time (see auralize.audio.live_clock).
        at_wall = self._t0 + LIVE_MARGIN_S - LEAD_S  # events are already LEAD_S after "now"
        live = [replace(e, time_s=None if e.time_s is None else e.time_s + at_wall)
                for e in placed]
        if self._web is not None:
            self._web.send_events(live)
        if self._live is not None:
            self._live.send_at_wall(live)

    def _render_to(self, t_s: float) -> None:
        if self._sink is None:
            return
        chunk = self._engine.chunk_size
        target = int(t_s * self.sample_rate) // chunk * chunk
        n = target - self._engine.frames_rendered
        if n > 0:
            self._sink.write(self._engine.render(n))

    def _render_loop(self) -> None:
        while not self._stop.wait(RENDER_EVERY_S):
            with self._lock:
                if not self._closed:
                    self._render_to(self.now_s())

    # -- what integrations call ------------------------------------------------------------
    def _voice(self, trial_id) -> TrialVoice:
        key = str(trial_id)
        if key not in self.voices:
            self.voices[key] = TrialVoice(key, len(self.voices))
        return self.voices[key]

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
            self._emit(voice.start_events(t) + earcon_events("start", t, voice.events_name), voice.pan)

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
                events += earcon_events("best", t, voice.events_name)
            if events:
                self._emit(events, voice.pan)

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
                events += earcon_events(earcon, t, voice.events_name)
            # the trial's earcon voice goes once its last earcon has sounded
            events.append(Event(t + max(map(duration_s, EARCONS)) + 0.1, voice.events_name,
                                "remove"))
            self._emit(events, voice.pan)

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
            ``live`` (LiveOutput statistics: ``underruns``...; empty without a device).
        """
        with self._lock:
            if self._closed:
                return self.summary
            last = max((e.time_s for e, _ in self.events if e.time_s is not None), default=0.0)
            end_s = max(self.now_s(), last) + TAIL_S
            self._render_to(end_s)
            self._closed = True
        self._stop.set()
        self._thread.join(5)
        if self._sink is not None:
            tail = int(round(end_s * self.sample_rate)) - self._engine.frames_rendered
            if tail > 0:
                self._sink.write(self._engine.render(tail))
            self._sink.close()
        web = self._web.close() if self._web is not None else {}
        live = {}
        if self._live is not None:
            time.sleep(max(0.0, min(TAIL_S, end_s - self.now_s())))
            live = self._live.close().to_dict()
        self.summary = {"wav": str(self.out) if self.out else None, "json": None,
                        "duration_s": end_s, "t0_wall": self.t0_wall,
                        "sample_rate": self.sample_rate,
                        "trials": [v.describe() for v in self.voices.values()],
                        "events": self.log, "live": live, "web": web}
        if self.out is not None:
            sidecar = self.out.with_suffix(".json")
            self.summary["json"] = str(sidecar)
            sidecar.write_text(json.dumps(self.summary, indent=1, default=str))
        return self.summary

    def __enter__(self) -> SweepSound:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

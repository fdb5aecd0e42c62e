"""One sound session's outputs: the recording, the speaker, the page, on one live clock.

Both sessions that make sound use it: the training session
(:class:`~auralize.sonify.session.Sonifier`) and the sweep
(:class:`~auralize.sweeps.sound.SweepSound`).  What is added here (a new
output, a change of clock) is heard in both.

- the **recording** (:mod:`~auralize.sonify.targets`): rendered in the recording
  worker process up to the frontier given with each batch of events, in score
  time, so the file equals an offline render of the same events;
- the **live targets** (speaker, page, notebook): each batch of events is placed
  once in wall-clock time by the :class:`~auralize.sonify.live_clock.LiveClock`
  and every live target gets the same placement;
- the **run folder** (:mod:`~auralize.sonify.run_folder`): telemetry, metrics,
  ``sonifier.json`` (a training run; a sweep has none).

Nothing here waits on audio: ``send`` costs the clock arithmetic and queue puts.
"""

from __future__ import annotations

import time

from auralize.audio.live.output import STEADY_LEAD_S
from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sonify.live_clock import DEFAULT_MAX_LAG_S, LIVE_MARGIN_S, LiveClock
from auralize.sonify.run_folder import RunFolder
from auralize.sonify.timeline import SonifyConfig


def check_max_lag_s(max_lag_s, name: str = "max_lag_s", scale: float = 1.0) -> float:
    """``max_lag_s`` if usable; else a one-line error (``name`` and ``scale``: as the user wrote it)."""
    number = isinstance(max_lag_s, (int, float))
    if not (number and max_lag_s > LIVE_MARGIN_S):
        given = f"{max_lag_s * scale:g}" if number else repr(max_lag_s)
        raise AuralizeError(f"{name} must be more than {LIVE_MARGIN_S * scale:g} (the live output's "
                            f"lead), got {given}")
    return float(max_lag_s)


class Outputs:
    """Where a session's events go.

    Parameters
    ----------
    config : SonifyConfig
        Sample rate, channels and gain of every output.
    recording : FileRecording, MemoryRecording or None
        The recording target (None: nothing is recorded).
    folder : RunFolder, optional
        The run folder (default: none, ``RunFolder(None)``).
    max_lag_s : float
        Live sound only: the longest a batch of events may wait before it is
        heard (see :mod:`auralize.sonify.live_clock`).
    """

    def __init__(self, config: SonifyConfig, recording=None, *, folder: RunFolder | None = None,
                 max_lag_s: float = DEFAULT_MAX_LAG_S) -> None:
        self.config = config
        self.recording = recording
        self.folder = folder if folder is not None else RunFolder(None)
        # Training sound is not an instrument: latency nobody needs is traded for
        # headroom against dropouts (STEADY_LEAD_S); the clock places events beyond it.
        self.live_clock = LiveClock(max_lag_s=check_max_lag_s(max_lag_s), margin_s=LIVE_MARGIN_S)
        self.live_targets: list = []
        self.web_url: str | None = None
        self.last_send_s = time.perf_counter()

    # -- live targets ---------------------------------------------------------------------
    def start_speaker(self, device, required: bool) -> bool:
        """Play on a sound device (``required``: warn when there is none); False without one."""
        from auralize.audio.live import devices
        from auralize.sonify.targets import SpeakerTarget

        if devices.load_sounddevice(warn=required) is None:
            return False
        if devices.choose_output_device(device, warn=required) is None:
            return False
        self.live_targets.append(SpeakerTarget(self.config, device, STEADY_LEAD_S))
        return True

    def start_page(self, title: str, host: str, port: int, token: str | None) -> str | None:
        """Serve the live page; its URL (None when it could not start)."""
        from auralize.sonify.targets import PageTarget

        page = PageTarget(self.config, title, host, port, token)
        if page.url is not None:
            self.live_targets.append(page)
            self.web_url = page.url
        return page.url

    def target(self, kind: type):
        """The live target of class ``kind``, or None."""
        return next((t for t in self.live_targets if isinstance(t, kind)), None)

    # -- the events ---------------------------------------------------------------------
    @property
    def error(self) -> str | None:
        return None if self.recording is None else self.recording.error

    def send(self, events: list[Event], t_s: float, frontier_s: float, step_s: float,
             now_s: float, record=None) -> None:
        """Events of one step (score time ``t_s``, slot ``step_s``) to every output.

        ``frontier_s``: no later step adds events before it (score time);
        ``now_s``: ``time.perf_counter()`` when the step was logged;
        ``record``: the step's record, for the run folder's telemetry (which the
        recording worker of a training run reads) and the page's charts.
        """
        if self.recording is not None:
            self.recording.send(events, frontier_s)
            if self.recording.error is not None:
                raise AuralizeError(f"audio rendering failed: {self.recording.error}")
        if self.live_targets:
            self.last_send_s = now_s
            live = self.live_clock.place(events, t_s, step_s, now_s)
            # the step as the clock placed it, in score time, for the page: it plays the
            # step frame by frame as the file has it (see web.sources.LiveSource)
            placed = ((self.live_clock.last_start_s, self.live_clock.last_score_events, step_s)
                      if live else None)
            for target in self.live_targets:
                target.send(live, now_s, record, t_s, placed)
        if record is not None:
            self.folder.add_step(record)

    def close(self, end_s: float, *, steps: int = 0, final: list[Event] = (),
              final_t_s: float = 0.0, outlast_s: float = 0.0) -> tuple[dict, dict]:
        """Finish every output; ``(recording statistics, {stats_key: live statistics})``.

        ``final``: the last events (score time, from ``final_t_s``), heard live as a
        last step; ``outlast_s``: how long their sound outlasts them (a sentence).
        Live sound ends with the last events placed plus ``tail_s``.
        """
        now = time.perf_counter()
        final = list(final)
        live_final = self.live_clock.place(final, final_t_s, 0.0, now) if final else []
        live_final += self.live_clock.flush(now)
        for target in self.live_targets:
            if live_final:
                target.send(live_final, now)
        live_end_s = self.live_clock.end_s(self.config.tail_s)
        if live_final:  # sounds that outlast their event end as they do in the file
            start_s = min((e.time_s for e in live_final if e.time_s is not None), default=now)
            live_end_s = max(live_end_s, start_s + outlast_s + self.config.tail_s)
        recorded = ({} if self.recording is None
                    else self.recording.close(end_s, steps=steps, final=final))
        live = {target.stats_key: target.close(live_end_s) for target in self.live_targets}
        if "live" in live:
            live["live"].update(self.live_clock.stats.to_dict())
            # how long the sound went on after the last events were sent (max_lag + tail)
            live["live"]["sound_after_last_step_s"] = max(0.0, live_end_s - self.last_send_s)
        return recorded, live

    def abandon(self) -> None:
        """A session never closed: stop the live children at once."""
        for target in self.live_targets:
            try:
                target.abandon()
            except Exception:  # noqa: BLE001
                pass


__all__ = ["Outputs", "check_max_lag_s"]

"""Live output: play an engine on a sound device from a worker process.

:class:`LiveOutput` is the parent side (a :class:`~auralize.workers.worker.Worker`);
the engine, the ring buffer and the device callback live in the child
(:mod:`auralize.audio.live.child`), so a host program holding the GIL cannot
starve the sound.  Events are sent in score time (:meth:`LiveOutput.send`) or
as wall-clock moments (:meth:`LiveOutput.send_at_wall`, what a data stream
uses, see :mod:`auralize.audio.live.frame_clock`).

Without PortAudio, without an output device, or when the device or JACK server
vanishes mid-run, the parent gets one warning and the child keeps rendering to
the file at real-time pace.  Nothing raises into the caller.
"""

from __future__ import annotations

import atexit
import math
import time
import weakref
from pathlib import Path
from typing import Self

from auralize.audio.live.child import LiveChild
from auralize.audio.live.stream_stats import STATS_FIELDS, LiveStats, live_stats
from auralize.errors import AuralizeError
from auralize.workers.worker import Worker

# Lead for sound that nobody plays along with (data sonification, the test tone):
# latency does not matter there, dropouts do.  100 ms covers the vCPU stalls of a
# shared virtual machine (BENCHMARKS.md) that LiveOutput's 20 ms default, meant
# for playing live, cannot.
STEADY_LEAD_S = 0.1


class LiveOutput(Worker):
    """Play an engine live from a child process, optionally recording to a file.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz (a score passed to :meth:`start` brings its own).
    block_size : int
        Frames per device callback (0: let PortAudio choose).
    channels : int
        Device channels (capped at what the device has): device channel k plays
        engine channel k mod C (a mono engine on every channel); a mono device
        gets the mix of a multichannel engine.
    device : int or str, optional
        Output device index or name substring; default: the automatic choice of
        :func:`auralize.audio.live.devices.choose_output_device`.
    out : str or Path, optional
        File sink (.wav/.flac/.ogg), written in the child as blocks are rendered
        and flushed at least once a second.
    lead_s : float
        Audio the synthesis keeps ready ahead of the device.  Smaller means lower
        latency; larger tolerates a slower child.  Default 0.02 s: with JACK
        at 512-frame periods that gives ~35 ms from send() to the JACK graph.
        For sound nobody plays along with, :data:`STEADY_LEAD_S` (0.1 s) rides
        out the scheduling stalls of busy or virtual machines.
    live : bool
        ``False``: no device at all, only the file at real-time pace.
    engine_kwargs : dict, optional
        Passed to :class:`~auralize.audio.engine.Engine` (``channels``: 2 for a
        stereo engine whose voices are placed by their ``pan``; ``chunk_size``,
        ``master_gain``...).  Use the same ones as an offline ``render_score``
        to get identical samples (the file has the engine's channels).
    file_subtype : str, optional
        libsndfile subtype of the file (default 16-bit PCM; ``"FLOAT"`` keeps the
        exact samples).
    start_timeout_s : float
        How long :meth:`start` waits for the child to be ready.  It compiles or
        loads every engine kernel before the device starts
        (:mod:`auralize.audio.warm_up`): the first start on a machine compiles
        them (33 s measured on 2 loaded cores), later ones load them (~0.1 s).

    Examples
    --------
    >>> with LiveOutput(out="run.wav") as live:          # doctest: +SKIP
    ...     live.start(voices={"tone": {"kind": "sines", "freq_hz": [440.0], "amp": [0.3]}})
    ...     live.send(Event(None, "tone", "freq_hz", [660.0], glide_s=0.05))
    ...     time.sleep(1.0)
    >>> live.close().underruns                            # doctest: +SKIP
    0
    """

    child = LiveChild
    process_name = "auralize-live"
    stats_fields = STATS_FIELDS

    def __init__(
        self,
        sample_rate: int = 44100,
        *,
        block_size: int = 512,
        channels: int = 2,
        device: int | str | None = None,
        out: str | Path | None = None,
        lead_s: float = 0.02,
        live: bool = True,
        engine_kwargs: dict | None = None,
        file_subtype: str | None = None,
        start_timeout_s: float = 90.0,
    ) -> None:
        if not float(lead_s) > 0:
            raise AuralizeError(f"lead_s must be a positive number of seconds, got {lead_s}")
        self.sample_rate = int(sample_rate)
        self.out = None if out is None else str(out)
        self.lead_s = float(lead_s)
        super().__init__({
            "block_size": int(block_size), "channels": int(channels), "device": device,
            "out": self.out, "lead_s": self.lead_s, "live": bool(live),
            "engine_kwargs": dict(engine_kwargs or {}), "file_subtype": file_subtype,
        }, start_timeout_s=start_timeout_s,
            initial_stats={"event_latency_s": math.nan, "event_latency_max_s": math.nan})

    # -- lifecycle ------------------------------------------------------------
    def start(self, score=None, voices: dict | None = None) -> Self:
        """Start the child process and the device; return when sound can flow.

        Parameters
        ----------
        score : Score, optional
            Timed events to play (its sample rate wins).  ``time_s`` counts from
            the first sample played.
        voices : dict, optional
            ``{name: spec}`` voices to create at time 0.
        """
        events = []
        if score is not None:
            self.sample_rate = int(getattr(score, "sample_rate", self.sample_rate))
            events = list(score.events if hasattr(score, "events") else score)
        self.cfg.update(sample_rate=self.sample_rate, voices=dict(voices or {}), events=events)
        super().start()
        if self.error is not None:
            self.warn("start", f"live output: {self.error}")
        _live_outputs.add(self)
        return self

    def send(self, event) -> None:
        """Send a control event (``time_s=None``: as soon as possible; else at that score time)."""
        self.put(("event", event, time.perf_counter()))

    def send_at_wall(self, events) -> None:
        """Send events whose ``time_s`` is a ``time.perf_counter()`` moment: each plays then.

        The child places an event at the frame the speaker plays at that moment
        (its device latency included), so callers in any process of the machine
        share one timeline (see :mod:`auralize.audio.live.frame_clock`).  A moment
        already synthesised plays at once.
        """
        if events:
            self.put(("at_wall", list(events)))

    def stats(self) -> LiveStats:
        """Current statistics (cheap: read from memory shared with the child)."""
        if self.final is not None:
            return LiveStats(**self.final)
        if self.shared is None:
            return LiveStats(file=self.out, sample_rate=self.sample_rate)
        return live_stats(self.shared, self.info, self.out, self.sample_rate, self.lead_s)

    def close(self, timeout_s: float = 10.0) -> LiveStats:
        """Stop sound, finish the file, join the child; return the final statistics."""
        super().close(timeout_s)
        _live_outputs.discard(self)
        return self.stats()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def device_info(self) -> dict:
        """The device the child opened (empty when none)."""
        return dict(self.info.get("device") or {})


_live_outputs: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _close_all() -> None:  # pragma: no cover - interpreter exit
    for lo in list(_live_outputs):
        try:
            lo.close(timeout_s=3.0)
        except Exception:  # noqa: BLE001
            pass

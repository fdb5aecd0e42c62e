"""What a live stream reports: the counters its child shares, and the statistics made of them.

:class:`StreamStats` is what every live stream reports (the speaker's
:class:`LiveStats`, live generation's
:class:`~auralize.generate.live_chain.GenLiveStats`); :func:`live_stats` makes the
speaker's from the counters its child process shares (:data:`STATS_FIELDS`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

#: statistics the child shares with the parent while it runs
STATS_FIELDS = (
    "frames_played", "frames_rendered", "ring_underruns", "device_underflows", "ring_fill",
    "cpu_s", "wall_s", "device_latency_s", "event_latency_s", "event_latency_max_s", "live",
    "device_lost", "events_applied", "heartbeat",
)


@dataclass
class StreamStats:
    """What every live stream reports (:class:`LiveStats`, live generation's stats).

    Attributes
    ----------
    underruns : int
        Audible dropouts: ``ring_underruns`` + ``device_underflows`` (+ input
        overflows for duplex streams).  0 means none.
    ring_underruns : int
        Times the device wanted samples the ring buffer did not hold: auralize's
        own production was late.
    device_underflows : int
        Output underflows PortAudio reported (with JACK: the server's xruns).
    latency_s : float
        Estimated latency (what it covers: see the subclass).
    cpu_share : float
        CPU time of the audio child process / wall time (1.0 = one core).
    wall_s : float
        Seconds the stream ran.
    device : str
        The device played to ("" when none).
    sample_rate : int
        Hz.
    """

    underruns: int = 0
    ring_underruns: int = 0
    device_underflows: int = 0
    latency_s: float = math.nan
    cpu_share: float = math.nan
    wall_s: float = 0.0
    device: str = ""
    sample_rate: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LiveStats(StreamStats):
    """What the live output did (fields of :class:`StreamStats`, and these).

    Attributes
    ----------
    frames_played : int
        Frames the device callback delivered (real samples, not zeros).
    frames_rendered : int
        Frames the engine rendered (and the file sink received).
    latency_s : float
        Here: estimated control latency, ring lead + device latency + half a chunk.
    event_latency_s, event_latency_max_s : float
        Measured in the child for the last / slowest ``time_s=None`` event: from
        :meth:`LiveOutput.send` to the moment its first sample leaves the callback
        plus the device's reported output latency (NaN before any such event).
    live : bool
        Whether samples currently go to a device.
    device_lost : bool
        The device or sound server vanished during the run.
    priority : str
        Scheduling the audio child obtained ("SCHED_FIFO 1", "nice -10", "normal").
    """

    frames_played: int = 0
    frames_rendered: int = 0
    event_latency_s: float = math.nan
    event_latency_max_s: float = math.nan
    channels: int = 0
    live: bool = False
    device_lost: bool = False
    events_applied: int = 0
    priority: str = ""
    file: str | None = None



def live_stats(s, info: dict, out, sample_rate: int, lead_s: float) -> LiveStats:
    """:class:`LiveStats` from the shared counters (``s``) and the child's ``ready`` info."""
    wall = s["wall_s"]
    ring_u, dev_u = int(s["ring_underruns"]), int(s["device_underflows"])
    live = bool(s["live"])
    dev = info.get("device") or {}
    chunk = info.get("chunk_size", 256)
    return LiveStats(
        underruns=ring_u + dev_u, ring_underruns=ring_u, device_underflows=dev_u,
        frames_played=int(s["frames_played"]), frames_rendered=int(s["frames_rendered"]),
        latency_s=s["device_latency_s"] + lead_s + 0.5 * chunk / sample_rate if live else math.nan,
        event_latency_s=s["event_latency_s"], event_latency_max_s=s["event_latency_max_s"],
        cpu_share=s["cpu_s"] / wall if wall > 0 else math.nan, wall_s=wall,
        device=str(dev.get("label", "")), channels=int(info.get("channels", 0)),
        sample_rate=int(sample_rate), live=live, device_lost=bool(s["device_lost"]),
        events_applied=int(s["events_applied"]), priority=str(info.get("priority", "")), file=out,
    )

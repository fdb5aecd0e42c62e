"""Live output: control latency, child CPU share and underruns on a real JACK server.

Starts ``jackd -d dummy -r 44100 -p 512`` (real-time scheduling where permitted,
else ``--no-realtime``), plays through :class:`auralize.audio.live.output.LiveOutput`
and records with a JACK client in another process.  Latency is measured from
``LiveOutput.send(event)`` to the first affected sample passing through the
recording client (JACK's dummy driver runs at real time).  Each configuration
runs idle and with the parent busy (one thread in a pure-Python loop holding the
GIL, one running torch matmuls), as a training loop would be.

Run alone: ``.venv/bin/python benchmarks/bench_live.py [--quick]``.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _loads(stop: threading.Event) -> list[threading.Thread]:
    def gil_loop() -> None:
        while not stop.is_set():
            x = 0
            for i in range(20000):
                x += i * i

    def torch_loop() -> None:
        import torch

        a, b = torch.randn(384, 384), torch.randn(384, 384)
        while not stop.is_set():
            a = torch.tanh(a @ b)

    return [threading.Thread(target=f, daemon=True) for f in (gil_loop, torch_loop)]


def _one(server, lead_s: float, busy: bool, n_events: int, play_s: float) -> dict:
    from auralize.audio.live.output import LiveOutput
    from auralize.audio.score import Score
    from jackutil import PROBE_VOICE, JackRecorder, event_latencies, send_probe_events

    score = Score(44100)
    score.add_voice("probe", PROBE_VOICE)
    score.add_voice("bed", {"kind": "sines", "freq_hz": list(np.linspace(100, 4000, 64)),
                            "amp": [0.001] * 64})
    rec = JackRecorder(server.name).start()
    stop = threading.Event()
    threads = _loads(stop) if busy else []
    for th in threads:
        th.start()
    try:
        live = LiveOutput(44100, block_size=512, lead_s=lead_s).start(score)
        rec.wait_connected(2)
        time.sleep(max(0.0, play_s - n_events * 0.3))
        sent = send_probe_events(live, n_events=n_events)
        stats = live.close()
        cap = rec.stop()
        lat = event_latencies(cap, sent)
    finally:
        stop.set()
        for th in threads:
            th.join(5)
    ms = lat * 1000
    return {
        "lead_ms": round(lead_s * 1000, 1),
        "parent": "busy (GIL loop + torch)" if busy else "idle",
        "latency_ms_median": round(float(np.nanmedian(ms)), 1),
        "latency_ms_max": round(float(np.nanmax(ms)), 1),
        "latency_estimate_ms": round(stats.latency_s * 1000, 1),
        "child_cpu_share": round(stats.cpu_share, 3),
        "underruns": stats.underruns,
        "ring_underruns": stats.ring_underruns,
        "recorder_xruns": cap.xruns,
        "seconds": round(stats.wall_s, 1),
        "jack_realtime": server.realtime,
    }


def measure(quick: bool = False) -> list[dict]:
    """One dict per (lead time, parent load) with every figure measured."""
    from jackutil import JackServer, exported_env

    server = JackServer(44100, 512).start()
    env = ExitStack()
    env.enter_context(exported_env(server.env()))
    results = []
    try:
        leads = [0.02] if quick else [0.01, 0.02, 0.04]
        n_events, play_s = (6, 3.0) if quick else (12, 8.0)
        for lead in leads:
            for busy in (False, True):
                results.append(_one(server, lead, busy, n_events, play_s))
    finally:
        server.stop()
        env.close()
    return results


def run(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py: latency ms, child CPU share, underruns per configuration."""
    rows = []
    for r in measure(quick):
        tag = f"lead {r['lead_ms']:g} ms, parent {r['parent']}"
        notes = (f"JACK dummy 44.1 kHz/512, {'real-time' if r['jack_realtime'] else 'no-realtime'}"
                 f" server; estimate {r['latency_estimate_ms']} ms; recorder xruns "
                 f"{r['recorder_xruns']}")
        rows += [
            {"name": f"live latency median ({tag})", "value": r["latency_ms_median"], "unit": "ms",
             "baseline": 50.0, "notes": "target <= 50 ms; " + notes},
            {"name": f"live latency max ({tag})", "value": r["latency_ms_max"], "unit": "ms",
             "baseline": 50.0, "notes": "target <= 50 ms"},
            {"name": f"live child CPU share ({tag})", "value": round(100 * r["child_cpu_share"], 1),
             "unit": "% of a core", "notes": "probe tone + 64-partial bed"},
            {"name": f"live underruns ({tag})", "value": r["underruns"], "unit": "count",
             "notes": f"ring {r['ring_underruns']}, {r['seconds']} s played"},
        ]
    return rows


def main() -> None:
    from standalone import standalone_main

    standalone_main(__doc__, measure)


if __name__ == "__main__":
    main()

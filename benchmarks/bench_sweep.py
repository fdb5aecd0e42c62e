"""Sweep engines: wall time of an 8-run grid, Ray Tune vs the process pool, and the
driver's live sound during the Ray sweep.

The same grid (dnn x lr {1, 0.1, 0.01, 0.001} x {sgd, adam} x tanh on the digits
set, 1 epoch, batch 64, 2 parallel runs) runs through ``auralize.sweeps.grid.run_sweep``
(the spawn-context process pool) and ``auralize.sweeps.ray_tune.run_ray_sweep``
(a local Ray cluster with 2 CPUs started and shut down inside the timing, FIFO
scheduler so both do the same work), alternating A B B A (quick: A B) in one run.
Each run writes its folder (WAV, telemetry, spectrogram) either way.  The Ray
runs play the sweep live (JACK dummy server, :class:`auralize.sweeps.SweepSound`
through :class:`~auralize.audio.live.output.LiveOutput`) and record it; the driver's
underruns are LiveOutput's count.  Ray's start-up alone (``ray.init`` +
``ray.shutdown``) is timed separately.

Run: ``.venv/bin/python benchmarks/run.py --only sweep [--quick] --out DIR``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

JOBS = 2


def _specs():
    from auralize.sweeps.grid import grid

    return grid(["dnn"], [1.0, 0.1, 0.01, 0.001], ["sgd", "adam"], ["tanh"])


def _pool(out: Path) -> dict:
    from auralize.sweeps.grid import run_sweep

    t0 = time.perf_counter()
    rows = run_sweep(_specs(), out, jobs=JOBS, epochs=1, batch_size=64, progress=False)
    return {"wall_s": time.perf_counter() - t0, "failed": sum("error" in r for r in rows)}


def _ray(out: Path) -> dict:
    from auralize.sweeps.ray_tune import run_ray_sweep

    t0 = time.perf_counter()
    rows, sound = run_ray_sweep(_specs(), out, jobs=JOBS, epochs=1, batch_size=64,
                                scheduler="fifo", sound_out=out / "sweep.wav", live=True,
                                progress=False)
    live = sound.get("live") or {}
    return {"wall_s": time.perf_counter() - t0, "failed": sum("error" in r for r in rows),
            "underruns": live.get("underruns"), "device": live.get("device", ""),
            "sound_s": sound.get("duration_s")}


def _ray_startup() -> float:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=JOBS, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray.shutdown()
    return time.perf_counter() - t0


def measure(quick: bool = False) -> dict:
    from jackutil import JackServer, exported_env

    server = JackServer(44100, 512).start()
    env = ExitStack()
    env.enter_context(exported_env(server.env()))
    order = ["pool", "ray"] if quick else ["pool", "ray", "ray", "pool"]
    runs: dict[str, list[dict]] = {"pool": [], "ray": []}
    try:
        with tempfile.TemporaryDirectory(prefix="auralize-bench-sweep-") as tmp:
            for i, engine in enumerate(order):
                out = Path(tmp) / f"{i}-{engine}"
                runs[engine].append((_pool if engine == "pool" else _ray)(out))
        startup = _ray_startup()
    finally:
        server.stop()
        env.close()
    return {"runs": runs, "ray_startup_s": startup, "order": order,
            "jack_realtime": server.realtime}


def run(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py."""
    r = measure(quick)
    pool = statistics.mean(x["wall_s"] for x in r["runs"]["pool"])
    ray = statistics.mean(x["wall_s"] for x in r["runs"]["ray"])
    underruns = [x["underruns"] for x in r["runs"]["ray"]]
    order = " ".join(r["order"])
    return [
        {"name": "8-run sweep wall time, process pool", "value": round(pool, 1), "unit": "s",
         "notes": f"2 parallel runs; order {order}; each: "
                  + ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"]["pool"])},
        {"name": "8-run sweep wall time, Ray Tune (local, 2 CPUs, FIFO)", "value": round(ray, 1),
         "unit": "s", "baseline": round(pool, 1), "ratio": round(ray / pool, 2),
         "notes": "Ray started and stopped inside; each: "
                  + ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"]["ray"])},
        {"name": "Ray overhead on the 8-run sweep", "value": round(ray - pool, 1), "unit": "s",
         "notes": f"of which ray.init + shutdown alone {r['ray_startup_s']:.1f} s"},
        {"name": "driver sound underruns during the Ray sweep", "value": max(underruns),
         "unit": "count", "baseline": 0,
         "notes": f"per run {underruns}; JACK dummy 44.1 kHz/512 "
                  f"({'real-time' if r['jack_realtime'] else 'no-realtime'}); device "
                  f"{r['runs']['ray'][0]['device']!r}; goal 0"},
    ]

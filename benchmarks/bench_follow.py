"""Live sound following training at four step rates, heard by a JACK client.

Training steps of 5 ms, 60 ms (the gradient tones' own pace), 0.25 s and 1 s
are logged into a live :class:`~auralize.Sonifier` (gradient tones of four
layers: a 40 ms burst per step) playing into a real JACK server (dummy
driver); a JACK client in another process records what reaches the "speaker".
For each rate: steps heard (bursts counted in the capture), steps merged by
the live clock, lag from a step's ``log()`` to its sound (as the clock placed
it, and measured at the recorder where every step was heard), underruns, and
how long sound went on after the last step.

Run alone: ``.venv/bin/python benchmarks/bench_follow.py [--quick]``; the
baseline (an older auralize) with ``PYTHONPATH=OLD/src`` before it.
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SR = 44100
LAYERS = ["conv1", "conv2", "fc1", "fc2"]


def _one(server, interval_s: float, seconds: float, max_lag_s: float) -> dict:
    from auralize import Sonifier, TrainingStep
    from jackutil import JackRecorder, sound_bursts

    rec = JackRecorder(server.name, max_s=seconds + 10).start()
    import inspect

    # the baseline (auralize before the live clock) has no max_lag_s: run it with PYTHONPATH
    lag = {"max_lag_s": max_lag_s} if "max_lag_s" in inspect.signature(Sonifier).parameters else {}
    son = Sonifier(None, mappings=["gradients"], live=True, plot=False, **lag)
    rec.wait_connected(2)
    n_steps = max(4, int(seconds / interval_s))
    logged = []
    next_t = time.perf_counter()
    for step in range(n_steps):
        next_t += interval_s
        time.sleep(max(0.0, next_t - time.perf_counter()))  # the "training step"
        logged.append(time.perf_counter())
        son.log(TrainingStep(step=step, loss=1.0,
                             grad_norms={k: 1.0 + i for i, k in enumerate(LAYERS)}))
    t_last = logged[-1]
    result = son.close()
    t_closed = time.perf_counter()
    cap = rec.stop()
    heard = sound_bursts(cap.data[:, 0], SR)
    onsets = np.array([cap.time_of_frame(s) for s, _ in heard])
    live = result.stats["live"]
    # measured lag (log -> first sample at the recorder): pairs steps with bursts, so only
    # where every step was heard
    lags = onsets - np.array(logged) if len(onsets) == n_steps else np.zeros(0)
    return {
        "step_interval_ms": round(interval_s * 1000, 1), "steps": n_steps,
        "steps_heard": len(heard), "steps_merged": live.get("steps_merged"),
        "clock_lag_ms_median": round(live.get("lag_median_s", float("nan")) * 1000, 1),
        "clock_lag_ms_max": round(live.get("lag_max_s", float("nan")) * 1000, 1),
        "heard_lag_ms_median": round(float(np.median(lags)) * 1000, 1) if lags.size else None,
        "heard_lag_ms_max": round(float(np.max(lags)) * 1000, 1) if lags.size else None,
        "underruns": live.get("underruns"),
        "sound_after_last_step_s": round(cap.time_of_frame(heard[-1][1]) - t_last, 2) if heard else None,
        "close_s": round(t_closed - t_last, 2),
    }


def measure(quick: bool = False) -> list[dict]:
    from jackutil import JackServer, exported_env

    server = JackServer(SR, 512).start()
    env = ExitStack()
    env.enter_context(exported_env(server.env()))
    seconds = 3.0 if quick else 6.0
    try:
        return [_one(server, interval, seconds if interval < 1 else 2 * seconds, 0.5)
                for interval in (0.005, 0.06, 0.25, 1.0)]
    finally:
        server.stop()
        env.close()


def run(quick: bool = False) -> list[dict]:
    """Rows for benchmarks/run.py."""
    rows = []
    for r in measure(quick):
        tag = f"steps every {r['step_interval_ms']:g} ms"
        rows += [
            {"name": f"live follow: steps heard ({tag})", "value": r["steps_heard"], "unit": "steps",
             "baseline": r["steps"], "notes": f"merged {r['steps_merged']}; baseline = steps logged"},
            {"name": f"live follow: lag median ({tag})", "value": r["clock_lag_ms_median"], "unit": "ms",
             "baseline": 500.0, "notes": f"max {r['clock_lag_ms_max']} ms (clock); measured at the "
             f"recorder {r['heard_lag_ms_median']} / {r['heard_lag_ms_max']} ms; baseline = max_lag_s"},
            {"name": f"live follow: underruns ({tag})", "value": r["underruns"], "unit": "count"},
            {"name": f"live follow: sound after last step ({tag})",
             "value": r["sound_after_last_step_s"], "unit": "s",
             "notes": f"close() took {r['close_s']} s; max_lag 0.5 + tail 0.5"},
        ]
    return rows


def main() -> None:
    from standalone import standalone_main

    standalone_main(__doc__, measure)


if __name__ == "__main__":
    main()

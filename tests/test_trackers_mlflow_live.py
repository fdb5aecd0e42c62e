"""``follow`` on an MLflow run another process is logging, heard through JACK: every step is
in the run folder and each new loss is heard within a second of being logged."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from audio_analysis import pitch_track
from auralize import Sonifier
from auralize.sonify.follow import follow
from auralize.sonify.logs import read_telemetry
from trackerutil import MlflowLogger, mlflow_server  # noqa: F401

pytest.importorskip("mlflow")
pytestmark = [pytest.mark.audio, pytest.mark.slow]
SR = 44100


# 200 steps at 20 ms (4 s); at 0.25 s, 40 steps (10 s) rather than 200 (50 s) to keep the
# test short.  The loss changes every `block` steps (0.5 s) through four values: each block is
# a new pitch, and a pitch comes back only after 2 s (no step can pass for a later one).
@pytest.mark.parametrize(("steps", "interval_s", "block"), [(200, 0.02, 25), (40, 0.25, 2)])
def test_mlflow_steps_are_heard_within_a_second(jack_server, jack_recorder, mlflow_server,  # noqa: F811
                                                tmp_path, steps, interval_s, block):
    from auralize.trackers.mlflow_tail import MlflowTail

    logger = MlflowLogger(mlflow_server.uri, steps, interval_s, block)
    rec = jack_recorder(max_s=60.0)
    son = Sonifier(tmp_path / "heard", mappings=["loss"], clock="wall", live=True, plot=False,
                   log_to=())
    assert len(rec.wait_connected(2)) == 2
    tail = MlflowTail(f"mlflow:{logger.run_id}", mlflow_server.uri)
    box = {}
    read_at: dict[int, float] = {}  # when follow handed each step to the sonifier
    thread = threading.Thread(target=lambda: box.setdefault(
        "result", follow(tail, son, poll_s=0.1, from_start=True,
                         on_step=lambda r: read_at.setdefault(r.step, time.perf_counter()))),
        daemon=True)
    thread.start()
    logger.go()
    logged = logger.finish()
    thread.join(30)  # follow ends by itself once the run is finished and read
    assert not thread.is_alive()
    result = son.close()
    cap = rec.stop()
    assert box["result"].steps == steps and box["result"].kind == "mlflow"
    records = read_telemetry(tmp_path / "heard/telemetry.jsonl")
    assert [r.step for r in records] == list(range(steps))
    assert [r.loss for r in records] == [loss for _, _, loss in logged]
    assert result.stats["live"]["ring_underruns"] == 0
    # cost per poll: one GetRun, plus one history request when something new came
    assert tail.requests <= 2 * tail.polls + 1

    times, freqs = pitch_track(cap.data[:, 0], SR, frame_s=0.02)
    level = np.array([np.abs(cap.data[int(t * SR) - 441:int(t * SR) + 441, 0]).max() for t in times])
    heard_at = np.array([cap.time_of_frame(int(t * SR)) for t in times])
    latencies = []
    for step, written_at, loss in logged[::block]:  # the first step of each block: a new pitch
        target_hz = 200.0 + 800.0 * loss  # the loss tone: 200 Hz + (L / L0) 800 Hz, L0 = 1.0
        hit = np.flatnonzero((heard_at > written_at) & (heard_at < written_at + 1.9) & (level > 0.05)
                             & (np.abs(freqs - target_hz) < 15))
        # (read_at tells a late MLflow answer from late sound: follow got the step then)
        assert hit.size, (f"step {step} (loss {loss}) logged at {written_at:.2f}, read at "
                          f"{read_at.get(step, float('nan')):.2f}, was never heard; live "
                          f"{result.stats['live']}")
        latencies.append(heard_at[hit[0]] - written_at)
    print(f"mlflow follow latencies at {interval_s} s steps (s):", np.round(latencies, 3))
    assert max(latencies) < 1.0, latencies

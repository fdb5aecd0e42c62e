"""``follow`` on a TensorBoard folder a separate process keeps writing, heard through JACK."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from audio_analysis import pitch_track
from auralize import Sonifier
from auralize.sonify.follow import follow

pytestmark = pytest.mark.audio
SR = 44100

# A training script that knows nothing of auralize: torch's SummaryWriter, flushed per
# block of steps.  It prints when each block is on disk (perf_counter: the same clock
# as the JACK recorder's on Linux) and the loss it wrote.
WRITER = """
import sys, time
from torch.utils.tensorboard import SummaryWriter
writer = SummaryWriter(sys.argv[1])
step = 0
for block in range(7):
    loss = 1.0 if block % 2 == 0 else 0.25
    for _ in range(3):
        writer.add_scalar("loss", loss, step)
        step += 1
    writer.flush()
    print(time.perf_counter(), loss, flush=True)
    time.sleep(0.9)
writer.close()
"""


def test_new_tensorboard_steps_are_heard_within_a_second(jack_server, jack_recorder, tmp_path):
    logdir = tmp_path / "tb"
    logdir.mkdir()
    rec = jack_recorder()
    son = Sonifier(tmp_path / "heard", mappings=["loss"], clock="wall", live=True, plot=False)
    assert len(rec.wait_connected(2)) == 2
    stop = threading.Event()
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault(
        "result", follow(logdir, son, poll_s=0.1, stop=stop)), daemon=True)
    thread.start()
    writer = subprocess.run([sys.executable, "-c", WRITER, str(logdir)], capture_output=True,
                            text=True, timeout=120)
    assert writer.returncode == 0, writer.stderr
    time.sleep(1.0)
    stop.set()
    thread.join(10)
    result = son.close()
    cap = rec.stop()
    assert box["result"].steps == 21 and box["result"].kind == "tensorboard"
    assert result.stats["live"]["ring_underruns"] == 0
    written = [(float(t), float(loss)) for t, loss in
               (line.split() for line in writer.stdout.splitlines())]
    times, freqs = pitch_track(cap.data[:, 0], SR, frame_s=0.02)
    level = np.array([np.abs(cap.data[int(t * SR) - 441:int(t * SR) + 441, 0]).max()
                      for t in times])
    heard_at = np.array([cap.time_of_frame(int(t * SR)) for t in times])
    latencies = []
    for written_at, loss in written:
        target_hz = 1000.0 if loss == 1.0 else 400.0  # L0 = 1.0 -> 1000 Hz; L0/4 -> 400 Hz
        hit = np.flatnonzero((heard_at > written_at) & (level > 0.05)
                             & (np.abs(freqs - target_hz) < 15))
        assert hit.size, f"loss {loss} written at {written_at:.2f} was never heard"
        latencies.append(heard_at[hit[0]] - written_at)
    assert max(latencies) < 1.0, latencies
    print("follow latencies (s):", np.round(latencies, 3))

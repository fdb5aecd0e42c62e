"""The Sonifier playing live into a real JACK server while it records the run folder."""

from __future__ import annotations

import time

import numpy as np
import pytest

from auralize import Sonifier, TrainingStep
from auralize.audio.analysis import dominant_frequency

pytestmark = pytest.mark.audio
SR = 44100


def test_sonifier_plays_training_live_and_records_it(jack_server, jack_recorder, tmp_path):
    rec = jack_recorder()
    son = Sonifier(tmp_path / "run", mappings=["loss"], live=True, plot=False, step_s=0.05)
    assert len(rec.wait_connected(2)) == 2
    started = time.perf_counter()
    for step in range(40):  # 2 s of steps at training pace (a bit faster than real time)
        son.log(TrainingStep(step=step, loss=2.0 if step < 20 else 0.5))
        time.sleep(0.04)
    time.sleep(0.8)
    result = son.close()
    cap = rec.stop()
    live = result.stats["live"]
    assert live["device"] and live["frames_played"] > 1.5 * SR
    assert live["ring_underruns"] == 0
    played = cap.data[:, 0]
    loud = np.flatnonzero(np.abs(played) > 0.05)
    assert loud.size, "nothing audible reached JACK"
    # the loss tone: L = L0 -> 1000 Hz first, L = L0/4 -> 400 Hz later
    first = played[loud[0] + SR // 4: loud[0] + SR // 4 + 4096]
    later = played[loud[0] + int(1.5 * SR): loud[0] + int(1.5 * SR) + 4096]
    assert dominant_frequency(first, SR) == pytest.approx(1000, abs=10)
    assert dominant_frequency(later, SR) == pytest.approx(400, abs=10)
    assert (tmp_path / "run" / "sonification.wav").exists()
    assert time.perf_counter() - started < 30

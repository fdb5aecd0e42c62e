"""The live clock policy, without audio: when does each step of training play live?"""

from __future__ import annotations

import math

import numpy as np
import pytest

from auralize.audio.live.frame_clock import FrameClock
from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sonify.live_clock import LiveClock
from auralize.sonify.telemetry import TrainingStep
from auralize.sonify.timeline import SonifyConfig, Timeline

LAYERS = ["conv1", "conv2", "fc1", "fc2"]


def gradient_steps(n: int):
    """Timeline events of ``n`` steps with gradient tones of four layers (60 ms slots)."""
    timeline = Timeline(SonifyConfig(mappings=["gradients"]))
    for step in range(n):
        record = TrainingStep(step=step, loss=1.0, grad_norms={k: 1.0 + i for i, k in enumerate(LAYERS)})
        events, t_s, _ = timeline.advance(record)
        yield events, t_s, timeline.last_step_s


def onsets(events):
    """Live times at which a gradient tone starts (an amp event with a non-zero partial)."""
    return [e.time_s for e in events if e.param == "amp" and np.any(np.asarray(e.value) > 0)]


def test_slow_training_plays_every_step_whole_when_it_arrives():
    clock = LiveClock(max_lag_s=0.5, margin_s=0.15)
    for k, (events, t_s, step_s) in enumerate(gradient_steps(16)):
        now = 1000.0 + 0.25 * k  # a step every 0.25 s; the sound's slot is 60 ms
        placed = clock.place(events, t_s, step_s, now)
        tones = onsets(placed)
        assert len(tones) == 4  # every layer's tone, none lost
        assert tones[0] == pytest.approx(now + 0.15)  # as soon as it arrives
        assert np.diff(tones) == pytest.approx([0.01] * 3)  # in its own rhythm
    stats = clock.stats
    assert (stats.steps_heard, stats.steps_merged, stats.steps_moved) == (16, 0, 15)
    assert stats.lag_max_s == pytest.approx(0.15)


def test_fast_training_never_lags_more_than_max_lag():
    clock = LiveClock(max_lag_s=0.5, margin_s=0.15)
    heard = []
    for k, (events, t_s, step_s) in enumerate(gradient_steps(600)):
        now = 50.0 + 0.005 * k  # a step every 5 ms
        placed = clock.place(events, t_s, step_s, now)
        if placed:
            assert min(e.time_s for e in placed) - now <= 0.5 + 1e-9
            heard.append(now)
    stats = clock.stats
    assert stats.steps_heard + stats.steps_merged == 600
    # 3 s of training, 60 ms slots: about 3 / 0.06 steps fit, plus the 0.5 s allowed to queue
    assert 45 <= stats.steps_heard <= 62, stats
    assert stats.lag_max_s <= 0.5
    assert clock.end_s(0.5) <= 50.0 + 0.005 * 599 + 0.5 + 0.5 + 0.06
    assert heard[-1] > 50.0 + 0.005 * 550  # the sound follows training to its end


def test_a_burst_of_steps_is_merged_and_its_last_values_apply():
    clock = LiveClock(max_lag_s=0.5, margin_s=0.1)
    tone = [Event(0.0, "loss", "add", {"kind": "sines", "freq_hz": [200.0], "amp": [0.2]})]
    assert clock.place(tone, 0.0, 0.05, now_s=10.0)
    for k in range(1, 300):  # all logged at the same moment
        clock.place([Event(k * 0.05, "loss", "freq_hz", [200.0 + k], 0.02)], k * 0.05, 0.05, 10.0)
    assert clock.stats.steps_merged > 280
    rest = clock.flush(now_s=10.0)
    assert [(e.param, e.value) for e in rest] == [("freq_hz", [499.0])]  # the newest loss
    assert rest[0].time_s <= 10.0 + 0.1 + 0.5


def test_merged_voice_creation_is_kept():
    clock = LiveClock(max_lag_s=0.2, margin_s=0.1)
    clock.place([], 0.0, 1.0, now_s=0.0)  # the next slot is 1 s away: the next step is merged
    add = Event(1.0, "chord", "add", {"kind": "sines", "freq_hz": [300.0], "amp": [0.1]})
    assert clock.place([add, Event(1.0, "chord", "amp", [0.2], 0.3)], 1.0, 1.0, now_s=0.0) == []
    placed = clock.place([Event(2.0, "loss", "freq_hz", [300.0])], 2.0, 1.0, now_s=1.0)
    assert [(e.voice, e.param) for e in placed] == [("chord", "add"), ("chord", "amp"),
                                                      ("loss", "freq_hz")]
    assert len({e.time_s for e in placed}) == 1


def test_bad_lag_is_one_clear_error():
    with pytest.raises(AuralizeError, match="max_lag_s must be a positive"):
        LiveClock(max_lag_s=0)
    with pytest.raises(AuralizeError, match="margin_s"):
        LiveClock(max_lag_s=0.1, margin_s=0.2)


def test_frame_clock_ignores_late_callbacks_and_follows_drift():
    clock = FrameClock(1000)
    clock.observe(10.0, 0)
    clock.observe(10.5 + 0.03, 500)  # a callback 30 ms late (host stall): ignored, but for
    assert clock.engine_time_s(11.0) == pytest.approx(1.0, abs=0.53 * clock.drift_per_s + 1e-9)  # drift
    clock.observe(11.0 - 0.002, 1000)  # earlier than expected: taken at once
    assert clock.engine_time_s(11.0) == pytest.approx(1.002, abs=1e-6)
    for k in range(1, 101):  # the device runs 0.1 % slow for 100 s: followed
        clock.observe(11.0 + k * 1.001, 1000 + 1000 * k)
    assert clock.engine_time_s(111.1) == pytest.approx(100.0 + 1.0 + (111.1 - 111.1), abs=0.02)
    assert FrameClock(1000).engine_time_s(5.0) is None
    assert clock.engine_time_s(math.nan) is None


def test_a_lag_shorter_than_the_live_lead_is_refused_in_the_users_words(tmp_path, capsys):
    from auralize import Sonifier
    from auralize.cli import main

    with pytest.raises(AuralizeError, match=r"max_lag_s must be more than 0.15 .*got 0.1$"):
        Sonifier(None, mappings=["loss"], live=False, max_lag_s=0.1)
    assert main(["demo", "--max-lag-ms", "100", "--no-live", "--out", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "auralize: error: --max-lag-ms must be more than 150 (the live output's lead), got 100"
    assert not (tmp_path / "d").exists()  # refused before anything was written


def test_wall_clock_steps_faster_than_their_tones_keep_their_tones():
    """clock="wall", steps 5 ms apart: a step still gets its gradient tones' 60 ms (they were squeezed
    to nothing before), so the live clock can play it whole."""
    timeline = Timeline(SonifyConfig(mappings=["gradients"], clock="wall"))
    for k in range(5):
        record = TrainingStep(step=k, loss=1.0, wall_time_s=1.0 + 0.005 * k,
                              grad_norms={name: 1.0 + i for i, name in enumerate(LAYERS)})
        events, t_s, _ = timeline.advance(record)
        tones = onsets(events)
        assert timeline.last_step_s == pytest.approx(0.06)
        assert np.diff(tones) == pytest.approx([0.01] * 3)
        assert tones[0] == pytest.approx(t_s)

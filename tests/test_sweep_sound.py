"""The driver's sweep sound without any sweep engine: voices, positions, earcons, file."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf

from auralize.sonify.earcons import EARCONS, earcon_play
from auralize.sweeps.sound import SweepSound, render_events
from sweep_audio import assert_earcons_at, expected_ratio, voice_at


def test_each_trial_is_a_voice_at_its_place_and_events_are_earcons(tmp_path):
    wav = tmp_path / "sweep.wav"
    with SweepSound(wav, live=False, metric="val_loss") as sound:
        sound.trial_started("a")
        time.sleep(0.4)
        sound.trial_started("b")
        time.sleep(0.8)
        for i in range(4):
            sound.trial_result("a", {"loss": 2.0 / (i + 1), "grad_norm": 1.0,
                                     "val_loss": 1.0 - i / 5})  # 1.0 0.8 0.6 0.4
            time.sleep(0.1)
            sound.trial_result("b", {"loss": 2.0, "grad_norm": 1.0 + i,
                                     "val_loss": 0.95 - i / 10})  # 0.95 0.85 0.75 0.65
            time.sleep(0.1)
        sound.trial_failed("b")
        time.sleep(0.3)
        sound.trial_stopped("a")
    stereo, sr = sf.read(str(wav), dtype="float32")
    assert stereo.shape[1] == 2 and np.all(np.isfinite(stereo)) and np.abs(stereo).max() < 1
    summary = sound.summary
    trials = {t["trial_id"]: t for t in summary["trials"]}
    assert trials["a"]["base_hz"] != trials["b"]["base_hz"] and trials["a"]["pan"] < 0 < trials["b"]["pan"]
    starts = {e["trial_id"]: e["t_s"] for e in summary["events"] if e["event"] == "start"}
    for trial_id in ("a", "b"):
        freq, ratio = voice_at(stereo, sr, starts["b"] + 0.25, starts["b"] + 0.75,
                               trials[trial_id]["base_hz"])
        assert abs(freq - trials[trial_id]["base_hz"]) < 1.5
        assert abs(np.log(ratio / expected_ratio(trials[trial_id]["pan"]))) < 0.15
    times = {kind: [e["t_s"] for e in summary["events"] if e["event"] == kind]
             for kind in ("start", "stopped", "error", "best")}
    # records change hands: b 0.95, a 0.8, then a bettering its own record (0.6, 0.4)
    # within 2 s is no news
    assert [(e["trial_id"], e["value"]) for e in summary["events"] if e["event"] == "best"] == [
        ("b", 0.95), ("a", 0.8)]
    for kind, at in times.items():
        assert_earcons_at(stereo, sr, kind, at)
    # rendered by the recording worker (no thread of the driver's renders it)
    assert not any(t.name == "auralize-sweep-sound" for t in threading.enumerate())
    assert len(stereo) == round(summary["duration_s"] * sr)
    assert summary["engine"]["unknown_events"] == 0  # every earcon found its sampler voice
    # what was written is what the logged events render to (16-bit rounding apart)
    again = render_events(sound.events, len(stereo) / sr)
    assert np.max(np.abs(again - stereo)) < 2 / 32768


@pytest.mark.audio
def test_the_sweep_plays_live_on_the_driver(jack_server, jack_recorder, tmp_path):
    """Three trials, each heard on the speaker at its pitch and its place as sweep.json says
    (equal power, 1 dB), as in the file, which the recording worker rendered."""
    rec = jack_recorder(channels=2)
    sound = SweepSound(tmp_path / "sweep.wav", live=True)
    assert len(rec.wait_connected(5)) == 2
    t_start = time.perf_counter()
    for trial in ("a", "b", "c"):  # 130.81, 174.61, 233.08 Hz; pans -0.75, +0.75, -0.25
        sound.trial_started(trial)
        time.sleep(0.3)
    time.sleep(1.2)
    summary = sound.close()
    t_end = time.perf_counter()
    cap = rec.stop()
    live = summary["live"]
    # auralize's own dropouts (its synthesis late for the device): never
    assert live["device"] and live["ring_underruns"] == 0, live
    # PortAudio's output underflows are JACK's xruns: auralize's fault only while the JACK
    # graph kept time (the recorder missed no cycle); a host that stalls the graph itself
    # (a shared VM: README, "Tests") makes them with auralize's samples ready
    stall_ms = cap.longest_gap_ms(t_start, t_end)
    if stall_ms < 1.5 * 512 / 44100 * 1000:
        assert live["device_underflows"] == 0, (live, stall_ms, cap.xruns)
    print(f"live: {live}; longest JACK cycle gap {stall_ms:.1f} ms, recorder xruns {cap.xruns}")
    played = cap.data
    loud = np.flatnonzero(np.abs(played).max(axis=1) > 0.01)
    assert loud.size, "nothing audible reached JACK"
    first = loud[0] / cap.sample_rate  # the first trial's start, live
    stereo, sr = sf.read(str(tmp_path / "sweep.wav"), dtype="float32")
    starts = {e["trial_id"]: e["t_s"] for e in summary["events"] if e["event"] == "start"}
    # all three sound from the last start + its fade-in on: 0.9-1.5 s after the first start
    for trial in summary["trials"]:
        for name, audio, rate, t0 in (("live", played, cap.sample_rate, first),
                                      ("file", stereo, sr, starts["a"])):
            freq, ratio = voice_at(audio, rate, t0 + 0.95, t0 + 1.5, trial["base_hz"])
            assert freq == pytest.approx(trial["base_hz"], abs=2), (name, trial)
            assert abs(20 * np.log10(ratio / expected_ratio(trial["pan"]))) < 1.0, (name, ratio, trial)



def test_the_page_mixes_trials_one_by_one(tmp_path):
    import asyncio
    import json
    import urllib.request

    import aiohttp

    sound = SweepSound(tmp_path / "sweep.wav", live=False, web=True, web_port=0)
    try:
        assert sound.web_url
        sound.trial_started("a")
        sound.trial_started("b")

        def state() -> dict:
            with urllib.request.urlopen(sound.web_url + "api/state", timeout=5) as reply:
                return json.load(reply)["mix"]

        # the voices reach the page's mixer when the server child has taken the events
        # (no fixed sleep: a loaded machine takes longer)
        voices = {"trial0", "trial1", "trial0.events", "trial1.events"}
        deadline = time.monotonic() + 30
        while not voices <= set(state()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert voices <= set(state())

        async def solo_b():
            async with aiohttp.ClientSession() as session, \
                    session.ws_connect(sound.web_url.replace("http", "ws") + "ws") as ws:
                await ws.send_str(json.dumps({"type": "mix", "voice": "trial1", "solo": True,
                                              "id": 1}))
                while True:
                    msg = json.loads((await ws.receive(timeout=5)).data)
                    if msg["type"] == "ack":
                        return msg

        assert asyncio.run(solo_b())["ok"]
        mix = state()
        assert mix["trial1"]["effective_gain"] == 1.0 and mix["trial0"]["effective_gain"] == 0.0
    finally:
        sound.close()


def test_training_and_sweeps_play_their_earcons_from_one_table():
    """No second earcon system: a sweep's trial events and training's announcements are
    sampler ``play`` events carrying a motif of :data:`auralize.sonify.earcons.EARCONS`;
    "best" is one sound; ``audio/`` holds no earcon table (it plays the notes it is sent)."""
    import importlib.util
    import math

    from auralize.audio.score import Event, Score, render_score
    from auralize.audio.voices import sampler
    from auralize.sonify.mappings import make_mapping
    from auralize.sonify.telemetry import TrainingStep

    assert importlib.util.find_spec("auralize.sweeps.earcons") is None
    sound = SweepSound(None, live=False, metric="val_loss")
    sound.trial_started("a")
    sound.trial_result("a", {"val_loss": 1.0})
    sound.trial_started("b")
    sound.trial_result("b", {"val_loss": 0.5})  # a record taken from another trial: news
    sound.trial_failed("b")
    sound.trial_stopped("a")
    sound.close()
    sweep = [e for e, _ in sound.events if e.param == "play"]
    assert [e.value["earcon"] for e in sweep] == ["start", "start", "best", "error", "stopped"]
    players = {e.voice: e.value["kind"] for e, _ in sound.events if e.param == "add"}
    assert all(players[e.voice] == "sampler" for e in sweep)
    mapping = make_mapping("earcons")
    training = []
    for step in range(40):
        record = TrainingStep(step=step, epoch=step // 10, loss=1.0 / (step + 1),
                              epoch_end=step % 10 == 9)
        if record.epoch_end:
            record.metrics = {"val_loss": 1.0 / (step + 1)}
        training += [e for e in mapping.events(record, step * 0.05, 0.05) if e.param == "play"]
    assert "best" in [e.value["earcon"] for e in training]
    assert {e.value["earcon"] for e in sweep + training} <= set(EARCONS)
    assert all(e.value["motif"] == EARCONS[e.value["earcon"]] for e in sweep + training)
    assert not hasattr(sampler, "EARCONS")
    # the "best" a sweep plays (centre) is the "best" training plays, equal power apart
    best_sweep = render_events([(Event(0.0, "x", "add", {"kind": "sampler"}), 0.0),
                                (Event(0.0, "x", "play", earcon_play("best")), 0.0)], 0.6)
    played = next(e for e in training if e.value["earcon"] == "best").value
    best_training = render_score(Score(44100, [Event(0.0, "x", "add", {"kind": "sampler"}),
                                               Event(0.0, "x", "play", dict(played))]), 0.6)
    assert np.abs(best_training).max() > 0.05
    level = played.get("level", 1.0)  # training plays its earcons a little softer
    np.testing.assert_allclose(best_sweep[:, 0] * level / math.cos(math.pi / 4), best_training,
                               atol=2e-6)


def test_two_trials_earcons_a_fraction_of_a_period_apart_add_up():
    """Trials seen starting at once (one storage poll) play the same earcon a few frames
    apart, one left, one right: with the clock's phases they add up in the mono mix (what
    a mono device plays); from phase 0 each, 12 frames (half a period of 1760 Hz) cancel."""
    from auralize.audio.engine import Engine
    from auralize.audio.score import Event

    sr = 44100

    def start_earcons(clock_phase: bool, offsets=(0, 12)) -> list:
        events = []
        for i, (offset, pan) in enumerate(zip(offsets, (-0.75, 0.75))):
            t = 0.1 + offset / sr
            events += [(Event(t, f"e{i}", "add", {"kind": "sampler", "clock_phase": clock_phase}),
                        pan), (Event(t, f"e{i}", "play", earcon_play("start")), pan)]
        return events

    def level_1760(events) -> float:
        mono = render_events(events, 0.3).mean(axis=1)[int(0.11 * sr):int(0.16 * sr)]
        n = np.arange(len(mono))
        return abs(np.dot(mono, np.exp(-2j * np.pi * 1760.0 * n / sr))) / len(mono)

    alone = level_1760(start_earcons(True)[:2])
    assert level_1760(start_earcons(True)) > 1.8 * alone
    assert level_1760(start_earcons(False)) < 0.3 * alone  # what the clock's phases prevent
    # still the same samples at any block size
    engine = Engine(sr, channels=2)
    for event, pan in start_earcons(True):
        engine.schedule(event if event.param != "add" else
                        Event(event.time_s, event.voice, "add", {**event.value, "pan": pan}))
    blocks = np.concatenate([engine.render(333) for _ in range(40)])
    np.testing.assert_array_equal(blocks, render_events(start_earcons(True), 40 * 333 / sr))

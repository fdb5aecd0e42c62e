"""The driver's sweep sound without any sweep engine: voices, positions, earcons, file."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile as sf

from audio_analysis import dominant_frequency
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
    # what was written is what the logged events render to (16-bit rounding apart)
    again = render_events(sound.events, len(stereo) / sr)
    assert np.max(np.abs(again - stereo)) < 2 / 32768


@pytest.mark.audio
@pytest.mark.flaky(reruns=2, reruns_delay=2)  # real time on a shared host, as conftest's list
def test_the_sweep_plays_live_on_the_driver(jack_server, jack_recorder, tmp_path):
    rec = jack_recorder()
    sound = SweepSound(tmp_path / "sweep.wav", live=True)
    assert len(rec.wait_connected(5)) == 2
    sound.trial_started("only")  # trial 0: 130.81 Hz
    time.sleep(1.5)
    summary = sound.close()
    cap = rec.stop()
    assert summary["live"]["device"] and summary["live"]["underruns"] == 0
    played = cap.data[:, 0]
    loud = np.flatnonzero(np.abs(played) > 0.01)
    assert loud.size, "nothing audible reached JACK"
    held = played[loud[0] + int(0.5 * cap.sample_rate): loud[0] + int(1.2 * cap.sample_rate)]
    assert dominant_frequency(held, cap.sample_rate) == pytest.approx(130.81, abs=2)
    # the speaker places the trial where the file and sweep.json do (equal power, 1 dB)
    trial = summary["trials"][0]
    both = cap.data[loud[0] + int(0.5 * cap.sample_rate): loud[0] + int(1.2 * cap.sample_rate)]
    stereo, sr = sf.read(str(tmp_path / "sweep.wav"), dtype="float32")
    start = next(e["t_s"] for e in summary["events"] if e["event"] == "start")
    for audio, rate in ((both, cap.sample_rate), (stereo, sr)):
        freq, ratio = voice_at(audio, rate, 0.0 if audio is both else start + 0.5,
                               len(audio) / rate if audio is both else start + 1.2,
                               trial["base_hz"])
        assert abs(20 * np.log10(ratio / expected_ratio(trial["pan"]))) < 1.0, (ratio, trial)


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

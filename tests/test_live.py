"""Live output against a real JACK server (dummy driver): what is played is what was scored."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from contextlib import ExitStack

import numpy as np
import pytest
import soundfile as sf

from auralize.audio.live.devices import AudioUnavailableWarning
from auralize.audio.live.output import LiveOutput
from auralize.audio.score import Score, render_score
from jackutil import (
    PROBE_VOICE,
    JackServer,
    cycles_not_rendered,
    event_latencies,
    exported_env,
    send_probe_events,
)

pytestmark = pytest.mark.audio
SR = 44100


def busy_score(seconds: float) -> Score:
    """Sines and noise with glides, vibrato and gain changes spread over ``seconds``."""
    sc = Score(SR)
    rng = np.random.default_rng(7)
    sc.add_voice("bank", {"kind": "sines", "freq_hz": [220.0, 330.0, 495.0, 742.5],
                          "amp": [0.3, 0.2, 0.15, 0.1], "vibrato_hz": 5.0, "vibrato_cents": 20.0})
    sc.add_voice("air", {"kind": "noise", "amp": 0.05, "bp_center_hz": 1500.0, "bp_q": 2.0})
    t = 0.25
    while t < seconds:
        sc.set(t, "bank", "freq_hz", list(rng.uniform(150, 2000, 4)), glide_s=0.1)
        sc.set(t + 0.1, "bank", "amp", list(rng.uniform(0.0, 0.3, 4)), glide_s=0.05)
        sc.set(t + 0.2, "air", "bp_center_hz", float(rng.uniform(300, 4000)), glide_s=0.2)
        t += 0.37
    return sc


def _gil_loop(stop: threading.Event, counter: list) -> None:
    # Pure Python: holds the GIL except at the interpreter's switch interval.
    while not stop.is_set():
        x = 0
        for i in range(20000):
            x += i * i
        counter[0] += 1


def _torch_loop(stop: threading.Event, counter: list) -> None:
    import torch  # imported by the test already (importing under a GIL hog takes seconds)

    a = torch.randn(384, 384)
    b = torch.randn(384, 384)
    while not stop.is_set():
        a = torch.tanh(a @ b)
        counter[0] += 1


def _play_under_load(jack_server, jack_recorder, tmp_path, seconds: float):
    """Play ``busy_score`` live for ``seconds`` while this process is busy; return the facts."""
    score = busy_score(seconds)
    rec = jack_recorder()
    log_at = len(jack_server.read_log())
    stop = threading.Event()
    py_n, torch_n = [0], [0]
    loads = [threading.Thread(target=_gil_loop, args=(stop, py_n), daemon=True),
             threading.Thread(target=_torch_loop, args=(stop, torch_n), daemon=True)]
    out = tmp_path / "live.wav"
    t = [time.perf_counter()]
    try:
        live = LiveOutput(SR, block_size=512, out=out, file_subtype="FLOAT")
        live.start(score)
        t.append(time.perf_counter())
        # The load runs for the whole playback (starting the child under it works
        # too, only slower: the child's imports compete with it).
        for th in loads:
            th.start()
        assert live.device_info.get("hostapi", "").startswith("JACK")
        assert len(rec.wait_connected(2)) == 2
        t_play = time.perf_counter()
        time.sleep(seconds)
        t_end = time.perf_counter()
        log_closing = len(jack_server.read_log())
        stats = live.close()
    finally:
        stop.set()
        for th in loads:
            th.join(5)
    cap = rec.stop()
    assert py_n[0] > 0 and torch_n[0] > 0, "the load threads did not run"
    # Did the JACK graph itself keep time?  Longest gap between the recorder's
    # process cycles while playing (one period is 11.6 ms).
    stall_ms = cap.longest_gap_ms(t_play, t_end)
    print(f"\nlive under load: {stats}")
    print(f"load: {py_n[0]} python loops, {torch_n[0]} matmuls; recorder xruns {cap.xruns}; "
          f"longest JACK cycle gap {stall_ms:.1f} ms; start {t[1] - t[0]:.1f} s")
    return {"score": score, "stats": stats, "cap": cap, "out": out,
            "blame": jack_server.xrun_blame(log_at), "t_play": t_play, "t_end": t_end,
            "blame_closing": jack_server.xrun_blame(log_closing)}


def test_live_under_load_equals_offline_render(jack_server, jack_recorder, tmp_path):
    """10 s at 44.1 kHz / 512 while the parent is busy: 0 underruns, bit-exact capture.

    The measure is the listener's: every JACK cycle the recorder captured holds
    the offline render, sample for sample.  Only cycles in which the host itself
    ran late are left out (with two periods either side): an idle JACK client,
    the recorder's probe, ran late or not at all in them, so every client missed
    that deadline whatever it did.  On this project's 2-core VMs (kernel
    ``Dynamic Preempt: none``) a kernel tracer showed jackd's own driver thread
    started up to 9 ms late while another process was in the kernel.  jackd's
    xrun lines are not the measure: "PortAudio was not finished" also comes
    with a client's activation and deactivation, in runs whose every cycle was
    bit-exact (2026-12-03: 3 of 3 such runs).
    """
    pytest.importorskip("torch")
    seconds = 10.0
    r = _play_under_load(jack_server, jack_recorder, tmp_path, seconds)
    stats, cap, score = r["stats"], r["cap"], r["score"]
    late = cap.host_late_cycles()
    print(f"host-late cycles (the probe ran > half a period late): {len(late)} of "
          f"{len(cap.probe_frames)}; jackd xrun log ({len(r['blame_closing'])} lines while "
          "closing):", *r["blame"][:12], sep="\n  ")
    if len(late) > 0.05 * len(cap.probe_frames):
        from conftest import audio_unavailable

        audio_unavailable(f"host too loaded for real-time audio: {len(late)} of "
                          f"{len(cap.probe_frames)} JACK cycles ran late; auralize: {stats}")

    # What was played is exactly the offline render (no sample lost or repeated).
    ref = render_score(score, stats.frames_rendered / SR + 0.1)
    differing = cycles_not_rendered(cap, ref, stats.frames_played, late)
    assert not differing, (f"{len(differing)} JACK cycles differ from the offline render "
                           f"(frame counters {differing[:10]}); host-late cycles {late[:10]}")
    # auralize's own dropouts: the device callback never found the ring buffer short,
    # and, while the host kept time, PortAudio never flagged an output underflow (it
    # flags every JACK xrun, also the host's).
    assert stats.ring_underruns == 0, stats
    if not len(late):
        assert stats.device_underflows == 0, stats
    assert stats.frames_played >= 0.95 * seconds * SR
    heard = (cap.block_times > r["t_play"]) & (cap.block_times < r["t_end"])
    assert heard.sum() >= 0.9 * seconds * SR / 512  # the recorder heard the whole run
    np.testing.assert_array_equal(cap.data[:, 0], cap.data[:, 1])  # mono duplicated
    # What you hear is what you record.
    recorded, rate = sf.read(r["out"], dtype="float32")
    assert rate == SR and len(recorded) == stats.frames_rendered
    np.testing.assert_allclose(recorded, ref[: len(recorded)], atol=1e-6, rtol=0)


def test_asap_event_latency(jack_recorder):
    """A ``time_s=None`` event is heard within 50 ms (measured by the JACK client)."""
    score = Score(SR)
    score.add_voice("probe", PROBE_VOICE)
    rec = jack_recorder()
    live = LiveOutput(SR, block_size=512).start(score)
    rec.wait_connected(2)
    sent = send_probe_events(live, n_events=6)
    stats = live.close()
    lat = event_latencies(rec.stop(), sent)
    ms = lat * 1000
    print(f"\nASAP event latency (ms): {np.round(ms, 1)}; child estimate "
          f"{stats.latency_s * 1000:.1f} ms; in-child measure (to the DAC) "
          f"{stats.event_latency_max_s * 1000:.1f} ms max")
    assert stats.ring_underruns == 0
    assert np.all(np.isfinite(ms)) and ms.min() > 0
    # The target, for the typical event (~30-35 ms here with the default lead); on a
    # heavily loaded host single events can take longer (the sending process waits).
    assert np.median(ms) <= 50.0


def test_jack_server_killed_mid_run(tmp_path):
    """The sound server vanishes: one warning, close() returns, the file holds the audio."""
    from conftest import _need_audio_stack

    _need_audio_stack()

    server = JackServer(SR, 512).start()
    env = ExitStack()
    env.enter_context(exported_env(server.env()))
    score = Score(SR)
    score.add_voice("tone", {"kind": "sines", "freq_hz": [440.0], "amp": [0.3]})
    out = tmp_path / "killed.wav"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # A process that only asked which device to use (as a training process
            # does) must exit normally after the server is gone.
            asker = subprocess.Popen(
                [sys.executable, "-c", "from auralize.audio.live import devices; import time; "
                 "print(devices.choose_output_device().label, flush=True); time.sleep(0.5)"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            live = LiveOutput(SR, out=out, file_subtype="FLOAT").start(score)
            assert live.stats().live
            asked = asker.stdout.readline()  # it has asked PortAudio (and JACK)
            time.sleep(0.7)
            server.kill()
            t_kill = time.perf_counter()
            time.sleep(1.5)
            t0 = time.perf_counter()
            stats = live.close()
            close_s = time.perf_counter() - t0
    finally:
        server.stop()
        env.close()
    asker.communicate(timeout=20)
    assert asker.returncode == 0 and "JACK" in asked, (asker.returncode, asked)
    ours = [w for w in caught if issubclass(w.category, AudioUnavailableWarning)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "went away" in str(ours[0].message)
    assert stats.device_lost and close_s < 5.0
    data, _rate = sf.read(out, dtype="float32")
    # Rendering went on at real-time pace after the kill (within the lead and a chunk).
    expected = (0.7 + 1.5) * SR
    assert len(data) >= expected - 0.3 * SR, (len(data), expected, t_kill)
    ref = render_score(score, len(data) / SR)
    np.testing.assert_allclose(data, ref[: len(data)], atol=1e-6, rtol=0)


def test_file_only_without_device(tmp_path):
    """No device (explicit name that does not exist): one warning, the file fills at real time."""
    from conftest import need_portaudio

    need_portaudio()  # without PortAudio the warning is about PortAudio, not the name
    score = Score(SR)
    score.add_voice("tone", {"kind": "sines", "freq_hz": [440.0], "amp": [0.3]})
    out = tmp_path / "nodev.wav"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        live = LiveOutput(SR, device="no-such-device-xyz", out=out).start(score)
        time.sleep(0.6)
        stats = live.close()
    ours = [w for w in caught if issubclass(w.category, AudioUnavailableWarning)]
    assert len(ours) == 1 and "no-such-device-xyz" in str(ours[0].message)
    assert not stats.live and stats.frames_played == 0
    data, _rate = sf.read(out, dtype="float32")
    assert 0.4 * SR <= len(data) <= 1.2 * SR
    assert np.abs(data).max() > 0.1

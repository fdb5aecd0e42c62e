"""Stereo live: a real JACK server, a separate capture client on both channels."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import soundfile as sf

from auralize.audio.live.output import STEADY_LEAD_S, LiveOutput
from auralize.audio.score import Score, render_score
from jackutil import align, sound_bursts

pytestmark = pytest.mark.audio
SR = 44100
VOICES = {"left": (440.0, -0.6), "right": (1320.0, 0.8)}  # name: (Hz, pan)


def right_over_left_db(stereo: np.ndarray, freq: float) -> float:
    """Level of ``freq`` on the right minus on the left, in dB."""
    seg = stereo.astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))[:, None], axis=0))
    k = round(freq * len(seg) / SR)
    band = spec[k - 2:k + 3]
    return 20 * math.log10(band[:, 1].max() / band[:, 0].max())


def law_db(pan: float) -> float:
    angle = (pan + 1) * math.pi / 4
    return 20 * math.log10(math.sin(angle) / math.cos(angle))


def test_a_voice_panned_left_is_louder_on_the_left_live_and_in_the_file(jack_recorder, tmp_path):
    score = Score(SR)
    for name, (freq, pan) in VOICES.items():
        score.add_voice(name, {"kind": "sines", "freq_hz": [freq], "amp": [0.3], "pan": pan})
    rec = jack_recorder(channels=2)
    out = tmp_path / "live.wav"
    live = LiveOutput(SR, out=out, file_subtype="FLOAT", lead_s=STEADY_LEAD_S,
                      engine_kwargs={"channels": 2})
    live.start(score)
    assert len(rec.wait_connected(2)) == 2
    time.sleep(1.5)
    stats = live.close()
    cap = rec.stop()
    assert stats.channels == 2 and stats.frames_played > SR
    recorded, rate = sf.read(str(out), dtype="float32")
    assert rate == SR and recorded.shape == (stats.frames_rendered, 2)
    # the file is the offline stereo render, and what JACK got is the file
    ref = render_score(score, stats.frames_rendered / SR, channels=2)
    np.testing.assert_allclose(recorded, ref[:len(recorded)], atol=1e-6, rtol=0)
    played = cap.data
    assert played.shape[1] == 2
    k = align(ref[:, 0], played[:, 0])
    # up to where the stream stopped: the tones are steady, so the capture's trailing
    # silence is the end of what reached JACK (seen once: the last ~0.15 s the callback
    # had read never reached the graph at close; not a stereo matter, see the report)
    heard = k + int(np.flatnonzero(np.abs(played[k:, 0]) > 1e-3)[-1]) + 1
    n = min(stats.frames_played, heard - k)
    assert n > SR
    np.testing.assert_allclose(played[k:k + n], ref[:n], atol=1e-6, rtol=0)
    # the equal-power law, within 1 dB, live and in the file alike
    for name, (freq, pan) in VOICES.items():
        for audio in (played[k + SR // 4:k + n], recorded[SR // 4:]):
            assert right_over_left_db(audio, freq) == pytest.approx(law_db(pan), abs=1.0), name
    assert right_over_left_db(played[k:k + n], VOICES["left"][0]) < -6  # louder on the left


def test_a_mono_device_gets_the_mix(jack_recorder, tmp_path):
    """One device channel: the mean of the engine's two (nothing panned away is lost)."""
    score = Score(SR)
    score.add_voice("hard-left", {"kind": "sines", "freq_hz": [440.0], "amp": [0.3], "pan": -1.0})
    rec = jack_recorder(channels=1)
    live = LiveOutput(SR, channels=1, lead_s=STEADY_LEAD_S, engine_kwargs={"channels": 2})
    live.start(score)
    assert len(rec.wait_connected(1)) == 1
    time.sleep(1.0)
    stats = live.close()
    cap = rec.stop()
    assert stats.channels == 1
    ref = render_score(score, stats.frames_rendered / SR, channels=2).mean(axis=1)
    k = align(ref, cap.data[:, 0])
    heard = k + int(np.flatnonzero(np.abs(cap.data[k:, 0]) > 1e-3)[-1]) + 1
    n = min(stats.frames_played, heard - k)
    assert n > SR // 2
    np.testing.assert_allclose(cap.data[k:k + n, 0], ref[:n], atol=1e-6, rtol=0)


# -- a training session: stereo by default, live and in the file ------------------------------

GROUPS = ["embed", "block0", "block1", "head"]  # input .. output: pans -1, -1/3, +1/3, +1


def slot_balance_db(stereo: np.ndarray, group: int) -> float:
    """Median over the steps heard of the right-over-left level (dB) in ``group``'s tone slot.

    Each step is a 40 ms burst of four 10 ms tones, one group after another; the
    slot's middle holds only that group's tone.
    """
    mix = stereo.mean(axis=1)
    steps = [(s, e) for s, e in sound_bursts(mix, SR) if 0.03 * SR <= e - s <= 0.05 * SR]
    assert len(steps) >= 10, steps
    out = []
    for s, _ in steps:
        part = stereo[s + group * 441 + 80: s + (group + 1) * 441 - 80].astype(np.float64)
        left, right = np.sqrt(np.mean(part ** 2, axis=0))
        out.append(20 * math.log10(right / left))
    return float(np.median(out))


def test_a_gradient_group_panned_left_is_louder_on_the_left_live_and_in_the_file(
        jack_server, jack_recorder, tmp_path):
    from auralize import Sonifier, TrainingStep
    from auralize.sonify.scales import depth_pans

    rec = jack_recorder(channels=2)
    son = Sonifier(tmp_path / "run", mappings=["gradients"], live=True, plot=False)  # stereo: default
    assert len(rec.wait_connected(2)) == 2
    for step in range(14):
        time.sleep(0.25)  # slower than the sound: every step is heard whole
        son.log(TrainingStep(step=step, grad_norms={g: 1.0 + i for i, g in enumerate(GROUPS)}))
    result = son.close()
    cap = rec.stop()
    assert result.stats["live"]["channels"] == 2 and result.stats["live"]["ring_underruns"] == 0
    recorded, rate = sf.read(str(result.wav_path), dtype="float32")
    assert rate == SR and recorded.ndim == 2 and recorded.shape[1] == 2
    pan = depth_pans(len(GROUPS))[1]  # the second group from the input: left of centre
    assert pan < 0
    for name, audio in (("live", cap.data), ("file", recorded)):
        balance = slot_balance_db(audio, 1)
        assert balance == pytest.approx(law_db(pan), abs=1.0), name
        assert balance < -3, name  # louder on the left
        assert slot_balance_db(audio, 2) == pytest.approx(-law_db(pan), abs=1.0), name  # mirror


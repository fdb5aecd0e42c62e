"""The engine in stereo (and any channel count): the pan law, glides, determinism, mono."""

from __future__ import annotations

import math

import numpy as np
import pytest

from auralize.audio import Score, render_score
from auralize.audio.engine import Engine
from auralize.audio.score import Event

SR = 44100


def rms_db(x: np.ndarray) -> float:
    return 20 * math.log10(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))))


def tone(pan, *, channels: int = 2, freq: float = 440.0, seconds: float = 1.0) -> np.ndarray:
    score = Score(SR, [Event(0.0, "v", "add", {"kind": "sines", "freq_hz": [freq],
                                                "amp": [0.4], "pan": pan})])
    return render_score(score, seconds, channels=channels)


@pytest.mark.parametrize("pan", [-1.0, -0.6, -0.25, 0.0, 0.3, 0.75])
def test_a_voice_is_placed_by_the_equal_power_law(pan):
    audio = tone(pan)
    assert audio.shape == (SR, 2) and audio.dtype == np.float32
    angle = (pan + 1) * math.pi / 4
    mono = tone(pan, channels=1)  # the mono engine ignores pan: the voice at full level
    for channel, gain in enumerate((math.cos(angle), math.sin(angle))):
        if gain < 1e-6:
            assert not audio[:, channel].any()  # hard left: nothing at all on the right
        else:
            assert rms_db(audio[:, channel]) == pytest.approx(rms_db(mono) + 20 * math.log10(gain),
                                                              abs=0.01)
    # constant power: the channels' powers add up to the mono voice's
    power = np.mean(np.square(audio, dtype=np.float64)) * 2
    assert power == pytest.approx(np.mean(np.square(mono, dtype=np.float64)), rel=1e-3)


def test_sine_bank_partials_each_have_their_own_pan():
    score = Score(SR, [Event(0.0, "v", "add", {"kind": "sines", "freq_hz": [440.0, 1320.0],
                                                "amp": [0.3, 0.3], "pan": [-1.0, 1.0]})])
    audio = render_score(score, 1.0, channels=2).astype(np.float64)
    spec = np.abs(np.fft.rfft(audio * np.hanning(SR)[:, None], axis=0))
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    at = {f: int(np.argmin(np.abs(freqs - f))) for f in (440.0, 1320.0)}
    assert spec[at[440.0], 0] > 1000 * spec[at[440.0], 1]  # 440 Hz on the left only
    assert spec[at[1320.0], 1] > 1000 * spec[at[1320.0], 0]  # 1320 Hz on the right only


def test_four_channels_run_the_pan_across_them_in_order():
    for pan, loud in ((-1.0, 0), (-1 / 3, 1), (1 / 3, 2), (1.0, 3)):
        audio = tone(pan, channels=4, seconds=0.2)
        levels = np.sqrt(np.mean(np.square(audio, dtype=np.float64), axis=0))
        assert np.argmax(levels) == loud and np.sum(levels > 1e-6) == 1, (pan, levels)


def test_pan_glides_without_clicks():
    """Pan from hard left to hard right over 0.5 s: each channel equals the tone times
    the equal-power gain of the linearly moving pan (computed here, sample by sample)."""
    freq, amp, master = 220.0, 0.4, 0.5
    score = Score(SR, [Event(0.0, "v", "add", {"kind": "sines", "freq_hz": [freq], "amp": [amp],
                                                "pan": -1.0}),
                       Event(0.25, "v", "pan", 1.0, 0.5)])
    audio = render_score(score, 1.0, channels=2).astype(np.float64)
    n = np.arange(SR)
    pan = np.clip(-1.0 + 2.0 * (n - 0.25 * SR) / (0.5 * SR), -1.0, 1.0)
    sine = amp * master * np.sin(2 * np.pi * freq / SR * n)
    angle = (pan + 1) * np.pi / 4
    expected = np.stack([sine * np.cos(angle), sine * np.sin(angle)], axis=1)
    assert np.max(np.abs(audio - expected)) < 2e-4  # float32 output, a gain linear per span
    step = np.max(np.abs(np.diff(audio, axis=0)))
    assert step <= np.max(np.abs(np.diff(sine))) * 1.001  # nothing jumps more than the tone


def _busy_score() -> list[Event]:
    rng = np.random.default_rng(1)
    return [
        Event(0.0, "small", "add", {"kind": "sines", "freq_hz": list(rng.uniform(100, 3000, 6)),
                                    "amp": [0.05] * 6, "pan": list(np.linspace(-1, 1, 6)),
                                    "tremolo_hz": 4.0, "tremolo_depth": 0.3}),
        Event(0.0, "big", "add", {"kind": "sines", "freq_hz": list(rng.uniform(100, 3000, 300)),
                                  "amp": [0.3 / 300] * 300, "pan": -0.4}),
        Event(0.0, "hiss", "add", {"kind": "noise", "amp": 0.03, "pan": 0.8}),
        Event(0.21, "big", "pan", 0.5, 0.3),
        Event(0.33, "small", "pan", list(np.linspace(1, -1, 6)), 0.2),
        Event(0.4, "hiss", "pan", -1.0, 0.1),
        Event(0.6, "big", "pan", list(np.linspace(-1, 1, 300)), 0.0),  # per partial: no BLAS
        Event(0.8, "big", "freq_hz", list(rng.uniform(100, 3000, 300)), 0.05),
    ]


def _in_blocks(engine: Engine, block: int, total: int) -> np.ndarray:
    parts, done = [], 0
    while done < total:
        k = min(block, total - done)
        parts.append(engine.render(k))
        done += k
    return np.concatenate(parts)


@pytest.mark.parametrize("channels", [2, 3])
def test_renders_are_bit_identical_at_any_block_size(channels):
    total = SR
    ref = _in_blocks(Engine.from_events(_busy_score(), sample_rate=SR, channels=channels), 1024,
                     total)
    assert ref.shape == (total, channels) and np.all(np.isfinite(ref))
    assert np.abs(ref).max() < 1
    for block in (1, 37, 512, 700, 5000):
        got = _in_blocks(Engine.from_events(_busy_score(), sample_rate=SR, channels=channels),
                         block, total)
        assert np.array_equal(got, ref), block


def test_skip_then_render_continues_the_stereo_render():
    whole = _in_blocks(Engine.from_events(_busy_score(), sample_rate=SR, channels=2), 1024, SR)
    engine = Engine.from_events(_busy_score(), sample_rate=SR, channels=2)
    engine.skip(int(0.5 * SR))
    rest = _in_blocks(engine, 1024, SR - int(0.5 * SR))
    # phases and glides agree up to float rounding; the limiter is idle at this level
    assert np.max(np.abs(rest - whole[int(0.5 * SR):])) < 1e-4


def test_mono_on_request_is_the_old_mono_render():
    """channels=1 ignores every pan: the same samples as the score with its pan events
    made no-ops (events still end spans where they fall, pan or not)."""
    events = _busy_score()
    no_pan = []
    for e in events:
        if e.param == "pan":
            e = Event(e.time_s, "nobody", "gain", 1.0)
        if e.param == "add":
            e = Event(e.time_s, e.voice, "add", {k: v for k, v in e.value.items() if k != "pan"})
        no_pan.append(e)
    mono = render_score(Score(SR, events), 1.0)
    assert mono.shape == (SR,)
    assert np.array_equal(mono, render_score(Score(SR, no_pan), 1.0))
    # and centred stereo is that mix at -3 dB on both sides
    centred = [Event(e.time_s, e.voice, e.param, 0.0 if e.param == "pan" else e.value, e.glide_s)
               if e.param != "add" else
               Event(e.time_s, e.voice, "add", {**e.value, "pan": 0.0}) for e in no_pan]
    stereo = render_score(Score(SR, centred), 1.0, channels=2)
    assert np.array_equal(stereo[:, 0], stereo[:, 1])
    assert np.max(np.abs(stereo[:, 0] - mono * math.sqrt(0.5))) < 1e-6


def test_bad_pans_are_clamped_and_counted():
    engine = Engine(SR, channels=2)
    engine.schedule(Event(0.0, "v", "add", {"kind": "sines", "freq_hz": [440.0], "amp": [0.3]}))
    engine.schedule(Event(0.0, "v", "pan", float("nan")))
    engine.schedule(Event(0.1, "v", "pan", 7.0, 0.0))
    audio = engine.render(SR // 5)
    assert np.all(np.isfinite(audio))
    assert engine.stats.nonfinite_params == 1 and engine.stats.clipped_params == 1
    assert not audio[SR // 10 + 1:, 0].any()  # 7 is hard right


def test_depth_pans_put_the_input_left_and_the_output_right():
    from auralize.sonify.scales import depth_pans

    assert depth_pans(0) == [] and depth_pans(1) == [0.0]
    assert depth_pans(5) == [-1.0, -0.5, 0.0, 0.5, 1.0]
    pans = depth_pans(48)  # a 48-block transformer's groups
    assert pans[0] == -1.0 and pans[-1] == 1.0 and all(np.diff(pans) > 0)


def test_gradient_groups_panned_by_depth_are_heard_by_depth():
    """The score API the gradient mapping can use: one bank, one partial per group,
    each at its depth pan; the first group's tone is loudest on the left."""
    from auralize.sonify.scales import depth_pans

    freqs = [300.0, 500.0, 700.0, 900.0]
    score = Score(SR, [Event(0.0, "gradients", "add", {"kind": "sines", "freq_hz": freqs,
                                                        "amp": [0.1] * 4, "pan": depth_pans(4)})])
    audio = render_score(score, 0.5, channels=2).astype(np.float64)
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))[:, None], axis=0))
    bins = [round(f * len(audio) / SR) for f in freqs]
    right_over_left = [spec[b, 1] / max(spec[b, 0], 1e-12) for b in bins]
    assert right_over_left[0] < 1e-6 and right_over_left[-1] > 1e6
    assert all(np.diff(right_over_left) > 0)


def test_training_recordings_are_stereo_by_default_and_mono_on_request(tmp_path):
    """The Sonifier's file: two channels, the input-side gradient group on the left by the
    equal-power law; ``channels=1``: one channel, the mono engine's samples."""
    import soundfile as sf

    from auralize import Sonifier, TrainingStep
    from auralize.sonify.scales import depth_pans

    groups = ["embed", "block0", "block1", "head"]
    for channels in (None, 1):
        kwargs = {} if channels is None else {"channels": channels}
        with Sonifier(tmp_path / f"run{channels}", mappings=["gradients"], live=False,
                      plot=False, **kwargs) as son:
            for step in range(6):
                son.log(TrainingStep(step=step, grad_norms={g: 1.0 + i for i, g in enumerate(groups)}))
        wav = tmp_path / f"run{channels}" / "sonification.wav"
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
        assert sf.info(str(wav)).channels == (channels or 2) == audio.shape[1]
        assert son.samples.shape == (audio.shape if channels is None else (len(audio),))
    step = int(round(son.timeline.step_s * rate))
    slot = step // (len(groups) + 2)  # four tones, two silent slots
    stereo = sf.read(str(tmp_path / "runNone" / "sonification.wav"), dtype="float64")[0]
    for group, pan in enumerate(depth_pans(len(groups))):
        part = np.concatenate([stereo[s * step + group * slot + 80:
                                      s * step + (group + 1) * slot - 80] for s in range(1, 6)])
        left, right = np.sqrt(np.mean(part ** 2, axis=0))
        angle, level = (pan + 1) * math.pi / 4, math.hypot(left, right)  # equal power
        assert level > 0.01
        assert (left, right) == pytest.approx((level * math.cos(angle), level * math.sin(angle)),
                                              abs=0.01 * level), group

"""The offline engine: what a listener would hear, checked in the rendered samples."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio_analysis import dominant_frequency, max_step, pitch_track
from auralize.audio import Engine, Event, Score, render_score
from auralize.audio.voices.base import bandpass_gain
from auralize.audio.voices.lfo import LFO

SR = 44100


def tone_score(freq_hz=440.0, amp=0.5, **spec) -> Score:
    score = Score(sample_rate=SR)
    score.add_voice("tone", {"kind": "sines", "freq_hz": [freq_hz], "amp": [amp], **spec})
    return score


def sha(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def test_sine_bank_plays_the_requested_frequencies_and_levels():
    score = Score(sample_rate=SR)
    score.add_voice("bank", {"kind": "sines", "freq_hz": [300.0, 1250.0], "amp": [0.4, 0.2]})
    audio = render_score(score, 1.0, master_gain=1.0)
    spec = np.abs(np.fft.rfft(audio)) * 2 / len(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    assert spec[np.argmin(np.abs(freqs - 300))] == pytest.approx(0.4, rel=0.01)
    assert spec[np.argmin(np.abs(freqs - 1250))] == pytest.approx(0.2, rel=0.01)
    # nothing else of note: energy outside the two partials is tiny
    others = spec.copy()
    for f in (300, 1250):
        others[np.abs(freqs - f) < 3] = 0
    assert others.max() < 1e-4


def test_fast_path_matches_a_direct_sine_reference():
    rng = np.random.default_rng(1)
    freqs = rng.uniform(100, 4000, 256)
    amps = np.full(256, 1 / 256)
    engine = Engine(SR, master_gain=1.0)
    engine.add_voice("bank", {"kind": "sines", "freq_hz": freqs, "amp": amps})
    audio = engine.render(SR)  # 86 spans: exercises the rotated-phasor state and rebuilds
    n = np.arange(SR)[:, None]
    reference = (amps * np.sin(2 * np.pi * freqs * n / SR)).sum(axis=1)
    assert np.max(np.abs(audio - reference)) < 2e-5


def test_gliding_bank_matches_a_float64_chirp_reference():
    """A bank gliding in frequency (a detune) renders the exact linear chirp."""
    rng = np.random.default_rng(2)
    f0 = rng.uniform(100, 4000, 64)
    f1 = f0 * rng.uniform(0.8, 1.25, 64)
    amps = np.full(64, 1 / 64)
    glide_s = 0.3
    engine = Engine(SR, master_gain=1.0)
    engine.add_voice("bank", {"kind": "sines", "freq_hz": f0, "amp": amps})
    engine.schedule(Event(0.0, "bank", "freq_hz", f1, glide_s=glide_s))
    audio = engine.render(int(0.4 * SR))  # the glide, spans of odd lengths, then steady
    t = np.arange(audio.size)[:, None] / SR
    tg = np.minimum(t, glide_s)  # phase: integral of a linear ramp, then of f1
    phase = 2 * np.pi * (f0 * tg + (f1 - f0) * tg**2 / (2 * glide_s) + f1 * (t - tg))
    reference = (amps * np.sin(phase)).sum(axis=1)
    assert np.max(np.abs(audio - reference)) < 2e-5


def test_glide_moves_pitch_smoothly_to_the_target():
    score = tone_score(440.0)
    score.set(0.5, "tone", "freq_hz", 880.0, glide_s=0.2)
    audio = render_score(score, 1.0, master_gain=1.0)
    times, freqs = pitch_track(audio, SR, frame_s=0.02)
    before = freqs[times < 0.49]
    during = freqs[(times > 0.55) & (times < 0.65)]
    after = freqs[times > 0.72]
    assert np.allclose(before, 440, atol=2)
    assert np.all((during > 470) & (during < 850))
    assert np.allclose(after, 880, atol=2)
    # the glide is monotonic: no pitch jumps back
    middle = freqs[(times > 0.5) & (times < 0.7)]
    assert np.all(np.diff(middle) > -3)


def test_render_is_bit_identical_at_any_block_size():
    score = tone_score(220.0, 0.3, vibrato_hz=5.0, vibrato_cents=30.0)
    score.add_voice("hiss", {"kind": "noise", "amp": 0.05, "bp_q": 4, "bp_center_hz": 2000})
    score.set(0.1, "tone", "freq_hz", 660.0, glide_s=0.05)
    score.set(0.1234, "tone", "amp", 0.6, glide_s=0.01)
    score.set(0.3, "hiss", "sweep_hz", 3.0)
    score.set(0.4, "master", "gain", 0.9)
    hashes = {sha(render_score(score, 0.7, block_size=b)) for b in (1, 37, 512, 1000, 4096)}
    assert len(hashes) == 1


def test_score_json_round_trip_renders_the_same(tmp_path):
    score = tone_score(330.0)
    score.set(0.2, "tone", "freq_hz", np.array([495.0]), glide_s=0.03)
    path = score.to_json(tmp_path / "score.json")
    again = Score.from_json(path)
    assert sha(render_score(score, 0.5)) == sha(render_score(again, 0.5))


def test_frequency_step_and_amplitude_step_do_not_click():
    # frequency jump 200 -> 2000 Hz, default glide
    score = tone_score(200.0, 0.8)
    score.set(0.5, "tone", "freq_hz", 2000.0)
    audio = render_score(score, 1.0, master_gain=1.0)
    steady_2000 = render_score(tone_score(2000.0, 0.8), 0.5, master_gain=1.0)
    assert max_step(audio) <= 1.5 * max_step(steady_2000)
    # amplitude jump 0 -> 1 on a 200 Hz tone
    score = tone_score(200.0, 0.0)
    score.set(0.3, "tone", "amp", 1.0)
    audio = render_score(score, 0.6, master_gain=1.0, limiter_threshold=0.998)
    steady_200 = render_score(tone_score(200.0, 1.0), 0.3, master_gain=1.0,
                              limiter_threshold=0.998)
    assert max_step(audio) <= 1.5 * max_step(steady_200)
    assert np.max(np.abs(audio[int(0.4 * SR):])) > 0.95  # and it really got loud


def test_instant_change_without_glide_keeps_phase_continuous():
    score = tone_score(300.0, 0.5)
    score.set(0.25, "tone", "freq_hz", 3000.0, glide_s=0.0)
    audio = render_score(score, 0.5, master_gain=1.0)
    # phase continuity bounds every step by the higher tone's own step
    assert max_step(audio) <= 0.5 * 2 * np.pi * 3000 / SR * 1.01


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["freq_hz", "amp", "shift_hz", "gain", "bp_center_hz", "bp_q",
                             "vibrato_hz", "vibrato_cents", "tremolo_hz", "tremolo_depth",
                             "sweep_hz", "glide_s"]),
            st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -1e30, -440.0, 0.0, 1e-30,
                             3e5, 880.0]),
            st.sampled_from([None, 0.0, np.nan, -1.0, 1e30, 0.01]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_garbage_parameters_never_reach_the_output(changes):
    score = Score(sample_rate=SR)
    score.add_voice("a", {"kind": "sines", "freq_hz": [440.0, 550.0], "amp": [0.9, 0.9]})
    score.add_voice("n", {"kind": "noise", "amp": 0.5})
    for i, (param, value, glide) in enumerate(changes):
        voice = "n" if param in ("bp_q",) and i % 2 else "a"
        score.set(0.01 * (i + 1), voice, param, value, glide_s=glide)
    score.set(0.02, "master", "gain", changes[0][1])
    engine = Engine.from_events(score.events, sample_rate=SR, master_gain=1.0)
    audio = engine.render(int(0.12 * SR))
    assert np.all(np.isfinite(audio))
    assert np.max(np.abs(audio)) <= 1.0
    bad = [v for _, v, g in changes if not np.isfinite(v) or v < 0 or abs(v) >= 1e30]
    if bad:
        assert engine.stats.nonfinite_params + engine.stats.clipped_params > 0


def test_nan_and_negative_frequencies_are_counted():
    score = tone_score(440.0)
    score.set(0.1, "tone", "freq_hz", np.nan)
    score.set(0.2, "tone", "freq_hz", -100.0)
    score.set(0.3, "tone", "amp", np.inf)
    engine = Engine.from_events(score.events, sample_rate=SR)
    audio = engine.render(SR // 2)
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0
    assert engine.stats.nonfinite_params == 2
    assert engine.stats.clipped_params == 1


def test_many_loud_voices_are_limited_within_full_scale():
    score = Score(sample_rate=SR)
    freqs = np.linspace(100, 200, 64)
    score.add_voice("crowd", {"kind": "sines", "freq_hz": freqs, "amp": np.ones(64)})
    engine = Engine.from_events(score.events, sample_rate=SR, master_gain=1.0)
    audio = engine.render(SR)
    assert np.max(np.abs(audio)) < 1.0
    assert engine.stats.limiter_engaged_blocks > 0


def test_frequency_shift_moves_every_partial():
    score = Score(sample_rate=SR)
    score.add_voice("bank", {"kind": "sines", "freq_hz": [500.0], "amp": [0.5], "shift_hz": 0})
    score.set(0.0, "bank", "shift_hz", 125.0, glide_s=0.0)
    audio = render_score(score, 0.5)
    assert dominant_frequency(audio, SR) == pytest.approx(625.0, abs=1.0)


def test_tremolo_modulates_level_at_its_rate():
    audio = render_score(tone_score(1000.0, 0.8, tremolo_hz=4.0, tremolo_depth=1.0), 2.0,
                         master_gain=1.0)
    envelope = np.abs(audio).reshape(-1, 441).max(axis=1)  # 10 ms frames
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean()))
    rate = np.fft.rfftfreq(len(envelope), 0.01)[np.argmax(spectrum)]
    assert rate == pytest.approx(4.0, abs=0.6)
    assert envelope.min() < 0.1 * envelope.max()


def test_vibrato_swings_pitch_by_its_depth():
    audio = render_score(tone_score(1000.0, 0.5, vibrato_hz=2.0, vibrato_cents=100.0), 1.0)
    _, freqs = pitch_track(audio, SR, frame_s=0.03, hop_s=0.01)
    ratio = freqs.max() / freqs.min()
    assert ratio == pytest.approx(2 ** (200 / 1200), rel=0.02)


def test_bandpass_on_a_bank_passes_the_centre_and_cuts_far_partials():
    score = Score(sample_rate=SR)
    score.add_voice("bank", {"kind": "sines", "freq_hz": [1000.0, 4000.0], "amp": [0.4, 0.4],
                             "bp_center_hz": 1000.0, "bp_q": 4.0})
    audio = render_score(score, 0.5, master_gain=1.0)
    spec = np.abs(np.fft.rfft(audio)) * 2 / len(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    level = {f: spec[np.argmin(np.abs(freqs - f))] for f in (1000, 4000)}
    assert level[1000] == pytest.approx(0.4, rel=0.02)
    assert level[4000] == pytest.approx(0.4 * bandpass_gain(4000.0, 1000.0, 4.0), rel=0.05)


def test_noise_bandpass_centres_energy_and_is_reproducible():
    score = Score(sample_rate=SR)
    score.add_voice("n", {"kind": "noise", "amp": 0.5, "bp_center_hz": 3000.0, "bp_q": 8.0,
                          "seed": 7})
    audio = render_score(score, 1.0, master_gain=1.0)
    spec = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    centroid = (freqs * spec).sum() / spec.sum()
    assert 2500 < centroid < 3600
    assert sha(audio) == sha(render_score(score, 1.0, master_gain=1.0))


def test_lfo_shapes_and_rate():
    lfo = LFO(100, rate_hz=1.0, shape="saw_down")
    values = [lfo.advance(25)[0][0] for _ in range(4)]
    assert values == pytest.approx([1.0, 0.75, 0.5, 0.25])
    with pytest.raises(ValueError, match="unknown LFO shape"):
        LFO(100, 1.0, shape="wobble")


def test_unknown_voice_kind_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown voice kind 'organ'"):
        Engine(SR).add_voice("x", {"kind": "organ"})


def test_events_for_missing_voices_are_counted_not_fatal():
    engine = Engine.from_events([Event(0.0, "ghost", "amp", 1.0)], sample_rate=SR)
    assert np.all(engine.render(1024) == 0)
    assert engine.stats.unknown_events == 1


def test_a_4096_partial_bank_renders_and_sounds_every_partial():
    rng = np.random.default_rng(3)
    freqs = np.round(rng.uniform(100, 4000, 4096))
    engine = Engine(SR, master_gain=1.0)
    engine.add_voice("layer", {"kind": "sines", "freq_hz": freqs, "amp": np.full(4096, 1e-4)})
    audio = engine.render(SR)
    spec = np.abs(np.fft.rfft(audio)) * 2 / len(audio)
    present = spec[freqs.astype(int)]  # 1 Hz bins at 1 s
    assert np.all(present > 0.5e-4)


def _busy_score(seconds: float) -> Score:
    """Sines that glide, swell, vibrate and go silent; band-passed noise; master gain moves."""
    rng = np.random.default_rng(3)
    score = Score(sample_rate=SR)
    score.add_voice("bank", {"kind": "sines", "freq_hz": rng.uniform(200, 2000, 32),
                             "amp": np.full(32, 0.02), "vibrato_hz": 5.0, "vibrato_cents": 20})
    score.add_voice("chord", {"kind": "sines", "freq_hz": [220.0, 330.0], "amp": [0.2, 0.1]})
    score.add_voice("hiss", {"kind": "noise", "amp": 0.05, "bp_center_hz": 1000, "bp_q": 2,
                             "sweep_hz": 0.5, "sweep_lo_hz": 500, "sweep_hi_hz": 2000})
    for k, t in enumerate(np.arange(0.1, seconds, 0.37)):
        score.set(t, "bank", "freq_hz", rng.uniform(200, 2000, 32), glide_s=0.05)
        score.set(t + 0.1, "chord", "amp", [0.0, 0.0] if k % 3 == 0 else [0.3, 0.2],
                  glide_s=0.02)
        if k % 4 == 0:
            score.set(t, "master", "gain", float(rng.uniform(0.3, 0.9)), glide_s=0.1)
    return score


@pytest.mark.parametrize("seek_s", [0.0, 0.3, 2.5, 5.123])
def test_skip_then_preroll_matches_rendering_from_the_start(seek_s):
    """Seeking: skip synthesis, render a 1 s pre-roll; the samples after it are the same."""
    score = _busy_score(8.0)
    reference = render_score(score, 8.0)
    engine = Engine.from_events(score.events, sample_rate=SR)
    target = round(seek_s * SR)
    engine.skip(max(0, target - SR))
    assert engine.frames_rendered == max(0, target - SR)
    engine.render(target - engine.frames_rendered)
    after = engine.render(2 * SR)
    assert engine.time_s == pytest.approx(seek_s + 2.0, abs=1 / SR)
    np.testing.assert_allclose(after, reference[target : target + 2 * SR], atol=1e-5)
    assert np.sqrt(np.mean(after**2)) > 0.01  # not silence that trivially matches


def test_skip_without_preroll_keeps_every_voice_in_step():
    """Even without a pre-roll, a skipped engine sounds the same (the limiter idle, the
    noise's band-pass settled after a few ms): phases, LFOs and the noise are in step."""
    score = _busy_score(4.0)
    reference = render_score(score, 4.0, master_gain=0.2)  # quiet: the limiter never engages
    engine = Engine.from_events(score.events, sample_rate=SR, master_gain=0.2)
    engine.render(777)
    engine.skip(3 * SR - 777)  # from inside a buffered block, across events and glides
    after = engine.render(SR)
    settle = SR // 20
    np.testing.assert_allclose(after[settle:], reference[3 * SR + settle : 4 * SR], atol=1e-5)


@pytest.mark.parametrize("partials", [40, 300])  # the compiled recurrence; BLAS for big banks
def test_bank_with_amplitude_ramps_and_glides_matches_a_float64_reference(partials):
    """Amplitude swells, a frequency glide and steady stretches, against direct float64 sines."""
    rng = np.random.default_rng(4)
    f0 = rng.uniform(100, 4000, partials)
    f1 = f0 * rng.uniform(0.8, 1.25, partials)
    a0 = rng.uniform(0, 1, partials) / partials
    a1 = rng.uniform(0, 1, partials) / partials
    engine = Engine(SR, master_gain=1.0)
    engine.add_voice("bank", {"kind": "sines", "freq_hz": f0, "amp": a0})
    engine.schedule(Event(0.05, "bank", "amp", a1, glide_s=0.1))  # swell while steady
    engine.schedule(Event(0.2, "bank", "freq_hz", f1, glide_s=0.05))  # then a glide
    audio = engine.render(int(0.3 * SR))
    t = np.arange(audio.size)[:, None] / SR
    amp = a0 + (a1 - a0) * np.clip((t - 0.05) / 0.1, 0, 1)
    tg = np.clip(t - 0.2, 0, 0.05)  # time into the glide
    after = np.maximum(t - 0.25, 0)  # time at f1
    phase = 2 * np.pi * (f0 * np.minimum(t, 0.2) + f0 * tg + (f1 - f0) * tg**2 / (2 * 0.05)
                         + f1 * after)
    reference = (amp * np.sin(phase)).sum(axis=1)
    assert np.max(np.abs(audio - reference)) < 2e-5
    assert np.sqrt(np.mean(audio**2)) > 0.01


def test_big_bank_is_bit_identical_at_any_block_size():
    """Big banks take the BLAS path for steady spans (phasors rotated from span to span)
    and the compiled recurrence for glides: neither depends on the block size."""
    rng = np.random.default_rng(5)
    score = Score(sample_rate=SR)
    score.add_voice("big", {"kind": "sines", "freq_hz": rng.uniform(100, 4000, 300),
                            "amp": np.full(300, 1 / 600)})
    score.set(0.05, "big", "amp", np.full(300, 1 / 400), glide_s=0.03)
    score.set(0.15, "big", "freq_hz", rng.uniform(100, 4000, 300), glide_s=0.02)
    score.set(0.2001, "big", "gain", 0.5, glide_s=0.0)
    hashes = {sha(render_score(score, 0.4, block_size=b)) for b in (1, 333, 512, 1024, 20000)}
    assert len(hashes) == 1

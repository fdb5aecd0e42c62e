"""Eyes-free training: spoken announcements and earcons in the recording itself."""

from __future__ import annotations

import itertools
import logging
import math
import time

import numpy as np
import pytest
import soundfile as sf

from audio_analysis import band_envelope, spectral_distance
from auralize import Sonifier, TrainingStep
from auralize.audio.score import Score, render_score
from auralize.audio.voices import sampler
from auralize.cli import main
from auralize.sonify import make_mapping
from auralize.sonify.announce import Announcer, spoken_value
from auralize.sonify.earcons import EARCONS

SR = 44100
STEP_S = 0.05
EPOCH_STEPS = 120  # 6 s per epoch: room for a sentence


def need_espeak() -> None:
    if not sampler.speech_available():
        from conftest import audio_unavailable

        audio_unavailable("espeak-ng not installed (Debian: apt-get install espeak-ng)")


def epoch_run(n_epochs: int = 3):
    """Records of a small run: a falling loss, metrics and val_loss at each epoch end."""
    for step in range(n_epochs * EPOCH_STEPS):
        epoch = step // EPOCH_STEPS
        record = TrainingStep(step=step, epoch=epoch, loss=2.0 / (1 + 0.05 * step),
                              epoch_end=step % EPOCH_STEPS == EPOCH_STEPS - 1)
        if record.epoch_end:
            record.metrics = {"accuracy": 0.6 + 0.1 * epoch, "val_loss": 1.0 / (epoch + 1)}
        yield record


# -- words: no audio ------------------------------------------------------------------
def test_announcements_say_the_numbers_a_listener_needs():
    say = Announcer()
    step = TrainingStep(step=9, epoch=2, loss=0.4213, epoch_end=True,
                        metrics={"accuracy": 0.9137})
    assert [a.text for a in say.step(step)] == ["epoch 3, loss 0.42, accuracy 91 percent"]
    say.step(TrainingStep(step=10, epoch=3, epoch_end=True, loss=0.5, metrics={"val_loss": 0.5}))
    news = say.step(TrainingStep(step=11, epoch=4, epoch_end=True, loss=0.3,
                                 metrics={"val_loss": 0.31}))
    assert [a.kind for a in news] == ["best", "epoch"]
    assert news[0].text == "new best validation loss 0.31"
    assert say.step(TrainingStep(step=12, loss=math.nan))[0].text == "warning: loss is not a number"
    assert say.step(TrainingStep(step=13, loss=math.nan)) == []  # once per onset
    assert say.end().text == "training finished, 3 epochs, best validation loss 0.31"
    assert Announcer(verbosity="brief").step(step)[0].text == "epoch 3"
    assert spoken_value("loss", 1234.5) == "1234" and spoken_value("loss", 1e-5) == "0.00001"


def test_bad_speech_settings_are_one_line_errors():
    from auralize.errors import AuralizeError

    with pytest.raises(AuralizeError, match="rate_wpm must be 80..500"):
        make_mapping({"kind": "speech", "rate_wpm": 5})
    with pytest.raises(AuralizeError, match="verbosity must be one of"):
        make_mapping({"kind": "earcons", "verbosity": "chatty"})


def test_without_espeak_one_warning_and_earcons_only(monkeypatch, caplog):
    monkeypatch.setattr(sampler, "speech_available", lambda: False)
    monkeypatch.setattr(sampler, "_warned_no_tts", False)
    with caplog.at_level(logging.WARNING, logger="auralize"):
        mappings = [make_mapping("speech"), make_mapping({"kind": "speech", "rate_wpm": 300})]
        events = [e for m in mappings for r in epoch_run(2) for e in m.events(r, 0.0, STEP_S)]
    plays = [e.value for e in events if e.param == "play"]
    assert plays and all("earcon" in p and "speech" not in p for p in plays)
    assert plays[0]["text"].startswith("epoch 1, loss")
    assert sum("espeak-ng is not installed" in r.message for r in caplog.records) == 1


# -- sound ------------------------------------------------------------------------------
def test_speech_is_in_the_recording_at_each_epoch_end(tmp_path):
    need_espeak()
    # The loss tone sits below the speech band, so band energy is the voice's alone.
    loss_low = {"kind": "loss", "min_freq": 100.0, "max_freq": 200.0}

    def record(mappings, folder):
        with Sonifier(folder, mappings=mappings, step_s=STEP_S, live=False, plot=False) as son:
            for r in epoch_run():
                son.log(r)
        audio, rate = sf.read(str(son.close().wav_path), dtype="float32", always_2d=True)
        # over the channels by power: the speech's level wherever it is placed (stereo)
        bands = [band_envelope(audio[:, c], rate, 300.0, 3400.0) for c in range(audio.shape[1])]
        times, rms = bands[0][0], np.sqrt(sum(band ** 2 for _, band in bands))
        return times[5:-5], rms[5:-5]  # the brick-wall band rings at the file's two edges

    times, speech = record([loss_low, {"kind": "speech", "rate_wpm": 260}], tmp_path / "run")
    _, silent = record([loss_low], tmp_path / "quiet")
    threshold = 0.01
    assert silent.max() < threshold  # the band is empty without the speech voice
    for epoch in range(3):
        end_s = (epoch + 1) * EPOCH_STEPS * STEP_S
        window = (times > end_s - 0.5) & (times < end_s + 1.0)
        onset_s = times[window][np.argmax(speech[window] > threshold)]
        assert abs(onset_s - end_s) <= 0.2, (epoch, onset_s, end_s)
        assert speech[(times > end_s) & (times < end_s + 0.8)].mean() > 2 * threshold
    # the training-end sentence is complete in the file, not cut by its end
    final_s = 3 * EPOCH_STEPS * STEP_S
    assert speech[times > final_s].max() > threshold and speech[-15:].max() < threshold
    # and `auralize render` of the run folder reproduces the file bit for bit
    assert main(["render", str(tmp_path / "run"), "-o", str(tmp_path / "again.wav"),
                 "--no-plot"]) == 0
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "run/sonification.wav").read_bytes()


def training_voices() -> dict[str, np.ndarray]:
    """Half a second of each training voice as it sounds (loss, alarm, gradients, weights)."""
    out = {}
    for name, record in (
            ("loss", TrainingStep(step=0, loss=1.0)),
            ("alarm", TrainingStep(step=0, loss=math.nan)),
            ("gradients", TrainingStep(step=0, grad_norms={"a": 1.0, "b": 3.0})),
            ("weights", TrainingStep(step=0, unit_means={
                "dense": np.linspace(-0.05, 0.05, 16).tolist()}))):
        mapping, score = make_mapping(name), Score(SR)
        for i in range(10):  # ten steps of 50 ms: gradient tones repeat in each
            score.events.extend(mapping.events(record, i * 0.05, 0.05))
        audio = render_score(score, 0.5, tail_s=0.0)[int(0.06 * SR):]  # after fade-ins
        assert np.abs(audio).max() > 0.01, name  # each voice really sounds here
        out[name] = audio
    return out


def test_earcons_differ_from_each_other_and_from_the_training_voices():
    earcons = {name: sampler.motif_samples(EARCONS[name], SR) for name in ("epoch", "best", "diverge",
                                                                    "end")}
    assert all(np.abs(x).max() <= 0.5 + 1e-9 and np.all(np.isfinite(x)) for x in earcons.values())
    assert spectral_distance(earcons["best"], earcons["best"], SR) == pytest.approx(0.0, abs=1e-12)
    for (a, x), (b, y) in itertools.combinations(earcons.items(), 2):
        assert spectral_distance(x, y, SR) > 0.3, (a, b)
    for (a, x), (b, y) in itertools.product(earcons.items(), training_voices().items()):
        assert spectral_distance(x, y, SR) > 0.3, (a, b)


def test_earcons_play_at_their_events_and_render_deterministically():
    mapping = make_mapping("earcons")
    score = Score(SR)
    for i, record in enumerate(epoch_run(2)):
        score.events.extend(mapping.events(record, i * STEP_S, STEP_S))
    score.events.extend(mapping.final_events(2 * EPOCH_STEPS * STEP_S))
    audio = render_score(score, mapping.sounding_until_s() + 0.1)
    again = render_score(score, mapping.sounding_until_s() + 0.1, block_size=333)
    assert np.array_equal(audio, again)
    loud = np.flatnonzero(np.abs(audio) > 0.01) / SR
    first_end_s = (EPOCH_STEPS - 1) * STEP_S
    assert loud[0] == pytest.approx(first_end_s, abs=0.01)
    assert [e.value["earcon"] for e in score.events if e.param == "play"] == [
        "epoch", "best", "end"]


# -- context: reference tone and octave ticks --------------------------------------------
def level_at(audio: np.ndarray, freq_hz: float) -> float:
    n = np.arange(len(audio))
    return 2 * abs(np.dot(audio, np.exp(-2j * np.pi * freq_hz * n / SR))) / len(audio)


def test_reference_tone_and_octave_ticks_give_the_loss_tone_a_scale(caplog):
    tone = make_mapping({"kind": "loss", "reference_amp": 0.05, "octave_ticks": True})
    losses = np.geomspace(1.0, 0.02, 100)  # the tone falls from 1000 Hz past 500 and 250 Hz
    score = Score(SR)
    for step, loss in enumerate(losses):
        score.events.extend(tone.events(TrainingStep(step=step, loss=float(loss)),
                                        step * STEP_S, STEP_S))
    audio = render_score(score, len(losses) * STEP_S, master_gain=1.0)
    end = audio[-SR // 2:]  # the loss is far below its start: tone ~210 Hz, reference 1000 Hz
    assert 0.02 < level_at(end, 1000.0) < 0.5 * level_at(end, 200.0 + 0.02 * 800.0)
    ticks = [e.time_s for e in score.events if e.param == "play"]
    freqs = 200.0 + losses * 800.0
    crossings = [i * STEP_S for i in range(1, 100) if (freqs[i] < 500 <= freqs[i - 1])
                 or (freqs[i] < 250 <= freqs[i - 1])]
    assert ticks == pytest.approx(crossings) and len(ticks) == 2
    times, tick_band = band_envelope(audio, SR, 2000.0, 2200.0)
    loud = times[tick_band > 0.05]
    assert loud.size and all(any(abs(t - c) < 0.05 for c in crossings) for t in loud)
    with caplog.at_level(logging.WARNING, logger="auralize"):
        make_mapping({"kind": "loss", "min_freq": 20.0, "max_freq": 5000.0})
    assert "leaves MIDI 35..100" in caplog.text


@pytest.mark.audio
def test_speech_plays_live_through_the_speaker(jack_server, jack_recorder, tmp_path):
    need_espeak()
    rec = jack_recorder()
    son = Sonifier(tmp_path / "run", mappings=[{"kind": "speech", "rate_wpm": 250}],
                   live=True, plot=False, step_s=0.05)
    assert len(rec.wait_connected(2)) == 2
    for step in range(10):
        son.log(TrainingStep(step=step, loss=1.0, epoch_end=step == 9,
                             metrics={"accuracy": 0.9} if step == 9 else {}))
    time.sleep(3.5)  # the sentence ("epoch 1, loss 1, accuracy 90 percent") takes ~2 s
    result = son.close()
    cap = rec.stop()
    assert result.stats["live"]["ring_underruns"] == 0
    # the speaker is stereo (speech in the centre, -3 dB per side): a listener hears the
    # power of both channels together, the mono sentence's level
    bands = [band_envelope(cap.data[:, c], SR, 300.0, 3400.0)[1] for c in range(cap.data.shape[1])]
    speech = np.sqrt(np.sum(np.square(bands), axis=0))
    assert (speech > 0.01).sum() * 0.01 > 0.8  # close to a second of voiced speech, live


def test_an_earcon_score_saved_as_json_renders_the_same(tmp_path):
    """A ``play`` event carries its motif's notes: a score read back from JSON (lists, not
    tuples) renders bit-identically, without the earcon table."""
    from auralize.audio.score import Event
    from auralize.sonify.earcons import earcon_play

    score = Score(SR, [Event(0.0, "e", "add", {"kind": "sampler"}),
                       Event(0.05, "e", "play", earcon_play("diverge", level=0.8))])
    again = Score.from_json(score.to_json(tmp_path / "score.json"))
    assert isinstance(again.events[1].value["motif"][0], list)      # JSON made them lists
    audio = render_score(score, 1.2)
    assert np.abs(audio).max() > 0.1
    assert np.array_equal(audio, render_score(again, 1.2))

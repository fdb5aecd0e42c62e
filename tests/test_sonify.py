"""Training sonification: pure mappings, the Sonifier's run folder, fidelity, re-rendering."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from audio_analysis import dominant_frequency, mono_mix
from auralize import Sonifier, TrainingStep
from auralize.cli import main
from auralize.errors import AuralizeError
from auralize.sonify import Alarm, GradientTones, LossTone, WeightChord, make_mapping
from auralize.sonify.scales import (
    FirstValueRelative,
    RollingPercentile,
    RunningMinMax,
    chord_pitches,
    fold_into_range,
    loss_to_freq,
)

SR = 44100


# -- pure mappings: no audio ------------------------------------------------------
def test_chord_pitches_follow_sonnify_groups():
    assert chord_pitches(10, 100, "major").tolist() == [
        100, 125, 150, 200, 250, 300, 300, 375, 450, 400]
    assert chord_pitches(3, 100, "minor").tolist() == [100, 120, 150]
    with pytest.raises(ValueError, match="unknown harmony 'blues'"):
        chord_pitches(4, 100, "blues")


def test_folding_keeps_pitch_classes_below_the_limit():
    folded = fold_into_range(np.array([100.0, 3000.0, 12000.0, 96000.0]), 4000.0, 100.0)
    assert np.all(folded <= 4000.0)
    assert np.allclose(np.log2(np.array([3000.0, 12000.0, 96000.0]) / folded[1:]) % 1, 0)


def test_loss_to_freq_is_sonnify_formula_capped():
    assert loss_to_freq(2.0, 2.0, 200, 1000) == 1000
    assert loss_to_freq(0.5, 2.0, 200, 1000) == 400
    assert loss_to_freq(50.0, 2.0, 200, 1000) == 1000  # capped above L0
    assert loss_to_freq(0.0, 0.0, 200, 500) == 200


def test_normalisers():
    rel = FirstValueRelative()
    assert [rel(x) for x in (4.0, 2.0, 8.0)] == [1.0, 0.5, 1.0]
    mm = RunningMinMax()
    assert [mm(x) for x in (1.0, 3.0, 2.0)] == [0.5, 1.0, 0.5]
    pct = RollingPercentile(window=100, low_pct=0, high_pct=100)
    for x in range(101):
        pct(float(x))
    assert pct(50.0) == pytest.approx(0.5, abs=0.02)


def test_loss_tone_events_glide_to_the_formula():
    tone = LossTone(min_freq=200, max_freq=1000)
    first = tone.events(TrainingStep(step=0, loss=4.0), 0.0, 0.06)
    assert [e.param for e in first] == ["add", "amp", "freq_hz"]
    (event,) = tone.events(TrainingStep(step=1, loss=1.0), 0.06, 0.06)
    assert event.value == 400.0 and event.time_s == 0.06 and event.glide_s > 0
    assert tone.events(TrainingStep(step=2, loss=math.nan), 0.12, 0.06) == []


def test_loss_tone_on_epoch_uses_val_loss():
    tone = LossTone(hear_on="epoch")
    assert tone.events(TrainingStep(step=0, loss=1.0), 0, 0.05) == []
    events = tone.events(TrainingStep(step=1, loss=1.0, epoch_end=True,
                                      metrics={"val_loss": 2.0}), 0.05, 0.05)
    assert events[-1].value == 1000.0
    with pytest.raises(AuralizeError, match="hear_on"):
        LossTone(hear_on="sometimes")


def test_gradient_tones_play_each_layer_in_its_slot():
    tones = GradientTones(freq=200.0, duration=0.01, scale="linear")   # Perone's numbers
    record = TrainingStep(step=0, grad_norms={"a": 1.0, "b": 2.5, "c": math.inf})
    assert tones.preferred_step_s(record) == pytest.approx(0.05)
    events = tones.events(record, 1.0, 0.05)
    freqs = next(e for e in events if e.param == "freq_hz").value
    assert freqs.tolist() == [300.0, 450.0, 200.0]  # inf -> silent, parked at base
    amps = [(e.time_s, e.value.tolist()) for e in events if e.param == "amp"]
    assert amps == [(1.0, [0.25, 0, 0]), (1.01, [0, 0.25, 0]), (1.02, [0, 0, 0.0]),
                    (1.03, [0, 0, 0])]


def test_weight_chord_detunes_by_weight_change_and_releases():
    chord = WeightChord(which_layer="fc", base_freq=100, harmony="major")
    start = chord.events(TrainingStep(step=0, unit_means={"fc": [0.01] * 10}), 0.0, 0.05)
    spec = start[0].value
    assert spec["freq_hz"].tolist()[:6] == [100, 125, 150, 200, 250, 300]
    assert np.allclose(spec["sweep_hz"], 2.0)  # |0.01| * 200 Hz
    end = chord.events(TrainingStep(step=9, epoch_end=True,
                                    unit_means={"fc": [0.02] * 10}), 0.5, 0.05)
    shift, sweep, release = end
    assert np.allclose(shift.value, 100.0)  # (0.02 - 0.01) * 10000 Hz
    assert np.allclose(sweep.value, 4.0)
    assert release.value == 0.0 and release.time_s == pytest.approx(0.5 + 0.2 * 0.5)


def test_weight_chord_of_4096_units_stays_audible():
    chord = WeightChord()
    pitches = chord.pitches(4096)
    assert len(pitches) == 4096 and pitches.max() <= chord.max_freq * 2 ** (25 / 1200)
    assert len(np.unique(np.round(pitches, 3))) > 1000  # a chorus, not 12 loud sines


def test_alarm_sounds_on_nan_and_spikes_and_logs_once(caplog):
    alarm = Alarm()
    with caplog.at_level(logging.WARNING, logger="auralize"):
        for step in range(10):
            alarm.events(TrainingStep(step=step, loss=1.0), step * 0.05, 0.05)
        loud = alarm.events(TrainingStep(step=10, loss=math.nan), 0.5, 0.05)
        alarm.events(TrainingStep(step=11, loss=math.nan), 0.55, 0.05)
        alarm.events(TrainingStep(step=12, loss=1.0), 0.6, 0.05)
        alarm.events(TrainingStep(step=13, loss=10.0), 0.65, 0.05)
    assert loud[0].param == "amp" and max(loud[0].value) > 0
    assert alarm.counts == {"nonfinite": 2, "spike": 1}
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "loss is nan" in lines[0] and "spiked" in lines[1]


def test_unknown_mapping_is_a_clear_error():
    with pytest.raises(AuralizeError, match="unknown mapping 'colour'"):
        make_mapping("colour")


# -- the Sonifier, rendering real audio ----------------------------------------------
def loss_curve(steps=200, seed=0):
    rng = np.random.default_rng(seed)
    return 2.0 * np.exp(-np.arange(steps) / 60) + 0.3 + 0.05 * rng.random(steps)


def test_loss_pitch_tracked_from_the_wav_recovers_the_loss_curve(tmp_path):
    losses = loss_curve()
    with Sonifier(tmp_path, mappings=["loss"], live=False, plot=False, step_s=0.05) as son:
        for step, loss in enumerate(losses):
            son.log(TrainingStep(step=step, loss=float(loss)))
    audio, rate = sf.read(str(tmp_path / "sonification.wav"), dtype="float32")
    hop = int(0.05 * rate)
    tracked = [dominant_frequency(audio[i * hop + hop // 2:(i + 1) * hop], rate)
               for i in range(len(losses))]
    assert np.corrcoef(tracked, losses)[0, 1] >= 0.99
    assert tracked[0] == pytest.approx(1000, abs=3)


def test_gradient_pitches_tracked_from_the_wav_recover_each_layer(tmp_path):
    rng = np.random.default_rng(2)
    steps = 200
    norms = {"conv": 1 + np.cumsum(rng.normal(0, 0.1, steps)) ** 2,
             "fc": 2 + np.sin(np.arange(steps) / 9)}
    linear = {"kind": "gradients", "scale": "linear"}   # Perone's pitch: linear in the norm
    with Sonifier(tmp_path, mappings=[linear], live=False, plot=False) as son:
        for step in range(steps):
            son.log(TrainingStep(step=step, grad_norms={k: float(v[step])
                                                        for k, v in norms.items()}))
    audio, rate = sf.read(str(tmp_path / "sonification.wav"), dtype="float32")
    slot = int(0.01 * rate)
    step_len = 4 * slot  # two layers + two silent slots
    for i, name in enumerate(norms):
        tracked = [dominant_frequency(audio[s * step_len + i * slot + 88:
                                            s * step_len + (i + 1) * slot - 22], rate)
                   for s in range(steps)]
        assert np.corrcoef(tracked, norms[name])[0, 1] >= 0.99, name


def test_run_folder_is_complete_and_render_reproduces_it_bit_for_bit(tmp_path):
    run = tmp_path / "run"
    rng = np.random.default_rng(1)
    with Sonifier(run, live=False) as son:
        for step in range(60):
            record = TrainingStep(step=step, epoch=step // 20, epoch_end=step % 20 == 19,
                                  loss=float(loss_curve(60)[step]),
                                  grad_norms={"l1": float(rng.random()), "l2": 2.0})
            if step == 0 or record.epoch_end:
                record.unit_means = {"dense": rng.normal(0, 0.03, 16).tolist()}
            son.log(record)
    result = son.close()
    assert {p.name for p in result.paths()} == {
        "sonification.wav", "spectrogram.png", "telemetry.jsonl", "metrics.csv"}
    assert len((run / "telemetry.jsonl").read_text().splitlines()) == 60
    assert (run / "spectrogram.png").read_bytes()[:4] == b"\x89PNG"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"step", "loss", "grad_norm/l1"} <= set(header)
    assert main(["render", str(run), "-o", str(tmp_path / "again.wav"), "--no-plot"]) == 0
    assert (tmp_path / "again.wav").read_bytes() == (run / "sonification.wav").read_bytes()


def test_diverging_run_sounds_the_alarm_and_stays_finite(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="auralize"), \
            Sonifier(tmp_path, live=False, plot=False) as son:
        loss = 1.0
        for step in range(80):
            loss = loss * 1.5 if step > 40 else loss * 0.98
            loss = math.nan if step > 70 else loss
            son.log(TrainingStep(step=step, loss=loss,
                                 grad_norms={"a": loss * 10 if step < 70 else math.inf}))
    result = son.close()
    audio, rate = sf.read(str(result.wav_path), dtype="float32")
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0
    assert result.stats["alarms"]["nonfinite"] >= 9
    def level_at(start_step, freq_hz):
        start = int(start_step * son.timeline.step_s * rate)
        x = mono_mix(audio[start:start + rate // 5])
        n = np.arange(len(x))
        return abs(np.dot(x, np.exp(-2j * np.pi * freq_hz * n / rate))) / len(x)

    assert level_at(72, 1318.5) > 20 * level_at(20, 1318.5)  # the alarm's pitch appears
    messages = [r.getMessage() for r in caplog.records]
    assert any("spiked" in m for m in messages)
    assert any(m.startswith("step 70: gradient norm of 'a' is inf") for m in messages)
    assert len(messages) == 2  # one line per onset, not one per broken step


def test_memory_session_and_notebook_player():
    son = Sonifier(None, mappings=["loss"], live=False)
    for step in range(10):
        son.log(TrainingStep(step=step, loss=1.0 / (step + 1)))
    son.close()
    assert len(son.samples) == pytest.approx((10 * 0.05 + 0.5) * SR, abs=2)
    pytest.importorskip("IPython")
    assert son.audio().data[:4] == b"RIFF"


def test_other_ranks_do_nothing(tmp_path):
    son = Sonifier(tmp_path / "rank1", rank_zero=False)
    son.log(TrainingStep(step=0, loss=1.0))
    son.close()
    assert not (tmp_path / "rank1").exists()


def test_sonifier_works_from_an_unguarded_script(tmp_path):
    # No `if __name__ == "__main__"`: the renderer must not re-run this script.
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        from auralize import Sonifier, TrainingStep
        son = Sonifier({str(tmp_path / 'run')!r}, mappings=["loss"], live=False, plot=False)
        for step in range(5):
            son.log(TrainingStep(step=step, loss=1.0 / (step + 1)))
        son.close()
        print("ran once")
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("ran once") == 1
    assert sf.info(str(tmp_path / "run" / "sonification.wav")).frames > 0


@pytest.mark.parametrize("content, message", [
    ("", "holds no"),
    ("{not json\n{\"also\": 1}\n", "not a telemetry record"),
])
def test_render_rejects_empty_and_corrupt_logs(tmp_path, capsys, content, message):
    (tmp_path / "telemetry.jsonl").write_text(content)
    assert main(["render", str(tmp_path), "-o", str(tmp_path / "x.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("auralize: error:") and message in err and "\n" not in err


def test_render_csv_needs_a_loss_column(tmp_path, capsys):
    (tmp_path / "m.csv").write_text("step,acc\n0,0.5\n")
    assert main(["render", str(tmp_path / "m.csv"), "-o", str(tmp_path / "x.wav")]) == 1
    assert "has no loss column" in capsys.readouterr().err


def test_render_csv_with_gradients(tmp_path):
    rows = ["step,loss,gradient_norm_dense"] + [f"{i},{1 / (i + 1)},{i / 10}" for i in range(30)]
    (tmp_path / "m.csv").write_text("\n".join(rows))
    assert main(["render", str(tmp_path / "m.csv"), "-o", str(tmp_path / "x.flac"),
                 "--mapping", "all"]) == 0
    assert sf.info(str(tmp_path / "x.flac")).frames > 0
    assert (tmp_path / "x_spectrogram.png").exists()


@pytest.mark.parametrize("mapping, lacks, hint", [
    ("weights", "per-unit weight means", "--mapping loss"),
    ("gradients", "gradient norms", "--mapping loss"),
])
def test_render_mapping_without_its_data_is_an_error(tmp_path, capsys, mapping, lacks, hint):
    """A mapping the log has no data for would write silence (or only the alarm): refuse."""
    rows = ["step,loss"] + [f"{i},{1 / (i + 1)}" for i in range(30)]
    (tmp_path / "m.csv").write_text("\n".join(rows))
    out = tmp_path / "x.wav"
    assert main(["render", str(tmp_path / "m.csv"), "-o", str(out), "--mapping", mapping]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("auralize: error:") and "\n" not in err
    assert lacks in err and hint in err
    assert not out.exists() and not (tmp_path / "x_spectrogram.png").exists()


def test_render_weights_from_a_run_that_recorded_them(tmp_path):
    with Sonifier(tmp_path / "run", mappings=["loss", {"kind": "weights"}], live=False,
                  plot=False) as son:
        for step in range(12):
            son.log(TrainingStep(step=step, loss=1.0 / (step + 1), epoch=step // 4,
                                 epoch_end=step % 4 == 3,
                                 unit_means={"fc": [0.1 * step, -0.2, 0.3]}))
    out = tmp_path / "w.wav"
    assert main(["render", str(tmp_path / "run"), "-o", str(out), "--mapping", "weights",
                 "--no-plot"]) == 0
    data, _sr = sf.read(out)
    assert np.abs(data).max() > 0.01  # the chord, not digital silence


def test_sonifier_json_records_how_to_render(tmp_path):
    with Sonifier(tmp_path, mappings=[{"kind": "loss", "min_freq": 300}], live=False,
                  plot=False) as son:
        son.log(TrainingStep(step=0, loss=1.0))
    doc = json.loads((tmp_path / "sonifier.json").read_text())
    assert doc["mappings"][0]["min_freq"] == 300 and doc["step_s"] == 0.05


def test_tensorboard_summaries_hold_the_recording_and_render_again(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Sonifier(tmp_path / "run", mappings=["loss", "gradients"], live=False, plot=False,
                  tensorboard=True) as son:
        for step in range(20):
            son.log(TrainingStep(step=step, loss=1.0 / (step + 1), grad_norms={"fc": 0.5}))
    result = son.close()
    acc = EventAccumulator(str(result.tensorboard_dir), size_guidance={"audio": 0})
    acc.Reload()
    assert "auralize/sonification" in acc.Tags()["audio"]
    clip = acc.Audio("auralize/sonification")[-1]
    assert clip.sample_rate == SR and clip.length_frames == len(son.samples)
    assert [e.value for e in acc.Scalars("loss")][:2] == pytest.approx([1.0, 0.5])
    assert len(acc.Scalars("grad_norm/fc")) == 20
    # ... and a TensorBoard folder is a log `auralize render` understands
    assert main(["render", str(result.tensorboard_dir), "-o", str(tmp_path / "tb.wav"),
                 "--no-plot"]) == 0
    assert sf.info(str(tmp_path / "tb.wav")).frames > 0


def test_a_missing_wall_time_is_none_everywhere_and_a_zero_is_a_time(tmp_path):
    """No 'unset' sentinel: a step-clock run records no wall time (null in telemetry,
    empty in metrics.csv); on the wall clock a step without one plays right after the
    last, and 0.0 is a real time (the first step's), kept as given."""
    import csv

    from auralize.sonify.timeline import SonifyConfig, Timeline

    with Sonifier(tmp_path / "run", mappings=["loss"], live=False, plot=False) as son:
        for k in range(3):
            son.log(TrainingStep(step=k, loss=1.0 - 0.1 * k))
    lines = (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()
    assert [json.loads(line)["wall_time_s"] for line in lines] == [None, None, None]
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        assert [row["wall_time_s"] for row in csv.DictReader(handle)] == ["", "", ""]

    timeline = Timeline(SonifyConfig(mappings=["loss"], clock="wall", step_s=0.25))
    starts = [timeline.advance(TrainingStep(step=k, loss=1.0, wall_time_s=wall))[1]
              for k, wall in enumerate([0.0, None, 2.0])]
    assert starts == [0.0, 0.25, 2.0]

    with Sonifier(None, mappings=["loss"], clock="wall", live=False, plot=False) as son:
        given, missing = TrainingStep(step=0, loss=1.0, wall_time_s=0.0), TrainingStep(step=1)
        son.log(given)
        son.log(missing)
    assert given.wall_time_s == 0.0 and missing.wall_time_s is not None

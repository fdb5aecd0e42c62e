"""The training commands end to end: demo, render of its folder, sweep, a diverging run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from auralize.cli import main
from auralize.torch import watch


@pytest.mark.slow
def test_demo_writes_the_run_folder_and_render_reproduces_it(tmp_path, capsys):
    run = tmp_path / "demo"
    assert main(["demo", "--epochs", "1", "--batch-size", "64", "--no-live",
                 "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "validation accuracy" in printed and f"wrote {run / 'sonification.wav'}" in printed
    for name in ("sonification.wav", "spectrogram.png", "telemetry.jsonl", "metrics.csv"):
        assert (run / name).stat().st_size > 0, name
    records = [json.loads(line) for line in (run / "telemetry.jsonl").read_text().splitlines()]
    assert len(records) == 26  # ceil(1617 / 64) steps
    assert list(records[0]["grad_norms"]) == ["conv1", "conv2", "fc"]
    assert records[-1]["epoch_end"] and len(records[-1]["unit_means"]["fc"]) == 10
    assert len(records[0]["unit_means"]["fc"]) == 10  # the chord sounds from step 0
    assert main(["render", str(run), "-o", str(tmp_path / "again.wav"), "--no-plot"]) == 0
    assert (tmp_path / "again.wav").read_bytes() == (run / "sonification.wav").read_bytes()


def test_demo_and_render_speak_the_eyes_free_sound(tmp_path, capsys):
    """`--sound eyes-free` (demo) and `--mapping eyes-free` (render) mean the same mappings."""
    from auralize.sonify.presets import sound_mappings

    run = tmp_path / "demo"
    assert main(["demo", "--epochs", "2", "--batch-size", "128", "--no-live", "--sound", "earcons",
                 "--out", str(run)]) == 0
    kinds = [m["kind"] for m in json.loads((run / "sonifier.json").read_text())["mappings"]]
    assert kinds == [m["kind"] for m in sound_mappings("earcons")] == ["loss", "alarm", "earcons"]
    from auralize.sonify.mappings import make_mapping

    loss = make_mapping(sound_mappings("earcons")[0])
    assert loss.reference_amp > 0 and loss.octave_ticks  # the context a blind user needs
    capsys.readouterr()
    out = tmp_path / "spoken.wav"
    assert main(["render", str(run), "-o", str(out), "--mapping", "eyes-free", "--no-plot"]) == 0
    assert main(["render", str(run), "-o", str(tmp_path / "plain.wav"), "--mapping", "loss",
                 "--no-plot"]) == 0
    spoken, rate = sf.read(str(out))
    plain, _ = sf.read(str(tmp_path / "plain.wav"))

    def band(x):  # speech adds energy above the loss tone, in the speech band
        x = x.mean(axis=1) if x.ndim == 2 else x  # the mono mix
        spec = np.abs(np.fft.rfft(x[: 20 * rate]))
        f = np.fft.rfftfreq(len(x[: 20 * rate]), 1 / rate)
        return float(np.sum(spec[(f > 1500) & (f < 3400)] ** 2))

    assert band(spoken) > 3 * band(plain)


def test_demo_rejects_bad_settings(capsys):
    assert main(["demo", "--epochs", "0", "--no-live"]) == 1
    assert "--epochs and --batch-size must be at least 1" in capsys.readouterr().err
    for framework in ("torch", "keras"):
        assert main(["demo", "--optimizer", "lbfgs2", "--no-live", "--epochs", "1",
                     "--framework", framework]) == 1
        assert "unknown optimizer 'lbfgs2'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # Keras, numpy 2
def test_keras_demo_trains_sonnify_cnn_with_fit_and_is_heard(tmp_path, capsys):
    """soNNify's demo in Keras 3 (torch backend): ListenToLoss + WeightsDense hear model.fit."""
    run = tmp_path / "kdemo"
    assert main(["demo", "--framework", "keras", "--epochs", "3", "--batch-size", "64",
                 "--no-live", "--out", str(run)]) == 0
    printed = capsys.readouterr().out
    assert "in Keras 3 (torch backend)" in printed
    accuracy = float(printed.split("validation accuracy ")[1].split()[0])
    assert accuracy > 0.6, printed  # it learns (0.88 measured; chance is 0.1)
    records = [json.loads(line) for line in (run / "telemetry.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 26  # ceil(1617 / 64) steps per epoch
    assert list(records[0]["grad_norms"]) == ["conv1", "conv2", "fc"]
    assert len(records[0]["unit_means"]["fc"]) == 10 and records[-1]["epoch_end"]
    assert "val_loss" in records[-1]["metrics"]
    losses = [r["loss"] for r in records]
    assert np.mean(losses[-26:]) < 0.9 * np.mean(losses[:26])
    data, sr = sf.read(run / "sonification.wav")
    assert sr == 44100 and np.abs(data).max() > 0.01
    assert main(["render", str(run), "-o", str(tmp_path / "again.wav"), "--no-plot"]) == 0
    assert (tmp_path / "again.wav").read_bytes() == (run / "sonification.wav").read_bytes()


@pytest.mark.slow
def test_sweep_writes_runs_grid_and_gallery(tmp_path):
    out = tmp_path / "sweep"
    assert main(["sweep", "--out", str(out), "--models", "dnn", "--lrs", "0.5", "0.01",
                 "--optimizers", "sgd", "--activations", "tanh", "--jobs", "2",
                 "--batch-size", "128"]) == 0
    runs = ["dnn_sgd_lr0.5_tanh", "dnn_sgd_lr0.01_tanh"]
    for run in runs:
        assert sf.info(str(out / run / "sonification.wav")).frames > 0
    page = (out / "index.html").read_text()
    assert all(f"src='{run}/sonification.wav'" in page for run in runs)
    assert (out / "grid.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "results.csv").read_text().count("\n") == 3


def test_sweep_rejects_unknown_names(tmp_path, capsys):
    assert main(["sweep", "--out", str(tmp_path), "--optimizers", "sgdd"]) == 1
    err = capsys.readouterr().err
    assert "unknown optimizer 'sgdd'" in err and "\n" not in err.strip()


def test_diverging_training_sounds_the_alarm_and_keeps_audio_finite(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=2.0)  # far too large: blows up
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    losses = []
    with watch(model, optimizer, out_dir=tmp_path, live=False,
               mappings=["loss", "gradients", "alarm"]) as w:
        for _ in range(60):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            w.log_loss(loss)
            losses.append(loss.item())
    assert any(math.isnan(v) or math.isinf(v) for v in losses)  # it really diverged
    result = w.result
    assert result.stats["alarms"]["nonfinite"] > 0
    audio, _ = sf.read(str(result.wav_path), dtype="float32")
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0

"""`auralize activations` end to end: files written, WAV headers, errors as one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from auralize.activations.images import make_procedural_images
from auralize.cli import main
from auralize.models import squeezenet1_0, squeezenet1_1


@pytest.fixture(autouse=True)
def _no_hub_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The fresh-machine path: no --dpath, procedural images; one of them, with plots."""
    import os

    out = tmp_path_factory.mktemp("act")
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(out / "torch-home")
    try:
        rc = main(["activations", "--out", str(out), "--image-name", "rings",
                   "--image-size", "64", "--device", "cpu"])
    finally:
        if old is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old
    return rc, out


def test_default_run_writes_every_file(default_run):
    rc, out = default_run
    assert rc == 0
    assert len(list((out / "images").iterdir())) == 5
    folder = out / "rings"
    pts = sorted(folder.glob("activations-[1-4]_*.pt"))
    wavs = sorted(folder.glob("activations-[1-4]_*_11025Hz.wav"))
    pngs = sorted(folder.glob("activations-[1-4]_*_11025Hz.png"))
    assert len(pts) == len(wavs) == len(pngs) == 4
    assert len(list(folder.glob("activations-mix_*_11025Hz.wav"))) == 1
    assert len(list(folder.glob("activations-mix_*_11025Hz.png"))) == 1
    label = pts[0].stem.split("_", 1)[1]
    assert all(p.name.startswith(f"activations-{i}_{label}") for i, p in enumerate(pts, 1))
    assert all(p.stat().st_size > 1000 for p in pngs)


def test_saved_tensors_and_wavs_agree(default_run):
    _, out = default_run
    folder = out / "rings"
    channels = [96, 256, 512, 512]
    for i, ch in enumerate(channels, start=1):
        (pt,) = folder.glob(f"activations-{i}_*.pt")
        saved = torch.load(pt, weights_only=True)
        maps = saved["activations"]
        assert maps.ndim == 3 and maps.shape[0] == ch and saved["index"] == i
        assert saved["model"] == "squeezenet1_0" and len(saved["top5"]) == 5
        (wav,) = folder.glob(f"activations-{i}_*.wav")
        info = sf.info(str(wav))
        assert (info.format, info.subtype, info.samplerate, info.channels) == \
            ("WAV", "PCM_16", 11025, 1)
        assert info.frames == maps.shape[1] * maps.shape[2]  # sum scheme: H*W samples
        data, _ = sf.read(str(wav), dtype="float32")
        assert np.isfinite(data).all() and np.abs(data).max() <= 1.0 and data.std() > 0.01


def test_top5_and_paths_are_printed(tmp_path, capsys):
    imgs = make_procedural_images(tmp_path / "in", size=48)
    rc = main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "BLOBS",
               "--image-size", "48", "--out", str(tmp_path / "out"), "--no-plots",
               "--mix", "none"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "blobs.jpg:" in captured.out and captured.out.count("%") >= 5
    assert "meaningless" in captured.err  # random weights announced
    written = [line.strip() for line in captured.out.splitlines() if line.startswith("  ")]
    assert len(written) == 8 and all(Path(p).is_file() for p in written)
    assert not list((tmp_path / "out" / "blobs").glob("*mix*"))
    assert imgs


@pytest.mark.parametrize("scheme,subtype", [("concat", "FLOAT"), ("none", "PCM_24")])
def test_schemes_and_float_wavs(tmp_path, scheme, subtype):
    make_procedural_images(tmp_path / "in", size=40)
    rc = main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "dunes",
               "--image-size", "40", "--scheme", scheme, "--subtype", subtype,
               "--sample-rate", "8000", "--model", "squeezenet1_1", "--method", "ola",
               "--no-plots", "--out", str(tmp_path / "out")])
    assert rc == 0
    folder = tmp_path / "out" / "dunes_16bit"
    for i, ch in enumerate([64, 128, 256, 512], start=1):
        (wav,) = folder.glob(f"activations-{i}_*_8000Hz.wav")
        maps = torch.load(next(folder.glob(f"activations-{i}_*.pt")),
                          weights_only=True)["activations"]
        info = sf.info(str(wav))
        assert info.subtype == subtype and info.samplerate == 8000
        n = maps.shape[1] * maps.shape[2]
        if scheme == "concat":
            assert (info.channels, info.frames) == (1, ch * n)
        else:
            assert (info.channels, info.frames) == (ch, n)
        data, _ = sf.read(str(wav), dtype="float32")
        assert np.isfinite(data).all() and np.abs(data).max() <= 1.0
    mix = sf.info(str(next(folder.glob("activations-mix_*_8000Hz.wav"))))
    assert mix.channels == 1 and mix.subtype == subtype


def test_weights_file_is_used(tmp_path, capsys):
    make_procedural_images(tmp_path / "in", size=40)
    torch.manual_seed(5)
    weights = tmp_path / "w.pth"
    torch.save(squeezenet1_0().state_dict(), weights)
    rc = main(["activations", "--dpath", str(tmp_path / "in" / "rings.png"), "--image-size", "40",
               "--weights", str(weights), "--no-plots", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 0
    assert f"weights: {weights}" in captured.out and "meaningless" not in captured.err


def test_bad_input_gives_one_line_errors(tmp_path, capsys):
    make_procedural_images(tmp_path / "in", size=40)
    out = str(tmp_path / "out")

    assert main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "zebra",
                 "--out", out]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "zebra" in err[0] and "rings.png" in err[0] and "blobs.jpg" in err[0]

    (tmp_path / "in" / "broken.png").write_text("no pixels here")
    assert main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "broken",
                 "--image-size", "40", "--out", out]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("auralize: error: cannot read") and "broken.png" in err[-1]

    wrong = tmp_path / "v11.pth"
    torch.save(squeezenet1_1().state_dict(), wrong)
    assert main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "rings",
                 "--weights", str(wrong), "--out", out]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "features.0.weight" in err[-1] and "(64, 3, 3, 3)" in err[-1] and "(96, 3, 7, 7)" in err[-1]

    assert main(["activations", "--dpath", str(tmp_path / "nowhere"), "--out", out]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["activations", "--image-size", "8", "--out", out]) == 1
    assert "--image-size" in capsys.readouterr().err


def test_batch_continues_past_a_bad_image_and_reports_it(tmp_path, capsys):
    folder = tmp_path / "in"
    make_procedural_images(folder, size=40)
    (folder / "stripes_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    rc = main(["activations", "--dpath", str(folder), "--image-name", "stripes",
               "--image-size", "40", "--no-plots", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 1
    assert "1 of 2 images failed" in captured.err and "stripes_broken.png" in captured.err
    assert list((tmp_path / "out" / "stripes_grey").glob("*.wav"))  # the good one was done


def test_pipeline_takes_any_model_and_layer_names(tmp_path):
    """The image -> banks -> files pipeline is not tied to SqueezeNet."""
    from torch import nn

    from auralize.activations import sonify_image

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 4, 3),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    (img,) = [p for p in make_procedural_images(tmp_path / "in", size=40) if p.suffix == ".jpg"]
    res = sonify_image(model, img, {"low": "1", "high": "2"}, tmp_path / "out", image_size=40,
                       save_plots=False, mix="multiply")
    assert res.label.startswith("class_") and len(res.top5) == 3
    assert [b.shape[0] for b in res.banks] == [8, 4]
    assert all(p.is_file() for p in res.paths) and res.mix_path.name.startswith("activations-mix")
    data, rate = sf.read(str(res.banks[0].wav_path))
    assert rate == 11025 and len(data) == res.banks[0].shape[1] * res.banks[0].shape[2]


def test_peak_normalisation_keeps_silence_at_zero(tmp_path):
    """--normalize peak: no DC offset from the scaling (netsounds' minmax shifts 0 off 0)."""
    make_procedural_images(tmp_path / "in", size=40)
    dc = {}
    for mode in ("minmax", "peak"):
        rc = main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "rings",
                   "--image-size", "40", "--scheme", "none", "--subtype", "FLOAT",
                   "--normalize", mode, "--no-plots", "--out", str(tmp_path / mode)])
        assert rc == 0
        (wav,) = (tmp_path / mode).rglob("activations-1_*.wav")
        data, _ = sf.read(str(wav), dtype="float64")
        live = np.abs(data).max(axis=0) > 0  # filters that are not dead
        assert live.sum() > 10
        assert np.allclose(np.abs(data[:, live]).max(axis=0), 1.0, atol=1e-6)
        dc[mode] = float(np.median(np.abs(data[:, live].mean(axis=0))))
    assert dc["peak"] < 0.5 * dc["minmax"], dc

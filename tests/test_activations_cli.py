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
    # per bank .pt, .wav and maps picture, and the model's input picture
    assert len(written) == 13 and all(Path(p).is_file() for p in written)
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


def test_pictures_of_the_input_and_of_each_banks_maps(default_run):
    """netsounds' "dump images": the image as the model saw it, and every bank's maps."""
    from PIL import Image

    _, out = default_run
    folder = out / "rings"
    with Image.open(folder / "model-input.png") as img:
        # rings.png is 320 x 426; short edge resized to --image-size 64, ImageNet-normalised
        # and written back de-normalised: the original colours, not a z-scored grey
        assert img.mode == "RGB" and img.size == (64, 85)
        seen = np.asarray(img, dtype=np.float32) / 255
    with Image.open(out / "images" / "rings.png") as original:
        small = np.asarray(original.convert("RGB").resize((64, 85), Image.BILINEAR),
                           dtype=np.float32) / 255
    assert abs(seen.mean() - small.mean()) < 0.05 and np.corrcoef(seen.ravel(),
                                                                  small.ravel())[0, 1] > 0.8
    grids = sorted(folder.glob("activations-[1-4]_*_maps.png"))
    assert len(grids) == 4
    for grid in grids:
        with Image.open(grid) as img:
            assert img.mode == "RGB" and min(img.size) >= 256
            pixels = np.asarray(img)
        assert pixels.std() > 10  # not a blank picture


def test_layers_option_hears_any_layer(tmp_path, capsys):
    """--layers features.0 (a convolution before an in-place ReLU) and features.3.squeeze."""
    from PIL import Image

    make_procedural_images(tmp_path / "in", size=48)
    rc = main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "rings",
               "--image-size", "48", "--layers", "features.0", "--layers", "features.3.squeeze",
               "--no-plots", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    folder = tmp_path / "out" / "rings"
    assert len(list(folder.glob("activations-*_*.pt"))) == 2
    first = torch.load(next(folder.glob("activations-1_*.pt")), weights_only=True)
    second = torch.load(next(folder.glob("activations-2_*.pt")), weights_only=True)
    assert first["layer"] == "features.0" and first["activations"].shape[0] == 96
    assert (first["activations"] < 0).any()  # the convolution's own output, before the ReLU
    assert second["layer"] == "features.3.squeeze" and second["activations"].shape[0] == 16
    for i in (1, 2):
        (wav,) = folder.glob(f"activations-{i}_*_11025Hz.wav")
        data, _ = sf.read(str(wav))
        assert np.isfinite(data).all() and data.std() > 0.01
        (grid,) = folder.glob(f"activations-{i}_*_maps.png")
        with Image.open(grid) as img:
            img.load()


def test_wrong_layer_name_lists_the_valid_ones(tmp_path, capsys):
    make_procedural_images(tmp_path / "in", size=40)
    rc = main(["activations", "--dpath", str(tmp_path / "in"), "--image-name", "rings",
               "--layers", "features.3,fire9", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1].startswith("auralize: error: no layer named 'fire9'")
    assert "features.3" in err[-1] and "features.12.expand3x3" in err[-1] and "classifier.1" in err[-1]
    assert not (tmp_path / "out" / "rings").exists()


def test_feature_grid_shows_every_map_scaled_to_its_own_range():
    from auralize.activations.pictures import feature_grid

    maps = torch.arange(5 * 3 * 4, dtype=torch.float32).reshape(5, 3, 4)
    maps[2] = 7.0  # a constant map is shown as 0, not divided by zero
    grid = feature_grid(maps)
    # 5 maps of 3 x 4 in an about square picture: 2 columns, 3 rows, 1-pixel gaps (NaN)
    assert grid.shape == (3 * 4 + 1, 2 * 5 + 1)
    tiles = [grid[1 + r * 4: 4 + r * 4, 1 + c * 5: 5 + c * 5] for r in range(3) for c in range(2)]
    for i in (0, 1, 3, 4):
        assert tiles[i].min() == 0.0 and tiles[i].max() == 1.0
        np.testing.assert_allclose(tiles[i].ravel(), np.linspace(0, 1, 12), atol=1e-6)
    assert np.all(tiles[2] == 0.0) and np.all(np.isnan(tiles[5]))
    big = feature_grid(torch.rand(2, 509, 300))  # shrunk to at most 128 px per tile
    assert big.shape[0] <= 2 * 129 + 1 and np.nanmax(big) <= 1.0

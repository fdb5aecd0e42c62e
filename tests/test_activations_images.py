"""Images in: any Pillow mode, short-edge resize, orientation, normalisation, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from auralize.activations.images import (
    find_images,
    load_image,
    make_procedural_images,
    read_image,
    resize_short_edge,
)
from auralize.errors import AuralizeError
from auralize.models.squeezenet import IMAGENET_MEAN, IMAGENET_STD


def _save(path, array, mode=None):
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_greyscale_rgba_16bit_palette_and_1bit_images_load(tmp_path):
    h, w = 40, 30
    grey = _save(tmp_path / "grey.png", np.full((h, w), 128, np.uint8))
    rgba_arr = np.zeros((h, w, 4), np.uint8)
    rgba_arr[..., 0] = 255  # red, but fully transparent on the left half
    rgba_arr[:, w // 2:, 3] = 255
    rgba = _save(tmp_path / "rgba.png", rgba_arr)
    deep = tmp_path / "deep16.png"
    Image.fromarray(np.full((h, w), 65535, np.uint16)).save(deep)
    pal = tmp_path / "pal.gif"
    Image.fromarray(np.full((h, w, 3), 200, np.uint8)).convert("P").save(pal)
    one = tmp_path / "one.bmp"
    Image.fromarray(np.ones((h, w), bool)).save(one)

    assert Image.open(deep).mode.startswith("I")  # really 16-bit on disk
    g = read_image(grey)
    assert g.shape == (3, h, w) and torch.allclose(g, torch.full_like(g, 128 / 255))
    d = read_image(deep)
    assert torch.allclose(d, torch.ones_like(d))  # 65535 -> 1.0, not 65535/255
    r = read_image(rgba)
    assert torch.allclose(r[:, :, : w // 2], torch.ones(3, h, w // 2))  # transparent -> white
    assert torch.allclose(r[:, :, w // 2:], torch.tensor([1.0, 0, 0]).view(3, 1, 1).expand(3, h, w - w // 2))
    shown = np.asarray(Image.open(pal).convert("RGB"), np.float32) / 255  # web palette: 204
    assert torch.allclose(read_image(pal), torch.from_numpy(shown).permute(2, 0, 1))
    assert torch.allclose(read_image(one), torch.ones(3, h, w))
    for p in (grey, rgba, deep, pal, one):
        x = load_image(p, 64)
        assert x.shape == (1, 3, round(64 * h / w), 64) and torch.isfinite(x).all()


def test_short_edge_resize_orientation_and_normalisation(tmp_path):
    wide = _save(tmp_path / "wide.png", np.zeros((50, 100, 3), np.uint8))
    x = load_image(wide, 64)
    assert x.shape == (1, 3, 128, 64)  # turned so that height >= width
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(x, ((0 - mean) / std).expand_as(x), atol=1e-6)
    big = torch.rand(3, 300, 200)
    small = resize_short_edge(big, 50)
    assert small.shape == (3, 75, 50) and small.min() >= 0 and small.max() <= 1
    assert resize_short_edge(big, 200).shape == (3, 300, 200)
    assert resize_short_edge(torch.rand(3, 10, 20), 40, orient=False).shape == (3, 40, 80)


def test_unreadable_and_missing_images(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    with pytest.raises(AuralizeError, match="cannot read .*fake.png"):
        read_image(fake)
    good = _save(tmp_path / "good.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(AuralizeError, match="cannot read .*cut.png"):
        read_image(cut)
    with pytest.raises(AuralizeError, match="not found"):
        read_image(tmp_path / "missing.jpg")


def test_find_images_by_fragment(tmp_path):
    for name in ("Mixing_Bowl.jpg", "cat.png", "dog.jpeg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_images(tmp_path)] == ["Mixing_Bowl.jpg", "cat.png", "dog.jpeg"]
    assert [p.name for p in find_images(tmp_path, "bowl")] == ["Mixing_Bowl.jpg"]
    with pytest.raises(AuralizeError) as err:
        find_images(tmp_path, "zebra")
    msg = str(err.value)
    assert "zebra" in msg and "cat.png" in msg and "Mixing_Bowl.jpg" in msg and "\n" not in msg
    with pytest.raises(AuralizeError, match="not found"):
        find_images(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AuralizeError, match="no images"):
        find_images(empty)
    assert find_images(tmp_path / "cat.png") == [tmp_path / "cat.png"]


def test_procedural_images_cover_the_formats(tmp_path):
    paths = make_procedural_images(tmp_path, size=48)
    modes = {p.name: Image.open(p).mode for p in paths}
    assert modes["stripes_grey.png"] == "L" and modes["checker_rgba.png"] == "RGBA"
    assert modes["dunes_16bit.png"].startswith("I") and modes["blobs.jpg"] == "RGB"
    for p in paths:
        x = load_image(p, 48)
        assert x.shape[-1] == 48 and x.shape[-2] >= 48 and torch.isfinite(x).all()
        assert x.std() > 0.1  # not blank
    again = make_procedural_images(tmp_path / "again", size=48)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in paths]

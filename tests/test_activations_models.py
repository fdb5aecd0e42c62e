"""SqueezeNet written here: torchvision key names and shapes, weight loading, labels, capture."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from auralize.activations import capture
from auralize.errors import AuralizeError
from auralize.models import imagenet_classes, load_squeezenet, squeezenet1_0, squeezenet1_1
from auralize.models.squeezenet import BANKS, load_state_dict_checked

# torchvision's SqueezeNet definitions: features index -> Fire(inplanes, squeeze, e1x1, e3x3).
TV_FIRES = {
    "1_0": {3: (96, 16, 64, 64), 4: (128, 16, 64, 64), 5: (128, 32, 128, 128),
            7: (256, 32, 128, 128), 8: (256, 48, 192, 192), 9: (384, 48, 192, 192),
            10: (384, 64, 256, 256), 12: (512, 64, 256, 256)},
    "1_1": {3: (64, 16, 64, 64), 4: (128, 16, 64, 64), 6: (128, 32, 128, 128),
            7: (256, 32, 128, 128), 9: (256, 48, 192, 192), 10: (384, 48, 192, 192),
            11: (384, 64, 256, 256), 12: (512, 64, 256, 256)},
}
TV_CONV0 = {"1_0": (96, 3, 7, 7), "1_1": (64, 3, 3, 3)}


def torchvision_shapes(version: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's squeezenet state dict, written out from its layout."""
    shapes = {"features.0.weight": TV_CONV0[version], "features.0.bias": (TV_CONV0[version][0],)}
    for i, (inp, sq, e1, e3) in TV_FIRES[version].items():
        p = f"features.{i}."
        shapes.update({
            p + "squeeze.weight": (sq, inp, 1, 1), p + "squeeze.bias": (sq,),
            p + "expand1x1.weight": (e1, sq, 1, 1), p + "expand1x1.bias": (e1,),
            p + "expand3x3.weight": (e3, sq, 3, 3), p + "expand3x3.bias": (e3,),
        })
    shapes["classifier.1.weight"] = (1000, 512, 1, 1)
    shapes["classifier.1.bias"] = (1000,)
    return shapes


@pytest.mark.parametrize("version,build", [("1_0", squeezenet1_0), ("1_1", squeezenet1_1)])
def test_parameter_names_and_shapes_are_torchvisions(version, build):
    own = {k: tuple(v.shape) for k, v in build().state_dict().items()}
    assert own == torchvision_shapes(version)


@pytest.mark.parametrize("version", ["1_0", "1_1"])
def test_torchvision_style_state_dict_loads(tmp_path, version):
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen) * 0.05 for k, s in torchvision_shapes(version).items()}
    path = tmp_path / f"squeezenet{version}-0123abcd.pth"
    torch.save(state, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weights given: no random-weights warning
        model, source = load_squeezenet(f"squeezenet{version}", path)
    assert source == str(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_state_dict_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    a = squeezenet1_0().eval()
    path = tmp_path / "mine.pt"
    torch.save(a.state_dict(), path)
    b, _ = load_squeezenet("squeezenet1_0", path)
    x = torch.randn(1, 3, 64, 48)
    with torch.inference_mode():
        assert torch.equal(a(x), b(x))
    # Wrapped checkpoints (DataParallel prefix, {"state_dict": ...}) load too.
    torch.save({"state_dict": {"module." + k: v for k, v in a.state_dict().items()}}, path)
    c, _ = load_squeezenet("squeezenet1_0", path)
    with torch.inference_mode():
        assert torch.equal(a(x), c(x))


def test_hub_cache_is_used_when_present(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(2)
    ref = squeezenet1_1()
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(ref.state_dict(), folder / "squeezenet1_1-b8a52dc0.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, source = load_squeezenet("squeezenet1_1")
    assert source.endswith("squeezenet1_1-b8a52dc0.pth")
    assert torch.equal(model.state_dict()["classifier.1.weight"],
                       ref.state_dict()["classifier.1.weight"])


def test_no_weights_warns_once_that_labels_are_meaningless(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.warns(UserWarning, match="meaningless") as record:
        model, source = load_squeezenet("squeezenet1_0")
    assert source is None and len(record) == 1
    assert not model.training


def test_wrong_weights_name_the_key_and_both_shapes(tmp_path):
    path = tmp_path / "v11.pth"
    torch.save(squeezenet1_1().state_dict(), path)
    with pytest.raises(AuralizeError, match=r"features\.0\.weight.*\(64, 3, 3, 3\).*\(96, 3, 7, 7\)"):
        load_squeezenet("squeezenet1_0", path)
    ten = nn.Conv2d(512, 10, 1)
    state = squeezenet1_0().state_dict()
    state["classifier.1.weight"] = ten.weight.detach()
    torch.save(state, path)
    with pytest.raises(AuralizeError, match=r"classifier\.1\.weight.*\(10, 512, 1, 1\)"):
        load_squeezenet("squeezenet1_0", path)
    del state["classifier.1.weight"]
    with pytest.raises(AuralizeError, match="missing 2 keys"):
        load_state_dict_checked(squeezenet1_0(), {k: v for k, v in state.items()
                                                  if k != "classifier.1.bias"})
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch file")
    with pytest.raises(AuralizeError, match="cannot read weights"):
        load_squeezenet("squeezenet1_0", junk)
    with pytest.raises(AuralizeError, match="not found"):
        load_squeezenet("squeezenet1_0", tmp_path / "nope.pth")
    with pytest.raises(AuralizeError, match="unknown model"):
        load_squeezenet("squeezenet2_0")


def test_imagenet_labels_ship_with_the_package():
    names = imagenet_classes()
    assert len(names) == 1000
    assert names[0] == "tench" and names[1] == "goldfish"
    assert names[207] == "golden retriever" and names[281] == "tabby"
    assert names[659] == "mixing bowl" and names[999] == "toilet tissue"


@pytest.mark.parametrize("name,channels", [("squeezenet1_0", [96, 256, 512, 512]),
                                           ("squeezenet1_1", [64, 128, 256, 512])])
def test_the_four_banks(name, channels):
    model = squeezenet1_0() if name.endswith("1_0") else squeezenet1_1()
    model.eval()
    acts = capture(model, BANKS[name])
    logits = acts(torch.randn(1, 3, 128, 96))
    assert logits.shape == (1, 1000)
    assert [acts[b].shape[1] for b in BANKS[name]] == channels
    sizes = [acts[b].shape[-1] for b in BANKS[name]]
    assert sizes == sorted(sizes, reverse=True)
    assert all((acts[b] >= 0).all() for b in BANKS[name])  # after ReLU


def test_capture_any_module_with_helpful_errors():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3)))
    with capture(model, {"hidden": "1", "out": "2.0"}) as acts:
        model(torch.randn(2, 4))
    assert acts["hidden"].shape == (2, 8) and acts["out"].shape == (2, 3)
    assert not model[1]._forward_hooks  # hooks removed on exit
    assert set(acts) == {"hidden", "out"}
    assert acts.pop("hidden").shape == (2, 8) and "hidden" not in acts
    with pytest.raises(AuralizeError, match=r"no layer named '2\.1'.*did you mean.*'2\.0'.*layers"):
        capture(model, ["2.1"])
    with pytest.raises(AuralizeError, match="features.12"):
        capture(squeezenet1_0(), ["features.13"])
    with pytest.raises(AuralizeError, match="nn.Module"):
        capture(object(), ["x"])
    unused = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Linear(2, 2)})
    unused.forward = lambda x: unused["a"](x)
    with pytest.raises(AuralizeError, match="not run"):
        capture(unused, ["b"])(torch.randn(1, 2))

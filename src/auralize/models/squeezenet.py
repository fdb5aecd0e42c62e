"""SqueezeNet 1.0 and 1.1, written here with torchvision's parameter names.

torchvision does not work with the CPU torch wheel this project pins, so the two
networks are defined in this file.  Module names, parameter names and shapes are
exactly torchvision's (``features.0.weight``, ``features.3.squeeze.weight``,
``classifier.1.bias``...), so the ImageNet weight files torchvision downloads
(``squeezenet1_0-b66bff10.pth``, ``squeezenet1_1-b8a52dc0.pth``) load unchanged.

Weights come from, in order: an explicit path (``--weights PATH``), the torch hub
cache folder (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``) when it holds ``squeezenet1_0-*.pth``, or
random initialisation with one warning that the labels are then meaningless.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from auralize.errors import AuralizeError

#: ImageNet per-channel mean and standard deviation (RGB, images scaled to [0, 1]).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VERSIONS = ("squeezenet1_0", "squeezenet1_1")

#: The four "filter banks" captured per version: (module name, description).
#: 1.0 follows netsounds: conv1+ReLU, fire4, fire8, fire9 (96, 256, 512, 512 channels).
#: 1.1 takes the same four stages: conv1+ReLU, fire3, fire5, fire9 (64, 128, 256, 512).
BANKS = {
    "squeezenet1_0": {
        "conv1": "features.1",
        "fire4": "features.5",
        "fire8": "features.10",
        "fire9": "features.12",
    },
    "squeezenet1_1": {
        "conv1": "features.1",
        "fire3": "features.4",
        "fire5": "features.7",
        "fire9": "features.12",
    },
}


class Fire(nn.Module):
    """Squeeze (1x1) then expand (1x1 and 3x3, concatenated), as in torchvision."""

    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int,
                 expand3x3_planes: int) -> None:
        super().__init__()
        self.inplanes = inplanes
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat(
            [self.expand1x1_activation(self.expand1x1(x)),
             self.expand3x3_activation(self.expand3x3(x))],
            1,
        )


class SqueezeNet(nn.Module):
    """SqueezeNet (Iandola et al. 2016), ``version`` "1_0" or "1_1".

    Input: float tensor (N, 3, H, W), ImageNet-normalised, any H, W >= 32 or so.
    Output: logits (N, num_classes).
    """

    def __init__(self, version: str = "1_0", num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.version = version
        self.num_classes = num_classes
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, 96, kernel_size=7, stride=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(96, 16, 64, 64),
                Fire(128, 16, 64, 64),
                Fire(128, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 32, 128, 128),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(512, 64, 256, 256),
            )
        elif version == "1_1":
            self.features = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=3, stride=2),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(64, 16, 64, 64),
                Fire(128, 16, 64, 64),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(128, 32, 128, 128),
                Fire(256, 32, 128, 128),
                nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
                Fire(256, 48, 192, 192),
                Fire(384, 48, 192, 192),
                Fire(384, 64, 256, 256),
                Fire(512, 64, 256, 256),
            )
        else:
            raise AuralizeError(
                f"unknown SqueezeNet version {version!r}: use '1_0' or '1_1'"
            )
        final_conv = nn.Conv2d(512, num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.classifier(x)
        return torch.flatten(x, 1)


def squeezenet1_0(num_classes: int = 1000) -> SqueezeNet:
    """SqueezeNet 1.0 with random weights."""
    return SqueezeNet("1_0", num_classes)


def squeezenet1_1(num_classes: int = 1000) -> SqueezeNet:
    """SqueezeNet 1.1 with random weights."""
    return SqueezeNet("1_1", num_classes)


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in the standard index order (shipped with the package)."""
    text = resources.files("auralize.models").joinpath("imagenet_classes.txt").read_text("utf-8")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 1000:  # pragma: no cover - packaging error
        raise AuralizeError(f"imagenet_classes.txt holds {len(names)} names, expected 1000")
    return names


def _unwrap_state_dict(obj, source: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(
                isinstance(v, torch.Tensor) for v in inner.values()
            ):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise AuralizeError(f"{source} does not hold a state dict (a mapping of name -> tensor)")
    out = dict(obj)
    # DataParallel / torch.compile / Lightning wrappers prefix every key.
    for prefix in ("module.", "_orig_mod.", "model."):
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix):]: v for k, v in out.items()}
    return out


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor],
                            source: str = "state dict") -> nn.Module:
    """Load ``state`` into ``model`` strictly, with errors a user can act on.

    Raises
    ------
    AuralizeError
        Naming the first parameter whose shape differs (with both shapes), or the
        missing / unexpected keys.
    """
    state = _unwrap_state_dict(state, source)
    own = model.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise AuralizeError(
                f"{source}: shape mismatch for {key}: file has {tuple(value.shape)}, "
                f"model expects {tuple(own[key].shape)} (wrong model version or class count?)"
            )
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        raise AuralizeError(f"{source} does not fit {type(model).__name__}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)
    return model


def hub_checkpoint(name: str) -> Path | None:
    """The newest ``<name>-*.pth`` in the torch hub checkpoint folder, or None."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    if not folder.is_dir():
        return None
    found = sorted(folder.glob(f"{name}-*.pth"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file (torch.save of a state dict, or a checkpoint holding one)."""
    path = Path(path)
    if not path.is_file():
        raise AuralizeError(f"weights file not found: {str(path)!r}")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AuralizeError(f"cannot read weights file {str(path)!r}: {msg[:200]}") from None
    return _unwrap_state_dict(obj, f"weights file {str(path)!r}")


def load_squeezenet(
    name: str = "squeezenet1_0",
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    use_hub_cache: bool = True,
) -> tuple[SqueezeNet, str | None]:
    """Build a SqueezeNet in eval mode and load its weights.

    Parameters
    ----------
    name : {"squeezenet1_0", "squeezenet1_1"}
    weights : path, optional
        A state dict file with torchvision's key names.
    device : str or torch.device
    use_hub_cache : bool
        Look for ``<name>-*.pth`` in the torch hub cache when ``weights`` is None.

    Returns
    -------
    model, source
        ``source`` is the weights file used, or None for random weights (a
        warning is issued: the labels are then meaningless).
    """
    if name not in VERSIONS:
        raise AuralizeError(f"unknown model {name!r}: choose from {', '.join(VERSIONS)}")
    model = SqueezeNet(name[len("squeezenet"):])
    source = None
    if weights is None and use_hub_cache:
        cached = hub_checkpoint(name)
        if cached is not None:
            weights = cached
    if weights is not None:
        load_state_dict_checked(model, read_weights(weights), f"weights file {str(weights)!r}")
        source = str(weights)
    else:
        warnings.warn(
            f"no ImageNet weights for {name}: using random weights, so the predicted labels "
            f"are meaningless (give --weights PATH, or put {name}-*.pth in "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'})",
            stacklevel=2,
        )
    return model.to(device).eval(), source

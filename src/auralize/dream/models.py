"""Sound classifiers that take waveforms: log-mel front end + CNN, chosen by name.

* ``sb_cnn`` — after Salamon & Bello (2017), "Deep convolutional neural networks and
  data augmentation for environmental sound classification": three 5x5 conv layers
  (24, 48, 48 filters), (4, 2) max-pooling after the first two, a 64-unit dense
  layer and the output layer, dropout 0.5.  Differences: 'same' padding so that
  short clips and small mel counts fit, and batch normalisation after each
  convolution (trains in a fraction of the steps).
* ``fat_shallow`` — the deepdreaming-sounds seed's network: conv 64 -> conv 128 ->
  max-pool -> dropout -> conv 256 -> conv 512 -> max-pool -> flatten -> fc 2048 ->
  dropout -> fc; 3x3 kernels, leaky ReLU (0.2), dropout 0.5.  Difference: an
  adaptive average pool to 2 x 4 before flattening keeps fc 2048 at 8 M weights
  instead of > 100 M.

Each model is a :class:`SoundClassifier`: ``forward(wave) -> logits`` and
``features(wave) -> {layer name: activation}``, both TorchScript-compatible, so
an exported model dreams and evaluates without this code.
"""

import math
from typing import Dict, List  # noqa: UP035 - TorchScript reads these annotations

import torch
from torch import nn

from auralize.dream.frontend import LogMel
from auralize.errors import AuralizeError

ARCHITECTURES = ("sb_cnn", "fat_shallow")


class SoundClassifier(nn.Module):
    """Log-mel front end, input normalisation, then named stages."""

    layer_names: List[str]  # noqa: UP006
    class_names: List[str]  # noqa: UP006

    def __init__(
        self,
        frontend: LogMel,
        stages: list[tuple[str, nn.Module]],
        class_names: list[str],
        clip_samples: int,
        arch: str,
    ) -> None:
        super().__init__()
        self.frontend = frontend
        self.norm = nn.BatchNorm2d(1)  # learned z-scoring of the log-mel input
        self.stages = nn.ModuleList([m for _, m in stages])
        self.layer_names = ["logmel"] + [n for n, _ in stages]
        self.class_names = list(class_names)
        self.clip_samples = int(clip_samples)
        self.sample_rate = int(frontend.sample_rate)
        self.arch = str(arch)

    def _fit(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        n = wave.size(-1)
        if n > self.clip_samples:
            wave = wave[:, : self.clip_samples]
        elif n < self.clip_samples:
            wave = torch.nn.functional.pad(wave, [0, self.clip_samples - n])
        return wave

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_classes)`` for waveforms ``(batch, samples)`` in [-1, 1]."""
        y = self.norm(self.frontend(self._fit(wave)))
        for stage in self.stages:
            y = stage(y)
        return y

    @torch.jit.export
    def features(self, wave: torch.Tensor) -> Dict[str, torch.Tensor]:  # noqa: UP006
        """Every named activation, from ``logmel`` (normalised input) to ``logits``."""
        y = self.norm(self.frontend(self._fit(wave)))
        out: Dict[str, torch.Tensor] = {"logmel": y}  # noqa: UP006
        i = 1
        for stage in self.stages:
            y = stage(y)
            out[self.layer_names[i]] = y
            i += 1
        return out


def _pow2(x: float) -> int:
    return int(2 ** round(math.log2(max(x, 16))))


def default_config(
    arch: str = "sb_cnn",
    class_names: list[str] | None = None,
    sample_rate: int = 22050,
    clip_s: float = 4.0,
    **overrides,
) -> dict:
    """A plain-dict model description (stored in checkpoints and exported files)."""
    if arch not in ARCHITECTURES:
        raise AuralizeError(f"unknown model {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    sr = int(sample_rate)
    if arch == "sb_cnn":
        n_fft = _pow2(0.046 * sr)
        hop = n_fft // 2
        n_mels = 128 if sr >= 16000 else 64
    else:  # the seed: NFFT 256 at 8 kHz (32 ms), every 10th frame of a 50 % overlap
        n_fft = _pow2(0.032 * sr)
        hop = n_fft * 5
        n_mels = 64
    cfg = {
        "arch": arch,
        "class_names": list(class_names or []),
        "sample_rate": sr,
        "clip_s": float(clip_s),
        "n_fft": n_fft,
        "hop_length": hop,
        "n_mels": n_mels,
        "f_min_hz": 0.0,
        "f_max_hz": None,
        "dropout": 0.5,
    }
    cfg.update({k: v for k, v in overrides.items() if v is not None})
    return cfg


def _conv(cin: int, cout: int, k: int, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2), nn.BatchNorm2d(cout), act)


def build_model(config: dict) -> SoundClassifier:
    """Build a fresh (untrained) model from :func:`default_config`'s dict."""
    arch = config["arch"]
    n_classes = len(config["class_names"])
    if n_classes < 2:
        raise AuralizeError("a classifier needs at least 2 classes")
    sr = int(config["sample_rate"])
    clip_samples = round(config["clip_s"] * sr)
    fe = LogMel(
        sr,
        config["n_fft"],
        config["hop_length"],
        config["n_mels"],
        config.get("f_min_hz") or 0.0,
        config.get("f_max_hz"),
    )
    p = float(config.get("dropout", 0.5))
    n_mels, n_frames = fe.n_mels, fe.n_frames(clip_samples)
    if arch == "sb_cnn":
        convs = [
            ("conv1", _conv(1, 24, 5, nn.ReLU())),
            ("pool1", nn.MaxPool2d((4, 2), ceil_mode=True)),
            ("conv2", _conv(24, 48, 5, nn.ReLU())),
            ("pool2", nn.MaxPool2d((4, 2), ceil_mode=True)),
            ("conv3", _conv(48, 48, 5, nn.ReLU())),
        ]
        head_width = 64
    elif arch == "fat_shallow":
        convs = [
            ("conv1", _conv(1, 64, 3, nn.LeakyReLU(0.2))),
            ("conv2", _conv(64, 128, 3, nn.LeakyReLU(0.2))),
            ("pool1", nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Dropout(p))),
            ("conv3", _conv(128, 256, 3, nn.LeakyReLU(0.2))),
            ("conv4", _conv(256, 512, 3, nn.LeakyReLU(0.2))),
            ("pool2", nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d((2, 4)))),
        ]
        head_width = 2048
    else:
        raise AuralizeError(f"unknown model {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    with torch.no_grad():
        y = torch.zeros(1, 1, n_mels, n_frames)
        for _, m in convs:
            m.eval()
            y = m(y)
        flat = int(y.numel())
    act = nn.ReLU() if arch == "sb_cnn" else nn.LeakyReLU(0.2)
    stages = convs + [
        ("fc1", nn.Sequential(nn.Flatten(), nn.Dropout(p), nn.Linear(flat, head_width), act)),
        ("logits", nn.Sequential(nn.Dropout(p), nn.Linear(head_width, n_classes))),
    ]
    model = SoundClassifier(fe, stages, config["class_names"], clip_samples, arch)
    model.train()
    return model


# ----------------------------------------------------------------------------- loading

EXPORT_META = "auralize_dream.json"


def is_torchscript(path) -> bool:
    """True when ``path`` is a TorchScript archive (as written by ``dream export``)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def load_model(path, map_location: str = "cpu") -> nn.Module:
    """Load a checkpoint (``.ckpt`` from ``dream train``) or an exported TorchScript file.

    Needs neither Lightning nor the training code.  The model is returned in eval
    mode; it has ``class_names``, ``layer_names``, ``sample_rate``, ``clip_samples``,
    ``forward(wave)`` and ``features(wave)``.

    Raises
    ------
    AuralizeError
        If the file is missing or is neither kind of model file.
    """
    import warnings
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise AuralizeError(f"model file not found: {str(path)!r}")
    if is_torchscript(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            model = torch.jit.load(str(path), map_location=map_location)
        model.eval()
        return model
    try:
        ckpt = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a model"
        raise AuralizeError(
            f"cannot load {str(path)!r} as a dream model ({type(exc).__name__}); "
            "give a .ckpt from `auralize dream train` or a file from `auralize dream export`"
        ) from None
    meta = ckpt.get("auralize") if isinstance(ckpt, dict) else None
    if not meta or "model_config" not in meta:
        raise AuralizeError(
            f"{str(path)!r} is not an auralize dream checkpoint (no model description inside)"
        )
    model = build_model(meta["model_config"])
    state = {
        k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")
    }
    model.load_state_dict(state)
    model.eval()
    return model


def model_config_of(model) -> dict:
    """The plain-dict description of a built (eager) model."""
    fe = model.frontend
    return {
        "arch": model.arch,
        "class_names": list(model.class_names),
        "sample_rate": int(model.sample_rate),
        "clip_s": model.clip_samples / model.sample_rate,
        "n_fft": fe.n_fft,
        "hop_length": fe.hop_length,
        "n_mels": fe.n_mels,
    }

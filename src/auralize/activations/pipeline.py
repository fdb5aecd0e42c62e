"""Image file -> model -> four banks of feature maps -> tensors, WAVs, spectrograms, mix.

Memory: one image at a time; the forward pass runs under ``torch.inference_mode``
(no autograd buffers); banks are turned into audio one by one and each bank's maps
and audio are released before the next, while the mix accumulates in a single
buffer of the final length.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from auralize.activations.capture import capture
from auralize.activations.images import load_image
from auralize.activations.mix import BankMixer, to_mono
from auralize.activations.pictures import save_feature_grid, save_model_input
from auralize.activations.transform import activations_to_audio, signal_length
from auralize.audio.files import write_audio
from auralize.errors import AuralizeError

#: Spectrogram PNGs show at most this many samples (the start of longer signals):
#: an STFT of hours of concat audio would need far more memory than the audio.
PLOT_MAX_SAMPLES = 1 << 20


@dataclass
class BankOutput:
    """What one filter bank produced."""

    index: int
    name: str
    layer: str
    shape: tuple[int, ...]
    samples: int
    tensor_path: Path | None = None
    wav_path: Path | None = None
    png_path: Path | None = None
    maps_png_path: Path | None = None  # the feature maps side by side


@dataclass
class ImageOutput:
    """What one image produced."""

    image: Path
    label: str
    top5: list[tuple[str, float]]
    banks: list[BankOutput] = field(default_factory=list)
    mix_path: Path | None = None
    mix_png_path: Path | None = None
    out_dir: Path | None = None
    input_png_path: Path | None = None  # the image as the model received it

    @property
    def paths(self) -> list[Path]:
        out = [self.input_png_path] if self.input_png_path is not None else []
        for b in self.banks:
            out += [p for p in (b.tensor_path, b.wav_path, b.png_path, b.maps_png_path)
                    if p is not None]
        out += [p for p in (self.mix_path, self.mix_png_path) if p is not None]
        return out


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    device = str(device).lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AuralizeError("--device cuda asked for, but torch sees no CUDA GPU; use cpu or auto")
    try:
        return torch.device(device)
    except RuntimeError:
        raise AuralizeError(f"unknown device {device!r}: use cpu, cuda or auto") from None


def safe_label(name: str) -> str:
    """A class name as a file-name fragment: ``"jack-o'-lantern"`` -> ``"jack-o_-lantern"``."""
    cleaned = re.sub(r"[^0-9A-Za-z.-]+", "_", name.strip()).strip("_.")
    return cleaned or "unknown"


def top_k(logits: torch.Tensor, labels: Sequence[str] | None, k: int = 5
          ) -> list[tuple[str, float]]:
    """``[(label, probability), ...]`` for the ``k`` most probable classes of one image."""
    probs = torch.softmax(logits.reshape(-1).float(), dim=0)
    k = min(k, probs.numel())
    values, indices = probs.topk(k)
    names = labels if labels is not None and len(labels) == probs.numel() else None
    return [(names[i] if names else f"class_{i}", float(v))
            for v, i in zip(values.tolist(), indices.tolist())]


def _audio_array(signal: torch.Tensor) -> np.ndarray:
    """Tensor audio -> numpy for soundfile: (N,) mono, or (N, F) C-contiguous for F signals."""
    arr = signal.detach().to("cpu", torch.float32).numpy()
    if arr.ndim == 2:
        arr = np.ascontiguousarray(arr.T)
    return arr


def _plot(signal: torch.Tensor, sample_rate: int, path: Path, title: str) -> Path:
    from auralize.audio.plots import save_spectrogram

    mono = to_mono(signal)
    n = mono.shape[0]
    if n > PLOT_MAX_SAMPLES:
        mono = mono[:PLOT_MAX_SAMPLES]
        title += f" (first {PLOT_MAX_SAMPLES / sample_rate:.0f} s of {n / sample_rate:.0f} s)"
    return save_spectrogram(mono.detach().cpu().numpy(), sample_rate, path, title=title)


def sonify_image(
    model: nn.Module,
    image: str | Path,
    banks: Mapping[str, str],
    out_dir: str | Path,
    *,
    image_size: int = 256,
    scheme: str = "sum",
    method: str = "ifft",
    normalize: str | None = "minmax",
    sample_rate: int = 11025,
    mix: str | None = "sum",
    labels: Sequence[str] | None = None,
    save_tensors: bool = True,
    save_wavs: bool = True,
    save_plots: bool = True,
    save_pictures: bool = True,
    subtype: str | None = None,
    model_name: str | None = None,
    clone: bool = False,
) -> ImageOutput:
    """Run one image through ``model`` and write what its filter banks sound like.

    Parameters
    ----------
    model : nn.Module
        In eval mode, on the device the work should run on.
    image : path
        Any image Pillow reads (see :mod:`auralize.activations.images`).
    banks : mapping bank name -> layer name
        Layers whose outputs are the banks, in order (index 1, 2, ...).
    out_dir : path
        Files go here: ``activations-{i}_{label}.pt``, ``activations-{i}_{label}_{sr}Hz.wav``
        and ``.png`` and ``activations-{i}_{label}_maps.png`` per bank,
        ``activations-mix_{label}_{sr}Hz.wav`` / ``.png`` and ``model-input.png``.
    image_size : int
        Short edge in pixels after resizing.
    scheme, method, normalize : str
        See :func:`~auralize.activations.activations_to_audio`; ``normalize``
        ``"minmax"`` is netsounds' scaling, ``"peak"`` keeps silence at 0 (no DC
        offset from the scaling).
    sample_rate : int
        Sample rate written into the WAV headers (Hz); netsounds used 11025.
    mix : {"sum", "multiply", None}
        Bank mix (stretched to the longest bank); None skips the mix.
    labels : sequence of str, optional
        Class names for the model's outputs (ImageNet's 1000 for SqueezeNet).
    save_plots : bool
        Spectrogram PNGs of each bank's sound and of the mix.
    save_pictures : bool
        ``model-input.png`` (the image after resizing and normalisation, shown
        de-normalised) and ``activations-{i}_{label}_maps.png`` per bank (every
        filter's map in a grid), see :mod:`auralize.activations.pictures`.
    clone : bool
        Copy each bank's output (see :func:`~auralize.activations.capture`): needed
        for a layer whose output a later layer changes in place (a convolution
        followed by ``ReLU(inplace=True)``, e.g. SqueezeNet's ``features.0``).

    Returns
    -------
    ImageOutput
    """
    if sample_rate < 1:
        raise AuralizeError(f"sample rate must be a positive number of Hz, got {sample_rate}")
    image = Path(image)
    out_dir = Path(out_dir)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    x = load_image(image, image_size).to(device)
    acts = capture(model, dict(banks), clone=clone)
    try:
        logits = acts(x)
    except RuntimeError as exc:
        msg = str(exc).splitlines()[0][:200]
        raise AuralizeError(
            f"the model failed on {image.name} at {x.shape[-2]}x{x.shape[-1]} px ({msg}); "
            "try a larger --image-size"
        ) from None
    top5 = top_k(logits[0], labels)
    label = safe_label(top5[0][0])
    result = ImageOutput(image=image, label=label, top5=top5, out_dir=out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if save_pictures:
        result.input_png_path = save_model_input(x, out_dir / "model-input.png")
    del x

    shapes = {name: tuple(acts[name].shape[-3:]) for name in banks}
    mixer = None
    if mix is not None:
        length = max(signal_length(s, scheme) for s in shapes.values())
        mixer = BankMixer(length, mix, device=device)
    sr = int(sample_rate)
    for index, (name, layer) in enumerate(banks.items(), start=1):
        maps = acts.pop(name)[0]
        stem = f"activations-{index}_{label}"
        bank = BankOutput(index, name, layer, shapes[name], 0)
        if save_tensors:
            bank.tensor_path = out_dir / f"{stem}.pt"
            torch.save(
                {
                    "activations": maps.detach().to("cpu"),
                    "bank": name,
                    "layer": layer,
                    "index": index,
                    "model": model_name or type(model).__name__,
                    "image": str(image),
                    "image_size": int(image_size),
                    "label": top5[0][0],
                    "top5": top5,
                },
                bank.tensor_path,
            )
        if save_pictures:
            bank.maps_png_path = save_feature_grid(maps, out_dir / f"{stem}_maps.png")
        with torch.inference_mode():
            audio = activations_to_audio(maps, scheme, method=method, normalize=normalize)
        del maps
        bank.samples = int(audio.shape[-1])
        if save_wavs:
            bank.wav_path = write_audio(out_dir / f"{stem}_{sr}Hz.wav", _audio_array(audio), sr,
                                        subtype=subtype)
        if save_plots:
            bank.png_path = _plot(audio, sr, out_dir / f"{stem}_{sr}Hz.png",
                                  f"bank {index} ({name}, {layer}) of {image.name}: {scheme}")
        if mixer is not None:
            with torch.inference_mode():
                mixer.add(audio)
        del audio
        result.banks.append(bank)
    if mixer is not None:
        with torch.inference_mode():
            mixed = mixer.result()
        del mixer
        stem = f"activations-mix_{label}_{sr}Hz"
        if save_wavs:
            result.mix_path = write_audio(out_dir / f"{stem}.wav", _audio_array(mixed), sr,
                                          subtype=subtype)
        if save_plots:
            result.mix_png_path = _plot(mixed, sr, out_dir / f"{stem}.png",
                                        f"{len(banks)} banks of {image.name}, {mix}")
        del mixed
    return result

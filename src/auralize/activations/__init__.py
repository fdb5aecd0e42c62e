"""Hear what a CNN sees: feature maps read as spectrograms (netsounds, done properly).

>>> from auralize.activations import capture, activations_to_audio
>>> with capture(model, {"conv1": "features.1"}) as acts:
...     logits = model(x)
>>> audio = activations_to_audio(acts["conv1"], scheme="sum")   # (H*W,) in [-1, 1]

:func:`capture` works with any ``torch.nn.Module``; :func:`activations_to_audio`
runs on the maps' device (CPU or GPU).  :func:`sonify_image` is the whole
image-to-files pipeline behind ``auralize activations``.
"""

from auralize.activations.capture import Capture, capture
from auralize.activations.images import find_images, load_image, make_procedural_images
from auralize.activations.mix import BankMixer, mix_banks, stretch
from auralize.activations.pipeline import ImageOutput, resolve_device, sonify_image
from auralize.activations.transform import METHODS, SCHEMES, activations_to_audio

__all__ = [
    "METHODS",
    "SCHEMES",
    "BankMixer",
    "Capture",
    "ImageOutput",
    "activations_to_audio",
    "capture",
    "find_images",
    "load_image",
    "make_procedural_images",
    "mix_banks",
    "resolve_device",
    "sonify_image",
    "stretch",
]

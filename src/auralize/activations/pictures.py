"""Pictures of what the model sees: its input image and a grid of each bank's feature maps.

netsounds' TODO "dump images": the image as the model receives it (resized,
oriented, normalised; written de-normalised so it is viewable) and, per bank,
every filter's map side by side, each scaled to its own range (as the sound is)
so that weak filters are visible too.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from auralize.activations.images import denormalize_imagenet

#: A tile (one filter's map) is shrunk to at most this many pixels per side, so that
#: a bank of 96 maps of 509 x 509 (a 1024 px image) stays a picture of a few MB.
MAX_TILE_PX = 128
#: Small grids are enlarged (nearest neighbour) to at least this many pixels per side.
MIN_PICTURE_PX = 256
#: Colour of the 1-pixel gaps between tiles (RGB).
GAP_RGB = (40, 40, 40)


def save_model_input(x: torch.Tensor, path: str | Path) -> Path:
    """Write an ImageNet-normalised input ``(1, 3, H, W)`` or ``(3, H, W)`` as an RGB PNG."""
    from PIL import Image

    img = denormalize_imagenet(x[0] if x.ndim == 4 else x).clamp(0.0, 1.0)
    arr = (img.permute(1, 2, 0).to("cpu", torch.float32).numpy() * 255.0 + 0.5).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return path


def feature_grid(maps: torch.Tensor, max_tile: int = MAX_TILE_PX) -> np.ndarray:
    """Feature maps ``(F, H, W)`` as one grid, float ``(rows, cols)`` in [0, 1], NaN in the gaps.

    Each map is scaled by its own min and max (a constant map is 0); maps larger
    than ``max_tile`` are shrunk by area averaging.  The grid is about square.
    """
    t = maps.detach()
    if t.ndim == 4:
        t = t[0]
    if t.ndim == 2:
        t = t[None]
    t = t.to(torch.float32)
    n, h, w = t.shape
    if max(h, w) > max_tile:
        scale = max_tile / max(h, w)
        h, w = max(1, round(h * scale)), max(1, round(w * scale))
        t = F.adaptive_avg_pool2d(t[None], (h, w))[0]
    lo = t.amin(dim=(1, 2), keepdim=True)
    span = t.amax(dim=(1, 2), keepdim=True) - lo
    t = torch.where(span > 0, (t - lo) / span.clamp_min(1e-30), torch.zeros_like(t))
    cols = max(1, math.ceil(math.sqrt(n * h / w)))
    rows = math.ceil(n / cols)
    grid = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), np.nan, dtype=np.float32)
    tiles = t.cpu().numpy()
    for i in range(n):
        r, c = divmod(i, cols)
        grid[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = tiles[i]
    return grid


def save_feature_grid(maps: torch.Tensor, path: str | Path, cmap: str = "magma") -> Path:
    """Write :func:`feature_grid` of ``maps`` as an RGB PNG (colour map ``cmap``)."""
    import matplotlib
    from PIL import Image

    grid = feature_grid(maps)
    # a 256-entry colour table indexed by uint8 levels: 3 bytes per pixel, where the
    # colour map applied to the float grid would hold 32 (RGBA float64) per pixel
    lut = (matplotlib.colormaps[cmap](np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5)
    lut = np.vstack([lut.astype(np.uint8), np.array(GAP_RGB, np.uint8)])  # index 256: gaps
    levels = np.where(np.isnan(grid), 256, np.rint(np.nan_to_num(grid) * 255)).astype(np.uint16)
    rgb = lut[levels]
    img = Image.fromarray(rgb, "RGB")
    factor = math.ceil(MIN_PICTURE_PX / max(img.size))
    if factor > 1:
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path

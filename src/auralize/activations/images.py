"""Images in: finding, loading any Pillow format, resizing, normalising; procedural defaults.

Every image becomes a float RGB tensor in [0, 1] before resizing, whatever it was
on disk: 1-bit, greyscale, palette, greyscale+alpha, RGBA (composited over white),
CMYK, 16-bit greyscale PNG/TIFF (``I;16`` / ``I``), 32-bit float (``F``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from auralize.errors import AuralizeError
from auralize.models.squeezenet import IMAGENET_MEAN, IMAGENET_STD

#: File extensions treated as images when searching a folder.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".ppm", ".pgm", ".pnm")



def find_images(dpath: str | Path, fragment: str | None = None) -> list[Path]:
    """Images in folder ``dpath`` whose file name contains ``fragment`` (case-insensitive).

    ``dpath`` may also be one image file.  Sorted by name.

    Raises
    ------
    AuralizeError
        Missing folder, no images, or no name matching ``fragment`` (the message
        lists the images that are there).
    """
    dpath = Path(dpath).expanduser()
    if dpath.is_file():
        files = [dpath]
    elif dpath.is_dir():
        files = sorted(p for p in dpath.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    else:
        raise AuralizeError(f"image folder not found: {str(dpath)!r}")
    if not files:
        raise AuralizeError(
            f"no images in {str(dpath)!r} (looked for {', '.join(IMAGE_EXTENSIONS)})"
        )
    if not fragment:
        return files
    frag = fragment.lower()
    found = [p for p in files if frag in p.name.lower()]
    if not found:
        names = [p.name for p in files]
        shown = ", ".join(names[:20]) + (f" ... ({len(names)} in all)" if len(names) > 20 else "")
        raise AuralizeError(f"no image name in {str(dpath)!r} contains {fragment!r}; there: {shown}")
    return found


def _to_float_rgb(img) -> np.ndarray:
    """Pillow image (any mode) -> float32 array (H, W, 3) in [0, 1]."""
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        a = np.asarray(img, dtype=np.float32) / 65535.0
    elif mode == "I":
        a = np.asarray(img, dtype=np.float64)
        # 32-bit container: 16-bit data (PNG/TIFF) unless values say otherwise.
        top = float(a.max()) if a.size else 0.0
        scale = 65535.0 if top <= 65535 else (2.0**32 - 1)
        a = (np.clip(a, 0, None) / scale).astype(np.float32)
    elif mode == "F":
        a = np.asarray(img, dtype=np.float32)
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        top = float(a.max()) if a.size else 0.0
        if top > 1.0:
            a = a / top
        a = np.clip(a, 0.0, 1.0)
    else:
        if (mode == "P" and "transparency" in img.info) or mode in ("LA", "La", "PA", "RGBa"):
            img = img.convert("RGBA")
        if img.mode == "RGBA":
            rgba = np.asarray(img, dtype=np.float32) / 255.0
            alpha = rgba[..., 3:4]
            return (rgba[..., :3] * alpha + (1.0 - alpha)).astype(np.float32)  # over white
        if img.mode != "RGB":
            img = img.convert("RGB")
        return np.asarray(img, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    return np.ascontiguousarray(a[..., :3], dtype=np.float32)


def read_image(path: str | Path) -> torch.Tensor:
    """Read any image Pillow opens as a float tensor (3, H, W) in [0, 1].

    EXIF orientation is applied.  Raises :class:`AuralizeError` for a missing or
    unreadable file.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise AuralizeError(f"image not found: {str(path)!r}")
    try:
        with Image.open(path) as img:
            img.load()
            try:
                img = ImageOps.exif_transpose(img)
            except Exception:  # noqa: BLE001, S110 - broken EXIF: keep the pixels as stored
                pass
            arr = _to_float_rgb(img)
    except UnidentifiedImageError:
        raise AuralizeError(
            f"cannot read {str(path)!r}: not an image format Pillow knows (PNG, JPEG, ...)"
        ) from None
    except Image.DecompressionBombError as exc:
        raise AuralizeError(f"cannot read {str(path)!r}: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise AuralizeError(f"cannot read {str(path)!r}: damaged or truncated image ({exc})") from None
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise AuralizeError(f"image {str(path)!r} has no pixels")
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def resize_short_edge(img: torch.Tensor, size: int, *, orient: bool = True) -> torch.Tensor:
    """Resize (3, H, W) so the short edge is ``size`` px (antialiased bilinear).

    With ``orient`` the result is turned a quarter turn when it is wider than
    tall, so that height >= width (as netsounds did).
    """
    if size < 1:
        raise AuralizeError(f"image size must be a positive number of pixels, got {size}")
    _, h, w = img.shape
    if orient and w > h:
        img = torch.rot90(img, k=1, dims=(1, 2))
        h, w = w, h
    scale = size / min(h, w)
    new_h = int(size) if h <= w else max(int(size), round(h * scale))
    new_w = int(size) if w <= h else max(int(size), round(w * scale))
    if (new_h, new_w) == (h, w):
        return img.contiguous()
    out = F.interpolate(img[None], size=(new_h, new_w), mode="bilinear", align_corners=False,
                        antialias=True)[0]
    return out.clamp_(0.0, 1.0)


def normalize_imagenet(img: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with ImageNet's per-channel statistics, for (3, H, W) or (N, 3, H, W)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(3, 1, 1)
    return (img - mean) / std


def denormalize_imagenet(img: torch.Tensor) -> torch.Tensor:
    """Undo :func:`normalize_imagenet`: x * std + mean, back to [0, 1] RGB (not clamped)."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=img.dtype, device=img.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=img.dtype, device=img.device).view(3, 1, 1)
    return img * std + mean


def load_image(path: str | Path, image_size: int = 256, *, orient: bool = True,
               normalize: bool = True) -> torch.Tensor:
    """Read, resize (short edge), orient (height >= width) and normalise one image.

    Returns a float tensor (1, 3, H, W) ready for an ImageNet model.
    """
    img = resize_short_edge(read_image(path), image_size, orient=orient)
    if normalize:
        img = normalize_imagenet(img)
    return img[None]


# -- procedural images -------------------------------------------------------------

def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y / max(h - 1, 1), x / max(w - 1, 1)


def make_procedural_images(folder: str | Path, size: int = 320, seed: int = 0) -> list[Path]:
    """Write a few synthetic images in the formats the loader handles; return their paths.

    ``rings.png`` (RGB), ``stripes_grey.png`` (8-bit greyscale), ``checker_rgba.png``
    (RGBA with an alpha gradient), ``dunes_16bit.png`` (16-bit greyscale) and
    ``blobs.jpg`` (JPEG).  Deterministic for a given ``seed``.
    """
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = int(size * 4 // 3), int(size)
    yy, xx = _grid(h, w)
    paths = []

    r = np.hypot(yy - 0.5, (xx - 0.5) * w / h)
    rings = np.stack([0.5 + 0.5 * np.sin(2 * np.pi * (6 + 2 * c) * r + c) for c in range(3)], -1)
    paths.append(folder / "rings.png")
    Image.fromarray((rings * 255).astype(np.uint8), "RGB").save(paths[-1])

    stripes = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 9 * (xx + 0.6 * yy)))
    paths.append(folder / "stripes_grey.png")
    Image.fromarray((stripes * 255).astype(np.uint8), "L").save(paths[-1])

    cells = ((np.floor(yy * 8) + np.floor(xx * 6)) % 2).astype(np.float32)
    rgba = np.stack([cells, 0.3 + 0.4 * yy, 1 - cells, 0.25 + 0.75 * xx], -1)
    paths.append(folder / "checker_rgba.png")
    Image.fromarray((rgba * 255).astype(np.uint8), "RGBA").save(paths[-1])

    dunes = 0.5 + 0.25 * np.sin(2 * np.pi * (3 * xx + 2 * np.sin(2 * np.pi * yy))) \
        + 0.25 * np.cos(2 * np.pi * 5 * yy * (1 + xx))
    paths.append(folder / "dunes_16bit.png")
    Image.fromarray((np.clip(dunes, 0, 1) * 65535).astype(np.uint16)).save(paths[-1])

    blobs = np.zeros((h, w, 3), np.float32)
    for _ in range(12):
        cy, cx, rad = rng.random(), rng.random(), 0.05 + 0.2 * rng.random()
        colour = rng.random(3).astype(np.float32)
        g = np.exp(-(((yy - cy) ** 2) + ((xx - cx) * w / h) ** 2) / (2 * rad**2))
        blobs += g[..., None] * colour
    blobs = np.clip(blobs, 0, 1)
    paths.append(folder / "blobs.jpg")
    Image.fromarray((blobs * 255).astype(np.uint8), "RGB").save(paths[-1], quality=92)
    return paths

"""Feature maps -> audio, netsounds style, batched on the maps' device.

Each filter map (H x W) is read as a spectrogram whose rows are spectra:

``method="ifft"`` (netsounds-exact)
    per row, the real part of the 1-D inverse FFT; rows concatenated in time,
    so a filter gives H*W samples.  Computed for all filters and rows at once,
    without complex numbers: for a real row x, ``Re(ifft(x))`` is a cosine
    transform of x's even part, itself even, so it is one real matrix product of
    size (W/2+1)^2 per row (see :func:`rows_ifft_real`; an rfft for very long rows).
``method="ola"``
    the same per-row signals (which are periodic with period W), cross-faded
    with periodic Hann windows of length 2W at hop W (overlap-add, windows
    summing to one), so the hard jump between one row's signal and the next
    becomes a smooth transition: no clicks at frame boundaries.  Same length
    H*W; identical rows give the ``ifft`` output exactly.

Each filter's signal is scaled to [-1, 1] on its own (``normalize="minmax"``,
as netsounds; ``"peak"`` divides by the largest magnitude and keeps 0 at 0;
``None`` leaves raw values).  A filter whose signal is constant (a dead ReLU
filter, say) becomes silence rather than NaN.  Then the filters of a bank are
combined: ``scheme="sum"`` (length H*W, renormalised), ``"concat"`` (F*H*W) or
``"none"`` (F signals).  Filters are processed in chunks, so the working memory
beyond the output is bounded by ``chunk_elems``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch

from auralize.errors import AuralizeError

SCHEMES = ("sum", "concat", "none")
METHODS = ("ifft", "ola")
NORMALIZATIONS = ("minmax", "peak", None)

#: Default number of map elements (filters x H x W) transformed at once (about 1 MB
#: of float32: intermediates stay in cache).
DEFAULT_CHUNK_ELEMS = 1 << 18


def _as_maps(maps) -> torch.Tensor:
    t = torch.as_tensor(maps).detach()
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise AuralizeError(
                f"activations_to_audio takes one image's maps (F, H, W); got a batch of "
                f"{t.shape[0]}: call it once per image"
            )
        t = t[0]
    elif t.ndim == 2:
        t = t[None]
    if t.ndim != 3:
        raise AuralizeError(
            f"feature maps must have shape (F, H, W) or (1, F, H, W); got {tuple(t.shape)}"
        )
    if 0 in t.shape:
        raise AuralizeError(f"feature maps are empty: shape {tuple(t.shape)}")
    if not t.is_floating_point() or t.dtype in (torch.float16, torch.bfloat16):
        t = t.float()
    return t


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise AuralizeError(f"unknown {name} {value!r}: choose from {', '.join(map(str, allowed))}")


#: Row lengths up to this use a cosine-matrix product (exact same values, faster on
#: CPU and GPU for the odd and prime widths SqueezeNet makes); longer rows use rfft.
MATMUL_MAX_W = 1100


@lru_cache(maxsize=16)
def _cos_matrix(w: int, device: str, dtype: torch.dtype) -> torch.Tensor:
    """(W//2 + 1, W//2 + 1) matrix C[k, n] = cos(2 pi k n / W) / W, built in float64."""
    m = w // 2 + 1
    k = torch.arange(m, dtype=torch.float64)[:, None]
    n = torch.arange(m, dtype=torch.float64)[None, :]
    c = torch.cos((2.0 * math.pi / w) * torch.remainder(k * n, w)) / w
    return c.to(device=device, dtype=dtype)


def _fold(rows: torch.Tensor) -> torch.Tensor:
    """Even part of each row, folded: e[0]=x[0], e[k]=x[k]+x[W-k] (k < W/2), e[W/2]=x[W/2]."""
    w = rows.shape[-1]
    m = w // 2 + 1
    if rows.device.type == "cpu":
        # numpy reverses with a negative-stride view (torch.flip copies, slowly, on CPU).
        x = rows.reshape(-1, w).numpy()
        e = x[:, :m].copy()
        if w > 2:
            e[:, 1 : (w + 1) // 2] += x[:, w - 1 : w // 2 : -1]
        return torch.from_numpy(e)
    e = rows[..., :m].reshape(-1, m).clone()
    if w > 2:
        e[:, 1 : (w + 1) // 2] += rows.reshape(-1, w)[:, w // 2 + 1 :].flip(-1)
    return e


def _mirror_into(flat: torch.Tensor, half: torch.Tensor) -> None:
    """flat[:, :m] = half; flat[:, m:] = half[:, (W+1)//2 - 1 : 0 : -1] (y[n] = y[W-n])."""
    w, m = flat.shape[-1], half.shape[-1]
    if flat.device.type == "cpu":
        f, h = flat.numpy(), half.numpy()
        f[:, :m] = h
        if w > m:
            f[:, m:] = h[:, (w + 1) // 2 - 1 : 0 : -1]
        return
    flat[:, :m] = half
    if w > m:
        flat[:, m:] = half[:, 1 : (w + 1) // 2].flip(-1)


def rows_ifft_real(rows: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``Re(ifft(rows, dim=-1))`` for real ``rows`` (..., W), batched over all rows.

    For a real row, ``y[n] = Re(ifft(x))[n] = sum_k x[k] cos(2 pi k n / W) / W``.
    Only the even part of x matters and y is even (y[n] = y[W-n]), so rows are
    folded to W//2 + 1 values, multiplied by a (W//2+1)-square cosine matrix, and
    the first half of y is mirrored into the second: a quarter of a plain DFT's
    multiply-adds, no complex numbers (W <= MATMUL_MAX_W).  Longer rows use a
    half-size rfft, mirrored the same way.  ``out`` (shape of ``rows``,
    contiguous) receives the result.
    """
    w = rows.shape[-1]
    m = w // 2 + 1
    rows = rows.contiguous()
    if out is None:
        out = torch.empty(rows.shape, device=rows.device, dtype=rows.dtype)
    if w <= MATMUL_MAX_W:
        half = _fold(rows) @ _cos_matrix(w, str(rows.device), rows.dtype)
    else:
        half = torch.fft.rfft(rows, dim=-1).real.reshape(-1, m).div_(w)
    _mirror_into(out.view(-1, w), half.contiguous())
    return out


def _hann2(w: int, device, dtype) -> torch.Tensor:
    return torch.hann_window(2 * w, periodic=True, device=device, dtype=dtype)


def rows_ola(rows: torch.Tensor) -> torch.Tensor:
    """Overlap-add variant: per-row signals cross-faded with 2W Hann windows, hop W.

    ``rows`` is (f, H, W); returns (f, H*W).  Row h's signal is centred on the
    samples ``[h*W, (h+1)*W)`` it occupies in the ``ifft`` method, with the same
    phase, so equal rows reproduce that method exactly.
    """
    f, h, w = rows.shape
    sig = rows_ifft_real(rows)  # (f, H, W), periodic in W
    if w < 4 or h == 1:  # nothing to cross-fade
        return sig.reshape(f, h * w)
    shift = w // 2
    sig = torch.roll(sig, shifts=shift, dims=-1)
    win = _hann2(w, sig.device, sig.dtype)
    total = (h + 1) * w
    out = torch.zeros(f, total, device=rows.device, dtype=rows.dtype)
    out[:, : h * w] += (sig * win[:w]).reshape(f, h * w)  # first halves of the frames
    out[:, w:] += sig.mul_(win[w:]).reshape(f, h * w)  # second halves
    del sig
    # Window sum (1 inside, less at the two ends): divide so the ends keep full level.
    wsum = torch.zeros(total, device=rows.device, dtype=rows.dtype)
    wsum[: h * w] += win[:w].repeat(h)
    wsum[w:] += win[w:].repeat(h)
    out = out[:, shift : shift + h * w]
    return out.div_(wsum[shift : shift + h * w].clamp_min(1e-3))


def scale_coefficients(x: torch.Tensor, mode: str | None = "minmax", eps: float = 1e-30
                       ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-row ``(a, b)`` with ``a * x + b`` in [-1, 1]; ``a = b = 0`` for constant rows.

    ``x`` is (R, N) and finite.  Returns None for ``mode=None`` (identity).
    """
    if mode is None:
        return None
    if mode == "minmax":
        lo, hi = x.amin(dim=-1), x.amax(dim=-1)  # (torch.aminmax is ~10x slower on CPU)
        rng = hi - lo
        # Constant (dead filter), or constant up to rounding noise around an offset.
        rel = 8.0 * torch.finfo(x.dtype).eps
        dead = (rng <= eps) | (rng <= rel * torch.maximum(hi.abs(), lo.abs()))
        a = torch.where(dead, 0.0, 2.0 / torch.where(dead, 1.0, rng))
        b = torch.where(dead, 0.0, -lo * a - 1.0)
        return a, b
    if mode == "peak":
        peak = x.abs().amax(dim=-1)
        dead = peak <= eps
        a = torch.where(dead, 0.0, 1.0 / torch.where(dead, 1.0, peak))
        return a, torch.zeros_like(a)
    raise AuralizeError(f"unknown normalisation {mode!r}: choose minmax, peak or None")


def normalize_(x: torch.Tensor, mode: str | None = "minmax", eps: float = 1e-30) -> torch.Tensor:
    """Scale each row of ``x`` (..., N) to [-1, 1] in place; constant rows become 0.

    ``mode="minmax"`` maps [min, max] onto [-1, 1] (netsounds); ``"peak"`` divides by
    the largest magnitude (keeps 0 at 0); None only replaces non-finite values by 0.
    """
    torch.nan_to_num_(x, nan=0.0, posinf=0.0, neginf=0.0)
    flat = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
    coef = scale_coefficients(flat, mode, eps)
    if coef is not None:
        a, b = coef
        flat.mul_(a[:, None]).add_(b[:, None])
        if flat.data_ptr() != x.data_ptr():  # pragma: no cover - reshape copied
            x.copy_(flat.reshape(x.shape))
    return x


def signal_length(shape: Sequence[int], scheme: str = "sum") -> int:
    """Samples one bank of maps with ``shape`` (F, H, W) gives under ``scheme`` (per signal)."""
    f, h, w = (int(s) for s in shape[-3:])
    return f * h * w if scheme == "concat" else h * w


def activations_to_audio(
    maps,
    scheme: str = "sum",
    *,
    method: str = "ifft",
    normalize: str | None = "minmax",
    chunk_elems: int = DEFAULT_CHUNK_ELEMS,
) -> torch.Tensor:
    """Turn one bank of feature maps into audio.

    Parameters
    ----------
    maps : tensor (F, H, W) or (1, F, H, W); (H, W) is one filter
        Activations of one image; they stay on their device (GPU maps give GPU audio).
    scheme : {"sum", "concat", "none"}
        How filters combine: summed (H*W samples), concatenated in filter order
        (F*H*W samples) or kept apart (F signals of H*W samples).
    method : {"ifft", "ola"}
        Row-spectrum inversion: netsounds' per-row inverse FFT, or the click-free
        windowed overlap-add variant (see module docstring).
    normalize : {"minmax", "peak", None}
        Per-filter scaling to [-1, 1] (and of the sum, for ``scheme="sum"``).
    chunk_elems : int
        Map elements transformed at once; bounds the working memory.

    Returns
    -------
    torch.Tensor
        float32 (or float64 for float64 maps): shape (H*W,) for sum, (F*H*W,) for
        concat, (F, H*W) for none.  Always finite.
    """
    _check("scheme", scheme, SCHEMES)
    _check("method", method, METHODS)
    _check("normalisation", normalize, NORMALIZATIONS)
    maps = _as_maps(maps)
    f, h, w = maps.shape
    n = h * w
    step = max(1, int(chunk_elems) // n)
    if scheme == "sum":
        out = torch.zeros(n, device=maps.device, dtype=maps.dtype)
    else:
        out = torch.empty(f, n, device=maps.device, dtype=maps.dtype)
    with torch.inference_mode():
        for start in range(0, f, step):
            chunk = maps[start : start + step]
            k = chunk.shape[0]
            if scheme != "sum" and method == "ifft":
                sig = rows_ifft_real(chunk, out=out[start : start + k].view(k, h, w)).view(k, n)
            elif method == "ifft":
                sig = rows_ifft_real(chunk).view(k, n)
            else:
                sig = rows_ola(chunk)
            coef = scale_coefficients(sig, normalize)
            if coef is None or not bool(torch.isfinite(coef[0]).all() & torch.isfinite(coef[1]).all()):
                # NaN/Inf in the maps (they propagate through the transform): zero them.
                torch.nan_to_num_(sig, nan=0.0, posinf=0.0, neginf=0.0)
                coef = scale_coefficients(sig, normalize)
            if scheme == "sum":
                # sum_f (a_f * s_f + b_f) as one matrix-vector product: no scaled copy.
                if coef is None:
                    out += sig.sum(dim=0)
                else:
                    a, b = coef
                    out.addmv_(sig.T, a).add_(b.sum())
            else:
                if coef is not None:
                    a, b = coef
                    sig.mul_(a[:, None]).add_(b[:, None])
                if sig.data_ptr() != out[start].data_ptr():
                    out[start : start + k] = sig
            del sig
        if scheme == "sum":
            normalize_(out[None], normalize)
        elif scheme == "concat":
            out = out.reshape(f * n)
    return out


__all__ = [
    "METHODS",
    "SCHEMES",
    "activations_to_audio",
    "normalize_",
    "rows_ifft_real",
    "rows_ola",
    "scale_coefficients",
    "signal_length",
]

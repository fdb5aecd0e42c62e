"""Mixing the banks of an image into one signal: stretch each to a common length, then
sum or multiply them (:class:`BankMixer` one bank at a time, :func:`mix_banks` at once).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from auralize.activations.transform import normalize_
from auralize.errors import AuralizeError

MIX_MODES = ("sum", "multiply")


def stretch(signal: torch.Tensor, length: int) -> torch.Tensor:
    """Linearly interpolate a 1-D ``signal`` to ``length`` samples (ends kept)."""
    out = torch.empty(length, device=signal.device, dtype=signal.dtype)
    stretch_into(out, signal, "copy")
    return out


def stretch_into(acc: torch.Tensor, signal: torch.Tensor, op: str = "sum",
                 chunk: int = 1 << 20) -> torch.Tensor:
    """Stretch 1-D ``signal`` to ``len(acc)`` (linear interpolation, ends kept) and add it to
    (``op="sum"``), multiply it into (``"multiply"``) or copy it over (``"copy"``) ``acc``.

    Works in chunks (no full-size temporary), with float64 positions so that they
    stay exact for signals of any length.
    """
    if op not in ("sum", "multiply", "copy"):
        raise AuralizeError(f"unknown mix {op!r}: choose from sum, multiply")
    n_out = acc.shape[0]
    x = signal.reshape(-1).to(acc.dtype)
    n_in = x.shape[0]
    if n_in == 0:
        raise AuralizeError("cannot stretch an empty signal")
    ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    for a in range(0, n_out, chunk):
        b = min(n_out, a + chunk)
        if n_in == n_out:
            part = x[a:b]
        else:
            pos = torch.arange(a, b, device=acc.device, dtype=torch.float64).mul_(ratio)
            i0 = pos.long()  # floor: positions are >= 0
            frac = pos.sub_(i0).to(acc.dtype)
            i0.clamp_(max=n_in - 1)
            part = torch.lerp(x[i0], x[(i0 + 1).clamp_(max=n_in - 1)], frac)
        if op == "sum":
            acc[a:b] += part
        elif op == "multiply":
            acc[a:b] *= part
        else:
            acc[a:b] = part
    return acc


def to_mono(signal: torch.Tensor) -> torch.Tensor:
    """A bank's audio as one signal: (F, N) from ``scheme="none"`` is averaged over filters."""
    return signal.mean(dim=0) if signal.ndim == 2 else signal.reshape(-1)


class BankMixer:
    """Mix banks one at a time into a buffer of the final length (stretch + sum/multiply).

    Lets a pipeline free each bank's audio before the next is made; ``mix_banks`` is
    the one-call form.
    """

    def __init__(self, length: int, mode: str = "sum", *, device=None, dtype=torch.float32):
        if mode not in MIX_MODES:
            raise AuralizeError(f"unknown mix {mode!r}: choose from {', '.join(MIX_MODES)}")
        if length < 1:
            raise AuralizeError("mix length must be at least one sample")
        self.mode = mode
        fill = 1.0 if mode == "multiply" else 0.0
        self.buffer = torch.full((int(length),), fill, device=device, dtype=dtype)
        self.count = 0

    def add(self, signal: torch.Tensor) -> None:
        stretch_into(self.buffer, to_mono(signal).to(self.buffer.device), self.mode)
        self.count += 1

    def result(self, normalize: str | None = "peak") -> torch.Tensor:
        if self.count == 0:
            raise AuralizeError("no banks were added to the mix")
        return normalize_(self.buffer[None], normalize)[0]


def mix_banks(signals: Iterable[torch.Tensor], mode: str = "sum",
              normalize: str | None = "peak") -> torch.Tensor:
    """Stretch every bank's signal to the longest and sum (or multiply) them into one.

    Signals of shape (F, N) (``scheme="none"``) are first averaged over filters.
    The result is scaled to [-1, 1] (``normalize="peak"`` keeps silence at 0).
    """
    signals = [to_mono(torch.as_tensor(s)) for s in signals]
    if not signals:
        raise AuralizeError("mix_banks needs at least one signal")
    length = max(s.shape[0] for s in signals)
    mixer = BankMixer(length, mode, device=signals[0].device, dtype=signals[0].dtype)
    for s in signals:
        mixer.add(s)
    return mixer.result(normalize)


__all__ = ["MIX_MODES", "BankMixer", "mix_banks", "stretch", "stretch_into", "to_mono"]

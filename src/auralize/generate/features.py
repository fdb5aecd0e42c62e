"""Block features for audio generation (boii / GRUV), as pure functions.

Audio is cut into blocks of ``block_size`` samples; each block becomes one
feature vector the network reads and predicts:

- ``"hfft"`` (boii): ``np.fft.hfft(block)``, the block read as the half spectrum
  of a Hermitian signal: 512 samples -> 2 * (512 - 1) = 1022 real values;
  ``np.fft.ihfft`` gives the block back (its real part; the imaginary part is 0).
- ``"fft"`` (GRUV): ``np.fft.fft(block)``, real parts then imaginary parts
  concatenated: 11025 samples -> 22050 values; the inverse FFT of ``re + 1j*im``.

Optional mu-law companding (boii: mu = 4) is applied to the samples before the
transform and undone after the inverse; optional quantisation (boii's second
option, e.g. 8 bits as in WaveNet's mu-law audio) rounds the companded samples to
``2**bits`` levels before the transform, and snaps a network's output to the same
levels after the inverse.  :class:`BlockCodec` holds the three settings of a
config and does both directions.  Normalisation (per-feature mean and
standard deviation over a dataset) is a separate step, :class:`Normalizer`: the
statistics are saved with the data, applied before training and undone at
generation (GRUV computed them and never applied them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

KINDS = ("hfft", "fft")


def feature_size(kind: str, block_size: int) -> int:
    """Length of one block's feature vector (``hfft``: 2*(B-1); ``fft``: 2*B)."""
    if kind == "hfft":
        return 2 * (int(block_size) - 1)
    if kind == "fft":
        return 2 * int(block_size)
    raise ValueError(f"unknown feature kind {kind!r} (known: {', '.join(KINDS)})")


def mu_law(x: np.ndarray, mu: float) -> np.ndarray:
    """Compress samples in [-1, 1]: ``sign(x) * log1p(mu*|x|) / log1p(mu)``."""
    x = np.asarray(x)
    return np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)


def mu_law_inverse(y: np.ndarray, mu: float) -> np.ndarray:
    """Undo :func:`mu_law`: ``sign(y) * ((1 + mu)**|y| - 1) / mu``."""
    y = np.asarray(y)
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def quantize(y: np.ndarray, bits: int) -> np.ndarray:
    """Round samples in [-1, 1] to ``2**bits`` evenly spaced levels from -1 to 1.

    Values outside [-1, 1] are clipped first; ``bits`` = 0 returns ``y`` unchanged.
    The largest error is half a step, ``1 / (2**bits - 1)``.
    """
    if not bits:
        return np.asarray(y)
    steps = float(2 ** int(bits) - 1)
    return np.round((np.clip(y, -1.0, 1.0) + 1.0) * (steps / 2.0)) * (2.0 / steps) - 1.0


def to_blocks(samples: np.ndarray, block_size: int) -> np.ndarray:
    """Cut mono samples into ``(n_blocks, block_size)``; the last block is zero-padded."""
    x = np.asarray(samples).reshape(-1)
    n = -(-x.shape[0] // block_size)
    out = np.zeros((n, block_size), dtype=x.dtype if x.dtype.kind == "f" else np.float32)
    out.reshape(-1)[: x.shape[0]] = x
    return out


def blocks_to_features(
    blocks: np.ndarray, kind: str = "hfft", mu: float | None = None, bits: int = 0
) -> np.ndarray:
    """Feature vectors of ``blocks`` (``(..., block_size)`` -> ``(..., feature_size)``).

    Parameters
    ----------
    blocks : ndarray
        Samples, last axis = one block.
    kind : {"hfft", "fft"}
        boii's Hermitian FFT or GRUV's concatenated real/imaginary FFT.
    mu : float, optional
        Mu-law companding of the samples before the transform (None or 0: off).
    bits : int
        Quantise the (companded) samples to ``2**bits`` levels (0: off).
    """
    x = np.asarray(blocks, dtype=np.float64)
    if mu:
        x = mu_law(x, mu)
    x = quantize(x, bits)
    if kind == "hfft":
        out = np.fft.hfft(x, axis=-1)
    elif kind == "fft":
        spec = np.fft.fft(x, axis=-1)
        out = np.concatenate([spec.real, spec.imag], axis=-1)
    else:
        feature_size(kind, x.shape[-1])  # raises the uniform message
    return out.astype(np.float32)


def features_to_blocks(
    features: np.ndarray, kind: str = "hfft", mu: float | None = None, bits: int = 0
) -> np.ndarray:
    """Inverse of :func:`blocks_to_features`: ``(..., feature_size)`` -> ``(..., block_size)``.

    Non-finite values become 0; mu-law expansion clips its input to [-1, 1] first
    (a network's prediction may leave the companded range); with ``bits`` the
    samples are snapped to the quantiser's levels before the expansion.
    """
    f = np.nan_to_num(np.asarray(features, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if kind == "hfft":
        x = np.fft.ihfft(f, axis=-1).real
    elif kind == "fft":
        half = f.shape[-1] // 2
        x = np.fft.ifft(f[..., :half] + 1j * f[..., half:], axis=-1).real
    else:
        raise ValueError(f"unknown feature kind {kind!r} (known: {', '.join(KINDS)})")
    x = quantize(x, bits)
    if mu:
        x = mu_law_inverse(np.clip(x, -1.0, 1.0), mu)
    return x.astype(np.float32)


@dataclass(frozen=True)
class BlockCodec:
    """A config's audio <-> feature settings: transform ``kind``, mu-law ``mu``, ``bits``.

    ``encode`` and ``decode`` are :func:`blocks_to_features` and
    :func:`features_to_blocks` with these settings; ``audio_to_features`` and
    ``features_to_audio`` work on whole mono signals.
    """

    kind: str = "hfft"
    mu: float = 0.0
    bits: int = 0

    def encode(self, blocks: np.ndarray) -> np.ndarray:
        return blocks_to_features(blocks, self.kind, self.mu or None, self.bits)

    def decode(self, features: np.ndarray) -> np.ndarray:
        return features_to_blocks(features, self.kind, self.mu or None, self.bits)

    def audio_to_features(self, samples: np.ndarray, block_size: int) -> np.ndarray:
        return self.encode(to_blocks(samples, block_size))

    def features_to_audio(self, features: np.ndarray) -> np.ndarray:
        return np.clip(self.decode(features).reshape(-1), -1.0, 1.0)


@dataclass
class Normalizer:
    """Per-feature mean / standard deviation over a dataset, applied and undone.

    Attributes
    ----------
    mean, std : ndarray, shape (feature_size,)
        ``std`` has a floor (``1e-8`` times its largest value, at least 1e-12) so
        constant features do not divide by 0.
    """

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Normalizer:
        """Statistics of ``features`` (``(..., feature_size)``), in float64."""
        f = np.asarray(features, dtype=np.float64).reshape(-1, np.shape(features)[-1])
        mean = f.mean(axis=0)
        std = f.std(axis=0)
        floor = max(1e-12, 1e-8 * float(std.max(initial=0.0)))
        return cls(mean.astype(np.float32), np.maximum(std, floor).astype(np.float32))

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``(features - mean) / std`` as float32."""
        return ((np.asarray(features, np.float32) - self.mean) / self.std).astype(np.float32)

    def undo(self, normalised: np.ndarray) -> np.ndarray:
        """``normalised * std + mean`` as float32."""
        return (np.asarray(normalised, np.float32) * self.std + self.mean).astype(np.float32)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, mean=self.mean, std=self.std)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Normalizer:
        from auralize.readers import load_npz

        z = load_npz(path, ("mean", "std"), "normalisation statistics (norm.npz)")
        return cls(z["mean"].astype(np.float32), z["std"].astype(np.float32))


def audio_to_features(
    samples: np.ndarray, block_size: int, kind: str = "hfft", mu: float | None = None,
    bits: int = 0,
) -> np.ndarray:
    """Mono samples -> ``(n_blocks, feature_size)`` (last block zero-padded)."""
    return BlockCodec(kind, mu or 0.0, bits).audio_to_features(samples, block_size)


def features_to_audio(
    features: np.ndarray, kind: str = "hfft", mu: float | None = None, bits: int = 0
) -> np.ndarray:
    """``(n_blocks, feature_size)`` -> mono samples, finite and clipped to [-1, 1]."""
    return BlockCodec(kind, mu or 0.0, bits).features_to_audio(features)

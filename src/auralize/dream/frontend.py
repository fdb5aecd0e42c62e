"""A differentiable log-mel front end in plain torch (no torchaudio).

It is a module inside every dream model, so models take waveforms and gradients
flow from any layer back to the samples: dreaming changes the sound itself, with
no phase to guess.  TorchScript-compatible (the power spectrum is computed from
the real and imaginary parts, whose gradients TorchScript's autodiff supports).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def hz_to_mel(f_hz):
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min_hz: float = 0.0, f_max_hz: float | None = None
) -> np.ndarray:
    """Triangular mel filters, shape ``(n_mels, n_fft // 2 + 1)``, area-normalised (Slaney).

    Filters narrower than one FFT bin are widened to the nearest bin so that no
    band is empty at small ``n_fft``.
    """
    f_max_hz = float(f_max_hz or sample_rate / 2)
    n_freqs = n_fft // 2 + 1
    fft_hz = np.linspace(0, sample_rate / 2, n_freqs)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min_hz), hz_to_mel(f_max_hz), n_mels + 2))
    bin_hz = fft_hz[1] - fft_hz[0]
    fb = np.zeros((n_mels, n_freqs))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        left = max(mid - lo, bin_hz)
        right = max(hi - mid, bin_hz)
        up = (fft_hz - (mid - left)) / left
        down = ((mid + right) - fft_hz) / right
        fb[m] = np.maximum(0.0, np.minimum(up, down))
        fb[m] *= 2.0 / (left + right)
    return fb.astype(np.float32)


class LogMel(nn.Module):
    """Waveform ``(batch, samples)`` -> log-mel ``(batch, 1, n_mels, frames)``.

    Parameters
    ----------
    sample_rate : int
        Rate of the incoming waveform in Hz.
    n_fft : int
        STFT size (Hann window of the same length).
    hop_length : int
        Hop in samples.
    n_mels : int
        Number of mel bands.
    f_min_hz, f_max_hz : float
        Band edges of the filterbank.
    """

    def __init__(
        self,
        sample_rate: int = 22050,
        n_fft: int = 1024,
        hop_length: int = 512,
        n_mels: int = 128,
        f_min_hz: float = 0.0,
        f_max_hz: float | None = None,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.eps = float(eps)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        fb = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, f_min_hz, f_max_hz)
        self.register_buffer("filterbank", torch.from_numpy(fb), persistent=False)

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.dim() == 1:
            wave = wave.unsqueeze(0)
        spec = torch.stft(
            wave,
            self.n_fft,
            self.hop_length,
            self.n_fft,
            self.window,
            center=True,
            pad_mode="constant",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spec.real.pow(2) + spec.imag.pow(2)  # (batch, freqs, frames)
        mel = torch.matmul(self.filterbank, power)  # (batch, mels, frames)
        return torch.log(mel + self.eps).unsqueeze(1)

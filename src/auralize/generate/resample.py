"""Streaming polyphase resampling (rational factor, state kept between chunks).

Live mode runs models at their rate (boii: 8 kHz) on a device at its own rate
(JACK: 44.1 or 48 kHz).  ``scipy.signal.resample_poly`` works on whole signals;
:class:`StreamResampler` gives the same kind of filter chunk by chunk: output
sample ``j`` is ``sum_t x[k0 - t] * h[phase + t * up]`` with ``k0 = j*down // up``
and ``phase = j*down % up``, where ``h`` is a windowed-sinc low-pass at the
upsampled rate (cut-off at the lower Nyquist frequency).  Feeding any chunking
gives identical output.
"""

from __future__ import annotations

import math

import numpy as np


class StreamResampler:
    """Resample a stream from ``rate_in`` to ``rate_out`` Hz, one chunk at a time.

    Parameters
    ----------
    half_taps : int
        Filter half-length in input samples at the lower of the two rates
        (quality vs. delay; the delay is about ``half_taps`` samples there).
    """

    def __init__(self, rate_in: int, rate_out: int, half_taps: int = 16) -> None:
        from scipy.signal import firwin

        g = math.gcd(int(rate_in), int(rate_out))
        self.up, self.down = int(rate_out) // g, int(rate_in) // g
        self.identity = self.up == self.down
        #: Group delay in output samples (0 when the rates are equal).
        self.delay_out = 0.0
        if self.identity:
            return
        ratio = max(self.up, self.down)
        n = 2 * half_taps * ratio + 1
        h = firwin(n, 0.95 / ratio, window=("kaiser", 8.0)) * self.up
        self.delay_out = (n - 1) / 2 / self.down
        per_phase = -(-n // self.up)
        hp = np.zeros(per_phase * self.up)
        hp[:n] = h
        # taps[phase, t] = h[phase + t*up]
        self.taps = hp.reshape(per_phase, self.up).T.astype(np.float32)
        self.n_taps = per_phase
        self.hist = np.zeros(per_phase, np.float32)  # the last inputs, oldest first
        self.n_in = 0  # inputs consumed so far
        self.n_out = 0  # outputs produced so far
        self._t = np.arange(per_phase)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed input samples; return every output sample they make computable."""
        x = np.asarray(x, np.float32).reshape(-1)
        if self.identity:
            return x.copy()
        buf = np.concatenate([self.hist, x])  # buf[i] = input (n_in - n_taps + i)
        total = self.n_in + x.shape[0]
        # outputs j with k0 = j*down//up <= total - 1
        j_end = ((total - 1) * self.up) // self.down + 1 if total else 0
        j = np.arange(self.n_out, j_end, dtype=np.int64)
        k0 = (j * self.down) // self.up
        phase = (j * self.down) % self.up
        idx = (k0 - (self.n_in - self.n_taps))[:, None] - self._t[None, :]
        vals = np.where(idx >= 0, buf[np.clip(idx, 0, None)], 0.0)
        y = np.einsum("ij,ij->i", vals, self.taps[phase]).astype(np.float32)
        self.n_out = int(j_end)
        self.n_in = total
        self.hist = buf[-self.n_taps:].copy()
        return y

"""The generator network and streaming inference with cached state.

``BlockLSTM``: time-distributed linear in -> ``depth`` stacked LSTM layers of
``hidden`` units -> time-distributed linear out, predicting the next block's
(normalised) features from the blocks so far (boii; GRUV is depth 1 with
hidden 1024).  :class:`Streamer` keeps the LSTM state between blocks, so each
new block costs one step whatever came before; GRUV re-ran the whole growing
sequence for every block (:func:`generate_rerun`, kept as the benchmark baseline).
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import torch
from torch import nn

from auralize.errors import AuralizeError
from auralize.generate.config import GenConfig

PRECISIONS = ("fp32", "int8")


class BlockLSTM(nn.Module):
    """Linear(feature, hidden) -> LSTM(hidden, hidden, depth) -> Linear(hidden, feature)."""

    def __init__(self, feature_size: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.feature_size, self.hidden, self.depth = int(feature_size), int(hidden), int(depth)
        self.inp = nn.Linear(self.feature_size, self.hidden)
        self.lstm = nn.LSTM(self.hidden, self.hidden, num_layers=self.depth, batch_first=True)
        self.out = nn.Linear(self.hidden, self.feature_size)

    @classmethod
    def from_config(cls, cfg: GenConfig) -> BlockLSTM:
        return cls(cfg.feature_size, cfg.hidden, cfg.depth)

    def forward(self, x: torch.Tensor, state=None):
        """``x``: (batch, time, feature) -> (prediction of the next blocks, new state)."""
        h, state = self.lstm(self.inp(x), state)
        return self.out(h), state


def with_precision(model: BlockLSTM, precision: str = "fp32") -> BlockLSTM:
    """``model`` itself (``"fp32"``) or an int8 copy of it (``"int8"``) for inference.

    int8: torch's dynamic quantisation of the LSTM and linear layers (weights
    stored as int8, activations quantised per call).  An LSTM step at batch 1 is
    a matrix-vector product that reads every weight once, so it is bound by memory
    traffic: reading a quarter of the bytes makes it several times faster, for a
    small relative error in the predicted features (figures: BENCHMARKS.md).
    Where torch lacks the quantised kernels, the float32 model is returned with
    one warning.
    """
    if precision == "fp32":
        return model
    if precision != "int8":
        raise AuralizeError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    try:
        with warnings.catch_warnings():
            # torch.ao's eager quantisation is deprecated in favour of torchao, which
            # has no LSTM; it is present and works in the torch this project pins.
            warnings.simplefilter("ignore")
            from torch.ao.quantization import quantize_dynamic

            q = quantize_dynamic(copy.deepcopy(model).eval(), {nn.LSTM, nn.Linear},
                                 dtype=torch.qint8)
            with torch.inference_mode():
                q(torch.zeros(1, 1, model.feature_size))
        return q
    except Exception as exc:  # noqa: BLE001 - any failure: float32 still works
        warnings.warn(f"int8 inference unavailable ({type(exc).__name__}: {exc}); "
                      "using float32", RuntimeWarning, stacklevel=2)
        return model


class Streamer:
    """Feed blocks one at a time through a model, keeping its LSTM state.

    Parameters
    ----------
    model : BlockLSTM
        Put in eval mode; inference runs without autograd.
    """

    def __init__(self, model: BlockLSTM) -> None:
        self.model = model.eval()
        self.state = None
        self.blocks = 0

    @torch.inference_mode()
    def step(self, features: np.ndarray) -> np.ndarray:
        """One block's normalised features -> the predicted next block's (float32)."""
        x = torch.as_tensor(np.asarray(features, np.float32)).reshape(1, 1, -1)
        y, self.state = self.model(x, self.state)
        self.blocks += 1
        return y.reshape(-1).numpy()

    @torch.inference_mode()
    def warm_up(self, seed: np.ndarray) -> np.ndarray:
        """Run a seed sequence ``(n, feature)`` in one call; return the last prediction."""
        x = torch.as_tensor(np.asarray(seed, np.float32))[None]
        y, self.state = self.model(x, self.state)
        self.blocks += x.shape[1]
        return y[0, -1].numpy()


def _bounded(y: np.ndarray, limit: float) -> np.ndarray:
    """Keep a fed-back prediction finite and bounded (normalised units)."""
    y = np.nan_to_num(y, nan=0.0, posinf=limit, neginf=-limit)
    return np.clip(y, -limit, limit, out=y)


def generate(model: BlockLSTM, seed: np.ndarray, n_blocks: int, limit: float = 8.0,
             progress: bool = False) -> np.ndarray:
    """Autoregressive generation with cached state: ``(n_blocks, feature)`` normalised.

    The seed (``(n, feature)``, normalised) primes the state; each prediction is
    fed back as the next input.  Cost per block is constant.  ``progress``: a
    tqdm bar on stderr.
    """
    s = Streamer(model)
    y = _bounded(s.warm_up(seed), limit)
    out = np.empty((n_blocks, model.feature_size), np.float32)
    steps = range(n_blocks)
    if progress:
        import sys

        from tqdm import tqdm

        steps = tqdm(steps, desc="generate", unit="block", file=sys.stderr, leave=False)
    for i in steps:
        out[i] = y
        y = _bounded(s.step(y), limit)
    return out


@torch.inference_mode()
def generate_rerun(model: BlockLSTM, seed: np.ndarray, n_blocks: int,
                   limit: float = 8.0) -> np.ndarray:
    """GRUV's way (benchmark baseline): re-run the whole growing sequence per new block."""
    model.eval()
    seq = torch.as_tensor(np.asarray(seed, np.float32))[None]
    out = np.empty((n_blocks, model.feature_size), np.float32)
    for i in range(n_blocks):
        y, _ = model(seq)
        nxt = _bounded(y[0, -1].numpy().copy(), limit)
        out[i] = nxt
        seq = torch.cat([seq, torch.as_tensor(nxt)[None, None]], dim=1)
    return out

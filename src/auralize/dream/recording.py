"""DeepDream over a whole recording: any length, any rate, cross-faded windows.

A dream model hears clips of a fixed length at its own rate (e.g. 4 s at 22050 Hz).
A recording is resampled to that rate and cut into windows of the model's clip
length that overlap by half; each window is dreamed on its own (its own seed, so
the jitter differs), and what dreaming *changed* in each window is cross-faded
into the neighbours' with Hann weights (a weighted average, so the changes join
without seams or level bumps).  The change is resampled back to the recording's
rate and added to the recording itself: the output has the input's rate and
length, and keeps the input's content above the model's band (a 44.1 kHz
recording dreamed by an 8 kHz model keeps its highs; only what the model hears
is dreamed).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from auralize.dream.datasets import fix_length, resample
from auralize.dream.deepdream import DreamConfig, DreamResult, dream


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """First samples of windows of ``window`` samples, ``hop`` apart, covering ``n_samples``.

    The last window ends at the end (it may overlap its neighbour by more than
    the others do); a signal no longer than one window gets one window at 0.
    """
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window, max(1, hop)))
    return [*starts, n_samples - window]


def dream_recording(
    model,
    samples: np.ndarray,
    sample_rate: int,
    cfg: DreamConfig | None = None,
    progress: bool = False,
) -> DreamResult:
    """Dream over a whole recording; the result has the input's rate and length.

    Parameters
    ----------
    model
        A dream model (checkpoint or TorchScript, see :func:`auralize.dream.models.load_model`).
    samples : ndarray
        The recording, ``(frames,)`` or ``(frames, channels)`` (channels are averaged:
        the model hears mono), float in [-1, 1].
    sample_rate : int
        The recording's rate in Hz.
    cfg : DreamConfig, optional
        Objective and step settings; ``cfg.steps`` steps per window.
    progress : bool
        One progress bar over all windows' steps.

    Returns
    -------
    DreamResult
        ``wave`` and ``original`` at ``sample_rate``, mono, as long as the input;
        ``curve``, ``start``, ``end`` and the class probabilities are averages over
        the windows; ``extras`` holds ``windows``, ``window_s`` and ``model_rate``.
    """
    cfg = cfg or DreamConfig()
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = np.clip(np.nan_to_num(x), -1.0, 1.0)
    rate, model_rate, window = int(sample_rate), int(model.sample_rate), int(model.clip_samples)
    at_model = resample(x, rate, model_rate)
    starts = window_starts(len(at_model), window, window // 2)
    weight = np.hanning(window + 2)[1:-1].astype(np.float64)  # > 0 everywhere
    span = max(len(at_model), window)
    change = np.zeros(span)
    weights = np.zeros(span)
    results = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(starts) * cfg.steps, desc=f"dreaming {len(starts)} window(s)",
                   unit="step")
    try:
        for k, s0 in enumerate(starts):
            seg = fix_length(at_model[s0 : s0 + window], window)
            r = dream(model, seg, replace(cfg, seed=cfg.seed + k), progress=bar if bar is not None else False)
            change[s0 : s0 + window] += weight * (r.wave - r.original)
            weights[s0 : s0 + window] += weight
            results.append(r)
    finally:
        if bar is not None:
            bar.close()
    change = (change / np.maximum(weights, 1e-12))[: len(at_model)]
    y = x + fix_length(resample(change.astype(np.float32), model_rate, rate), len(x))
    y = np.nan_to_num(y)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 1.0:
        y = y * (0.999 / peak)
    return DreamResult(
        wave=y.astype(np.float32),
        original=x,
        sample_rate=rate,
        curve=np.mean([r.curve for r in results], axis=0).tolist(),
        start=float(np.mean([r.start for r in results])),
        end=float(np.mean([r.end for r in results])),
        probs_before=np.mean([r.probs_before for r in results], axis=0),
        probs_after=np.mean([r.probs_after for r in results], axis=0),
        class_names=results[0].class_names,
        target=results[0].target + (f" (mean of {len(starts)} windows)" if len(starts) > 1 else ""),
        extras={"windows": len(starts), "window_s": window / model_rate, "model_rate": model_rate},
    )

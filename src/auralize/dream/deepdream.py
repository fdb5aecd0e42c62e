"""DeepDream on the waveform: gradient ascent through the differentiable front end.

The model (checkpoint or exported TorchScript) maps samples to log-mel to
activations, so the gradient of an objective with respect to the samples is
exact and the dreamed sound needs no phase reconstruction (no Griffin-Lim).

Objectives
    ``layer``   mean squared activation ("energy") of a layer;
    ``channel`` mean activation of one channel (unit) of a layer;
    ``class``   one class's log-probability (its logit minus the log-sum-exp of
                all logits: raising it also lowers the other classes);
    ``logit``   one class's raw logit.

Regularisers from image feature visualisation
    octaves     multi-scale ascent: octave k (coarse first) low-passes the
                gradient to 1/scale**k of the band (equivalent to ascending on a
                decimated copy and upsampling the detail), the last octave is
                full band;
    jitter      a random circular time shift before every step (undone after);
    gradient normalization  ``adam`` (default): Adam's per-sample normalisation,
                each sample moves by about ``step_size`` per step; ``l1`` (classic
                DeepDream): ``step_size`` times the gradient divided by its mean
                absolute value.  Optional adaptive step: the step grows by 25 %
                while the objective rises and halves when it falls (0.05x-8x);
                measured: slightly better for layer energy, worse for classes
                (jitter makes the objective noisy), so off by default.
                Default base step size 0.01 for class objectives and
                0.002 for layer/channel objectives (measured: larger steps
                overshoot layer energy, smaller ones are too slow to flip a class).
Output kept finite, within [-1, 1] and without DC: every update has its mean
removed, the signal is clipped after each step, and the result has its DC
removed and is scaled below full scale if needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from auralize.errors import AuralizeError

OBJECTIVES = ("layer", "channel", "class", "logit")
NORMALIZATIONS = ("l1", "adam")


@dataclass
class DreamConfig:
    objective: str = "layer"
    layer: str | None = None  # default: the last convolution
    channel: int = 0
    target_class: str | None = None  # name or index, for objective="class"
    steps: int = 100  # total, split over the octaves
    step_size: float | None = None  # per-sample change per step; None: 0.01 class, 0.002 else
    octaves: int = 1
    octave_scale: float = 2.0
    jitter_ms: float = 10.0
    seed: int = 0
    normalize: str = "adam"  # "adam" or "l1"
    adaptive: bool = False  # grow the step while the objective rises, halve it when it falls

    def resolved_step_size(self) -> float:
        if self.step_size is not None:
            return float(self.step_size)
        return 0.01 if self.objective in ("class", "logit") else 0.002


@dataclass
class DreamResult:
    wave: np.ndarray  # dreamed clip, float32, model rate
    original: np.ndarray
    sample_rate: int
    curve: list[float]  # objective before each step
    start: float  # objective of the original clip
    end: float  # objective of the returned clip
    probs_before: np.ndarray
    probs_after: np.ndarray
    class_names: list[str]
    target: str  # human-readable objective
    extras: dict = field(default_factory=dict)


def default_layer(model) -> str:
    convs = [n for n in model.layer_names if n.startswith("conv")]
    return convs[-1] if convs else list(model.layer_names)[-1]


def resolve_class(model, name) -> int:
    names = list(model.class_names)
    if isinstance(name, int) or (isinstance(name, str) and name.strip().isdigit()):
        idx = int(name)
        if 0 <= idx < len(names):
            return idx
    elif name in names:
        return names.index(name)
    raise AuralizeError(f"unknown class {name!r}; classes: {', '.join(names)}")


def _check(model, cfg: DreamConfig) -> tuple[str, int]:
    if cfg.objective not in OBJECTIVES:
        raise AuralizeError(
            f"unknown objective {cfg.objective!r}; choose one of: {', '.join(OBJECTIVES)}"
        )
    if cfg.normalize not in NORMALIZATIONS:
        raise AuralizeError(
            f"unknown normalization {cfg.normalize!r}; choose one of: {', '.join(NORMALIZATIONS)}"
        )
    if cfg.steps < 1 or cfg.octaves < 1 or not cfg.resolved_step_size() > 0 or cfg.octave_scale <= 1:
        raise AuralizeError("steps and octaves must be >= 1, step size > 0, octave scale > 1")
    if cfg.objective in ("class", "logit"):
        return "logits", resolve_class(model, cfg.target_class if cfg.target_class is not None else 0)
    layer = cfg.layer or default_layer(model)
    if layer not in list(model.layer_names):
        raise AuralizeError(f"unknown layer {layer!r}; layers: {', '.join(model.layer_names)}")
    return layer, int(cfg.channel)


def objective_fn(model, cfg: DreamConfig):
    """``f(wave (1, n)) -> scalar tensor`` for the configured objective."""
    layer, index = _check(model, cfg)
    if cfg.objective == "channel":
        with torch.no_grad():
            n_ch = model.features(torch.zeros(1, model.clip_samples))[layer].shape[1]
        if not 0 <= index < n_ch:
            raise AuralizeError(f"layer {layer!r} has channels 0..{n_ch - 1}; got {index}")

    def f(wave: torch.Tensor) -> torch.Tensor:
        act = model.features(wave)[layer]
        if cfg.objective == "layer":
            return act.pow(2).mean()
        if cfg.objective == "channel":
            return act[:, index].mean()
        if cfg.objective == "class":
            return torch.log_softmax(act, dim=1)[:, index].sum()
        return act[:, index].sum()

    if cfg.objective == "class":
        label = f"log-probability of class {model.class_names[index]!r}"
    elif cfg.objective == "logit":
        label = f"logit of class {model.class_names[index]!r}"
    elif cfg.objective == "channel":
        label = f"mean activation of {layer} channel {index}"
    else:
        label = f"energy of {layer}"
    return f, label


def _lowpass(g: torch.Tensor, factor: int) -> torch.Tensor:
    """Keep roughly the lowest 1/factor of the band: average-pool, then linear upsampling."""
    if factor <= 1:
        return g
    n = g.shape[-1]
    low = F.avg_pool1d(g.view(1, 1, n), factor, factor, ceil_mode=True)
    return F.interpolate(low, size=n, mode="linear", align_corners=False).view(n)


def _probs(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(x.view(1, -1)), dim=1)[0].numpy()


def dream(model, wave: np.ndarray, cfg: DreamConfig | None = None, progress=False) -> DreamResult:
    """Gradient ascent on ``wave`` (mono, the model's rate and clip length).

    ``progress``: True for a progress bar of the steps, or a tqdm bar to advance
    (one per step; :func:`auralize.dream.recording.dream_recording` shares one
    over all windows).  For a whole recording of any length and rate, use
    :func:`~auralize.dream.recording.dream_recording`.
    """
    cfg = cfg or DreamConfig()
    model.eval()
    f, label = objective_fn(model, cfg)
    n = int(model.clip_samples)
    x0 = np.zeros(n, dtype=np.float32)
    w = np.nan_to_num(np.asarray(wave, dtype=np.float32))[:n]
    x0[: len(w)] = np.clip(w, -1, 1)
    x = torch.from_numpy(x0.copy())
    rng = np.random.default_rng(cfg.seed)
    jitter = round(cfg.jitter_ms * model.sample_rate / 1000)
    per_octave = [cfg.steps // cfg.octaves + (1 if i < cfg.steps % cfg.octaves else 0)
                  for i in range(cfg.octaves)]
    step_size = cfg.resolved_step_size()
    gain = 1.0
    curve: list[float] = []
    m1 = torch.zeros(n)
    m2 = torch.zeros(n)
    t = 0
    with torch.no_grad():
        start = float(f(x.view(1, n)))
    bar, own_bar = (progress, False) if hasattr(progress, "update") else (None, True)
    if progress and bar is None:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc="dreaming", unit="step")
    for octave, steps in enumerate(per_octave):
        factor = round(cfg.octave_scale ** (cfg.octaves - 1 - octave))
        for _ in range(steps):
            shift = int(rng.integers(-jitter, jitter + 1)) if jitter > 0 else 0
            xs = torch.roll(x, shift).requires_grad_(True)
            obj = f(xs.view(1, n))
            (grad,) = torch.autograd.grad(obj, xs)
            curve.append(float(obj.detach()))
            if cfg.adaptive and len(curve) > 1:
                gain = gain * 1.25 if curve[-1] >= curve[-2] else gain * 0.5
                gain = min(max(gain, 0.05), 8.0)
            g = torch.roll(grad, -shift)
            g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
            g = _lowpass(g, factor)
            scale = g.abs().mean()
            if bool(scale > 0) and math.isfinite(float(scale)):
                if cfg.normalize == "adam":
                    t += 1
                    m1 = 0.9 * m1 + 0.1 * g
                    m2 = 0.999 * m2 + 0.001 * g * g
                    g = (m1 / (1 - 0.9**t)) / ((m2 / (1 - 0.999**t)).sqrt() + 1e-12)
                else:
                    g = g / scale
                g = g - g.mean()  # no DC from the update
                x = (x + step_size * gain * g).clamp_(-1.0, 1.0)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(objective=f"{curve[-1]:.4g}")
    if bar is not None and own_bar:
        bar.close()
    y = x - x.mean()
    peak = float(y.abs().max())
    if peak > 1.0:
        y = y * (0.999 / peak)
    y = torch.nan_to_num(y)
    with torch.no_grad():
        end = float(f(y.view(1, n)))
    return DreamResult(
        wave=y.numpy().astype(np.float32),
        original=x0,
        sample_rate=int(model.sample_rate),
        curve=curve,
        start=start,
        end=end,
        probs_before=_probs(model, torch.from_numpy(x0)),
        probs_after=_probs(model, y),
        class_names=list(model.class_names),
        target=label,
    )


def starting_clip(model, start: str = "noise", seed: int = 0) -> np.ndarray:
    """A clip to dream from when no input file is given: quiet pink noise or a generated class."""
    n, sr = int(model.clip_samples), int(model.sample_rate)
    if start == "noise":
        rng = np.random.default_rng(seed)
        spec = np.fft.rfft(rng.standard_normal(n))
        k = np.arange(len(spec), dtype=np.float64)
        k[0] = 1.0
        y = np.fft.irfft(spec / np.sqrt(k), n)
        return (0.05 * y / (np.std(y) + 1e-9)).astype(np.float32)
    from auralize.dream.synth_data import CLASSES, synth_clip

    if start not in CLASSES:
        raise AuralizeError(
            f"unknown starting point {start!r}; use 'noise' or one of: {', '.join(CLASSES)}"
        )
    return synth_clip(start, sr, n / sr, seed=seed)


def save_outputs(result: DreamResult, out_wav: str | Path) -> dict:
    """Write the dreamed WAV, the original clip, before/after spectrograms and the curve.

    Returns a dict of the paths written.
    """
    import json

    from auralize.audio.files import write_audio
    from auralize.audio.plots import pyplot, spectrogram_db

    out_wav = Path(out_wav)
    stem = out_wav.with_suffix("")
    paths = {"dream": write_audio(out_wav, result.wave, result.sample_rate)}
    paths["before"] = write_audio(f"{stem}_before.wav", result.original, result.sample_rate)
    plt = pyplot()
    nper = 512 if result.sample_rate >= 16000 else 256
    fig, axes = plt.subplots(2, 1, figsize=(10, 7), dpi=100, sharex=True)
    vmax = None
    specs = [spectrogram_db(w, result.sample_rate, nper) for w in (result.original, result.wave)]
    vmax = max(float(s[2].max()) for s in specs)
    for ax, (freqs, times, db), title in zip(axes, specs, ("before", "after dreaming")):
        keep = freqs >= min(20.0, freqs[1])
        mesh = ax.pcolormesh(times, freqs[keep], db[keep], shading="auto", cmap="magma",
                             vmin=vmax - 90, vmax=vmax)
        ax.set_yscale("log")
        ax.set_ylabel("frequency (Hz)")
        ax.set_title(title)
        fig.colorbar(mesh, ax=ax, label="dB FS")
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(result.target)
    fig.tight_layout()
    paths["spectrograms"] = Path(f"{stem}_spectrograms.png")
    fig.savefig(paths["spectrograms"])
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ax.plot(np.arange(1, len(result.curve) + 1), result.curve, lw=1.2)
    ax.axhline(result.start, color="gray", ls=":", lw=1, label="start")
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    ax.set_title(result.target)
    ax.legend()
    fig.tight_layout()
    paths["objective"] = Path(f"{stem}_objective.png")
    fig.savefig(paths["objective"])
    plt.close(fig)

    def top(p):
        return {result.class_names[i]: round(float(p[i]), 4) for i in np.argsort(p)[::-1][:3]}
    summary = {
        "objective": result.target,
        "start": result.start,
        "end": result.end,
        "ratio": result.end / result.start if result.start else None,
        "steps": len(result.curve),
        "top_classes_before": top(result.probs_before),
        "top_classes_after": top(result.probs_after),
        "peak": float(np.max(np.abs(result.wave))),
        "dc": float(np.mean(result.wave)),
        "curve": result.curve,
    }
    paths["summary"] = Path(f"{stem}_dream.json")
    paths["summary"].write_text(json.dumps(summary, indent=2))
    return {k: str(v) for k, v in paths.items()}

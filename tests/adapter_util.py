"""Shared bits of the adapter tests: data, a recording Sonifier stand-in, checks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def digits(n: int = 512, image: bool = False, seed: int = 0):
    """scikit-learn's digits (ships with scikit-learn: no download), scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data[:n] / 16.0).astype(np.float32)
    y = d.target[:n].astype(np.int64)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    return x, y


class RecordingSonifier:
    """Stands in for ``auralize.Sonifier`` where a test looks at the records only."""

    def __init__(self, unit_means_requests=()):
        self.records = []
        self.unit_means_requests = list(unit_means_requests)
        self.closed = 0
        self.rank_zero = True

    def log(self, rec):
        self.records.append(rec)

    def close(self):
        self.closed += 1


def check_run_folder(out_dir: Path, n_steps: int | None = None) -> list:
    """The run folder's four files exist and open; returns the telemetry records."""
    import soundfile as sf
    from PIL import Image

    from auralize.sonify import TrainingStep

    out_dir = Path(out_dir)
    wav = out_dir / "sonification.wav"
    png = out_dir / "spectrogram.png"
    tel = out_dir / "telemetry.jsonl"
    csv = out_dir / "metrics.csv"
    for f in (wav, png, tel, csv):
        assert f.is_file() and f.stat().st_size > 0, f"missing or empty: {f}"
    audio, sr = sf.read(str(wav), dtype="float32")
    assert sr > 0 and audio.shape[0] > 0
    assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert np.abs(audio).max() > 1e-4, "silent recording"
    with Image.open(png) as im:
        im.verify()
    import json

    recs = [TrainingStep.from_dict(json.loads(line)) for line in tel.read_text().splitlines()
            if line.strip()]
    if n_steps is not None:
        assert len(recs) == n_steps
    header = csv.read_text().splitlines()[0]
    assert "loss" in header
    return recs


def close(a: float, b: float, rel: float = 1e-5) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7)


def per_parameter_norms_loop(model) -> dict[str, float]:
    """Reference: per-layer gradient norms the slow way (``p.grad.norm().item()``).

    What Perone's code and Lightning's ``grad_norm`` do: one reduction and one host
    transfer per parameter, per module owning parameters (DDP / compile wrappers
    looked through, as ``auralize.torch`` names layers).
    """
    from auralize.torch import unwrap_model

    model = unwrap_model(model)
    out = {}
    for name, mod in model.named_modules():
        sq = 0.0
        have = False
        for p in mod.parameters(recurse=False):
            if p.requires_grad and p.grad is not None:
                sq += float(p.grad.norm().item()) ** 2
                have = True
        if have:
            out[name or type(mod).__name__] = math.sqrt(sq)
    return out

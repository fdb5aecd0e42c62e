"""Export a trained dream model as one TorchScript file: front end + weights + names.

The file is the seed's "frozen graph": ``torch.jit.load`` gives a module whose
``forward(wave)`` returns logits and whose ``features(wave)`` returns every named
activation, with ``class_names``, ``layer_names``, ``sample_rate`` and
``clip_samples`` attributes, so ``auralize dream eval`` and ``auralize dream run``
use it without the training code (or Lightning).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from auralize import __version__
from auralize.dream.models import EXPORT_META, is_torchscript, load_model, model_config_of
from auralize.errors import AuralizeError


def export_torchscript(model_path: str | Path, out_path: str | Path, check: bool = True) -> dict:
    """Script the model in ``model_path`` (a ``.ckpt``) and save it to ``out_path``.

    Returns
    -------
    dict
        ``path``, ``max_abs_logit_diff`` (exported vs. checkpoint on test clips,
        when ``check``), ``class_names``, ``layer_names``, ``sample_rate``.
    """
    model_path, out_path = Path(model_path), Path(out_path)
    if is_torchscript(model_path):
        raise AuralizeError(f"{str(model_path)!r} is already an exported TorchScript model")
    model = load_model(model_path)
    meta = {**model_config_of(model), "source": str(model_path), "auralize": __version__}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(f".{out_path.name}.tmp-{os.getpid()}")
        try:
            torch.jit.save(scripted, str(tmp), _extra_files={EXPORT_META: json.dumps(meta)})
            os.replace(tmp, out_path)
        finally:
            tmp.unlink(missing_ok=True)
    info = {
        "path": str(out_path),
        "class_names": list(model.class_names),
        "layer_names": list(model.layer_names),
        "sample_rate": int(model.sample_rate),
        "clip_samples": int(model.clip_samples),
    }
    if check:
        loaded = load_model(out_path)
        rng = np.random.default_rng(0)
        x = torch.from_numpy((0.1 * rng.standard_normal((4, model.clip_samples))).astype(np.float32))
        with torch.no_grad():
            diff = (loaded(x) - model(x)).abs().max().item()
        info["max_abs_logit_diff"] = float(diff)
    return info


def read_export_meta(path: str | Path) -> dict:
    """The JSON description stored inside an exported file."""
    extra = {EXPORT_META: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    raw = extra[EXPORT_META]
    return json.loads(raw.decode() if isinstance(raw, bytes) else raw or "{}")

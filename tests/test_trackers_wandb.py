"""Weights & Biases in offline mode: a watch() run's sound in the run, read back with W&B's own
reader of the run's transaction log (``wandb leet inspect``), not by guessing paths."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from auralize.audio.files import read_audio
from auralize.errors import AuralizeError

wandb = pytest.importorskip("wandb")
torch = pytest.importorskip("torch")


def inspect(run_dir: Path, *args: str):
    """``wandb leet inspect --json`` of an offline run: W&B's reader of its ``.wandb`` log."""
    program = Path(sys.executable).parent / "wandb"
    done = subprocess.run([str(program), "leet", "inspect", "--json", *args, str(run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_offline_wandb_run_holds_each_epochs_audio_and_the_whole(tmp_path, monkeypatch):
    from test_trackers_mlflow import train

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="auralize-test")
    try:
        result = train(tmp_path / "run", steps_per_epoch=6, epochs=2)
    finally:
        run.finish()
    assert result.stats["trackers"]["wandb"] == {
        "epochs": 2, "final": True, "skipped": 0, "error": None,
        "upload_s": result.stats["trackers"]["wandb"]["upload_s"], "run_id": run.id}
    run_dir = next((tmp_path / "wandb").glob(f"offline-run-*-{run.id}"))

    summary = json.loads(inspect(run_dir, "--summary"))
    assert summary["state"] == "finished"
    files = Path(summary["file"]).parent / "files"
    history = [json.loads(line)["history"]["item"] for line in inspect(run_dir).splitlines()
               if '"type":"history"' in line]
    audio = [h for h in history if "auralize/recording.path" in h]
    assert [h["auralize/recording.caption"] for h in audio] == ["epoch 0", "epoch 1", "whole run"]
    assert summary["summary"]["auralize/recording"]["caption"] == "whole run"
    assert summary["summary"]["auralize/spectrogram"]["_type"] == "image-file"

    whole, sr = read_audio(result.wav_path, mono=True)
    per_epoch = int(round(6 * 0.05 * sr))
    for i, item in enumerate(audio):
        assert item["auralize/recording._type"] == "audio-file"
        path = files / item["auralize/recording.path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item["auralize/recording.sha256"]
        samples, file_sr = read_audio(path, mono=True)
        assert file_sr == sr
        ref = whole if i == 2 else whole[i * per_epoch:(i + 1) * per_epoch]
        assert len(samples) == len(ref) and np.abs(samples - ref).max() < 1e-3
        image = files / item["auralize/spectrogram.path"]
        assert hashlib.sha256(image.read_bytes()).hexdigest() == item["auralize/spectrogram.sha256"]
        from PIL import Image

        with Image.open(image) as png:
            assert png.size == (item["auralize/spectrogram.width"], item["auralize/spectrogram.height"])
    saved = [f["path"] for line in inspect(run_dir).splitlines() if '"type":"files"' in line
             for f in json.loads(line)["files"]["files"]]
    assert "auralize/sonifier.json" in saved
    config = json.loads((files / "auralize/sonifier.json").read_text())
    assert config == json.loads((tmp_path / "run/sonifier.json").read_text())


def test_wandb_named_but_missing_is_a_one_line_error(monkeypatch):
    from auralize import Sonifier

    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(AuralizeError, match=r"wandb is not installed: pip install auralize\[wandb\]"):
        Sonifier(None, log_to=["wandb"], live=False)

"""Dream acceptance: training to >= 95 %, exact resume, checkpoints, TensorBoard, dreaming.

One generated data set (10 classes x 10 folds x 4 clips of 2 s, files at 8-16 kHz in
mixed formats, plus two broken files) and one SB-CNN at 8 kHz trained once per
module; the acceptance checks share it.  About 1-2 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from auralize.cli import main
from auralize.dream import train as train_module
from auralize.dream.checkpoints import list_checkpoints, read_ledger
from auralize.dream.datasets import load_dataset
from auralize.dream.deepdream import DreamConfig, dream
from auralize.dream.export import export_torchscript
from auralize.dream.models import load_model
from auralize.dream.synth_data import generate_dataset
from auralize.dream.train import TrainConfig, train

pytestmark = pytest.mark.slow

SR, CLIP_S = 8000, 2.0


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("us8k")
    generate_dataset(root, per_class_per_fold=4, duration_s=CLIP_S, max_rate=16000, seed=1)
    with open(root / "metadata" / "UrbanSound8K.csv", "a", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["broken.wav", 1, 0, 4, 1, 1, 8, "siren"])
        w.writerow(["empty.wav", 1, 0, 4, 1, 2, 3, "dog_bark"])
    (root / "audio" / "fold1" / "broken.wav").write_bytes(b"RIFF\xff\xff\x00\x00WAVEjunkjunk")
    (root / "audio" / "fold2" / "empty.wav").write_bytes(b"")
    return root


def _cfg(data, out, **kw):
    base = {"data": str(data), "out": str(out), "sample_rate": SR, "clip_s": CLIP_S, "batch_size": 32,
                "train_folds": list(range(1, 8)), "val_folds": [8], "test_folds": [9, 10],
                "val_every": 25, "ckpt_every": 50, "progress": False, "threads": 1, "seed": 0}
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    report = train(_cfg(data, run, steps=100))
    return run, report


def test_sb_cnn_reaches_95_percent_on_held_out_folds(trained):
    run, rep = trained
    assert rep["steps"] == 100
    assert rep["n_test"] == 80 and rep["test_folds"] == [9, 10]
    assert rep["test_acc"] >= 0.95, rep
    assert rep["train_seconds"] < 300
    assert rep["skipped_files"] == 2  # the broken and the empty WAV
    assert (run / "test_confusion.png").stat().st_size > 5000
    rows = list(csv.DictReader((run / "test_predictions.csv").open()))
    assert len(rows) == 80 and {r["split"] for r in rows} == {"9", "10"}
    assert np.mean([int(r["correct"]) for r in rows]) == pytest.approx(rep["test_acc"])
    assert json.loads((run / "report.json").read_text())["test_acc"] == rep["test_acc"]


def test_tensorboard_has_curves_confusion_matrix_and_audio(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, _ = trained
    acc = EventAccumulator(str(run / "tb"), size_guidance={"images": 0, "audio": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/acc", "val/acc", "val/loss"} <= set(tags["scalars"])
    assert "val/confusion_matrix" in tags["images"]
    assert len(acc.Images("val/confusion_matrix")) == 4  # every 25 steps
    assert any(t.startswith("val/example0_") for t in tags["audio"])
    assert "train/augmented_example" in tags["audio"]
    vals = [e.value for e in acc.Scalars("val/acc")]
    assert vals[-1] >= 0.9


def test_export_matches_checkpoint_and_eval_command(trained, data, capsys):
    run, rep = trained
    ck = list_checkpoints(run)[-1]
    info = export_torchscript(ck, run / "model.pt")
    assert info["max_abs_logit_diff"] <= 1e-5
    clips = load_dataset(data, SR, CLIP_S, splits=[9, 10])
    eager, ts = load_model(ck), load_model(run / "model.pt")
    x = torch.from_numpy(clips.waves[:32])
    with torch.no_grad():
        torch.testing.assert_close(ts(x), eager(x), rtol=1e-5, atol=1e-5)
    rc = main(["dream", "eval", str(run / "model.pt"), "--data", str(data), "--folds", "9,10",
               "--out", str(run / "eval"), "--no-progress", "--threads", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"accuracy: {rep['test_acc']:.4f} on 80 clips" in out
    assert "siren" in out and (run / "eval" / "eval_confusion.png").is_file()
    rows = list(csv.DictReader((run / "eval" / "eval_predictions.csv").open()))
    assert len(rows) == 80
    assert np.mean([r["true"] == r["predicted"] for r in rows]) == pytest.approx(rep["test_acc"])


@pytest.mark.parametrize("start,target", [("dog_bark", "siren"), ("engine_idling", "car_horn"),
                                          ("siren", "jackhammer")])
def test_class_objective_reaches_90_percent_in_100_steps(trained, start, target):
    run, _ = trained
    m = load_model(list_checkpoints(run)[-1])
    from auralize.dream.deepdream import starting_clip

    clip = starting_clip(m, start, seed=5)
    tid = m.class_names.index(target)
    r = dream(m, clip, DreamConfig(objective="class", target_class=target, steps=100))
    assert r.probs_before[tid] < 0.5
    assert r.probs_after[tid] >= 0.9, (r.probs_before[tid], r.probs_after[tid])
    assert np.all(np.isfinite(r.wave)) and np.abs(r.wave).max() <= 1.0
    assert abs(float(np.mean(r.wave))) < 1e-3


@pytest.mark.parametrize("octaves", [1, 3])
def test_layer_objective_ends_3x_higher(trained, tmp_path, octaves):
    run, _ = trained
    m = load_model(list_checkpoints(run)[-1])
    from auralize.dream.deepdream import save_outputs, starting_clip

    r = dream(m, starting_clip(m, "street_music", 2),
              DreamConfig(objective="layer", steps=100, octaves=octaves))
    assert r.end >= 3 * r.start, (r.start, r.end)
    assert np.all(np.isfinite(r.wave)) and np.abs(r.wave).max() <= 1.0
    paths = save_outputs(r, tmp_path / "d.wav")
    assert json.loads(Path(paths["summary"]).read_text())["ratio"] >= 3


class _Crash(RuntimeError):
    """What the test's callback raises: the training process dies mid-run."""


def _crashing_callbacks(after_step):
    """The real callbacks plus one that raises once ``after_step`` steps are done."""
    import lightning.pytorch as pl

    real = train_module._make_callbacks

    class CrashAfter(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step >= after_step:
                raise _Crash(f"crashed after step {trainer.global_step}")

    return lambda *args: [*real(*args), CrashAfter()]


def test_resume_is_exact_and_checkpoints_keep_last_5(data, tmp_path, monkeypatch):
    kw = {"steps": 24, "ckpt_every": 4, "val_every": 12, "train_folds": [1, 2, 3, 4], "val_folds": [5],
              "test_folds": [6]}
    clips = load_dataset(data, SR, CLIP_S, splits=[1, 2, 3, 4, 5, 6])
    ref = train(_cfg(data, tmp_path / "ref", **kw), clips=clips)
    with monkeypatch.context() as m:  # a crash in the middle of step 14's bookkeeping
        m.setattr(train_module, "_make_callbacks", _crashing_callbacks(after_step=14))
        with pytest.raises(_Crash):
            train(_cfg(data, tmp_path / "cut", **kw), clips=clips)
    assert len(read_ledger(tmp_path / "cut")) == 14  # steps 12, 13 were lost with the crash
    assert [p.name for p in list_checkpoints(tmp_path / "cut")][-1] == "step0000012.ckpt"
    res = train(_cfg(data, tmp_path / "cut", **kw), resume=True, clips=clips)
    assert res["steps"] == ref["steps"] == 24 and res["resumed_from_step"] == 12
    a, b = read_ledger(tmp_path / "ref"), read_ledger(tmp_path / "cut")
    assert [int(r["step"]) for r in b] == list(range(24))  # none repeated, none missing
    assert [r["first_index"] for r in a] == [r["first_index"] for r in b]
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    names = [p.name for p in list_checkpoints(tmp_path / "cut")]
    assert names == [f"step{s:07d}.ckpt" for s in (8, 12, 16, 20, 24)]
    assert not [p for p in (tmp_path / "cut" / "checkpoints").iterdir() if ".tmp" in p.name]
    m1 = load_model(list_checkpoints(tmp_path / "ref")[-1])
    m2 = load_model(list_checkpoints(tmp_path / "cut")[-1])
    x = torch.from_numpy(clips.waves[:8])
    with torch.no_grad():
        assert torch.equal(m1(x), m2(x))
    # starting again without --resume refuses to overwrite
    rc = main(["dream", "train", "4", "8", str(data), "--out", str(tmp_path / "cut"),
               "--no-progress"])
    assert rc == 1


def test_cli_train_resume_and_cv(data, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["--out", str(out), "--sample-rate", str(SR), "--clip-s", str(CLIP_S),
            "--train-folds", "1-3", "--val-folds", "4", "--test-folds", "5",
            "--ckpt-every", "3", "--val-every", "3", "--no-progress", "--threads", "1"]
    assert main(["dream", "train", "3", "16", str(data), *args]) == 0
    assert main(["dream", "train", "--steps", "6", "--data", str(data), "--resume", *args]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["steps"] == 6 and rep["resumed_from_step"] == 3
    assert main(["dream", "export", str(out)]) == 0
    assert (out / "model.pt").is_file()
    capsys.readouterr()
    cv = ["dream", "train", "--cv", "--cv-folds", "9,10", "--data", str(data), "--steps", "2",
          "--batch-size", "16", "--sample-rate", str(SR), "--clip-s", str(CLIP_S),
          "--out", str(tmp_path / "cv"), "--no-progress", "--threads", "1"]
    assert main(cv) == 0
    text = capsys.readouterr().out
    assert "fold  9" in text and "fold 10" in text and "mean" in text
    res = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert set(res["folds"]) == {"9", "10"}
    cfg9 = json.loads((tmp_path / "cv" / "fold9" / "config.json").read_text())
    assert cfg9["test_folds"] == [9] and cfg9["val_folds"] == [8] and 9 not in cfg9["train_folds"]

"""Dream models without training: front end, architectures, export, dreaming mechanics."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from auralize.cli import main
from auralize.dream.batches import StepBatchSampler, augment_batch
from auralize.dream.checkpoints import atomic_torch_save
from auralize.dream.deepdream import DreamConfig, dream, starting_clip
from auralize.dream.export import export_torchscript, read_export_meta
from auralize.dream.frontend import LogMel, mel_filterbank
from auralize.dream.models import build_model, default_config, is_torchscript, load_model
from auralize.errors import AuralizeError

CLASSES = ["a", "b", "c", "d"]


@pytest.fixture(autouse=True)
def _one_thread():
    # one torch thread: robust on a shared 2-core machine (two threads spin and stall)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_mel_filterbank_covers_every_band():
    fb = mel_filterbank(8000, 256, 64)
    assert fb.shape == (64, 129)
    assert np.all(fb.sum(axis=1) > 0)
    centres = fb.argmax(axis=1)
    assert np.all(np.diff(centres) >= 0)


def test_logmel_finds_a_tone_and_passes_gradients():
    sr = 16000
    fe = LogMel(sr, 512, 256, 40)
    t = torch.arange(sr) / sr
    for f_hz in (300.0, 2500.0):
        x = (0.5 * torch.sin(2 * np.pi * f_hz * t)).requires_grad_(True)
        y = fe(x)
        assert y.shape == (1, 1, 40, sr // 256 + 1)
        band = int(y[0, 0].mean(dim=1).argmax())
        fb = mel_filterbank(sr, 512, 40)
        expect = int(fb[:, round(f_hz / (sr / 512))].argmax())
        assert abs(band - expect) <= 1
        y.mean().backward()
        assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("arch", ["sb_cnn", "fat_shallow"])
def test_models_by_name_take_waveforms(arch):
    cfg = default_config(arch, CLASSES, 8000, 1.0)
    m = build_model(cfg).eval()
    x = torch.randn(3, 8000) * 0.1
    assert m(x).shape == (3, 4)
    assert m(x[0]).shape == (1, 4)  # 1-D input
    assert m(x[:, :5000]).shape == (3, 4)  # short input padded
    feats = m.features(x)
    assert list(feats) == m.layer_names
    assert feats["logits"].shape == (3, 4)
    assert "conv1" in feats and "fc1" in feats
    with pytest.raises(AuralizeError, match="sb_cnn, fat_shallow"):
        default_config("resnet", CLASSES)


def test_sb_cnn_shape_follows_the_paper():
    m = build_model(default_config("sb_cnn", CLASSES, 22050, 4.0))
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [24, 48, 48]
    assert all(c.kernel_size == (5, 5) for c in convs)
    assert m.frontend.n_mels == 128
    linears = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)]
    assert linears[0].out_features == 64


def _fake_checkpoint(path, arch="sb_cnn", seed=0):
    torch.manual_seed(seed)
    cfg = default_config(arch, CLASSES, 8000, 1.0)
    m = build_model(cfg)
    # non-trivial batch-norm statistics, as after training
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    ckpt = {"auralize": {"model_config": cfg}, "global_step": 0,
            "state_dict": {f"model.{k}": v for k, v in m.state_dict().items()}}
    torch.save(ckpt, path)
    return path


@pytest.mark.parametrize("arch", ["sb_cnn", "fat_shallow"])
def test_export_gives_the_same_logits(tmp_path, arch):
    ck = _fake_checkpoint(tmp_path / "m.ckpt", arch)
    info = export_torchscript(ck, tmp_path / "m.pt")
    assert info["max_abs_logit_diff"] == 0.0
    assert is_torchscript(tmp_path / "m.pt") and not is_torchscript(ck)
    eager, ts = load_model(ck), load_model(tmp_path / "m.pt")
    x = torch.from_numpy(np.stack([starting_clip(eager, c, 1) for c in ("siren", "dog_bark")]))
    with torch.no_grad():
        torch.testing.assert_close(ts(x), eager(x), rtol=0, atol=1e-6)
    assert list(ts.class_names) == CLASSES and int(ts.sample_rate) == 8000
    assert read_export_meta(tmp_path / "m.pt")["arch"] == arch


def test_exported_model_needs_no_training_code(tmp_path):
    """eval and run on an exported file with Lightning made unimportable."""
    ck = _fake_checkpoint(tmp_path / "m.ckpt")
    export_torchscript(ck, tmp_path / "m.pt")
    code = textwrap.dedent(f"""
        import sys, torch
        torch.set_num_threads(1)
        sys.modules["lightning"] = None
        sys.modules["lightning.pytorch"] = None
        sys.modules["auralize.dream.train"] = None
        import numpy as np
        from auralize.dream.models import load_model
        from auralize.dream.deepdream import dream, DreamConfig, starting_clip, save_outputs
        from auralize.dream.evaluate import predict_logits
        m = load_model({str(tmp_path / 'm.pt')!r})
        r = dream(m, starting_clip(m), DreamConfig(steps=3))
        save_outputs(r, {str(tmp_path / 'd.wav')!r})
        print(predict_logits(m, np.zeros((2, m.clip_samples), np.float32)).shape)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0, res.stderr
    assert "(2, 4)" in res.stdout
    assert (tmp_path / "d.wav").is_file() and (tmp_path / "d_spectrograms.png").is_file()


def test_dream_mechanics_and_errors(tmp_path, capsys):
    ck = _fake_checkpoint(tmp_path / "m.ckpt")
    m = load_model(ck)
    clip = starting_clip(m, "siren", 0) * 3  # loud: exercises clipping
    r = dream(m, clip, DreamConfig(objective="layer", layer="conv2", steps=20, octaves=2,
                                   step_size=0.01, jitter_ms=20, normalize="l1"))
    assert len(r.curve) == 20
    assert np.all(np.isfinite(r.wave)) and np.abs(r.wave).max() <= 1.0
    assert abs(float(r.wave.mean())) < 1e-4
    assert r.end > r.start
    r = dream(m, clip, DreamConfig(objective="channel", layer="conv1", channel=5, steps=10,
                                   adaptive=True))
    assert r.end > r.start
    for cfg, msg in [
        (DreamConfig(layer="conv9"), "unknown layer 'conv9'; layers: logmel, conv1"),
        (DreamConfig(objective="class", target_class="siren"), "unknown class 'siren'; classes: a, b"),
        (DreamConfig(objective="channel", layer="conv1", channel=99), "channels 0..23"),
        (DreamConfig(objective="nope"), "unknown objective"),
    ]:
        with pytest.raises(AuralizeError, match=msg):
            dream(m, clip, cfg)
    # the same through the command: one line, exit 1
    rc = main(["dream", "run", "--model", str(ck), "--objective", "class", "--class", "zebra",
               "-o", str(tmp_path / "x.wav"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "classes: a, b, c, d" in err and err.count("\n") == 1
    rc = main(["dream", "run", "--model", str(tmp_path / "none.pt"), "-o", str(tmp_path / "x.wav")])
    assert rc == 1 and "model file not found" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    rc = main(["dream", "run", "--model", str(tmp_path / "junk.pt"), "-o", str(tmp_path / "x.wav")])
    assert rc == 1 and "cannot load" in capsys.readouterr().err


def test_dream_run_command_with_input_in_any_format(tmp_path, capsys):
    import soundfile as sf

    ck = _fake_checkpoint(tmp_path / "m.ckpt")
    x = starting_clip(load_model(ck), "car_horn", 0)
    stereo24 = tmp_path / "in24.wav"
    from scipy.signal import resample_poly

    y = resample_poly(x, 441, 80)  # 44.1 kHz
    sf.write(str(stereo24), np.stack([y, y], 1), 44100, subtype="PCM_24")
    out = tmp_path / "out" / "d.wav"
    rc = main(["dream", "run", str(stereo24), "--model", str(ck), "--steps", "5",
               "-o", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "44100 Hz" in stdout
    d, rate = sf.read(str(out))
    assert rate == 44100 and d.shape == (44100,)  # the input's rate and length, mono
    for suffix in ("_before.wav", "_spectrograms.png", "_objective.png", "_dream.json"):
        assert (tmp_path / "out" / f"d{suffix}").is_file()


def test_atomic_save_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "c.ckpt"
    atomic_torch_save({"v": 1}, path)

    def broken_save(obj, fh, *a, **k):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_torch_save({"v": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.ckpt"]


def test_augmentation_is_bounded_and_seeded():
    x = torch.from_numpy(np.stack([starting_clip(build_model(default_config(
        "sb_cnn", CLASSES, 8000, 1.0)), "siren", i) for i in range(4)]))
    kinds = ["shift", "gain", "noise", "stretch"]
    a = augment_batch(x, kinds, torch.Generator().manual_seed(1))
    b = augment_batch(x, kinds, torch.Generator().manual_seed(1))
    c = augment_batch(x, kinds, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1.0
    assert torch.equal(augment_batch(x, [], torch.Generator()), x.clamp(-1, 1))


def test_step_batch_sampler_resumes_mid_epoch():
    s = StepBatchSampler(50, 8, seed=3)
    assert s.per_epoch == 6
    full = [b for _ in range(3) for b in s]
    assert len(full) == 18 and all(len(b) == 8 for b in full)
    assert len({i for b in full[:6] for i in b}) == 48  # an epoch has no repeats
    r = StepBatchSampler(50, 8, seed=3)
    r.next_step = 8
    assert len(r) == 4
    resumed = [b for _ in range(2) for b in r]
    assert resumed == full[8:]


def test_dream_run_dreams_a_whole_long_recording_at_its_rate(tmp_path, capsys):
    """3.3 s of 44.1 kHz stereo through a 1 s, 8 kHz model: every window dreamed, cross-faded,
    the output as long as the input and at its rate; what the model cannot hear is kept."""
    import soundfile as sf
    from scipy.signal import resample_poly

    ck = _fake_checkpoint(tmp_path / "m.ckpt")
    m = load_model(ck)
    rate, seconds = 44100, 3.3
    base = np.concatenate([starting_clip(m, c, 0) for c in ("siren", "dog_bark", "car_horn",
                                                              "drilling")])
    x = resample_poly(base, 441, 80)[: round(seconds * rate)] * 0.5
    t = np.arange(len(x)) / rate
    high = 0.1 * np.sin(2 * np.pi * 12000 * t)  # above the model's 4 kHz band
    stereo = np.stack([x + high, x + high], 1)
    sf.write(str(tmp_path / "long.wav"), stereo, rate, subtype="PCM_24")
    out = tmp_path / "long_dream.wav"
    rc = main(["dream", "run", str(tmp_path / "long.wav"), "--model", str(ck), "--steps", "4",
               "--step-size", "0.01", "-o", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "dreaming 6 window(s)" in captured.err  # progress over all windows (tqdm)
    d, got_rate = sf.read(str(out))
    assert got_rate == rate and d.shape == (len(x),)
    assert np.all(np.isfinite(d)) and np.abs(d).max() <= 1.0
    change = np.abs(d - (x + high))
    for s0 in range(0, len(x) - rate // 2, rate // 2):  # dreamed everywhere, not only at the start
        assert change[s0 : s0 + rate // 2].max() > 1e-3, s0 / rate
    spec_in = np.abs(np.fft.rfft(x + high))
    spec_out = np.abs(np.fft.rfft(d))
    k = round(12000 * len(x) / rate)
    assert abs(spec_out[k] / spec_in[k] - 1) < 0.05  # the highs pass untouched
    before, _ = sf.read(str(tmp_path / "long_dream_before.wav"))
    assert before.shape == d.shape


def test_window_starts_cover_the_recording():
    from auralize.dream.recording import window_starts

    assert window_starts(500, 1000, 500) == [0]
    assert window_starts(1000, 1000, 500) == [0]
    assert window_starts(2600, 1000, 500) == [0, 500, 1000, 1500, 1600]


def test_option_names_say_what_they_are(capsys):
    """--arch (train) vs --model (a file); --normalize everywhere; eval --help without training."""
    from auralize.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["dream", "eval", "--help"])
    text = capsys.readouterr().out
    for training in ("--lr", "--augment", "--epochs", "--arch", "--val-every", "--keep", "--cv"):
        assert training not in text, training
    assert "--folds" in text and "--data" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["dream", "run", "--help"])
    text = capsys.readouterr().out
    assert "--normalize" in text
    args = parser.parse_args(["dream", "train", "--arch", "fat_shallow"])
    assert args.arch == "fat_shallow" and capsys.readouterr().err == ""
    # no aliases kept from before the first release: a usage error (exit 2)
    for old in (["dream", "run", "--model", "m.pt", "--normalise", "l1"],
                ["dream", "train", "--model", "fat_shallow"],
                ["dream", "eval", "--cv", "--data", "d"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(old)
        assert exc.value.code == 2
        assert ": error: " in capsys.readouterr().err


def test_eval_writes_per_clip_predictions(tmp_path, capsys):
    import csv

    from auralize.audio.files import write_audio

    ck = _fake_checkpoint(tmp_path / "m.ckpt")
    m = load_model(ck)
    sounds = {"a": "siren", "b": "dog_bark", "c": "engine_idling", "d": "car_horn"}
    for name, sound in sounds.items():
        for i in range(2):
            write_audio(tmp_path / "data" / name / f"TEST-{name}{i}.wav",
                        starting_clip(m, sound, i), 8000)
    rc = main(["dream", "eval", str(ck), "--data", str(tmp_path / "data"),  # folds: test
               "--out", str(tmp_path / "ev"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "eval_predictions.csv" in out
    rows = list(csv.DictReader((tmp_path / "ev" / "eval_predictions.csv").open()))
    assert len(rows) == 8
    assert list(rows[0]) == ["file", "split", "true", "predicted", "correct", "confidence",
                             "p_a", "p_b", "p_c", "p_d"]
    logits = m(torch.from_numpy(np.stack([starting_clip(m, sounds[r["true"]],
                                                        int(r["file"][-5])) for r in rows])))
    for r, lg in zip(rows, logits):
        assert r["split"] == "test" and Path(r["file"]).parent.name == r["true"]
        assert r["predicted"] == CLASSES[int(lg.argmax())]
        assert r["correct"] == str(int(r["true"] == r["predicted"]))
        probs = [float(r[f"p_{c}"]) for c in CLASSES]
        assert abs(sum(probs) - 1) < 1e-3 and float(r["confidence"]) == max(probs)
    acc = np.mean([int(r["correct"]) for r in rows])
    assert f"accuracy: {acc:.4f} on 8 clips" in out

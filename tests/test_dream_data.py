"""Dream data: the procedural generator, the UrbanSound8K loaders, bad input."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest
import soundfile as sf

from auralize.audio.files import write_audio
from auralize.cli import main
from auralize.dream import datasets
from auralize.dream.datasets import load_clip, load_dataset, parse_folds, read_metadata
from auralize.dream.synth_data import CLASSES, CSV_COLUMNS, generate_dataset, synth_clip
from auralize.errors import AuralizeError


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_generator_is_deterministic_by_seed(tmp_path):
    kw = {"per_class_per_fold": 1, "folds": 2, "classes": ["siren", "dog_bark", "jackhammer"],
              "duration_s": 1.0, "max_rate": 16000}
    a = generate_dataset(tmp_path / "a", seed=3, **kw)
    generate_dataset(tmp_path / "b", seed=3, **kw)
    generate_dataset(tmp_path / "c", seed=4, **kw)
    assert a.n_files == 6
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_generator_writes_urbansound8k_layout_in_varied_formats(tmp_path):
    s = generate_dataset(tmp_path, per_class_per_fold=1, folds=2, duration_s=1.0)
    assert s.n_files == 2 * len(CLASSES) >= 16
    rows = list(csv.DictReader((tmp_path / "metadata" / "UrbanSound8K.csv").open()))
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert {r["class"] for r in rows} == set(CLASSES)
    for r in rows:
        assert CLASSES[int(r["classID"])] == r["class"]
        assert (tmp_path / "audio" / f"fold{r['fold']}" / r["slice_file_name"]).is_file()
    infos = [sf.info(str(p)) for p in (tmp_path / "audio").rglob("*.wav")]
    assert len({i.samplerate for i in infos}) >= 5
    assert {i.subtype for i in infos} >= {"PCM_U8", "PCM_16", "PCM_24", "FLOAT"}
    assert {i.channels for i in infos} == {1, 2}
    # the real loader reads them all, at one rate and one length
    clips = load_dataset(tmp_path, 8000, 1.0)
    assert len(clips) == s.n_files and not clips.skipped
    assert clips.waves.shape == (s.n_files, 8000)
    assert np.all(np.isfinite(clips.waves)) and np.abs(clips.waves).max() <= 1.0
    assert clips.class_names == CLASSES


def test_classes_differ_in_spectrum():
    """Distinct classes: average spectra are far apart (siren high tonal, engine low)."""
    sr = 8000

    def centroid(name):
        x = synth_clip(name, sr, 2.0, seed=1)
        mag = np.abs(np.fft.rfft(x))
        f = np.fft.rfftfreq(len(x), 1 / sr)
        return float((mag * f).sum() / mag.sum())

    assert centroid("engine_idling") < 500 < centroid("drilling")
    assert centroid("air_conditioner") < centroid("siren")
    with pytest.raises(AuralizeError, match="unknown sound class"):
        synth_clip("kazoo")


@pytest.mark.parametrize(
    "subtype,channels,rate",
    [("PCM_U8", 1, 11025), ("PCM_16", 2, 44100), ("PCM_24", 1, 16000), ("FLOAT", 2, 48000),
     ("PCM_16", 1, 8000)],
)
def test_any_format_is_resampled_to_the_model_rate(tmp_path, subtype, channels, rate):
    t = np.arange(int(0.5 * rate)) / rate
    x = 0.5 * np.sin(2 * np.pi * 1000 * t)
    if channels == 2:
        x = np.stack([x, x], axis=1)
    path = write_audio(tmp_path / "tone.wav", x, rate, subtype=subtype)
    clip = load_clip(path, 8000, 8000)  # 1 s: 0.5 s of tone, then zero padding
    assert clip.shape == (8000,) and clip.dtype == np.float32
    spec = np.abs(np.fft.rfft(clip[:4000]))
    assert abs(np.argmax(spec) * 8000 / 4000 - 1000) <= 4
    assert 0.4 < np.abs(clip[:3900]).max() < 0.6
    assert np.abs(clip[4100:]).max() < 0.02


def _tiny_set(root, bad=True):
    generate_dataset(root, per_class_per_fold=1, folds=2, classes=["siren", "gun_shot"],
                     duration_s=0.5, max_rate=16000)
    if not bad:
        return
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    with open(csv_path, "a", newline="") as fh:
        w = csv.writer(fh)
        for name in ("empty.wav", "corrupt.wav", "notaudio.wav", "missing.wav", "silent.wav"):
            w.writerow([name, 1, 0, 4, 1, 1, 8, "siren"])
    (root / "audio" / "fold1" / "empty.wav").write_bytes(b"")
    (root / "audio" / "fold1" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))
    (root / "audio" / "fold1" / "notaudio.wav").write_text("hello, I am not a sound\n" * 10)
    sf.write(str(root / "audio" / "fold1" / "silent.wav"), np.zeros((0, 1)), 8000)


def test_bad_files_are_skipped_and_counted(tmp_path, capsys):
    _tiny_set(tmp_path)
    clips = load_dataset(tmp_path, 8000, 0.5)
    assert len(clips) == 4
    assert len(clips.skipped) == 5
    assert "skipped 5 unusable file(s)" in clips.summary()
    reasons = " ".join(r for _, r in clips.skipped)
    assert "not found" in reasons and "holds no samples" in reasons
    assert main(["dream", "data", "--inspect", str(tmp_path), "--sample-rate", "8000"]) == 0
    out = capsys.readouterr().out
    assert "skipped 5" in out and "corrupt.wav" in out


def test_missing_csv_and_column_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "metadata").mkdir()
    with pytest.raises(AuralizeError, match="metadata not found"):
        read_metadata(tmp_path / "metadata" / "UrbanSound8K.csv")
    rc = main(["dream", "train", "5", "4", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"),
               "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("auralize: error:") and err.count("\n") == 1
    rc = main(["dream", "train", "--cv", "--data", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "UrbanSound8K.csv" in err and err.count("\n") == 1

    (tmp_path / "metadata" / "UrbanSound8K.csv").write_text("slice_file_name,fold,class\na.wav,1,x\n")
    with pytest.raises(AuralizeError, match="lacks column.*classID"):
        load_dataset(tmp_path, 8000, 1.0)
    rc = main(["dream", "data", "--inspect", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "classID" in err and err.count("\n") == 1


def test_modified_layout_of_the_seed(tmp_path):
    sr = 8000
    for c in ("dog_bark", "siren", "street_music"):
        for split, k in (("TRAIN", 3), ("VALIDATE", 1), ("TEST", 2)):
            for i in range(k):
                write_audio(tmp_path / "audio" / c / f"{split}-{c}-{i}.wav",
                            synth_clip(c, sr, 4.0, seed=i), sr)
    (tmp_path / "audio" / "siren" / "README.txt").write_text("not a clip")
    assert datasets.detect_layout(tmp_path) == "modified"
    clips = load_dataset(tmp_path, sr, 4.0)
    assert clips.class_names == ["dog_bark", "siren", "street_music"]
    assert len(clips) == 18
    assert len(clips.select(["train"])) == 9
    assert len(clips.select(["validate"])) == 3
    assert len(clips.select(["test"])) == 6
    assert clips.waves.shape[1] == 4 * sr


def test_parse_folds():
    assert parse_folds("1-8") == list(range(1, 9))
    assert parse_folds("9, 10") == [9, 10]
    assert parse_folds("test") == ["test"]
    assert parse_folds("") == []


@pytest.mark.parametrize("action", ["train", "inspect"])
def test_the_seeds_pickle_path_is_a_one_line_error_and_makes_no_run_folder(tmp_path, capsys,
                                                                         action):
    """`dream train 10 2 urbansound.pkl` (the seed's usage) and `data --inspect` on that file."""
    seed_copy = tmp_path / "UrbanSound8K_modified"
    seed_copy.mkdir()
    (seed_copy / "urbansound.pkl").write_bytes(b"\x80\x04 a pickle of spectrograms")
    run = tmp_path / "run"
    if action == "train":
        argv = ["dream", "train", "10", "2", str(seed_copy / "urbansound.pkl"), "--out", str(run),
                "--no-progress"]
    else:
        argv = ["dream", "data", "--inspect", str(seed_copy / "urbansound.pkl")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("auralize: error:") and err.count("\n") == 1, err
    assert "is a file, not a data folder" in err and repr(str(seed_copy)) in err
    assert not run.exists()
    # a missing folder: the same, and still no run folder
    assert main(["dream", "train", "10", "2", str(tmp_path / "nowhere"), "--out", str(run),
                 "--no-progress"]) == 1
    assert "not found" in capsys.readouterr().err and not run.exists()


def test_prepare_makes_the_seeds_modified_copy(tmp_path, capsys):
    """UrbanSound8K layout in -> 8 kHz mono 16-bit, 4 s clips only, no gun_shot, split prefixes."""
    src, dst = tmp_path / "us8k", tmp_path / "modified"
    generate_dataset(src, per_class_per_fold=3, folds=3, classes=["siren", "gun_shot", "dog_bark"],
                     duration_s=4.0, max_rate=16000, short_fraction=0.3, seed=2)
    rows = list(csv.DictReader((src / "metadata" / "UrbanSound8K.csv").open()))
    kept = [r for r in rows if r["class"] != "gun_shot" and float(r["end"]) == 4.0]
    assert 0 < len(kept) < len([r for r in rows if r["class"] != "gun_shot"])  # some are short
    rc = main(["dream", "prepare", str(src), "--out", str(dst), "--train-folds", "1",
               "--val-folds", "2", "--test-folds", "3", "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"wrote {len(kept)} clips of 2 classes" in out
    files = sorted((dst / "audio").rglob("*.wav"))
    assert len(files) == len(kept)
    assert {p.parent.name for p in files} == {"siren", "dog_bark"}
    prefix = {"1": "TRAIN-", "2": "VALIDATE-", "3": "TEST-"}
    assert sorted(p.name for p in files) == sorted(
        prefix[r["fold"]] + r["slice_file_name"] for r in kept)
    for p in files:
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (8000, 1, "PCM_16", 32000)
    assert "gun_shot" in (dst / "README.txt").read_text()
    # the copy is what `dream train --data` reads (the seed's modified layout)
    assert datasets.detect_layout(dst) == "modified"
    clips = load_dataset(dst, 8000, 4.0)
    assert clips.class_names == ["dog_bark", "siren"] and len(clips) == len(kept)
    assert len(clips.select(["train"])) == sum(r["fold"] == "1" for r in kept)
    # bad use: one line, exit 1, nothing written
    for argv, msg in [
        (["dream", "prepare", str(src), "--out", str(dst)], "exists already"),
        (["dream", "prepare", str(src), "--out", str(tmp_path / "x"), "--drop", "kazoo"], "kazoo"),
        (["dream", "prepare", str(dst), "--out", str(tmp_path / "x")], "official layout"),
    ]:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err
    assert not (tmp_path / "x").exists()

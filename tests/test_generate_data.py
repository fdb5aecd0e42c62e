"""Generation configs and dataset conversion (any folder, bad input)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from auralize.cli import main
from auralize.errors import AuralizeError
from auralize.generate.config import load_config, shipped_configs
from auralize.generate.data import Dataset, convert, make_piano_dataset
from auralize.generate.features import features_to_audio

TINY = """
name = "tiny"
[audio]
sample_rate = 8000
block_size = 128
features = "hfft"
mu = 0.0
[model]
hidden = 16
depth = 2
[train]
seq_len = 8
batch_size = 8
lr = 0.003
"""


@pytest.fixture
def tiny_config(tmp_path):
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def test_shipped_configs_as_in_the_seeds():
    assert set(shipped_configs()) == {"A", "B", "C", "DEMO", "GRUV"}
    a, b, c, g = (load_config(n) for n in ("A", "b", "C", "gruv"))
    assert (a.depth, a.hidden) == (13, 250) and a.run_name("piano") == "250_13_piano"
    assert (b.depth, b.hidden) == (7, 511) and (c.depth, c.hidden) == (9, 511)
    assert (g.depth, g.hidden) == (1, 1024)
    assert (a.sample_rate, a.block_size, a.feature_size) == (8000, 512, 1022)
    assert (g.sample_rate, g.block_size, g.feature_size) == (44100, 11025, 22050)


def test_user_config_by_path_and_unknown_name(tiny_config, capsys):
    cfg = load_config(tiny_config)
    assert (cfg.hidden, cfg.depth, cfg.feature_size) == (16, 2, 254)
    with pytest.raises(AuralizeError, match="A, B, C, DEMO, GRUV"):
        load_config("Z")
    assert main(["generate", "convert", "--config", "nope"]) == 1
    assert "A, B, C, DEMO, GRUV" in capsys.readouterr().err


def test_bad_config_keys(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[model]\nhiden = 3\n')
    with pytest.raises(AuralizeError, match="hiden"):
        load_config(p)


def test_piano_dataset_is_deterministic(tmp_path):
    a = make_piano_dataset(tmp_path / "a", n_files=2, seconds=2, block_size=512, seed=3)
    b = make_piano_dataset(tmp_path / "b", n_files=2, seconds=2, block_size=512, seed=3)
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes()
    x, sr = sf.read(a[0])
    assert sr == 8000 and x.ndim == 1 and 0.5 < np.abs(x).max() <= 1.0


def test_convert_any_folder(tmp_path, tiny_config):
    cfg = load_config(tiny_config)
    src = tmp_path / "rec"
    src.mkdir()
    t = np.arange(44100 * 2) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(src / "float32_stereo.wav", np.stack([tone, tone], 1), 44100, subtype="FLOAT")
    sf.write(src / "pcm24.wav", tone, 22050, subtype="PCM_24")
    sf.write(src / "pcm8.wav", tone, 16000, subtype="PCM_U8")
    sf.write(src / "x.flac", tone, 48000)
    sf.write(src / "x.ogg", tone, 44100)
    (src / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    (src / "notes.txt").write_text("not audio")
    ds = convert(cfg, src, root=tmp_path / "root")
    assert ds.meta["files_used"] == 5 and ds.meta["files_skipped"] == 1
    assert ds.meta["dataset"] == "rec"
    assert ds.x.shape[1:] == (cfg.seq_len + 1, 254) and np.isfinite(ds.x).all()
    # normalisation applied and undone: the float32 WAV (not noise!) comes back as a 440 Hz tone
    ds2 = Dataset.load(ds.folder)
    audio = features_to_audio(ds2.norm.undo(ds2.x[0]), "hfft")
    spec = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spec) * 8000 / len(audio) - 440) < 10
    assert json.loads((ds.folder / "meta.json").read_text())["skipped"][0]["file"].endswith(
        "corrupt.wav")


def test_convert_bad_folders(tmp_path, tiny_config, capsys):
    cfg = load_config(tiny_config)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AuralizeError, match="no WAV/FLAC/OGG"):
        convert(cfg, tmp_path / "empty", root=tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_bytes(b"nothing")
    with pytest.raises(AuralizeError, match="could be read"):
        convert(cfg, bad, root=tmp_path)
    assert main(["generate", "convert", str(tmp_path / "missing"), "--config",
                 str(tiny_config)]) == 1
    assert "not found" in capsys.readouterr().err


def test_convert_cli_default_piano(tmp_path, tiny_config, capsys):
    rc = main(["generate", "convert", "--config", str(tiny_config), "--root", str(tmp_path),
               "--demo-data", "--piano-files", "2", "--piano-seconds", "3"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "dataset 'piano': 2 files" in out and "0 files skipped" in out
    assert len(list((tmp_path / "datasets" / "piano" / "wave_8000hz").glob("*.wav"))) == 2


def test_mu_law_quantised_config_converts_and_keeps_the_tone(tmp_path):
    p = tmp_path / "mu8.toml"
    p.write_text(TINY.replace("mu = 0.0", "mu = 4.0\nquantize_bits = 8"))
    cfg = load_config(p)
    assert cfg.codec.bits == 8 and cfg.data_tag().endswith("_mu4_q8")
    src = tmp_path / "rec"
    src.mkdir()
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)
    sf.write(src / "tone.wav", tone, 8000, subtype="PCM_16")
    ds = convert(cfg, src, root=tmp_path / "root")
    assert ds.meta["quantize_bits"] == 8 and ds.meta["mu"] == 4.0
    audio = cfg.codec.features_to_audio(ds.norm.undo(ds.x[0]))
    n = audio.size
    # 8-bit mu-law: error <= half a step of the companded scale (largest near full scale)
    assert np.abs(audio - tone[:n]).max() < 0.01
    spec = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spec) * 8000 / n - 440) < 10
    p.write_text(TINY.replace("mu = 0.0", "quantize_bits = 40"))
    with pytest.raises(AuralizeError, match="quantize_bits"):
        load_config(p)


def _write_tones(folder, n=2, rate=16000, hz=440.0):
    folder.mkdir(parents=True)
    t = np.arange(rate * 2) / rate
    for i in range(n):
        sf.write(folder / f"take{i}.wav", 0.5 * np.sin(2 * np.pi * hz * t), rate)


def test_convert_reads_boii_layout(tmp_path, tiny_config, capsys):
    """Recordings in datasets/<name>/wave/ are what `--dataset <name>` converts."""
    _write_tones(tmp_path / "datasets" / "chopin" / "wave")
    assert main(["generate", "convert", "--config", str(tiny_config), "--root", str(tmp_path),
                 "--dataset", "chopin"]) == 0
    assert "dataset 'chopin': 2 files (4.0 s)" in capsys.readouterr().out
    ds = Dataset.load(tmp_path / "datasets" / "chopin" / load_config(tiny_config).data_tag())
    assert ds.meta["source"].endswith("chopin/wave") and ds.meta["files_used"] == 2
    assert not (tmp_path / "datasets" / "chopin" / "wave_8000hz").exists()  # nothing generated
    audio = features_to_audio(ds.norm.undo(ds.x[0]), "hfft")
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * 8000 / len(audio) - 440) < 10


@pytest.mark.parametrize("argv, says", [
    (["--dataset", "chopin"], "datasets/chopin/wave"),  # no recordings where boii puts them
    ([], "--demo-data"),  # neither recordings nor a dataset: nothing is generated unasked
])
def test_convert_never_generates_data_unasked(tmp_path, tiny_config, capsys, argv, says):
    assert main(["generate", "convert", "--config", str(tiny_config), "--root", str(tmp_path)]
                + argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("auralize: error:") and "\n" not in err and says in err
    assert not (tmp_path / "datasets").exists()


def test_demo_data_never_mixes_with_recordings(tmp_path, tiny_config, capsys):
    _write_tones(tmp_path / "datasets" / "chopin" / "wave")
    assert main(["generate", "convert", "--config", str(tiny_config), "--root", str(tmp_path),
                 "--dataset", "chopin", "--demo-data"]) == 1
    assert "holds recordings" in capsys.readouterr().err
    assert main(["generate", "convert", str(tmp_path), "--config", str(tiny_config),
                 "--root", str(tmp_path), "--demo-data"]) == 1
    assert "give no folder" in capsys.readouterr().err


def test_boii_config_numbers_and_printing_a_config(tmp_path, capsys):
    for number, name in (("0", "A"), ("1", "B"), ("2", "C")):
        assert load_config(number) == load_config(name)
    assert main(["generate", "config", "1"]) == 0
    mine = tmp_path / "mine.toml"
    mine.write_text(capsys.readouterr().out)
    assert load_config(mine).to_dict() | {"source": ""} == load_config("B").to_dict() | {
        "source": ""}
    assert main(["generate", "config"]) == 0
    listing = capsys.readouterr().out
    assert all(n in listing for n in ("A ", "B ", "C ", "DEMO", "GRUV"))
    assert main(["generate", "config", "7"]) == 1
    assert "A, B, C, DEMO, GRUV" in capsys.readouterr().err

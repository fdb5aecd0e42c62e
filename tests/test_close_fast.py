"""Closing a long run: one pass over the telemetry beside the recording's backlog, the
spectrogram summed by the renderer as it writes (no read-back of hours of audio)."""

from __future__ import annotations

import csv
import math

import numpy as np
import soundfile as sf

from auralize import Sonifier, TrainingStep
from auralize.audio.file_spectrogram import file_spectrogram_db
from auralize.audio.stream_spectrogram import StreamSpectrogram

SR = 8000


def _chirp(n: int, sr: int, seed: int = 0) -> np.ndarray:
    t = np.arange(n) / sr
    noise = 0.01 * np.random.default_rng(seed).standard_normal(n)
    return (0.3 * np.sin(2 * np.pi * (300 + 20 * t) * t) + noise).astype(np.float32)


def test_stream_spectrogram_equals_the_file_one_while_every_bin_is_a_frame(tmp_path):
    """Up to max_bins frames the streamed sums are the file version's, for any block sizes
    (lengths below one window, exactly one, a ragged tail)."""
    for n in (0, 5, 300, 1024, 5000, SR * 3 + 17):
        x = _chirp(n, SR)
        sf.write(str(tmp_path / "a.wav"), x, SR, subtype="FLOAT")
        freqs, times, db = file_spectrogram_db(tmp_path / "a.wav", columns=200)
        stream = StreamSpectrogram(SR, columns=200)
        rng = np.random.default_rng(n)
        i = 0
        while i < n:
            step = int(rng.integers(1, 3000))
            stream.write(x[i:i + step])
            i += step
        f2, t2, db2 = stream.result()
        assert stream.width == 1
        assert db.shape == db2.shape and np.allclose(times, t2) and np.allclose(freqs, f2)
        assert np.allclose(db, db2, atol=1e-6), n


def test_stream_spectrogram_of_a_long_recording_is_bounded_and_close_to_the_file_one(tmp_path):
    """Ten minutes at 8 kHz of a tone stepping every 30 s (bins 16 frames wide, sampled):
    fixed size; every column not straddling a step has the file version's loudest
    frequency (the tone's) at a level within 1 dB."""
    n = SR * 600
    t = np.arange(n) / SR
    freq = 200.0 + 150.0 * ((t // 30) % 10)
    x = (0.3 * np.sin(2 * np.pi * np.cumsum(freq) / SR)).astype(np.float32)
    sf.write(str(tmp_path / "a.wav"), x, SR, subtype="FLOAT")
    freqs, times, db = file_spectrogram_db(tmp_path / "a.wav", columns=100)
    stream = StreamSpectrogram(SR, columns=100)
    for i in range(0, n, 4096):
        stream.write(x[i:i + 4096])
    assert stream.power.shape == (513, 400) and stream.width > 8  # sampled frames
    f2, t2, db2 = stream.result()
    assert db2.shape == db.shape and np.allclose(times, t2)
    steady = (times % 30 > 4) & (times % 30 < 26)
    tone = 200.0 + 150.0 * ((times // 30) % 10)
    cols = np.arange(db.shape[1])[steady]
    peak, peak2 = db.argmax(axis=0)[steady], db2.argmax(axis=0)[steady]
    assert np.all(np.abs(freqs[peak] - tone[steady]) < SR / 1024)
    assert np.array_equal(peak, peak2)
    assert np.all(np.abs(db[peak, cols] - db2[peak, cols]) < 1.0)


def test_a_long_session_closes_with_one_telemetry_pass_and_the_renderers_spectrogram(tmp_path):
    """metrics.csv, digest.wav and spectrogram.png of a 12 000-step run come out of close;
    metrics.csv is the one the old streamed writer makes, and the digest equals
    ``render --digest`` of the folder."""
    from auralize.cli import main
    from auralize.sonify.run_folder import metrics_csv_from_telemetry

    steps = 12_000
    with Sonifier(tmp_path / "run", mappings=["loss", "alarm"], live=False, plot=True,
                  sample_rate=SR, digest_s=30.0, digest_after_s=60.0) as son:
        for s in range(steps):
            loss = float("nan") if s == 9_876 else 1.0 / (1 + s / 1000)
            son.log(TrainingStep(step=s, loss=loss, grad_norms={"a": 0.5, "b": math.sqrt(s)},
                                 metrics={"acc": 0.5} if s % 100 == 0 else {}))
    result = son.close()
    run = tmp_path / "run"
    assert result.spectrogram_path == run / "spectrogram.png"
    assert (run / "spectrogram.png").stat().st_size > 10_000
    assert "spectrogram_path" not in result.stats["engine"]
    assert result.metrics_path == run / "metrics.csv"
    metrics_csv_from_telemetry(tmp_path / "again.csv", run / "telemetry.jsonl")
    assert (run / "metrics.csv").read_bytes() == (tmp_path / "again.csv").read_bytes()
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == steps and rows[9_876]["loss"] == "nan" and rows[200]["acc"] == "0.5"
    assert main(["render", str(run), "--digest", "30s", "-o", str(tmp_path / "d.wav"),
                 "--no-plot"]) == 0
    ours, _ = sf.read(str(run / "digest.wav"), dtype="int16")
    again, _ = sf.read(str(tmp_path / "d.wav"), dtype="int16")
    assert len(ours) > 25 * SR and np.array_equal(ours, again)


_PACKED_CHILD = r"""
import json, resource, sys
from auralize.sonify.digest import DigestBuilder
from auralize.sonify.telemetry import TrainingStep
names = [f"transformer.h.{i}.mlp.c_fc" for i in range(1000)]
line = TrainingStep(step=0, loss=1.0, grad_norms={n: i / 1000 for i, n in enumerate(names)}).to_json()
builder = DigestBuilder(1200, 2400)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for s in range(2400):
    builder.add(TrainingStep.from_dict(json.loads(line), finite=True))
held = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
records = list(builder.iter_records())
print(json.dumps({"held_mb": held / 1024, "slots": len(records),
                  "names": list(records[-1].grad_norms) == names,
                  "value": records[-1].grad_norms[names[7]]}))
"""


def test_digest_of_a_thousand_layer_run_holds_its_slots_packed():
    """2400 steps of 1000 gradient norms into 1200 slots: the held spans take a few MB
    (as dicts: ~140 MB), and each slot's record has its step's norms, name for name."""
    import json
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _PACKED_CHILD], capture_output=True, text=True,
                         check=True, timeout=300)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["held_mb"] < 50, doc
    assert doc["slots"] == 1200 and doc["names"] and doc["value"] == 7 / 1000

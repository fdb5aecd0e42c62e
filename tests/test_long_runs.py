"""Runs of any length in bounded memory: streamed reading, digest, RF64, decimated history.

Synthetic runs are logged straight through ``Sonifier.log`` (or written as
telemetry lines) as fast as Python makes them; no training is needed to make a
run long.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_analysis import band_envelope
from auralize import Sonifier, TrainingStep
from auralize.audio.sinks import FileSink
from auralize.audio.wav64 import Wav64Writer
from serveutil import page_history, served_run

ROOT = Path(__file__).resolve().parents[1]
SR = 8000  # a low rate keeps the long runs' synthesis short; memory is what is measured


def synthetic_step(s: int, steps: int, layers: int = 4, nan_at=None, spike_at=None) -> TrainingStep:
    """A loss falling from 1 to 0.1 with a wiggle; optionally a NaN and a x1000 spike."""
    loss = 1.0 / (1.0 + 9.0 * s / steps) * (1.0 + 0.01 * math.sin(s))
    if s == nan_at:
        loss = float("nan")
    elif s == spike_at:
        loss *= 1000.0
    g = 0.5 + 0.1 * math.sin(0.01 * s)
    return TrainingStep(step=s, epoch=s // 1000, loss=loss,
                        grad_norms={f"h.{i}": g * (1 + 0.01 * i) for i in range(layers)},
                        epoch_end=(s % 1000 == 999))


def write_telemetry(folder: Path, steps: int, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "telemetry.jsonl", "w") as handle:
        for s in range(steps):
            handle.write(synthetic_step(s, steps, **kw).to_json() + "\n")
    (folder / "sonifier.json").write_text(json.dumps(
        {"mappings": ["loss", "alarm"], "clock": "step", "step_s": 0.05, "sample_rate": SR,
         "master_gain": 0.5, "chunk_size": 512, "tail_s": 0.5}))
    return folder


# -- RF64 ------------------------------------------------------------------------------------
def test_wav_past_the_riff_limit_becomes_rf64_and_reads_back(tmp_path):
    """A recording that passes the limit (lowered here from 4 GiB) is RF64; every sample reads back,
    also from the header flushed mid-write (a killed run)."""
    x = np.random.default_rng(0).uniform(-1, 1, 60_000).astype(np.float32)
    path = tmp_path / "long.wav"
    sink = FileSink(path, SR, riff_limit_bytes=50_000)
    sink.write(x[:20_000])
    sink.flush()
    assert path.read_bytes()[:4] == b"RIFF"  # 40 kB of samples: still a plain WAV
    assert sf.info(str(path)).frames == 20_000
    sink.write(x[20_000:50_000])
    sink.flush()  # a killed run: what was flushed is readable, already as RF64
    head = path.read_bytes()[:48]
    assert head[:4] == b"RF64" and head[12:16] == b"ds64"
    riff_size, data_size, frames = struct.unpack("<QQQ", head[20:44])
    assert (data_size, frames, riff_size) == (100_000, 50_000, 100_072)
    assert sf.info(str(path)).frames == 50_000
    sink.write(x[50_000:])
    sink.close()
    data, rate = sf.read(str(path), dtype="float32")
    assert rate == SR and sf.info(str(path)).format == "RF64"
    expected, _ = sf.read(str(_libsndfile_copy(tmp_path, x)), dtype="float32")
    assert np.array_equal(data, expected)


def _libsndfile_copy(tmp_path: Path, x: np.ndarray) -> Path:
    from auralize.audio.files import write_audio

    return write_audio(tmp_path / "reference.wav", x, SR)


def test_wav_writer_makes_the_samples_libsndfile_makes(tmp_path):
    """Below the limit the file is a plain WAV (Python's wave module opens it) with the
    16-bit samples libsndfile writes for the same floats, clipping included."""
    import wave

    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-1.5, 1.5, 30_000), rng.normal(0.0, 1e-9, 1000),
                        rng.normal(0.0, 1e-5, 1000), np.arange(-65536, 65536) / 65536.0,
                        (np.arange(-65536, 65536) + 0.5) / 65536.0]).astype(np.float32)
    with Wav64Writer(tmp_path / "ours.wav", SR, channels=1) as w:
        w.write(x[:1000])
        w.write(x[1000:])
    ours, _ = sf.read(str(tmp_path / "ours.wav"), dtype="int16")
    theirs, _ = sf.read(str(_libsndfile_copy(tmp_path, x)), dtype="int16")
    assert np.array_equal(ours, theirs)
    with wave.open(str(tmp_path / "ours.wav")) as handle:
        assert handle.getnframes() == len(x) and handle.getframerate() == SR


# -- the digest ---------------------------------------------------------------------------------
def _alarm_and_top(path: Path):
    audio, rate = sf.read(str(path), dtype="float64", always_2d=True)

    def level(lo_hz, hi_hz):  # over the channels by power: the level of the mono render
        per_channel = [band_envelope(audio[:, c], rate, lo_hz, hi_hz, frame_s=0.05)
                       for c in range(audio.shape[1])]
        return per_channel[0][0], np.sqrt(sum(rms ** 2 for _, rms in per_channel))

    times, alarm = level(1700.0, 1820.0)
    _, top = level(600.0, 1100.0)  # the loss tone, high
    return times, alarm, top


def test_digest_keeps_a_nan_and_a_spike_audible(tmp_path):
    """20000 steps in a 30 s digest (34 steps a slot): the one NaN step and the one x1000 spike
    still sound the alarm, and the spike still sends the loss tone to the top of its range."""
    from auralize.cli import main

    steps, nan_at, spike_at = 20_000, 7_001, 13_003
    run = write_telemetry(tmp_path / "run", steps, nan_at=nan_at, spike_at=spike_at)
    calm = write_telemetry(tmp_path / "calm", steps)  # the same run without them
    for folder in (run, calm):
        assert main(["render", str(folder), "--digest", "30s", "-o",
                     str(folder / "digest.wav"), "--no-plot"]) == 0
    times, alarm, top = _alarm_and_top(run / "digest.wav")
    assert times[-1] < 30.0
    per_slot = math.ceil(steps / ((30.0 - 0.5) // 0.05))
    loud = alarm > 0.02
    onsets = times[loud & ~np.r_[False, loud[:-1]]]
    expected = [nan_at // per_slot * 0.05, spike_at // per_slot * 0.05]
    assert len(onsets) == 2, onsets
    assert np.allclose(onsets, expected, atol=0.1), (onsets, expected)
    # the spike: the loss tone leaps up (towards its 1000 Hz cap) in that slot; around it
    # the loss (0.15 of its start) keeps it near 320 Hz
    at_spike = (times > expected[1] - 0.06) & (times < expected[1] + 0.15)
    around = (np.abs(times - expected[1]) > 0.5) & (np.abs(times - expected[1]) < 3.0)
    assert top[at_spike].max() > 10 * top[around].max(), (top[at_spike], top[around].max())
    # the control: the same run without them has no alarm anywhere in its digest
    _, calm_alarm, _ = _alarm_and_top(calm / "digest.wav")
    assert calm_alarm.max() < 0.005


def test_long_session_writes_its_digest_at_close(tmp_path):
    """A recording longer than digest_after_s gets digest.wav, the same samples
    ``render --digest`` makes from the run folder; a short one gets none."""
    from auralize.cli import main

    steps = 1500
    with Sonifier(tmp_path / "run", mappings=["loss", "alarm"], live=False, plot=False,
                  sample_rate=SR, digest_s=20.0, digest_after_s=60.0) as son:
        for s in range(steps):
            son.log(synthetic_step(s, steps, nan_at=1234))
    result = son.close()
    assert result.duration_s > 60 and result.digest_path == tmp_path / "run" / "digest.wav"
    assert main(["render", str(tmp_path / "run"), "--digest", "20s", "-o",
                 str(tmp_path / "again.wav"), "--no-plot"]) == 0
    ours, rate = sf.read(str(result.digest_path), dtype="int16")
    again, _ = sf.read(str(tmp_path / "again.wav"), dtype="int16")
    assert rate == SR and 19.0 < len(ours) / SR <= 20.0 and np.array_equal(ours, again)
    with Sonifier(tmp_path / "short", mappings=["loss"], live=False, plot=False,
                  sample_rate=SR, digest_s=20.0, digest_after_s=60.0) as son:
        for s in range(100):
            son.log(synthetic_step(s, 100))
    assert son.close().digest_path is None and not (tmp_path / "short" / "digest.wav").exists()


def test_digest_length_is_a_one_line_error_when_unreadable(tmp_path, capsys):
    from auralize.cli import main

    run = write_telemetry(tmp_path / "run", 50)
    for bad in ("soon", "-3min", "0s"):
        assert main(["render", str(run), f"--digest={bad}", "-o", str(tmp_path / "d.wav")]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("auralize: error:") and bad in err[0]


# -- streamed reading ----------------------------------------------------------------------------
def test_streamed_render_equals_the_recording_and_reads_in_pieces(tmp_path):
    """``auralize render`` streams the log (pieces of bounded size) and still gives the
    recording's samples bit for bit; the follow tail skips history by counting lines."""
    from auralize.cli import main
    from auralize.sonify.logs import TelemetryTail
    from auralize.sonify.stream import count_lines

    steps = 400
    with Sonifier(tmp_path / "run", mappings=["loss", "gradients", "alarm"], live=False,
                  plot=False, sample_rate=SR) as son:
        for s in range(steps):
            son.log(synthetic_step(s, steps, nan_at=100, spike_at=300))
    assert main(["render", str(tmp_path / "run"), "-o", str(tmp_path / "again.wav")]) == 0
    recorded, _ = sf.read(str(tmp_path / "run" / "sonification.wav"), dtype="int16")
    again, _ = sf.read(str(tmp_path / "again.wav"), dtype="int16")
    assert len(recorded) > 0 and np.array_equal(recorded, again)
    assert (tmp_path / "again_spectrogram.png").stat().st_size > 10_000
    tail = TelemetryTail(tmp_path / "run" / "telemetry.jsonl", max_bytes=4096)
    pieces = []
    while batch := tail.poll():
        pieces.append(len(batch))
    assert sum(pieces) == steps and max(pieces) < 40  # many small pieces, none lost
    tail = TelemetryTail(tmp_path / "run" / "telemetry.jsonl")
    assert tail.skip_to_end() == steps == count_lines(tmp_path / "run" / "telemetry.jsonl")
    assert tail.poll() == []


def test_a_killed_runs_recording_is_rendered_again_as_it_was(tmp_path):
    """A sweep run killed before its WAV was finished (Ray stops trials so): the repair
    renders it from the telemetry through the same path as ``render``, the recording's
    samples exactly."""
    from auralize.sweeps import repair_run_folder

    run = tmp_path / "run"
    with Sonifier(run, mappings=["loss", "gradients", "alarm"], live=False,
                  plot=False, sample_rate=SR) as son:
        for s in range(120):
            son.log(synthetic_step(s, 120, nan_at=50))
    recorded, _ = sf.read(str(run / "sonification.wav"), dtype="int16")
    (run / "sonification.wav").write_bytes(b"RIFF")  # the header of a WAV never finished
    assert repair_run_folder(run) == 120
    again, rate = sf.read(str(run / "sonification.wav"), dtype="int16")
    assert rate == SR and len(recorded) > SR and np.array_equal(recorded, again)
    assert (run / "spectrogram.png").stat().st_size > 10_000


def test_file_spectrogram_equals_the_in_memory_one_and_has_fixed_width(tmp_path):
    from auralize.audio.file_spectrogram import file_spectrogram_db
    from auralize.audio.files import read_audio, write_audio
    from auralize.audio.plots import spectrogram_db

    t = np.arange(SR * 7 + 123) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = write_audio(tmp_path / "a.wav", x, SR)
    samples = read_audio(path, mono=True)[0].astype(np.float64)
    freqs, times, db = spectrogram_db(samples, SR)
    f2, t2, db2 = file_spectrogram_db(path, columns=10**9, chunk_frames=5000)
    assert db.shape == db2.shape and np.allclose(times, t2) and np.allclose(db, db2, atol=1e-6)
    f3, t3, db3 = file_spectrogram_db(path, columns=40, chunk_frames=3333)
    assert db3.shape == (len(f3), 40) and t3[0] < 0.2 and t3[-1] > 6.8
    assert np.all(np.abs(f3[db3.argmax(axis=0)] - 440.0) < SR / 1024)


def test_chart_history_is_bounded_and_keeps_spikes_nans_and_epoch_values():
    from auralize.web.history import ChartHistory
    from auralize.web.records import compact_record

    steps = 100_000
    history = ChartHistory(max_points=4000)
    for s in range(steps):
        record = synthetic_step(s, steps, nan_at=40_000, spike_at=70_001)
        if s == 99_999:
            record.metrics["val_loss"] = 0.123
        history.append(compact_record(record, s * 0.05))
    docs = list(history)
    assert 1000 <= len(docs) <= 4000
    losses = [d["loss"] for d in docs if d["loss"] is not None]
    assert max(losses) > 100  # the x1000 spike survives decimation
    assert any(d.get("nonfinite") and d["step"] == 40_000 for d in docs)
    assert docs[-1]["metrics"].get("val_loss") == 0.123
    steps_seen = [d["step"] for d in docs]
    assert steps_seen == sorted(steps_seen) and steps_seen[0] < steps // 500  # the first bucket


# -- memory at 10^4 and 10^5 steps ----------------------------------------------------------------
_LOG = r"""
import json, math, resource, sys
sys.path.insert(0, sys.argv[4])
from test_long_runs import synthetic_step, SR
from auralize import Sonifier
out, steps = sys.argv[1], int(sys.argv[2])
son = Sonifier(out, mappings=["loss", "alarm"], live=False, plot=True,
               sample_rate=SR, step_s=0.01, digest_s=30.0, digest_after_s=float(sys.argv[3]))
for s in range(steps):
    son.log(synthetic_step(s, steps, layers=12, nan_at=steps // 3, spike_at=steps // 2))
result = son.close()
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "renderer_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "digest": str(result.digest_path), "audio_s": result.duration_s}))
"""

_CLI = r"""
import json, resource, sys
from auralize.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _python(code: str, *args) -> dict:
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _serve_history(run: Path) -> tuple[float, int, float]:
    """``auralize serve`` of ``run``: its peak RSS once a page got the history, the history's
    length, and its largest loss."""
    with served_run(run) as (proc, url):
        records = page_history(url, timeout_s=30)
        status = Path(f"/proc/{proc.pid}/status").read_text()
    hwm = int(status.split("VmHWM:")[1].split()[0]) / 1024
    losses = [r["loss"] for r in records if r["loss"] is not None]
    return hwm, len(records), max(losses)


def _follow(run: Path, out: Path) -> dict:
    """``auralize follow`` of a big run: skips its history, hears 200 appended steps."""
    proc = subprocess.Popen([sys.executable, "-c", _CLI, "follow", str(run), "-o", str(out),
                             "--live", "off", "--poll-s", "0.1", "--idle-exit-s", "2"],
                            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while "following" not in proc.stdout.readline():
        pass
    time.sleep(1.5)
    with open(run / "telemetry.jsonl", "a") as handle:
        for i in range(200):
            handle.write(synthetic_step(i, 200).to_json() + "\n")
            handle.flush()
    rest, _ = proc.communicate(timeout=300)
    assert "heard 200 steps" in rest, rest[-2000:]
    return json.loads(rest.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(1800)  # about 4 minutes on an idle 2-core machine; much more when shared
def test_memory_does_not_grow_from_ten_thousand_to_a_hundred_thousand_steps(tmp_path):
    """Each process's peak RSS at 10^5 steps within 40 MB of its peak at 10^4 (the bound;
    12 gradient norms a step in the telemetry, the loss and alarm sounded at 8 kHz to keep
    the synthesis short):
    the training process (logging, closing, the spectrogram, the digest), the renderer,
    ``render``, ``render --digest``, ``serve`` (history decimated, the spike kept) and
    ``follow``.  The code before this change grew by hundreds of MB over the same range
    (metrics rows, the spectrogram of the whole recording, the score, the history)."""
    bound_mb = 40.0
    peaks: dict[str, list[float]] = {}
    for steps in (10_000, 100_000):
        run = tmp_path / f"run{steps}"
        log = _python(_LOG, run, steps, 60.0, ROOT / "tests")
        assert log["digest"].endswith("digest.wav")
        render = _python(_CLI, "render", run, "-o", tmp_path / "again.wav")
        digest = _python(_CLI, "render", run, "--digest", "30s", "-o", tmp_path / "d.wav")
        serve_mb, points, top_loss = _serve_history(run)
        assert points <= 4000 and top_loss > 100  # the x1000 spike is on the page
        follow = _follow(run, tmp_path / f"follow{steps}")
        for name, value in (("training", log["rss_mb"]), ("renderer", log["renderer_mb"]),
                            ("render", render["rss_mb"]), ("digest", digest["rss_mb"]),
                            ("serve", serve_mb), ("follow", follow["rss_mb"])):
            peaks.setdefault(name, []).append(value)
    print({k: [round(v) for v in vs] for k, vs in peaks.items()})
    grown = {k: v[1] - v[0] for k, v in peaks.items() if v[1] - v[0] > bound_mb}
    assert not grown, (grown, peaks)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # about a minute on an idle 2-core machine
def test_compare_memory_does_not_grow_from_ten_thousand_to_a_hundred_thousand_steps(tmp_path):
    """``auralize compare`` of two runs streams both: its peak RSS at 10^5 steps a side (two
    5000 s renders) within 40 MB of its peak at 10^4.  Holding either whole render would
    take 160 MB a side at 8 kHz (as the in-memory `compare_runs`, removed in this change, did)."""
    bound_mb = 40.0
    peaks = []
    for steps in (10_000, 100_000):
        a = write_telemetry(tmp_path / f"a{steps}", steps, nan_at=steps // 3)
        b = write_telemetry(tmp_path / f"b{steps}", steps, layers=8, spike_at=steps // 2)
        out = tmp_path / f"ab{steps}.wav"
        result = _python(_CLI, "compare", a, b, "-o", out)
        assert result["rc"] == 0
        info = sf.info(str(out))
        assert info.channels == 2 and info.samplerate == SR
        assert info.frames == round((steps * 0.05 + 0.5) * SR)  # every step and the tail
        peaks.append(result["rss_mb"])
        out.unlink()
    print({"compare_mb": [round(p) for p in peaks]})
    assert peaks[1] - peaks[0] <= bound_mb, peaks

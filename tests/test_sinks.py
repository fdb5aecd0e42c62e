"""File and memory sinks: files that open, headers that match, audio that survives a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from auralize.audio import FileSink, MemorySink, Score, iter_blocks, render_score, write_blocks
from auralize.audio.files import read_audio, write_audio
from auralize.audio.plots import save_spectrogram, save_waveform
from auralize.errors import AuralizeError

SR = 44100


def score_440() -> Score:
    score = Score(sample_rate=SR)
    score.add_voice("tone", {"kind": "sines", "freq_hz": [440.0], "amp": [0.5]})
    score.set(0.3, "tone", "freq_hz", 660.0)
    return score


@pytest.mark.parametrize(
    "name, subtype", [("a.wav", "PCM_16"), ("a.flac", "PCM_16"), ("a.ogg", "VORBIS")]
)
def test_file_sink_writes_what_memory_holds(tmp_path, name, subtype):
    score = score_440()
    memory = MemorySink(SR)
    path = tmp_path / name
    frames = write_blocks(iter_blocks(score.events, 0.6, block_size=700),
                          [FileSink(path, SR), memory])
    info = sf.info(str(path))
    assert info.frames == frames == int(0.6 * SR)
    assert info.subtype == subtype and info.samplerate == SR
    data, _ = sf.read(str(path), dtype="float32")
    tolerance = 2.0 / 32768 if subtype == "PCM_16" else 0.05
    assert np.max(np.abs(data - memory.samples)) < tolerance
    assert np.array_equal(memory.samples, render_score(score, 0.6))


def test_float_wav_gets_a_float_header(tmp_path):
    path = write_audio(tmp_path / "f.wav", np.array([0.0, 0.5, -2.0, np.nan]), SR,
                       subtype="FLOAT")
    assert sf.info(str(path)).subtype == "FLOAT"
    data, _ = sf.read(str(path), dtype="float32")
    assert data.tolist() == [0.0, 0.5, -1.0, 0.0]  # clipped and NaN-free


def test_float_files_hold_no_write_time(tmp_path):
    """The same samples make the same bytes: no PEAK chunk (libsndfile's holds the time
    of writing), from write_audio and from the streaming FileSink alike."""
    x = np.random.default_rng(0).uniform(-1, 1, (4000, 2)).astype(np.float32)
    a = write_audio(tmp_path / "a.wav", x, SR, subtype="FLOAT")
    sink = FileSink(tmp_path / "b.wav", SR, channels=2, subtype="FLOAT")
    sink.write(x[:1500])
    sink.write(x[1500:])
    sink.close()
    for path in (a, tmp_path / "b.wav"):
        raw = path.read_bytes()
        assert b"PEAK" not in raw and sf.info(str(path)).subtype == "FLOAT"
        data, _ = sf.read(str(path), dtype="float32")
        assert np.array_equal(data, x)
    assert a.read_bytes() == (tmp_path / "b.wav").read_bytes()


def test_stereo_file_sink_duplicates_mono(tmp_path):
    sink = FileSink(tmp_path / "s.wav", SR, channels=2)
    sink.write(np.full(100, 0.25, dtype=np.float32))
    sink.close()
    data, _ = sf.read(str(tmp_path / "s.wav"))
    assert data.shape == (100, 2) and np.allclose(data, 0.25, atol=1e-4)


def test_bad_paths_and_files_give_one_line_errors(tmp_path):
    with pytest.raises(AuralizeError, match=r"use a \.wav, \.flac or \.ogg"):
        FileSink(tmp_path / "x.mp4", SR)
    (tmp_path / "junk.wav").write_bytes(b"RIFF not really")
    with pytest.raises(AuralizeError, match="cannot read .*junk.wav"):
        read_audio(tmp_path / "junk.wav")
    with pytest.raises(AuralizeError, match="not found"):
        read_audio(tmp_path / "missing.wav")


def test_plots_are_pngs(tmp_path):
    audio = render_score(score_440(), 0.5)
    for path in (save_spectrogram(audio, SR, tmp_path / "spec.png"),
                 save_waveform(audio, SR, tmp_path / "wave.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 5000


WRITER = textwrap.dedent(
    """
    import sys, time
    from auralize.audio import Engine, FileSink
    engine = Engine(44100)
    engine.add_voice("t", {"kind": "sines", "freq_hz": [440.0], "amp": [0.5]})
    sink = FileSink(sys.argv[1], 44100, flush_interval_s=0.5)
    start = time.monotonic()
    written = 0
    while True:  # real-time pace: 50 ms of audio every 50 ms
        flushed = sink.frames_flushed
        sink.write(engine.render(2205))
        if sink.frames_flushed != flushed:  # write() flushed by itself
            print(sink.frames_flushed, flush=True)
        written += 2205
        ahead = written / 44100 - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    """
)


def test_killed_writer_leaves_a_readable_file_with_all_but_the_last_second(tmp_path):
    path = tmp_path / "killed.wav"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    try:
        # kill once the writer's own flushes hold 2 s (a count of frames, not a duration:
        # a loaded machine writes late, and then flushes late)
        flushed = 0
        while flushed < 2 * SR:
            flushed = int(proc.stdout.readline())
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    data, rate = sf.read(str(path), dtype="float32")
    assert rate == SR
    assert len(data) >= flushed  # everything up to the last flush before the kill
    assert np.max(np.abs(data)) > 0.2  # real audio (0.5 x master gain 0.5), not an empty header

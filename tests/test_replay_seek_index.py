"""Seeking in a long run's page: an index of checkpoints makes a seek read a bounded
piece of the log whatever its target, and sound as a seek that read it all."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from audio_analysis import dominant_frequency
from auralize.sonify.log_stream import open_log
from auralize.sonify.telemetry import TrainingStep
from auralize.web.replay_stream import (
    MAX_CHECKPOINTS,
    SETTLE_S,
    StreamedReplay,
    load_streamed_replay,
)

SR = 8000
STEPS = 100_000
STEP_S = 0.05


def _write_run(folder, steps: int):
    """A loss falling 1 -> 0.1 (a tone gliding down), a NaN at 40 %; loss + alarm at 8 kHz."""
    folder.mkdir(parents=True)
    with open(folder / "telemetry.jsonl", "w") as handle:
        for s in range(steps):
            loss = float("nan") if s == int(0.4 * steps) else 1.0 / (1.0 + 9.0 * s / steps)
            handle.write(TrainingStep(step=s, loss=loss,
                                      grad_norms={"h.0": 0.5, "h.1": 0.25}).to_json() + "\n")
    (folder / "sonifier.json").write_text(json.dumps(
        {"mappings": ["loss", "alarm"], "clock": "step", "step_s": STEP_S, "sample_rate": SR,
         "master_gain": 0.5, "chunk_size": 512, "tail_s": 0.5}))
    return folder


def _play_from(replay: StreamedReplay, t_s: float, frames: int) -> np.ndarray:
    """Seek, then play as the server does (its engine swapped in, events fed as it renders)."""
    replay.engine = replay.seek_engine(t_s)
    return replay.render(frames)


def _level_db(x: np.ndarray) -> float:
    return 20.0 * math.log10(max(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))), 1e-9))


@pytest.mark.slow  # a 10^5-step log, read whole by the reference seeks (~90 s under load)
def test_seek_in_a_long_run_reads_a_bounded_piece_and_sounds_as_a_full_read(tmp_path):
    run = _write_run(tmp_path / "run", STEPS)
    replay, config = load_streamed_replay(str(run))
    every = replay._every
    assert every == math.ceil(STEPS / MAX_CHECKPOINTS)
    assert len(replay.checkpoints) == (STEPS - 1) // every <= MAX_CHECKPOINTS
    # a checkpoint's offset is its step's line
    with open(run / "telemetry.jsonl", "rb") as handle:
        handle.seek(replay.checkpoints[7].offset)
        assert json.loads(handle.readline())["step"] == 8 * every
    bound = every + (SETTLE_S + 2.0) / STEP_S + 2  # lines from a checkpoint to the target
    reference = StreamedReplay(open_log(run), config)
    reference.checkpoints = []  # the pre-index seek: the log read from its start
    for t_s in (60.0, 3456.7, 4990.0):
        ours = _play_from(replay, t_s, SR)
        lines = replay.seek_lines
        assert 0 < lines <= bound, (t_s, lines)  # not the ~t_s / 0.05 a full read takes
        theirs = _play_from(reference, t_s, SR)
        assert reference.seek_lines == 0  # (the reference reads through log.records())
        f_ours, f_ref = dominant_frequency(ours, SR), dominant_frequency(theirs, SR)
        assert abs(12 * math.log2(f_ours / f_ref)) < 0.5, (t_s, f_ours, f_ref)
        assert abs(_level_db(ours) - _level_db(theirs)) < 1.0, t_s
    # near the start there is no checkpoint far enough back: read from the start
    replay.seek_engine(SETTLE_S / 2)
    assert replay.seek_lines == 0


def test_a_seek_into_the_nan_hears_the_alarm_as_a_full_read_does(tmp_path):
    """The alarm at 40 % (step 400 of 1000) sounds after a checkpointed seek just before it."""
    run = _write_run(tmp_path / "run", 1000)
    replay, config = load_streamed_replay(str(run))
    assert replay.checkpoints and replay._every == 100
    reference = StreamedReplay(open_log(run), config)
    reference.checkpoints = []
    t_nan = 400 * STEP_S
    ours = _play_from(replay, t_nan - 0.2, SR)
    assert 0 < replay.seek_lines < 400
    theirs = _play_from(reference, t_nan - 0.2, SR)
    calm = _play_from(replay, t_nan - 5.0, SR)
    assert _level_db(ours) > _level_db(calm) + 1.0  # the alarm over the tone (0.4 s of 1 s)
    assert abs(_level_db(ours) - _level_db(theirs)) < 0.2

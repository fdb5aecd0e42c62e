"""Two runs side by side: A in the left ear, B in the right, aligned by step.

Each channel is exactly what ``auralize render RUN --clock step --step-s S``
writes for that run: both runs are re-sonified on the step clock with one common
step length ``S`` (their recorded one when they agree, else the longer of the
two, or ``--step-s``), so step ``k`` of A and step ``k`` of B start at the same
sample.  The shorter run is followed by silence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auralize.errors import AuralizeError


def step_config(recorded, step_s: float | None = None):
    """The recorded settings (or the defaults) on the step clock, with ``step_s`` if given."""
    from auralize.sonify.timeline import SonifyConfig

    doc = (recorded or SonifyConfig()).to_dict()
    doc["clock"] = "step"
    doc["channels"] = 1  # each run is one side of the A/B pair
    if recorded is None:
        doc["step_s"] = None  # let the mappings pick
    if step_s is not None:
        doc["step_s"] = step_s
    return SonifyConfig.from_dict(doc)


def render_records(records, config) -> np.ndarray:
    """Mono float32 render of ``records`` under ``config`` (what ``auralize render`` writes)."""
    from auralize.audio.score import iter_blocks
    from auralize.sonify.timeline import replay

    score, duration_s = replay(records, config)
    sr = int(config.sample_rate)
    blocks = list(iter_blocks(score.events, duration_s, sample_rate=sr, block_size=sr // 2,
                              **config.engine_kwargs()))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def resolved_step_s(records, config) -> float:
    """The step length a config gives these records (its own, or what the mappings prefer)."""
    from auralize.sonify.timeline import Timeline

    timeline = Timeline(config)
    timeline.advance(records[0])
    return float(timeline.step_s)


def compare_runs(run_a: str | Path, run_b: str | Path, *,
                 step_s: float | None = None) -> tuple[np.ndarray, int, float]:
    """Stereo float32 (frames, 2): render of A left, render of B right; and rate, step_s.

    Raises
    ------
    AuralizeError
        When a run cannot be read or the two have different sample rates.
    """
    from auralize.sonify.logs import load_log

    loaded = [load_log(run) for run in (run_a, run_b)]
    configs = [step_config(recorded, step_s) for _, recorded in loaded]
    if configs[0].sample_rate != configs[1].sample_rate:
        raise AuralizeError(f"the runs were recorded at {configs[0].sample_rate} and "
                            f"{configs[1].sample_rate} Hz; pass --sample-rate to render both at one")
    if step_s is None:
        lengths = [resolved_step_s(records, c) for (records, _), c in zip(loaded, configs)]
        step_s = max(lengths)
        configs = [step_config(recorded, step_s) for _, recorded in loaded]
    channels = [render_records(records, c) for (records, _), c in zip(loaded, configs)]
    frames = max(len(c) for c in channels)
    out = np.zeros((frames, 2), np.float32)
    for i, channel in enumerate(channels):
        out[:len(channel), i] = channel
    return out, int(configs[0].sample_rate), float(step_s)


def compare_runs_to_file(run_a: str | Path, run_b: str | Path, out: str | Path, *,
                         step_s: float | None = None) -> tuple[float, int, float]:
    """:func:`compare_runs` streamed into ``out``: memory does not grow with the runs' length.

    Returns ``(duration_s, sample_rate, step_s)``.
    """
    from auralize.audio.sinks import FileSink
    from auralize.sonify.log_stream import open_log
    from auralize.sonify.rerender import resolved_step_s as log_step_s
    from auralize.sonify.stream import iter_stream_blocks

    logs = [open_log(run) for run in (run_a, run_b)]
    configs = [step_config(log.config, step_s) for log in logs]
    if configs[0].sample_rate != configs[1].sample_rate:
        raise AuralizeError(f"the runs were recorded at {configs[0].sample_rate} and "
                            f"{configs[1].sample_rate} Hz; pass --sample-rate to render both at one")
    if step_s is None:
        step_s = max(log_step_s(log, c) for log, c in zip(logs, configs))
        configs = [step_config(log.config, step_s) for log in logs]
    sr = int(configs[0].sample_rate)
    streams = [iter_stream_blocks(log.records(), c, block_frames=sr // 2)
               for log, c in zip(logs, configs)]
    pending = [np.zeros(0, np.float32), np.zeros(0, np.float32)]
    frames = 0
    with FileSink(out, sr, channels=2) as sink:
        while streams[0] is not None or streams[1] is not None:
            for i in (0, 1):  # each side at least half a second ahead (or finished)
                while streams[i] is not None and len(pending[i]) < sr // 2:
                    try:
                        pending[i] = np.concatenate([pending[i], next(streams[i])])
                    except StopIteration:
                        streams[i] = None
            n = max(len(pending[0]), len(pending[1])) if any(s is None for s in streams) \
                else min(len(pending[0]), len(pending[1]))
            block = np.zeros((n, 2), np.float32)
            for i in (0, 1):
                take = pending[i][:n]
                block[:len(take), i] = take
                pending[i] = pending[i][n:]
            sink.write(block)
            frames += n
    return frames / sr, sr, float(step_s)

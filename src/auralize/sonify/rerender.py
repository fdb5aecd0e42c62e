"""Logs heard again: ``auralize render``, ``auralize compare`` and ``serve``'s replay, one path.

- :func:`render_config`: the settings a log is rendered with (as recorded, or
  the defaults, changed as asked).  The one place where a wall-clock log
  without wall times falls back to the step clock; ``serve``'s replay
  (:mod:`auralize.web.replay_stream`) takes its settings here too.
- :func:`render_log`: one log into a file; :func:`compare_logs`: two logs into
  one stereo file, A left, B right, on one step clock.  Both are
  :func:`auralize.sonify.stream.render_file`: the log is read a piece at a time
  (:mod:`auralize.sonify.log_stream`), its events made as the engine needs them
  (:class:`~auralize.sonify.stream.ScoreStream`, which the replay plays from as
  well) and the audio written block by block, so memory does not grow with the
  run's length.  The samples are those ``replay`` + ``iter_blocks`` gave (bit
  for bit): a run folder's re-render equals its ``sonification.wav``, and each
  side of a comparison equals ``render`` of that run.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from auralize.errors import AuralizeError
from auralize.sonify.log_stream import LogStream
from auralize.sonify.timeline import SonifyConfig, Timeline


def render_config(log: LogStream, mappings: list | str | None = None, clock: str | None = None,
                  step_s: float | None = None, sample_rate: int | None = None,
                  channels: int | None = None) -> SonifyConfig:
    """The settings a log is rendered with: as recorded, or the defaults, changed as asked.

    Parameters
    ----------
    mappings : list or str, optional
        A mapping list or a preset name (:func:`auralize.sonify.presets.sound_mappings`);
        the step length is then the mappings' choice unless ``step_s`` is given.
    clock : {"step", "wall"}, optional
        ``"wall"`` (asked or recorded) on a log without wall times is the step clock.
    step_s : float, optional
        Audio seconds per step.
    sample_rate, channels : int, optional
        Hz; 1 (mono) or 2 (stereo).
    """
    from auralize.sonify.presets import sound_mappings

    doc = (log.config or SonifyConfig()).to_dict()
    if mappings is not None:
        doc["mappings"] = sound_mappings(mappings) if isinstance(mappings, str) else mappings
    if log.config is None or mappings is not None:
        doc["step_s"] = None  # let the chosen mappings pick
    for key, value in (("clock", clock), ("step_s", step_s), ("sample_rate", sample_rate),
                       ("channels", channels)):
        if value is not None:
            doc[key] = value
    if doc["clock"] == "wall" and not log.any(lambda r: bool(r.wall_time_s)):
        doc["clock"] = "step"  # no wall times in this log
    return SonifyConfig.from_dict(doc)


def resolved_step_s(log: LogStream, config: SonifyConfig) -> float:
    """The step length ``config`` gives this log (its own, or what the mappings prefer)."""
    timeline = Timeline(config)
    timeline.advance(log.first())
    return float(timeline.step_s)


def render_log(log: LogStream, config: SonifyConfig, out: str | Path,
               progress=None) -> tuple[int, float]:
    """Render the whole log into ``out``; return ``(steps, duration_s)``.

    ``progress``: called with the frames written after each block.
    """
    from auralize.sonify.stream import render_file

    (stream,), _frames = render_file([(log.records(), config)], out, progress=progress)
    return stream.steps, stream.end_s()


def compare_config(log: LogStream, step_s: float | None = None,
                   sample_rate: int | None = None) -> SonifyConfig:
    """One side of a comparison: the log's settings on the step clock, mono."""
    return render_config(log, clock="step", step_s=step_s, sample_rate=sample_rate, channels=1)


def compare_logs(log_a: LogStream, log_b: LogStream, out: str | Path, *,
                 step_s: float | None = None, sample_rate: int | None = None,
                 progress=None) -> tuple[float, int, float]:
    """Two runs side by side into the stereo file ``out``: A left, B right, aligned by step.

    Each channel is exactly what ``auralize render RUN --clock step --step-s S
    --channels 1`` writes for that run: both are re-sonified on the step clock
    with one step length ``S`` (``step_s``, else the longer of the two runs'
    own), so step ``k`` of A and step ``k`` of B start at the same sample.  The
    shorter run is followed by silence.  Each log is read once, streamed.

    Returns
    -------
    (duration_s, sample_rate, step_s)

    Raises
    ------
    AuralizeError
        When the two were recorded at different sample rates and none is given.
    """
    from auralize.sonify.stream import render_file

    logs = (log_a, log_b)
    configs = [compare_config(log, step_s, sample_rate) for log in logs]
    if configs[0].sample_rate != configs[1].sample_rate:
        raise AuralizeError(f"the runs were recorded at {configs[0].sample_rate} and "
                            f"{configs[1].sample_rate} Hz; pass --sample-rate to render both at one")
    if step_s is None:
        step_s = max(resolved_step_s(log, config) for log, config in zip(logs, configs))
        configs = [replace(config, step_s=step_s) for config in configs]
    rate = int(configs[0].sample_rate)
    _streams, frames = render_file([(log.records(), config) for log, config in zip(logs, configs)],
                                   out, progress=progress)
    return frames / rate, rate, float(step_s)


def render_log_digest(log: LogStream, config: SonifyConfig, out: Path,
                      length_s: float) -> tuple[int, float, int]:
    """The log's digest (:func:`auralize.sonify.digest.render_log_digest`)."""
    from auralize.sonify.digest import render_log_digest as digest

    return digest(log, config, out, length_s)


__all__ = ["compare_config", "compare_logs", "render_config", "render_log", "render_log_digest",
           "resolved_step_s"]

"""``auralize render`` and ``auralize render --digest``: a log to a file, streamed.

The log is read a piece at a time (:mod:`auralize.sonify.log_stream`), its
events made as the engine needs them (:mod:`auralize.sonify.stream`), the audio
written block by block and the spectrogram computed from the written file in
chunks: memory does not grow with the run's length.  The samples are those
``replay`` + ``iter_blocks`` gave (bit for bit), and a run folder's re-render
equals its ``sonification.wav``.
"""

from __future__ import annotations

from pathlib import Path

from auralize.sonify.log_stream import LogStream
from auralize.sonify.timeline import SonifyConfig, Timeline


def render_config(log: LogStream, mappings: list | str | None = None, clock: str | None = None,
                  step_s: float | None = None, sample_rate: int | None = None) -> SonifyConfig:
    """The settings a log is rendered with: as recorded, or the defaults, changed as asked.

    ``mappings``: a mapping list or a preset name (:func:`auralize.sonify.presets.sound_mappings`).
    """
    from auralize.sonify.presets import sound_mappings

    doc = (log.config or SonifyConfig()).to_dict()
    if mappings is not None:
        doc["mappings"] = sound_mappings(mappings) if isinstance(mappings, str) else mappings
    if log.config is None or mappings is not None:
        doc["step_s"] = None  # let the chosen mappings pick
    for key, value in (("clock", clock), ("step_s", step_s), ("sample_rate", sample_rate)):
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


def render_log(log: LogStream, config: SonifyConfig, out: Path, progress=None) -> tuple[int, float]:
    """Render the whole log into ``out``; return ``(steps, duration_s)``."""
    from auralize.audio.sinks import FileSink
    from auralize.sonify.stream import render_stream

    steps, duration_s, _ = render_stream(log.records(), config,
                                         [FileSink(out, int(config.sample_rate), channels=config.channels)],
                                         progress=progress)
    return steps, duration_s


def render_log_digest(log: LogStream, config: SonifyConfig, out: Path,
                      length_s: float) -> tuple[int, float, int]:
    """The log's digest (:func:`auralize.sonify.digest.render_log_digest`)."""
    from auralize.sonify.digest import render_log_digest as digest

    return digest(log, config, out, length_s)


__all__ = ["render_config", "render_log", "render_log_digest", "resolved_step_s"]

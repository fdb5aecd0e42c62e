"""The sound engine: synthesis, score, offline render, live output, files, plots.

Imports no ML framework.  The pieces, from the bottom up:

- :mod:`~auralize.audio.voices`: sine banks, noise and the sampler, with gliding parameters;
- :mod:`~auralize.audio.engine`: voices + timed events + master gain + limiter;
- :mod:`~auralize.audio.score`: events recorded once, rendered offline;
- :mod:`~auralize.audio.sinks`: files and memory;
- :mod:`~auralize.audio.live`: the live device, played from a worker process
  (:mod:`auralize.workers`, beside this package);
- :mod:`~auralize.audio.plots`: spectrogram and waveform pictures.
"""

from auralize.audio.engine import Engine
from auralize.audio.score import Event, Score, iter_blocks, render_score
from auralize.audio.sinks import FileSink, MemorySink, Sink, write_blocks
from auralize.audio.voices.params import EngineStats

__all__ = [
    "Engine",
    "EngineStats",
    "Event",
    "FileSink",
    "MemorySink",
    "Score",
    "Sink",
    "iter_blocks",
    "render_score",
    "write_blocks",
]

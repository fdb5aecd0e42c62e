"""Compile or load the engine's kernels before a live stream starts: :func:`warm_up_kernels`.

numba compiles a kernel on its first call and caches it on disk (``cache=True``,
beside the source).  A live stream that meets a voice kind for the first time
while it plays pays that inside its time budget: measured on the 2-core test
machine under load, the first stereo sampler took 0.74 s to compile and the
first sine bank 19.6 s (a fresh install or clone: nothing cached yet); with the
cache on disk, loading them still takes 10-40 ms each.  Either is a dropout when
it happens mid-stream (the speaker's lead is 0.1 s).  So every live stream
renders a short score with one voice of each kind, at its own channel count,
before its device or its pacing starts.
"""

from __future__ import annotations

import time

from auralize.audio.engine import Engine
from auralize.audio.score import Event

# one voice of each kind, with what makes them take other compiled paths (several
# partials at several pans, one shared pan, LFOs and band-pass, glides)
_VOICES = {
    "bank": {"kind": "sines", "freq_hz": [220.0, 330.0, 440.0], "amp": [0.1, 0.1, 0.1],
             "pan": [-1.0, 0.0, 1.0], "vibrato_hz": 5.0, "vibrato_cents": 10.0,
             "tremolo_hz": 4.0, "tremolo_depth": 0.2},
    "tone": {"kind": "sines", "freq_hz": [300.0], "amp": [0.1], "pan": 0.3,
             "bp_q": 2.0, "sweep_hz": 1.0},
    "chord": {"kind": "sines", "freq_hz": [100.0 + 3.0 * k for k in range(256)],
              "amp": [0.001] * 256},  # big enough for the steady-span BLAS path
    "noise": {"kind": "noise", "amp": 0.05, "pan": -0.3},
    "sampler": {"kind": "sampler", "pan": 0.5},
}
_MOTIF = {"motif": [[72.0, 0.0, 0.05, 3], [76.0, 0.03, 0.05, 2]], "level": 0.3}


def warm_up_kernels(sample_rate: int, engine_kwargs: dict | None = None) -> float:
    """Render a throwaway score through an engine like the stream's; seconds it took.

    Parameters
    ----------
    sample_rate : int
        Hz of the stream's engine.
    engine_kwargs : dict, optional
        The stream's engine options (``channels`` above all: mono and stereo
        engines call different kernels).
    """
    t0 = time.perf_counter()
    engine = Engine(int(sample_rate), **dict(engine_kwargs or {}))
    for name, spec in _VOICES.items():
        engine.schedule(Event(0.0, name, "add", spec))
    engine.schedule(Event(0.0, "sampler", "play", _MOTIF))
    for name in ("bank", "tone"):
        engine.schedule(Event(0.02, name, "freq_hz", 500.0, 0.03))
        engine.schedule(Event(0.03, name, "pan", -0.5, 0.02))
    engine.schedule(Event(0.04, "noise", "amp", 0.0, 0.02))
    for _ in range(4):  # spans between events and steady ones, in several calls
        engine.render(int(sample_rate) // 40)
    return time.perf_counter() - t0


__all__ = ["warm_up_kernels"]

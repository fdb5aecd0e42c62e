"""The package's one earcon table: what training sound and sweeps play by name.

Short motifs (Blattner et al. 1989; Brewster 1994): rhythm, register and timbre
differ per event so they tell apart without learning a melody.  Every note is a
plucked harmonic tone (:mod:`auralize.audio.voices.sampler` renders a motif), unlike the
training voices' steady pure sines; fundamentals stay within MIDI 35-100 (the
auditory-graph range).  A ``play`` event carries the motif itself (so a score
renders without this table) and its name, for people and tests.
"""

from __future__ import annotations

from auralize.audio.voices.sampler import Motif, as_motif, motif_duration_s

#: name -> notes ``(MIDI note, start s, length s, partial count)``; harmonics make a
#: timbre per earcon.
EARCONS: dict[str, Motif] = {name: as_motif(notes) for name, notes in {
    # a trial starts: two short rising notes, A6 -> E7 (a fifth up: "off it goes")
    "start": [(93, 0.0, 0.07, 1), (100, 0.07, 0.07, 1)],
    # a trial stopped early: two falling notes, D7 -> A#6 (a scheduler cut it short)
    "stopped": [(98, 0.0, 0.07, 1), (94, 0.07, 0.07, 1)],
    # a trial failed: a rough buzz, a minor second (A#6 + B6) with harmonics
    "error": [(94, 0.0, 0.25, 3), (95, 0.0, 0.25, 3)],
    # epoch end: two short, bright notes up a fifth ("tick-tock")
    "epoch": [(84, 0.0, 0.09, 3), (91, 0.1, 0.12, 3)],
    # new best: a rising major arpeggio, rounder tone
    "best": [(72, 0.0, 0.1, 2), (76, 0.08, 0.1, 2), (79, 0.16, 0.1, 2), (84, 0.24, 0.25, 2)],
    # divergence / NaN: a low, buzzy falling tritone, repeated
    "diverge": [(58, 0.0, 0.16, 9), (52, 0.16, 0.22, 9), (58, 0.42, 0.16, 9),
                (52, 0.58, 0.3, 9)],
    # training end: a slow low-high-low bell of three notes
    "end": [(67, 0.0, 0.3, 5), (79, 0.25, 0.3, 5), (60, 0.5, 0.7, 5)],
    # octave tick of an auditory graph: one very short click-like note
    "tick": [(96, 0.0, 0.02, 1)],
}.items()}


def earcon_duration_s(name: str) -> float:
    """Seconds the earcon ``name`` lasts."""
    return motif_duration_s(EARCONS[name])


def earcon_play(name: str, **extra) -> dict:
    """The sampler's ``play`` value for earcon ``name`` (``extra``: level, text, ...)."""
    if name not in EARCONS:
        raise ValueError(f"unknown earcon {name!r}; choose one of {', '.join(EARCONS)}")
    return {"motif": EARCONS[name], "earcon": name, **extra}


__all__ = ["EARCONS", "earcon_duration_s", "earcon_play"]

"""Short, distinct sounds for trial events: start, early stop, error, new best.

Every earcon lives above the trial voices (they stay under 1.6 kHz), so it is
heard through a full sweep, and each has its own shape:

========== ===================================================== ===========
event      sound                                                  length
========== ===================================================== ===========
start      two rising notes, A6 -> E7 (a fifth up: "off it goes")  0.14 s
stopped    two falling notes, F7 -> B6 (a scheduler cut it short)  0.14 s
error      a rough buzz (minor second, A#6 + B6) over a 5 kHz hiss  0.25 s
best       a quick major arpeggio, C7 E7 G7                        0.21 s
========== ===================================================== ===========

An earcon is played at its trial's stereo position, so one hears *which* trial
started or failed.  :data:`SIGNATURE_HZ` names one frequency per earcon that no
other earcon or voice uses, for finding them in a recording.
"""

from __future__ import annotations

import itertools

from auralize.audio.score import Event

NOTE_S = 0.07
ATTACK_S = 0.005
RELEASE_S = 0.03
EARCON_AMP = 0.25

#: event -> list of (frequencies in Hz, duration in s) played one after another
EARCONS: dict[str, list[tuple[tuple[float, ...], float]]] = {
    "start": [((1760.0,), NOTE_S), ((2637.0,), NOTE_S)],
    "stopped": [((2794.0,), NOTE_S), ((1976.0,), NOTE_S)],
    "error": [((1865.0, 1976.0), 0.25)],
    "best": [((2093.0,), NOTE_S), ((2637.0,), NOTE_S), ((3136.0,), NOTE_S)],
}

#: one frequency (Hz) per earcon that only it sounds (for analysis)
SIGNATURE_HZ = {"start": 1760.0, "stopped": 2794.0, "error": 1865.0, "best": 3136.0}

_ids = itertools.count()


def earcon_events(kind: str, t_s: float, voice: str | None = None) -> list[Event]:
    """Events playing earcon ``kind`` from ``t_s``.

    ``voice``: the voice to (re)create for it, left in place, silent, afterwards
    (so that a page's mixer keeps one entry per trial); default: a voice of its
    own, removed after.  The voice spec carries ``"gain": 1.0``; a stereo caller
    scales it per channel.  Its partials follow the engine's clock
    (``clock_phase``): two trials' identical earcons started a fraction of a
    period apart (two trials seen starting in one storage poll) sum instead of
    cancelling in a mono mix.
    """
    notes = EARCONS[kind]
    name = voice or f"earcon-{kind}-{next(_ids)}"
    n = max(len(freqs) for freqs, _ in notes)
    events = [Event(t_s, name, "add", {"kind": "sines", "freq_hz": list(notes[0][0]) * (n // len(
        notes[0][0])), "amp": [0.0] * n, "gain": 1.0, "glide_s": 0.0, "clock_phase": True})]
    t = t_s
    for freqs, dur in notes:
        freqs = list(freqs) * (n // len(freqs))
        events.append(Event(t, name, "freq_hz", freqs, 0.0))
        events.append(Event(t, name, "amp", [EARCON_AMP / n] * n, ATTACK_S))
        events.append(Event(t + dur - RELEASE_S, name, "amp", [0.0] * n, RELEASE_S))
        t += dur
    if kind == "error":
        noise = name + "-noise"
        events += [Event(t_s, noise, "add", {"kind": "noise", "amp": 0.0, "gain": 1.0,
                                             "bp_center_hz": 5000.0, "bp_q": 4.0}),
                   Event(t_s, noise, "amp", 0.12, ATTACK_S),
                   Event(t - RELEASE_S, noise, "amp", 0.0, RELEASE_S),
                   Event(t + 0.05, noise, "remove")]
    if voice is None:
        events.append(Event(t + 0.05, name, "remove"))
    return events


def duration_s(kind: str) -> float:
    return sum(dur for _, dur in EARCONS[kind])

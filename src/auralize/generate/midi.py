"""MIDI knobs for live generation (mido + python-rtmidi; ALSA or JACK MIDI).

Four knobs, each a position in [0, 1] (value / 127), with boii's controller
numbers for a Roland A49 as defaults:

- ``cc1`` (CC 74) and ``cc2`` (CC 71): the mix of models A, B, C; start at 0.5;
- ``volume`` (CC 7): the output gain, on the General MIDI curve
  (:func:`volume_gain`: ``(value/127)**2``, 40·log10 dB); starts at full (1.0);
- ``mod`` (CC 1, the modulation wheel): how much the networks change the input,
  a dry/wet mix ``(1 - mod)·input + mod·networks``; starts at 1.0, the networks
  alone (what boii played); the wheel at rest (0) passes the input unchanged.

A small TOML file changes the controller numbers::

    [knobs]
    cc1 = 74
    cc2 = 71
    volume = 7
    mod = 1
    channel = 0     # 0-15; leave out to accept every channel
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from auralize.errors import AuralizeError

APIS = ("UNIX_JACK", "LINUX_ALSA", "MACOSX_CORE", "WINDOWS_MM")
KNOBS = ("cc1", "cc2", "volume", "mod")
# Knob positions before a controller sends anything (module docstring).
KNOB_START = {"cc1": 0.5, "cc2": 0.5, "volume": 1.0, "mod": 1.0}


def volume_gain(volume: float) -> float:
    """Output gain (linear amplitude) for a CC 7 position in [0, 1]: General MIDI's
    ``40·log10(position)`` dB, i.e. ``position**2``."""
    return float(min(1.0, max(0.0, volume))) ** 2


@dataclass(frozen=True)
class KnobMap:
    """Controller number of each knob (:data:`KNOBS`); ``channel`` None: any channel."""

    cc1: int = 74
    cc2: int = 71
    volume: int = 7
    mod: int = 1
    channel: int | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> KnobMap:
        if path is None:
            return cls()
        from auralize.readers import read_toml

        raw = read_toml(path, "a MIDI map")
        knobs = raw.get("knobs", raw)
        if not isinstance(knobs, dict):
            raise AuralizeError(f"MIDI map {str(path)!r}: [knobs] must be a table")
        unknown = sorted(set(knobs) - {*KNOBS, "channel"})
        if unknown:
            raise AuralizeError(f"MIDI map {str(path)!r}: unknown keys {', '.join(unknown)} "
                                f"(known: {', '.join(KNOBS)}, channel)")
        try:
            m = cls(**{k: int(knobs[k]) for k in KNOBS if k in knobs},
                    channel=knobs.get("channel"))
        except (TypeError, ValueError) as exc:
            raise AuralizeError(f"MIDI map {str(path)!r}: {exc}") from None
        if not all(0 <= getattr(m, k) <= 127 for k in KNOBS):
            raise AuralizeError(f"MIDI map {str(path)!r}: controller numbers must be 0-127")
        return m

    def knob_of(self, msg) -> str | None:
        """The knob (:data:`KNOBS`) ``msg`` (a mido message) moves, else None.

        A controller mapped to two knobs moves the first of them (cc1, cc2, volume,
        mod): a map that puts the mix on CC 1 or CC 7 takes those over.
        """
        if getattr(msg, "type", "") != "control_change":
            return None
        if self.channel is not None and msg.channel != int(self.channel):
            return None
        return next((k for k in KNOBS if msg.control == getattr(self, k)), None)


def _backend(api: str):
    import mido

    return mido.Backend(f"mido.backends.rtmidi/{api}", load=True)


def input_ports() -> list[tuple[str, str]]:
    """``(api, port name)`` of every MIDI input rtmidi can see (JACK first)."""
    try:
        import mido  # noqa: F401
        import rtmidi  # noqa: F401
    except ImportError:
        return []
    out = []
    for api in APIS:
        try:
            names = _backend(api).get_input_names()
        except Exception:  # noqa: BLE001, S112  (API not compiled, no server)
            continue
        out.extend((api, n) for n in names)
    return out


def find_port(wanted: str | None) -> tuple[str, str] | None:
    """The input port matching ``wanted`` (case-insensitive substring); the first real one
    when ``wanted`` is None (ALSA's "Midi Through" is not a controller); None if there is none.

    Raises
    ------
    AuralizeError
        ``wanted`` matches no port (the message lists the ports).
    """
    ports = input_ports()
    if wanted:
        for api, name in ports:
            if wanted.lower() in name.lower():
                return api, name
        listed = ", ".join(repr(n) for _, n in ports) or "none"
        raise AuralizeError(f"no MIDI input port matches {wanted!r} (available: {listed})")
    for api, name in ports:
        if "through" not in name.lower():
            return api, name
    return None


def open_input(api: str, name: str, callback):
    """Open ``name`` on ``api`` with ``callback(msg)`` called for every message."""
    return _backend(api).open_input(name, callback=callback)

"""MIDI knobs for live generation (mido + python-rtmidi; ALSA or JACK MIDI).

Two knobs, ``cc1`` and ``cc2``, in [0, 1] (value / 127), start at 0.5.  Defaults
follow boii (Roland A49): cc1 = CC 74, cc2 = CC 71; a small TOML file changes them::

    [knobs]
    cc1 = 74
    cc2 = 71
    channel = 0     # 0-15; leave out to accept every channel
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from auralize.errors import AuralizeError

APIS = ("UNIX_JACK", "LINUX_ALSA", "MACOSX_CORE", "WINDOWS_MM")


@dataclass(frozen=True)
class KnobMap:
    cc1: int = 74
    cc2: int = 71
    channel: int | None = None

    @classmethod
    def load(cls, path: str | Path | None) -> KnobMap:
        if path is None:
            return cls()
        try:
            with open(path, "rb") as f:
                raw = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise AuralizeError(f"cannot read MIDI map {str(path)!r}: {exc}") from None
        knobs = raw.get("knobs", raw)
        unknown = sorted(set(knobs) - {"cc1", "cc2", "channel"})
        if unknown:
            raise AuralizeError(f"MIDI map {str(path)!r}: unknown keys {', '.join(unknown)} "
                                "(known: cc1, cc2, channel)")
        m = cls(int(knobs.get("cc1", 74)), int(knobs.get("cc2", 71)), knobs.get("channel"))
        if not (0 <= m.cc1 <= 127 and 0 <= m.cc2 <= 127):
            raise AuralizeError(f"MIDI map {str(path)!r}: controller numbers must be 0-127")
        return m

    def knob_of(self, msg) -> str | None:
        """``"cc1"``/``"cc2"`` when ``msg`` (a mido message) moves that knob, else None."""
        if getattr(msg, "type", "") != "control_change":
            return None
        if self.channel is not None and msg.channel != int(self.channel):
            return None
        if msg.control == self.cc1:
            return "cc1"
        if msg.control == self.cc2:
            return "cc2"
        return None


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

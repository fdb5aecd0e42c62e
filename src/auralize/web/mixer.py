"""The page's mixer: per-voice mute, solo and gain, applied as gliding engine events."""

from __future__ import annotations

from auralize.audio.score import Event
from auralize.web.records import finite_or_none

MIX_GLIDE_S = 0.02  # mute/solo/gain changes glide (no clicks)
MAX_VOICE_GAIN = 2.0


class Mixer:
    """Per-voice mute / solo / gain, turned into ``gain`` events (gliding: no clicks)."""

    def __init__(self) -> None:
        self.voices: dict[str, dict] = {}

    def add(self, name: str) -> bool:
        if name in self.voices or name == "master":
            return False
        self.voices[name] = {"mute": False, "solo": False, "gain": 1.0}
        return True

    def gain_of(self, name: str) -> float:
        v = self.voices[name]
        soloing = any(x["solo"] for x in self.voices.values())
        if v["mute"] or (soloing and not v["solo"]):
            return 0.0
        return float(v["gain"])

    def events(self, time_s: float | None, names=None, glide_s: float = MIX_GLIDE_S) -> list:
        names = list(self.voices) if names is None else names
        return [Event(time_s, n, "gain", self.gain_of(n), glide_s) for n in names]

    def update(self, msg: dict) -> str | None:
        """Apply a page's ``mix`` message; return an error text or None."""
        name = msg.get("voice")
        if not isinstance(name, str) or name not in self.voices:
            return f"unknown voice {name!r}"
        v = self.voices[name]
        for key in ("mute", "solo"):
            if key in msg:
                if not isinstance(msg[key], bool):
                    return f"{key} must be true or false"
                v[key] = msg[key]
        if "gain" in msg:
            g = finite_or_none(msg["gain"])
            if g is None or not 0.0 <= g <= MAX_VOICE_GAIN:
                return f"gain must be a number in [0, {MAX_VOICE_GAIN}]"
            v["gain"] = g
        return None

    def state(self) -> dict:
        return {n: dict(v, effective_gain=self.gain_of(n)) for n, v in self.voices.items()}

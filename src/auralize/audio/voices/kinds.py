"""The voice kinds by name, and :func:`make_voice`, which builds one from its spec."""

from __future__ import annotations

from auralize.audio.voices.base import Voice
from auralize.audio.voices.noise import Noise
from auralize.audio.voices.params import EngineStats
from auralize.audio.voices.sampler import Sampler
from auralize.audio.voices.sine_bank import SineBank

#: voice kinds by name (a spec's ``"kind"``)
VOICE_KINDS: dict[str, type[Voice]] = {cls.kind: cls for cls in (SineBank, Noise, Sampler)}


def make_voice(spec: dict, sample_rate: int, stats: EngineStats) -> Voice:
    """Build a voice from a plain, picklable spec such as ``{"kind": "sines", ...}``.

    Raises
    ------
    ValueError
        If the kind or a keyword is unknown (the message lists the valid ones).
    """
    spec = dict(spec)
    kind = spec.pop("kind", None)
    pan = spec.pop("pan", None)
    cls = VOICE_KINDS.get(kind)
    if cls is None:
        raise ValueError(
            f"unknown voice kind {kind!r}; choose one of {', '.join(sorted(VOICE_KINDS))}"
        )
    try:
        voice = cls(sample_rate, stats, **spec)
    except TypeError as exc:
        raise ValueError(f"bad {kind!r} voice spec: {exc}") from None
    if pan is not None:
        voice.set("pan", pan, 0.0)
    return voice

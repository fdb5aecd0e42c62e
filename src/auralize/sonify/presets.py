"""Named sets of mappings: what ``--sound`` means on the command line.

One table for every command that plays training (``demo``, ``follow``,
``render``), so a name always means the same sound.
"""

from __future__ import annotations

from auralize.errors import AuralizeError

_CONTEXT_LOSS = {"kind": "loss", "reference_amp": 0.05, "octave_ticks": True}

#: preset name -> mappings (names or config dicts, as ``Sonifier(mappings=...)`` takes)
SOUNDS: dict[str, list] = {
    "training": ["loss", "gradients", "weights", "alarm"],  # soNNify + the gradient seed
    "loss": ["loss", "alarm"],
    # eyes-free: the loss tone with a reference at its starting pitch and octave ticks,
    # the alarm, spoken announcements (Smith & Walker 2005; see the README)
    "eyes-free": [_CONTEXT_LOSS, "alarm", "speech"],
    "earcons": [_CONTEXT_LOSS, "alarm", "earcons"],
    "all": ["loss", "gradients", "alarm", "speech"],
}


def sound_mappings(name: str, rate_wpm: int | None = None, verbosity: str | None = None) -> list:
    """The mappings of preset ``name`` with the speech/earcon options applied.

    Parameters
    ----------
    name : str
        A key of :data:`SOUNDS`.
    rate_wpm : int, optional
        Speaking rate (words per minute) for the speech mapping.
    verbosity : {"brief", "normal", "full"}, optional
        What an epoch end says (speech and earcons).
    """
    if name not in SOUNDS:
        raise AuralizeError(f"unknown sound {name!r}; choose one of {', '.join(sorted(SOUNDS))}")
    out = []
    for spec in SOUNDS[name]:
        spec = {"kind": spec} if isinstance(spec, str) else dict(spec)
        if spec["kind"] in ("speech", "earcons"):
            if verbosity:
                spec["verbosity"] = verbosity
            if rate_wpm and spec["kind"] == "speech":
                spec["rate_wpm"] = rate_wpm
        out.append(spec)
    return out

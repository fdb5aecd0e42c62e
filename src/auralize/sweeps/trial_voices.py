"""One voice per trial: register, timbre and stereo position stable per trial.

The k-th trial a sweep sees (order of first appearance, so stable for its whole
life) gets:

- a register: ``BASE_HZ`` raised by ``REGISTER_STEP_SEMITONES`` per trial,
  cycling over ``N_REGISTERS`` (a fourth apart: 131..988 Hz for 8 trials);
- a timbre: one of ``TIMBRES`` (harmonic amplitude patterns);
- a stereo position: ``PANS[k % len(PANS)]`` from -1 (left) to +1 (right).

While it runs the voice follows the trial's reports: the loss bends the pitch
(``LOSS_BEND_SEMITONES_PER_DECADE`` per tenfold change from the trial's first
loss, at most ``MAX_BEND_SEMITONES`` either way, so that neighbouring registers
never cross), the gradient norm sets the brightness (upper partials), and a
gradient norm ten times its first value or a non-finite loss adds a tremolo,
the sound of a run falling apart.  Partials above ``MAX_PARTIAL_HZ`` stay
silent: the band above belongs to the earcons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from auralize.audio.score import Event

BASE_HZ = 130.81  # C3
REGISTER_STEP_SEMITONES = 5
N_REGISTERS = 8
PANS = (-0.75, 0.75, -0.25, 0.25, -1.0, 1.0, -0.5, 0.5, 0.0)
HARMONICS = (1.0, 2.0, 3.0)
TIMBRES = ((1.0, 0.5, 0.25), (1.0, 0.0, 0.45), (1.0, 0.7, 0.0), (1.0, 0.3, 0.3))
VOICE_AMP = 0.12
MAX_BEND_SEMITONES = 2.0
LOSS_BEND_SEMITONES_PER_DECADE = 2.0
MAX_PARTIAL_HZ = 1600.0
GLIDE_S = 0.15


def pan_gains(pan: float) -> tuple[float, float]:
    """Constant-power (left, right) gains for ``pan`` in [-1, 1]."""
    angle = (float(np.clip(pan, -1.0, 1.0)) + 1.0) * math.pi / 4.0
    return math.cos(angle), math.sin(angle)


def _finite_positive(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


@dataclass
class TrialVoice:
    """The voice of one trial.

    Attributes
    ----------
    trial_id : str
        The engine's id for the trial (Tune trial id, Optuna trial number).
    index : int
        Order of first appearance in the sweep (0-based).
    name : str
        Engine voice name (``"trial<index>"``).
    base_hz : float
        Fundamental in Hz before the loss bends it.
    pan : float
        Stereo position, -1 (left) .. +1 (right).
    """

    trial_id: str
    index: int
    loss0: float | None = None
    grad0: float | None = None
    bend_semitones: float = 0.0

    @property
    def name(self) -> str:
        return f"trial{self.index}"

    @property
    def events_name(self) -> str:
        """Engine voice of this trial's earcons (``"trial<index>.events"``)."""
        return f"{self.name}.events"

    @property
    def base_hz(self) -> float:
        return BASE_HZ * 2.0 ** (REGISTER_STEP_SEMITONES * (self.index % N_REGISTERS) / 12.0)

    @property
    def pan(self) -> float:
        return PANS[self.index % len(PANS)]

    @property
    def timbre(self) -> tuple[float, ...]:
        return TIMBRES[(self.index + self.index // N_REGISTERS) % len(TIMBRES)]

    def freqs_hz(self) -> list[float]:
        f0 = self.base_hz * 2.0 ** (self.bend_semitones / 12.0)
        return [f0 * h for h in HARMONICS]

    def amps(self, brightness: float) -> list[float]:
        """Partial amplitudes: the timbre, upper partials scaled by ``brightness`` (0..1)."""
        out = []
        for i, (h, a) in enumerate(zip(HARMONICS, self.timbre)):
            if i and self.base_hz * h * 2 ** (MAX_BEND_SEMITONES / 12) > MAX_PARTIAL_HZ:
                a = 0.0
            out.append(VOICE_AMP * a * (1.0 if i == 0 else brightness))
        return out

    def start_events(self, t_s: float) -> list[Event]:
        """The voice appears (fading in over 0.3 s) at its base pitch."""
        spec = {"kind": "sines", "freq_hz": self.freqs_hz(), "amp": [0.0] * len(HARMONICS),
                "glide_s": GLIDE_S}
        return [Event(t_s, self.name, "add", spec),
                Event(t_s, self.name, "amp", self.amps(0.5), 0.3)]

    def report_events(self, t_s: float, loss=None, grad_norm=None) -> list[Event]:
        """Follow one report: loss -> pitch bend, gradient norm -> brightness and tremolo."""
        events = []
        unstable = False
        if loss is not None:
            value = _finite_positive(loss)
            try:
                nonfinite = not math.isfinite(float(loss))
            except (TypeError, ValueError):
                nonfinite = False
            if nonfinite:
                self.bend_semitones, unstable = MAX_BEND_SEMITONES, True
            elif value is not None:
                self.loss0 = self.loss0 or value
                bend = LOSS_BEND_SEMITONES_PER_DECADE * math.log10(value / self.loss0)
                self.bend_semitones = float(np.clip(bend, -MAX_BEND_SEMITONES, MAX_BEND_SEMITONES))
            events.append(Event(t_s, self.name, "freq_hz", self.freqs_hz(), GLIDE_S))
        g = _finite_positive(grad_norm)
        if g is not None:
            self.grad0 = self.grad0 or g
            ratio = math.log10(g / self.grad0)
            events.append(Event(t_s, self.name, "amp",
                                self.amps(float(np.clip(0.5 + 0.25 * ratio, 0.0, 1.0))), GLIDE_S))
            unstable = unstable or ratio > 1.0
        if loss is not None or g is not None:
            events.append(Event(t_s, self.name, "tremolo_hz", 7.0 if unstable else 0.0))
            events.append(Event(t_s, self.name, "tremolo_depth", 0.7 if unstable else 0.0))
        return events

    def end_events(self, t_s: float, fade_s: float = 0.4) -> list[Event]:
        """The voice fades out and is removed."""
        return [Event(t_s, self.name, "amp", [0.0] * len(HARMONICS), fade_s),
                Event(t_s + fade_s + 0.05, self.name, "remove")]

    def describe(self) -> dict:
        return {"trial_id": self.trial_id, "index": self.index, "voice": self.name,
                "base_hz": round(self.base_hz, 3), "pan": self.pan}

"""Tones that follow a value: the loss tone and the gradient tones."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from auralize.audio.score import Event
from auralize.audio.voices.sampler import midi_to_hz
from auralize.errors import AuralizeError
from auralize.sonify.earcons import earcon_play
from auralize.sonify.mappings.base import Mapping
from auralize.sonify.scales import (
    AUDITORY_GRAPH_MIDI,
    RunningBaseline,
    depth_pans,
    home_pitches,
    in_auditory_graph_range,
    loss_to_freq,
    relative_log_midi,
)
from auralize.sonify.telemetry import TrainingStep

log = logging.getLogger("auralize")


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


@dataclass
class LossTone(Mapping):
    """soNNify's ListenToLoss: one sine whose pitch follows the loss, gliding.

    ``f = min_freq + (L / L0) * (max_freq - min_freq)``, capped at ``max_freq``,
    where L0 is the first finite loss.  With ``hear_on="epoch"`` only epoch ends
    sound, using ``val_loss`` when the record has it.

    Context, as auditory graphs give it (Smith & Walker 2005: reference tones and
    tick marks make point estimates from sound far more accurate):
    ``reference_amp > 0`` adds a quiet steady tone (voice ``<voice>_ref``, a
    softer timbre: a sine with slow tremolo) at the starting loss's pitch, so
    "below the start" is audible at any moment; ``octave_ticks`` plays a short
    tick (voice ``ticks``) each time the loss tone crosses an octave below
    (or back above) its starting pitch.  A range outside MIDI 35..100 logs a
    warning (:data:`~auralize.sonify.scales.AUDITORY_GRAPH_MIDI`).
    """

    kind = "loss"
    hear_on: str = "batch"
    min_freq: float = 200.0
    max_freq: float = 1000.0
    amp: float = 0.3
    glide_s: float | None = None
    voice: str = "loss"
    reference_amp: float = 0.0
    octave_ticks: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hear_on not in ("batch", "epoch"):
            raise AuralizeError(f"hear_on must be 'batch' or 'epoch', not {self.hear_on!r}")
        if not 0 < self.min_freq < self.max_freq:
            raise AuralizeError(
                f"need 0 < min_freq < max_freq, got {self.min_freq} and {self.max_freq}"
            )
        if not (in_auditory_graph_range(self.min_freq) and in_auditory_graph_range(self.max_freq)):
            low, high = AUDITORY_GRAPH_MIDI
            log.warning("the loss tone's range %.0f..%.0f Hz leaves MIDI %d..%d, where pitch "
                        "is hard to judge", self.min_freq, self.max_freq, low, high)
        self._first_loss: float | None = None
        self._octave: int | None = None

    def context_events(self, freq: float, t_s: float) -> list[Event]:
        """Reference tone (at the first step) and octave ticks (when the octave changes)."""
        out = []
        if self.reference_amp > 0 and self._octave is None:
            out.append(Event(t_s, f"{self.voice}_ref", "add", {
                "kind": "sines", "freq_hz": [freq], "amp": [0.0], "tremolo_hz": 0.5,
                "tremolo_depth": 0.3}))
            out.append(Event(t_s, f"{self.voice}_ref", "amp", self.reference_amp, 0.5))
        start = loss_to_freq(self._first_loss, self._first_loss, self.min_freq, self.max_freq)
        octave = int(math.floor(math.log2(start / freq) + 1e-9)) if freq > 0 else 0
        if self.octave_ticks:
            if self._octave is None:
                out.append(Event(t_s, "ticks", "add", {"kind": "sampler"}))
            elif octave != self._octave:
                out.append(Event(t_s, "ticks", "play", earcon_play("tick", level=0.6)))
        self._octave = octave
        return out

    def value(self, record: TrainingStep) -> float | None:
        if self.hear_on == "epoch":
            if not record.epoch_end:
                return None
            return record.metrics.get("val_loss", record.loss)
        return record.loss

    def events(self, record, t_s, step_s):
        loss = self.value(record)
        if not _finite(loss):
            return []  # the alarm speaks for NaN/Inf; the tone holds its pitch
        loss = float(loss)
        if self._first_loss is None:
            self._first_loss = loss
        freq = loss_to_freq(loss, self._first_loss, self.min_freq, self.max_freq)
        glide = self.glide_s if self.glide_s is not None else min(0.05, step_s / 3)
        out = []
        if not self._started:
            self._started = True
            out.append(Event(t_s, self.voice, "add",
                             {"kind": "sines", "freq_hz": [freq], "amp": [0.0]}))
            out.append(Event(t_s, self.voice, "amp", self.amp, 0.05))
        out.append(Event(t_s, self.voice, "freq_hz", freq, glide))
        return out + self.context_events(freq, t_s)


@dataclass
class GradientTones(Mapping):
    """Gradient sonification: a short sweep, one tone per gradient voice per step.

    Voices are what the adapter records in ``grad_norms``: groups of layers
    (one per repeated block, at most 24 by default; :mod:`auralize.layer_groups`).
    Voice i sounds for one slot in model order, then ``gap_tones * duration``
    of silence (the gradient seed's rhythm, after Perone 2019).  A slot is
    ``duration`` seconds, shortened when there are more than ``max_slots``
    voices, so **a step never needs more than** ``(max_slots + gap_tones) *
    duration`` **seconds** on the step clock (0.26 s at the defaults) whatever
    the layer count.  One sine bank with a partial per voice keeps every tone's
    phase continuous; tone edges are 2 ms amplitude ramps, not clicks.

    Pitch (``scale``):

    - ``"log"`` (default): each voice against its own baseline, the median of
      its first ``baseline_steps`` norms
      (:func:`~auralize.sonify.scales.relative_log_midi`): the baseline sounds at
      the voice's home pitch, ten times larger an octave
      (``semitones_per_decade``) higher, ten times smaller an octave lower,
      within MIDI 35..100.  Home pitches rise through ``band_midi`` in model
      order (input low, output high), so a healthy step is a rising contour and
      a voice that explodes (x1000: three octaves up) or vanishes (x1e-4: to
      the bottom of the range) leaves it, for norms of any magnitude.
    - ``"linear"``: Perone's ``freq + hz_per_norm * ||g_i||`` Hz, unchanged
      (a number given as ``scale``, as configurations before this option had
      it, means ``"linear"`` with that many Hz per unit norm).

    A step the optimizer skipped (``record.skipped``, e.g. GradScaler overflow)
    has no gradient norms and no tones.  With ``mark_clipped=True`` a soft tick
    (voice ``<voice>_clip``) starts each step whose gradients
    ``clip_grad_norm_`` scaled down (``record.clipped``); the tones still give the
    pre-clip norms.
    """

    kind = "gradients"
    freq: float = 200.0
    duration: float = 0.01
    scale: str = "log"
    hz_per_norm: float = 100.0
    amp: float = 0.25
    gap_tones: int = 2
    edge_s: float = 0.002
    voice: str = "gradients"
    mark_clipped: bool = False
    clip_level: float = 0.5
    max_slots: int = 24
    baseline_steps: int = 10
    semitones_per_decade: float = 12.0
    band_midi: tuple = (57.0, 76.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.scale, str):     # the old field: Perone's Hz per unit norm
            self.hz_per_norm, self.scale = float(self.scale), "linear"
        if self.scale not in ("log", "linear"):
            raise AuralizeError(f"scale must be 'log' or 'linear', not {self.scale!r}")
        if self.duration <= 0:
            raise AuralizeError(f"duration must be positive, got {self.duration}")
        if int(self.max_slots) < 1:
            raise AuralizeError(f"max_slots must be at least 1, got {self.max_slots}")
        lo, hi = (float(v) for v in self.band_midi)
        low, high = AUDITORY_GRAPH_MIDI
        if not low <= lo <= hi <= high:
            raise AuralizeError(f"band_midi must lie within MIDI {low}..{high}, got {self.band_midi}")
        self.band_midi = (lo, hi)
        self.layers: list[str] = []
        self._clip_voice = False
        self._home = np.zeros(0)
        self._baselines = RunningBaseline(self.baseline_steps)

    # -- timing ---------------------------------------------------------------------
    def slot_s(self, n_voices: int) -> float:
        """One voice's tone length at full speed: ``duration``, shorter beyond ``max_slots`` voices."""
        return self.duration * min(1.0, self.max_slots / max(1, n_voices))

    def preferred_step_s(self, record):
        n = max(1, len(record.grad_norms))
        return n * self.slot_s(n) + self.gap_tones * self.duration

    # -- pitch --------------------------------------------------------------------------
    def group_depths(self) -> np.ndarray:
        """Each voice's depth in the model, 0 (input side) .. 1 (output side).

        The voices' stereo pans are ``depth_pans`` of the same order (a mono
        engine ignores them).
        """
        n = len(self.layers)
        return np.linspace(0.0, 1.0, n) if n > 1 else np.full(n, 0.5)

    def tone_midis(self, norms: np.ndarray) -> np.ndarray:
        """MIDI pitch of each voice's norm on the log scale (updates the baselines)."""
        out = np.empty(len(norms))
        for i, (name, x) in enumerate(zip(self.layers, norms)):
            base = self._baselines.update(name, float(x))
            out[i] = relative_log_midi(float(x), base, float(self._home[i]),
                                       semitones_per_decade=self.semitones_per_decade)
        return out

    def tone_freqs(self, record: TrainingStep) -> np.ndarray:
        """Frequency of each voice's tone this step (NaN: silent)."""
        norms = np.array([record.grad_norms.get(name, np.nan) for name in self.layers], float)
        if self.scale == "linear":
            return self.freq + self.hz_per_norm * norms
        midi = self.tone_midis(norms)
        with np.errstate(invalid="ignore"):
            return np.where(np.isfinite(midi), midi_to_hz(np.nan_to_num(midi, nan=60.0)), np.nan)

    def clip_events(self, record, t_s) -> list[Event]:
        """The tick of a clipped step (``mark_clipped``)."""
        if not (self.mark_clipped and getattr(record, "clipped", None)):
            return []
        out = []
        if not self._clip_voice:
            self._clip_voice = True
            out.append(Event(t_s, f"{self.voice}_clip", "add", {"kind": "sampler"}))
        out.append(Event(t_s, f"{self.voice}_clip", "play",
                         earcon_play("tick", level=self.clip_level, text="clipped")))
        return out

    def events(self, record, t_s, step_s):
        if not record.grad_norms or getattr(record, "skipped", False):
            return []
        out = self.clip_events(record, t_s)
        if not self._started:
            self._started = True
            self.layers = list(record.grad_norms)
            self._home = home_pitches(len(self.layers), self.band_midi)
            out.append(Event(t_s, self.voice, "add", {
                "kind": "sines", "freq_hz": [self.freq] * len(self.layers),
                "amp": [0.0] * len(self.layers), "glide_s": 0.0,
                # stereo engines place each voice by its depth (input left, output right)
                "pan": depth_pans(len(self.layers)),
            }))
        freqs = self.tone_freqs(record)
        audible = np.isfinite(freqs)
        # Silent partials may jump in pitch (glide 0): nobody hears the jump.
        out.append(Event(t_s, self.voice, "freq_hz", np.where(audible, freqs, self.freq), 0.0))
        n = len(self.layers)
        full = self.slot_s(n)
        slot = min(full, step_s * full / (n * full + self.gap_tones * self.duration))
        for i in range(n):
            amps = np.zeros(n)
            amps[i] = self.amp if audible[i] else 0.0
            out.append(Event(t_s + i * slot, self.voice, "amp", amps, self.edge_s))
        out.append(Event(t_s + n * slot, self.voice, "amp", np.zeros(n), self.edge_s))
        return out


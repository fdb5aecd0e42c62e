"""The weight chord: the pooled unit means of one layer as a chord."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sonify.mappings.base import Mapping
from auralize.sonify.scales import CHORDS, chord_pitches, fold_into_range
from auralize.sonify.telemetry import TrainingStep


@dataclass
class WeightChord(Mapping):
    """soNNify's WeightsDense: a chord with one sine per unit of a dense layer.

    Pitches follow :func:`~auralize.sonify.scales.chord_pitches`, folded by
    octaves under ``max_freq`` so layers of thousands of units stay audible.
    Each partial passes a band-pass (Q ``q``) whose centre falls like a saw
    from ``sweep_hi`` to ``sweep_lo`` at ``|mean weight of the unit| * lfo_scale``
    Hz.  At each epoch end every unit is detuned by
    ``(mean_now - mean_before) * detune_scale`` Hz, released after
    ``detune_hold`` of the previous epoch's length.

    ``which_layer``: ``"auto"`` (default) is the last dense layer that is not
    a vocabulary head (an LM head tied to an embedding or as wide as the
    vocabulary), so a transformer plays its last hidden layer; an index among
    the dense layers (-1: the last, soNNify's choice) or a name picks one.  A
    layer of more than ``max_partials`` units is heard pooled: contiguous runs
    of units averaged (on the device) into ``max_partials`` partials, so the
    chord and the telemetry rows stay small for any width.
    """

    kind = "weights"
    which_layer: int | str = "auto"
    base_freq: float = 100.0
    harmony: str = "major"
    amp: float = 0.4
    q: float = 1.0
    lfo_scale: float = 200.0
    detune_scale: float = 10000.0
    detune_hold: float = 0.2
    sweep_lo: float = 200.0
    sweep_hi: float = 2200.0
    max_freq: float = 4000.0
    chorus_cents: float = 25.0
    voice: str = "weights"
    max_partials: int = 48

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.harmony not in CHORDS:
            raise AuralizeError(
                f"unknown harmony {self.harmony!r}; choose one of {', '.join(CHORDS)}"
            )
        if int(self.max_partials) < 1:
            raise AuralizeError(f"max_partials must be at least 1, got {self.max_partials}")
        self._previous: np.ndarray | None = None
        self._epoch_start_s = 0.0
        self._last_epoch_s: float | None = None

    def unit_means_requests(self):
        return [(self.which_layer, "epoch", int(self.max_partials))]

    def layer_means(self, record: TrainingStep) -> np.ndarray | None:
        if not record.unit_means:
            return None
        if isinstance(self.which_layer, str) and self.which_layer != "auto":
            if self.which_layer not in record.unit_means:
                return None
            values = record.unit_means[self.which_layer]
        else:
            # Adapters resolve an index to the layer's name; with one request
            # there is one entry.
            values = next(iter(record.unit_means.values()))
        means = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(means)
        return means if finite.all() else np.where(finite, means, 0.0)  # (nan_to_num is slower)

    def pitches(self, n_units: int) -> np.ndarray:
        chord = chord_pitches(n_units, self.base_freq, self.harmony)
        freqs = fold_into_range(chord, self.max_freq, self.base_freq)
        folded = chord > self.max_freq
        # Folding makes unisons; spread the folded members of each group of
        # repeats evenly over +-chorus_cents, so a big layer sounds like a chorus
        # instead of a few very loud sines (unfolded pitches stay the seed's).
        _, inverse, counts = np.unique(freqs, return_inverse=True, return_counts=True)
        if counts.max() > 1:
            order = np.argsort(freqs, kind="stable")
            sorted_f = freqs[order]
            rank = np.empty(n_units)
            rank[order] = np.arange(n_units) - np.searchsorted(sorted_f, sorted_f, side="left")
            count = counts[inverse]
            position = np.where(folded & (count > 1), (rank + 0.5) / count * 2.0 - 1.0, 0.0)
            freqs = freqs * 2.0 ** (self.chorus_cents * position / 1200.0)
        return freqs

    def events(self, record, t_s, step_s):
        means = self.layer_means(record)
        if means is None:
            return []
        out = []
        if not self._started:
            self._started = True
            n = len(means)
            out.append(Event(t_s, self.voice, "add", {
                "kind": "sines", "freq_hz": self.pitches(n), "amp": np.zeros(n),
                "bp_q": self.q, "sweep_hz": np.abs(means) * self.lfo_scale,
                "sweep_lo_hz": self.sweep_lo, "sweep_hi_hz": self.sweep_hi, "glide_s": 0.05,
            }))
            out.append(Event(t_s, self.voice, "amp", self.amp / math.sqrt(n), 0.3))
            self._previous = means
            self._epoch_start_s = t_s
            return out
        if len(means) != len(self._previous):
            return []
        shift = (means - self._previous) * self.detune_scale
        out.append(Event(t_s, self.voice, "shift_hz", shift, 0.05))
        out.append(Event(t_s, self.voice, "sweep_hz", np.abs(means) * self.lfo_scale))
        epoch_s = max(step_s, t_s - self._epoch_start_s)
        hold = self.detune_hold * (self._last_epoch_s or epoch_s)
        out.append(Event(t_s + hold, self.voice, "shift_hz", 0.0, 0.1))
        self._previous = means
        self._last_epoch_s = epoch_s
        self._epoch_start_s = t_s
        return out


"""Mappings: training telemetry in, engine events out.

Each mapping is a small object with plain parameters; given the records of a
run in order, it produces the same events every time, so a run folder's
``telemetry.jsonl`` re-renders bit-for-bit.  No audio is made here, so
mappings are tested by looking at their events (as astronify tests its pitch
mapping).

A mapping provides

- ``events(record, t_s, step_s)``: events for one step starting at score time
  ``t_s`` (voices are created by ``"add"`` events the first time they are
  needed);
- ``preferred_step_s(record)``: how long a step wants to last in the step clock
  (``None``: no preference);
- ``unit_means_requests()``: layers whose per-unit weight means it needs;
- ``final_events(t_s)``: events when training ends (announcements), and
  ``sounding_until_s()``: score time until which its sounds last (a spoken
  sentence outlasts its event), so the recording is not cut short.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import asdict, dataclass, field

import numpy as np

from auralize.audio import sampler
from auralize.audio.sampler import midi_to_hz
from auralize.audio.score import Event
from auralize.errors import AuralizeError
from auralize.sonify.announce import KINDS, Announcement, Announcer
from auralize.sonify.scales import (
    AUDITORY_GRAPH_MIDI,
    CHORDS,
    RunningBaseline,
    chord_pitches,
    depth_pans,
    fold_into_range,
    home_pitches,
    in_auditory_graph_range,
    loss_to_freq,
    relative_log_midi,
)
from auralize.sonify.speech import prepare_speech
from auralize.sonify.telemetry import TrainingStep

log = logging.getLogger("auralize")


def _finite(x) -> bool:
    return x is not None and math.isfinite(float(x))


@dataclass
class Mapping:
    """Base class; subclasses are dataclasses whose fields are their whole config."""

    kind = "mapping"
    #: True when :meth:`events` reads ``record.weight_stats`` (adapters compute them only then)
    needs_weight_stats = False

    def __post_init__(self) -> None:
        self._started = False
        self.busy_until_s = 0.0

    def config(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def preferred_step_s(self, record: TrainingStep) -> float | None:
        return None

    def unit_means_requests(self) -> list[int | str]:
        return []

    def events(self, record: TrainingStep, t_s: float, step_s: float) -> list[Event]:
        raise NotImplementedError

    def final_events(self, t_s: float) -> list[Event]:
        return []

    def sounding_until_s(self) -> float:
        return self.busy_until_s


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
                out.append(Event(t_s, "ticks", "play", {"earcon": "tick", "level": 0.6}))
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
                         {"earcon": "tick", "level": self.clip_level, "text": "clipped"}))
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


@dataclass
class Alarm(Mapping):
    """A distinct two-tone pulse when training breaks: NaN/Inf or a sudden loss spike.

    A spike is a finite loss above ``spike_factor`` times the median of the last
    ``window`` finite losses.  Each onset logs one warning line.

    A step the optimizer skipped (``record.skipped``: the AMP loss scaler found
    inf/NaN gradients, routine while it finds its scale) is not an explosion:
    one short, quieter blip of ``skip_s`` seconds and, at an onset, a log line
    saying so.
    """

    kind = "alarm"
    spike_factor: float = 3.0
    window: int = 20
    hold_s: float = 0.4
    amp: float = 0.35
    voice: str = "alarm"
    skip_s: float = 0.06

    def __post_init__(self) -> None:
        super().__post_init__()
        self._recent: list[float] = []
        self._active: str | None = None
        self.counts: dict[str, int] = {"nonfinite": 0, "spike": 0}   # "skipped" when any

    def diagnose(self, record: TrainingStep) -> str | None:
        """The reason this step should sound the alarm, or None."""
        loss = record.loss
        if loss is not None and not math.isfinite(loss):
            return f"loss is {loss}"
        if getattr(record, "skipped", False):
            return (f"optimizer step skipped ({record.skip_reason or 'no reason given'}); "
                    f"no gradient tones for it")
        bad = [k for k, v in record.grad_norms.items() if v is None or not math.isfinite(v)]
        if bad:
            return f"gradient norm of {bad[0]!r} is {record.grad_norms[bad[0]]}"
        if loss is not None and len(self._recent) >= 5:
            median = statistics.median(self._recent)  # numpy's costs ~30 us per step here
            if median > 0 and loss > self.spike_factor * median:
                return f"loss spiked to {loss:.4g} ({loss / median:.1f}x the recent median)"
        return None

    def events(self, record, t_s, step_s):
        reason = self.diagnose(record)
        if record.loss is not None and math.isfinite(record.loss):
            self._recent = (self._recent + [record.loss])[-self.window:]
        out = []
        if not self._started:
            self._started = True
            out.append(Event(t_s, self.voice, "add", {
                "kind": "sines", "freq_hz": [1318.5, 1760.0], "amp": [0.0, 0.0],
                "tremolo_hz": 9.0, "tremolo_depth": 1.0,
            }))
        if reason is None:
            self._active = None
            return out
        kind = ("spike" if "spiked" in reason else
                "skipped" if reason.startswith("optimizer step skipped") else "nonfinite")
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self._active != kind:  # one line per onset, and when the trouble changes
            sound = ("one blip" if kind == "skipped" else
                     "the alarm sounds (audio stays finite)")
            log.warning("step %d: %s: %s", record.step, reason, sound)
        self._active = kind
        if kind == "skipped":
            level, hold = 0.5 * self.amp, min(self.skip_s, self.hold_s)
        else:
            level, hold = self.amp, max(self.hold_s, step_s)
        out.append(Event(t_s, self.voice, "amp", [level, level * 0.8], 0.005))
        out.append(Event(t_s + hold, self.voice, "amp", [0.0, 0.0], 0.05 if kind != "skipped"
                         else 0.01))
        return out


@dataclass
class Earcons(Mapping):
    """Short distinct sounds for the moments a listener must not miss.

    ``epoch`` (two bright notes), ``best`` (rising arpeggio), ``diverge`` (low
    buzzy falling tritone, NaN/Inf loss), ``end`` (three-note bell); see
    :data:`auralize.audio.sampler.EARCONS`.  Each event carries the sentence the
    ``speech`` mapping would say as a caption (the page's live region shows it).
    Options as for :class:`Speech` (``verbosity``, ``metrics``, ``monitor``,
    ``announce``), plus ``level`` (0..1).
    """

    kind = "earcons"
    verbosity: str = "normal"
    metrics: list | None = None
    monitor: str = "val_loss"
    announce: list = field(default_factory=lambda: list(KINDS))
    level: float = 0.8
    voice: str = "earcons"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.announcer = Announcer(self.verbosity, self.metrics, self.monitor, self.announce)

    def _add(self, t_s: float) -> list[Event]:
        if self._started:
            return []
        self._started = True
        return [Event(t_s, self.voice, "add", {"kind": "sampler"})]

    def play_events(self, news: list[Announcement], t_s: float) -> list[Event]:
        """One earcon for the most important announcement (a new best outranks its epoch end)."""
        if not news:
            return []
        top = news[0]
        text = ". ".join(a.text for a in news)
        self.busy_until_s = max(self.busy_until_s, t_s + sampler.earcon_duration_s(top.kind))
        return self._add(t_s) + [Event(t_s, self.voice, "play", {
            "earcon": top.kind, "level": self.level, "text": text})]

    def events(self, record, t_s, step_s):
        return self._add(t_s) + self.play_events(self.announcer.step(record), t_s)

    def final_events(self, t_s):
        end = self.announcer.end()
        return self.play_events([end], t_s) if end is not None else []


@dataclass
class Speech(Earcons):
    """Spoken announcements (local text-to-speech, espeak-ng) in the sound itself.

    At an epoch end: "epoch 3, loss 0.42, accuracy 91 percent"; on a new best
    validation value: "new best validation loss 0.31"; when the loss turns
    NaN/Inf: "warning: loss is not a number"; at the end: "training finished,
    3 epochs, best validation loss 0.31".  A new sentence interrupts one still
    being spoken, as a screen reader does.  Without espeak-ng: one warning, and
    the earcons of :class:`Earcons` instead.

    Parameters
    ----------
    rate_wpm : int
        Speaking rate, words per minute (80..500; screen-reader users often
        prefer 250 and more).
    verbosity : {"brief", "normal", "full"}
        Epoch ends say the epoch only; with ``metrics``; with every metric.
    metrics : list of str, optional
        Metrics said at epoch ends (default: loss, accuracy, val_loss,
        val_accuracy, eval_loss, eval_accuracy, those present).
    monitor : str
        The metric whose improvement is announced as a new best.
    announce : list of str
        Which of ``diverge``, ``best``, ``epoch``, ``end`` to announce.
    tts_voice, pitch : str, int
        espeak-ng voice (language) and base pitch (0..99).
    level : float
        Speech level, 0..1.
    """

    kind = "speech"
    rate_wpm: int = 175
    tts_voice: str = "en"
    pitch: int = 50
    level: float = 1.0
    voice: str = "speech"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._pending: list = []  # (start s, Future of the sentence's length in s)
        low, high = sampler.SPEECH_RATE_WPM.low, sampler.SPEECH_RATE_WPM.high
        if not low <= self.rate_wpm <= high:
            raise AuralizeError(f"rate_wpm must be {low:.0f}..{high:.0f} words per minute, "
                                f"got {self.rate_wpm}")
        self.speaking = sampler.speech_available()
        if not self.speaking:
            sampler.warn_no_speech()

    def play_events(self, news, t_s):
        if not self.speaking or not news:
            return super().play_events(news, t_s)
        text = ". ".join(a.text for a in news)
        settings = (int(self.rate_wpm), self.tts_voice, int(self.pitch))
        # Synthesised now in a background thread (the training loop does not wait)
        # and cached on disk, so the renderers only load it; its length makes the
        # recording last until the sentence ends.
        self._pending.append((t_s, prepare_speech(text, *settings)))
        return self._add(t_s) + [Event(t_s, self.voice, "play", {
            "speech": text, "rate_wpm": settings[0], "voice": settings[1], "pitch": settings[2],
            "level": self.level, "cut": True, "text": text})]

    def sounding_until_s(self) -> float:
        for t_s, length in self._pending:
            self.busy_until_s = max(self.busy_until_s, t_s + length.result())
        self._pending = []
        return self.busy_until_s


MAPPINGS: dict[str, type[Mapping]] = {
    cls.kind: cls for cls in (LossTone, GradientTones, WeightChord, Alarm, Earcons, Speech)
}


def make_mapping(spec) -> Mapping:
    """A mapping from its name (``"loss"``), its config dict, or a mapping object."""
    if isinstance(spec, Mapping):
        return spec
    if isinstance(spec, str):
        spec = {"kind": spec}
    spec = dict(spec)
    kind = spec.pop("kind", None)
    cls = MAPPINGS.get(kind)
    if cls is None:
        raise AuralizeError(f"unknown mapping {kind!r}; choose from {', '.join(MAPPINGS)}")
    try:
        return cls(**spec)
    except TypeError as exc:
        raise AuralizeError(f"bad settings for the {kind!r} mapping: {exc}") from None


@dataclass
class MappingSet:
    """Several mappings sharing one step clock."""

    mappings: list[Mapping] = field(default_factory=list)

    def preferred_step_s(self, record: TrainingStep) -> float:
        wishes = [m.preferred_step_s(record) for m in self.mappings]
        wishes = [w for w in wishes if w]
        return max(wishes) if wishes else 0.05

    def events(self, record, t_s, step_s) -> list[Event]:
        out: list[Event] = []
        for mapping in self.mappings:
            out.extend(mapping.events(record, t_s, step_s))
        return out

    def final_events(self, t_s: float) -> list[Event]:
        return [e for mapping in self.mappings for e in mapping.final_events(t_s)]

    def sounding_until_s(self) -> float:
        return max((m.sounding_until_s() for m in self.mappings), default=0.0)

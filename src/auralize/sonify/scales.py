"""Value -> sound scales: pure functions and small stateful normalisers.

Everything here is testable without audio (as astronify's pitch mapping is):
a number goes in, a frequency or a position in [0, 1] comes out.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from auralize.audio.voices.sampler import midi_to_hz


def linear(x: float, lo: float, hi: float) -> float:
    """Position of ``x`` between ``lo`` and ``hi``, clipped to [0, 1] (0.5 if lo == hi)."""
    if hi == lo:
        return 0.5
    return float(min(1.0, max(0.0, (x - lo) / (hi - lo))))


def log_position(x: float, lo: float, hi: float) -> float:
    """Like :func:`linear` on a logarithmic axis; ``lo`` and ``hi`` must be positive."""
    if lo <= 0 or hi <= 0:
        raise ValueError("log scale bounds must be positive")
    return linear(math.log(max(x, 1e-300)), math.log(lo), math.log(hi))


def position_to_hz(position: float, min_freq_hz: float, max_freq_hz: float, *,
                   curve: str = "linear") -> float:
    """Map a position in [0, 1] to a frequency, linearly or on a log (musical) axis."""
    position = min(1.0, max(0.0, position))
    if curve == "log":
        return min_freq_hz * (max_freq_hz / min_freq_hz) ** position
    return min_freq_hz + position * (max_freq_hz - min_freq_hz)


#: Pitch range of an auditory graph: MIDI notes 35..100 (about 62..2637 Hz), after
#: Brown, Brewster, Ramloll, Burton & Riedel, "Design guidelines for audio
#: presentation of graphs and tables", ICAD 2003: notes outside it are hard to judge.
AUDITORY_GRAPH_MIDI = (35, 100)


def in_auditory_graph_range(freq_hz: float) -> bool:
    """True for a pitch inside :data:`AUDITORY_GRAPH_MIDI` (a hair of tolerance)."""
    low, high = (midi_to_hz(n) for n in AUDITORY_GRAPH_MIDI)
    return low * 0.999 <= freq_hz <= high * 1.001


def relative_log_midi(norm: float, baseline: float, home_midi: float, *,
                      semitones_per_decade: float = 12.0,
                      midi_range: tuple[float, float] = AUDITORY_GRAPH_MIDI) -> float:
    """Pitch (MIDI note, fractional) of a value relative to its own baseline, on a log axis.

    ``home_midi + semitones_per_decade * log10(norm / baseline)``, clipped to
    ``midi_range``: the baseline sounds at ``home_midi``, ten times larger an
    octave higher (at the default 12 semitones per decade), ten times smaller an
    octave lower.  Only the ratio counts, so norms of 1e-6 and of 1e4 behave
    alike: vanishing goes down, exploding goes up.

    Parameters
    ----------
    norm : float
        The value now (a gradient norm).  0 gives the bottom of the range;
        NaN/Inf give NaN (the caller keeps that voice silent; the alarm speaks).
    baseline : float
        The value's reference (e.g. the median of its first steps); not
        positive or not finite: ``home_midi``.
    home_midi : float
        The pitch of the baseline.
    semitones_per_decade : float
        Pitch change for a factor of ten.
    midi_range : (float, float)
        Lowest and highest note (default MIDI 35..100, :data:`AUDITORY_GRAPH_MIDI`).

    Examples
    --------
    >>> relative_log_midi(1e-3, 1e-6, 60.0)     # 1000x its baseline: three octaves up, clipped
    96.0
    >>> relative_log_midi(2.0, 20.0, 60.0)      # a tenth: an octave down
    48.0
    """
    lo, hi = midi_range
    if not math.isfinite(norm):
        return math.nan
    if norm <= 0:
        return float(lo)
    if not (math.isfinite(baseline) and baseline > 0):
        return float(min(hi, max(lo, home_midi)))
    midi = home_midi + semitones_per_decade * math.log10(norm / baseline)
    return float(min(hi, max(lo, midi)))


def home_pitches(n: int, band_midi: tuple[float, float] = (57.0, 76.0)) -> np.ndarray:
    """Baseline pitches (MIDI) of ``n`` voices: rising through ``band_midi`` in model order.

    Input-side voices sit low, output-side voices high, on whole semitones, so
    a healthy step sounds as a rising contour and each voice has its own
    register.  One voice sits in the band's middle.
    """
    lo, hi = band_midi
    if n <= 1:
        return np.array([round((lo + hi) / 2)] * max(n, 0), dtype=np.float64)
    return np.round(np.linspace(lo, hi, n))


class RunningBaseline:
    """Per-key baseline: the median of the first ``steps`` finite positive values.

    Until ``steps`` values are in, the median of those seen so far (the first
    value is its own baseline).  Deterministic: the same values in the same
    order give the same baselines, so a re-render is identical.
    """

    def __init__(self, steps: int = 10) -> None:
        self.steps = max(1, int(steps))
        self._seen: dict[str, list[float]] = {}
        self._value: dict[str, float] = {}

    def update(self, key: str, x: float) -> float:
        """Add ``x`` (if it counts) and return the key's baseline (NaN when none yet)."""
        seen = self._seen.setdefault(key, [])
        if len(seen) < self.steps and math.isfinite(x) and x > 0:
            seen.append(float(x))
            self._value[key] = float(np.median(seen))
        return self._value.get(key, math.nan)


def cents_to_ratio(cents: float) -> float:
    """Frequency ratio of an interval in cents (1200 cents = one octave)."""
    return 2.0 ** (cents / 1200.0)


def loss_to_freq(loss: float, first_loss: float, min_freq_hz: float, max_freq_hz: float) -> float:
    """soNNify's loss pitch: ``min + (L / L0) * (max - min)``, capped at ``max``.

    Parameters
    ----------
    loss : float
        Present loss L.
    first_loss : float
        The first loss of the run, L0 (its magnitude is used; 0 is treated as tiny).
    min_freq_hz, max_freq_hz : float
        Pitch of a zero loss and of a loss at or above L0.

    Examples
    --------
    >>> loss_to_freq(0.5, 2.0, 200, 1000)
    400.0
    """
    reference = max(abs(first_loss), 1e-12)
    ratio = max(0.0, loss) / reference
    return float(min(max_freq_hz, min_freq_hz + ratio * (max_freq_hz - min_freq_hz)))


class FirstValueRelative:
    """Scale relative to the first finite value seen (soNNify's L/L0), clipped to [0, 1]."""

    def __init__(self) -> None:
        self.first: float | None = None

    def __call__(self, x: float) -> float:
        if self.first is None and math.isfinite(x):
            self.first = abs(x) if x != 0 else 1e-12
        if self.first is None:
            return 0.5
        return min(1.0, max(0.0, x / self.first))


class RunningMinMax:
    """Position of a value between the smallest and largest values seen so far."""

    def __init__(self) -> None:
        self.lo = math.inf
        self.hi = -math.inf

    def __call__(self, x: float) -> float:
        if math.isfinite(x):
            self.lo, self.hi = min(self.lo, x), max(self.hi, x)
        if not math.isfinite(self.lo):
            return 0.5
        return linear(x, self.lo, self.hi)


class RollingPercentile:
    """Position between low/high percentiles of a sliding window: follows drifting values.

    Useful for gradient norms, which can drift over orders of magnitude in one run.
    """

    def __init__(self, window: int = 200, low_pct: float = 5.0, high_pct: float = 95.0) -> None:
        self.values: deque[float] = deque(maxlen=int(window))
        self.low_pct, self.high_pct = low_pct, high_pct

    def __call__(self, x: float) -> float:
        if math.isfinite(x):
            self.values.append(float(x))
        if not self.values:
            return 0.5
        lo, hi = np.percentile(self.values, [self.low_pct, self.high_pct])
        return linear(x, float(lo), float(hi))


#: soNNify's chord ratio tables.
CHORDS: dict[str, tuple[int, ...]] = {
    "major": (1, 4, 5, 6),
    "minor": (1, 10, 12, 15),
    "dim": (1, 20, 24, 29),
    "7th": (1, 20, 25, 30, 36),
    "min7th": (1, 10, 12, 15, 18),
    "maj7th": (1, 8, 10, 12, 15),
}


def chord_pitches(n_units: int, base_freq_hz: float, harmony: str = "major") -> np.ndarray:
    """soNNify's pitches for a layer of ``n_units``: the chord stacked in groups.

    Group k (k = 1, 2, ...) adds ``base * k * ratio[i] / ratio[1]`` for the chord's
    ratios after the first, until there is one pitch per unit.

    Examples
    --------
    >>> chord_pitches(10, 100, "major").tolist()
    [100.0, 125.0, 150.0, 200.0, 250.0, 300.0, 300.0, 375.0, 450.0, 400.0]
    """
    try:
        ratios = CHORDS[harmony]
    except KeyError:
        raise ValueError(
            f"unknown harmony {harmony!r}; choose one of {', '.join(CHORDS)}"
        ) from None
    steps = np.array(ratios[1:], dtype=np.float64) / ratios[1]
    groups = -(-n_units // len(steps))
    k = np.arange(1, groups + 1, dtype=np.float64)[:, None]
    return (base_freq_hz * k * steps[None, :]).ravel()[:n_units]


def fold_into_range(freqs_hz: np.ndarray, max_freq_hz: float, low_freq_hz: float) -> np.ndarray:
    """Fold pitches above ``max_freq_hz`` down by octaves until they are at most that.

    A layer of thousands of units would otherwise put most of its chord above
    hearing (the seed's "may break when the layer has too many neurons");
    octave folding keeps each unit's pitch class.
    """
    f = np.asarray(freqs_hz, dtype=np.float64).copy()
    if max_freq_hz < 2 * low_freq_hz:
        raise ValueError("max_freq_hz must be at least an octave above low_freq_hz")
    high = f > max_freq_hz
    if high.any():
        octaves = np.ceil(np.log2(f[high] / max_freq_hz))
        f[high] = f[high] / 2.0 ** octaves
    return f


def depth_pans(n: int) -> list[float]:
    """Stereo positions for ``n`` groups in model order: input left, output right.

    Evenly spaced from -1 (the first group, nearest the input) to +1 (the last,
    nearest the output), so a problem's place in the network is heard as a place
    between the speakers; one group sits in the centre.  For the engine's ``pan``
    (a sine bank takes one per partial).

    >>> depth_pans(3)
    [-1.0, 0.0, 1.0]
    """
    if n < 1:
        return []
    if n == 1:
        return [0.0]
    return [-1.0 + 2.0 * k / (n - 1) for k in range(n)]

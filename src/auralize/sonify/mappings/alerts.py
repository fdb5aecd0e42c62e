"""Sounds for moments a listener must not miss: the alarm, earcons and speech."""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass, field

from auralize.audio.score import Event
from auralize.audio.voices import sampler
from auralize.errors import AuralizeError
from auralize.sonify.announce import KINDS, Announcement, Announcer
from auralize.sonify.earcons import earcon_duration_s, earcon_play
from auralize.sonify.mappings.base import Mapping
from auralize.sonify.speech import prepare_speech
from auralize.sonify.telemetry import TrainingStep

log = logging.getLogger("auralize")


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
    :data:`auralize.sonify.earcons.EARCONS`.  Each event carries the sentence the
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
        self.busy_until_s = max(self.busy_until_s, t_s + earcon_duration_s(top.kind))
        return self._add(t_s) + [Event(t_s, self.voice, "play",
                                     earcon_play(top.kind, level=self.level, text=text))]

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


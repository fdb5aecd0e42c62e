"""The engine: voices, timed events, master gain and limiter, rendered in spans.

One engine serves both clocks.  Offline, :func:`auralize.audio.score.render_score`
pulls blocks as fast as it can; live, :mod:`auralize.audio.live.output` pulls them from a
child process as the device needs them.  Either way the output depends only on
the events and their times, never on the block size asked for: internally the
engine renders spans that end at a fixed grid of ``chunk_size`` frames, at
every event and at every glide end, and hands out blocks from what it has.
All spans up to the next event go to each voice at once, and the master gain
and limiter run over them in one compiled call (:mod:`auralize.audio.kernels`),
so the Python work is per event and per block, not per voice and span.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

import numpy as np

from auralize.audio import kernels
from auralize.audio.voices.base import Voice
from auralize.audio.voices.kinds import make_voice
from auralize.audio.voices.params import EngineStats, Param, Range, sanitize

MASTER = "master"
MASTER_GAIN = Range(0.0, 1.0, 0.0)


class Engine:
    """Synthesis engine with sample-accurate events, mono or any channel count.

    Parameters
    ----------
    sample_rate : int
        Sample rate in Hz.
    channels : int
        Output channels.  1 (default): mono, every voice's ``pan`` ignored
        (the same samples as before panning existed).  2: stereo, each voice
        (each sine partial) placed by its ``pan`` with the equal-power law;
        more: the pan runs across the channels in order
        (:func:`auralize.audio.kernels.pan_gain`).
    chunk_size : int
        Longest internal span in frames (control period).  Parameter changes
        scheduled with time ``None`` take effect at the next span, so this is
        also the engine's share of live latency (512 frames = 11.6 ms at 44.1 kHz).
    master_gain : float
        Output gain in [0, 1] applied before the limiter (event ``master.gain``).
    limiter_threshold : float
        Peak level the limiter holds the output under; a soft clipper above it
        keeps every sample strictly inside (-1, 1).

    Notes
    -----
    Events naming ``voice="master", param="gain"`` set the master gain; events
    with ``param="add"`` (value: a voice spec dict) or ``param="remove"`` create
    and delete voices, so a whole session can be written as one score.
    """

    #: absolute peak of any output sample (a hair under full scale, so 16-bit
    #: conversion never wraps)
    CEILING = 0.999

    def __init__(
        self,
        sample_rate: int = 44100,
        *,
        channels: int = 1,
        chunk_size: int = 512,
        master_gain: float = 0.5,
        limiter_threshold: float = 0.9,
        limiter_release_s: float = 0.25,
    ) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if chunk_size < 16:
            raise ValueError(f"chunk_size must be at least 16 frames, got {chunk_size}")
        if int(channels) < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.chunk_size = int(chunk_size)
        self.stats = EngineStats()
        self.voices: dict[str, Voice] = {}
        self.master = Param(sanitize(master_gain, 1, MASTER_GAIN, self.stats))
        if not 0.0 < limiter_threshold < self.CEILING:
            raise ValueError(
                f"limiter_threshold must be in (0, {self.CEILING}), got {limiter_threshold}"
            )
        self.limiter_threshold = float(limiter_threshold)
        self.limiter_release_s = float(limiter_release_s)
        # gain, threshold, release (frames), ceiling: the compiled output stage's state
        self._limiter = np.array([1.0, self.limiter_threshold,
                                  self.limiter_release_s * self.sample_rate, self.CEILING])
        self._queue: list[tuple[int, int, object]] = []
        self._seq = itertools.count()
        self._synth_pos = 0  # frames synthesised
        self._out_pos = 0  # frames handed out
        self._buffer = self._empty()

    def _empty(self) -> np.ndarray:
        shape = (0,) if self.channels == 1 else (0, self.channels)
        return np.zeros(shape, dtype=np.float32)

    # -- construction -------------------------------------------------------
    @classmethod
    def from_events(cls, events: Iterable, **kwargs) -> Engine:
        engine = cls(**kwargs)
        for event in events:
            engine.schedule(event)
        return engine

    def add_voice(self, name: str, spec: dict) -> None:
        """Create voice ``name`` from ``spec`` now (replacing one of that name)."""
        self.voices[name] = make_voice(spec, self.sample_rate, self.stats)

    # -- time ---------------------------------------------------------------
    @property
    def frames_rendered(self) -> int:
        """Frames handed out by :meth:`render` so far."""
        return self._out_pos

    @property
    def time_s(self) -> float:
        """Seconds of audio handed out so far."""
        return self._out_pos / self.sample_rate

    @property
    def synth_frame(self) -> int:
        """The frame at which an event scheduled now (``time_s=None``) takes effect."""
        return self._synth_pos

    # -- events -------------------------------------------------------------
    def schedule(self, event) -> None:
        """Queue an :class:`~auralize.audio.score.Event`.

        An event whose time has already been synthesised, or whose time is
        ``None``, takes effect at the start of the next span.
        """
        if event.time_s is None or not np.isfinite(event.time_s):
            frame = self._synth_pos
        else:
            frame = max(self._synth_pos, int(round(event.time_s * self.sample_rate)))
        heapq.heappush(self._queue, (frame, next(self._seq), event))

    def _apply(self, event) -> None:
        if event.param == "add":
            self.add_voice(event.voice, event.value)
            self.voices[event.voice].align_phase(self._synth_pos)
            return
        if event.param == "remove":
            self.voices.pop(event.voice, None)
            return
        if event.param == "pan" and self.channels == 1:
            return  # mono: nowhere to place a voice (nor a glide to cut spans at)
        if event.voice == MASTER and event.param == "gain":
            seconds = 0.05 if event.glide_s is None else event.glide_s
            frames = int(round(max(0.0, seconds) * self.sample_rate))
            self.master.set(sanitize(event.value, 1, MASTER_GAIN, self.stats), frames)
            return
        voice = self.voices.get(event.voice)
        if voice is None or not voice.set(event.param, event.value, event.glide_s):
            self.stats.unknown_events += 1
        elif voice.clock_phase and event.param in ("freq_hz", "shift_hz", "play"):
            voice.align_phase(self._synth_pos)

    # -- rendering ----------------------------------------------------------
    def _apply_due_events(self) -> None:
        while self._queue and self._queue[0][0] <= self._synth_pos:
            self._apply(heapq.heappop(self._queue)[2])

    def _spans_until(self, target: int) -> np.ndarray:
        """Span lengths from the synthesis position to the next event or ``target``.

        ``target`` is rounded up to the chunk grid, so where spans end depends
        only on the events and their times, never on the block size asked for:
        spans end at every multiple of ``chunk_size``, at the next event and at
        every glide end (every parameter is linear inside a span).
        """
        pos, chunk = self._synth_pos, self.chunk_size
        end = max(-(-target // chunk) * chunk, pos + 1)
        if self._queue:
            end = min(end, max(self._queue[0][0], pos + 1))
        remaining = [self.master.remaining]
        for voice in self.voices.values():
            remaining.extend(voice.glide_remainders())
        cuts = {pos + r for r in remaining if 0 < r < end - pos}
        first_grid = (pos // chunk + 1) * chunk
        if not cuts and first_grid >= end:  # one span (the live case)
            return np.array([end - pos], dtype=np.int64)
        cuts.update(range(first_grid, end, chunk))
        edges = sorted(cuts)
        edges.append(end)
        return np.array([b - a for a, b in zip([pos, *edges], edges)], dtype=np.int64)

    def _render_spans(self, target: int) -> np.ndarray:
        """Apply due events, then synthesise the spans up to the next event or ``target``."""
        self._apply_due_events()
        lengths = self._spans_until(target)
        total = int(lengths.sum())
        channels = self.channels
        mix = np.zeros((channels, total))
        scratch = np.empty(total) if channels > 1 else None
        for voice in self.voices.values():
            voice.render_channels(lengths, self.chunk_size, mix, scratch)
        counts = np.zeros(3, dtype=np.int64)
        out = np.empty(total if channels == 1 else (total, channels), dtype=np.float32)
        kernels.finish_spans(mix, lengths, self.master.store[None], self.master.clock[None],
                             self._limiter, counts, out)
        if counts[0] or counts[1] or counts[2]:
            self.stats.nonfinite_params += int(counts[0])
            self.stats.limiter_engaged_blocks += int(counts[1])
            self.stats.limited_samples += int(counts[2])
        self._synth_pos += total
        return out

    def skip(self, n_frames: int) -> None:
        """Move ``n_frames`` ahead without synthesising what voices can skip (seeking).

        Events, parameters, LFOs and phases end where :meth:`render` would leave
        them (up to float rounding): sine banks only advance their phases, other
        voices render and discard.  The limiter's gain depends on the audio and is
        left as it was: render its release time (a pre-roll) before listening.
        """
        target = self._out_pos + int(n_frames)
        take = min(int(n_frames), len(self._buffer))
        self._buffer = self._buffer[take:]
        self._out_pos += take
        while self._out_pos < target:
            self._apply_due_events()
            lengths = self._spans_until(self._synth_pos + target - self._out_pos)
            # whole spans that end by the target are skipped; the last, partial
            # span is rendered (and kept in the buffer)
            whole = lengths[np.cumsum(lengths) <= target - self._out_pos]
            if whole.size == 0:
                break
            for voice in self.voices.values():
                voice.skip_spans(whole, self.chunk_size)
            kernels.advance_params_spans(self.master.store[None], self.master.clock[None], whole)
            frames = int(whole.sum())
            self._synth_pos += frames
            self._out_pos += frames
        if self._out_pos < target:
            self.render(target - self._out_pos)

    def render(self, n_frames: int) -> np.ndarray:
        """Return the next ``n_frames`` samples: float32, finite, in (-1, 1).

        Shape ``(n_frames,)`` for a mono engine, ``(n_frames, channels)`` otherwise.
        """
        n_frames = int(n_frames)
        parts = [self._buffer]
        have = len(self._buffer)
        target = self._synth_pos + n_frames - have
        while have < n_frames:
            span = self._render_spans(target)
            parts.append(span)
            have += len(span)
        joined = np.concatenate(parts) if len(parts) > 1 else self._buffer
        out, self._buffer = joined[:n_frames], joined[n_frames:]
        self._out_pos += n_frames
        return out

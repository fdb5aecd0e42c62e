"""The live generation chain, shared by the parent and the worker process.

:class:`LiveChain` runs input blocks through up to three models and boii's knob
mix (:mod:`auralize.generate.live` describes the whole); :func:`default_lead_frames`
is the output lead that keeps the device fed; :class:`GenLiveStats` is what a
session reports, made by :func:`gen_stats` from the counters its child shares
(:data:`STATS_FIELDS`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from auralize.audio.live.stream_stats import StreamStats
from auralize.errors import AuralizeError
from auralize.generate.midi import KNOB_START, volume_gain

#: statistics the child shares with the parent while it runs
STATS_FIELDS = ("blocks", "ring_underruns", "device_underflows", "input_overflows", "cpu_s",
                "wall_s", "proc_s_sum", "proc_s_max", "cc1", "cc2", "midi_messages", "heartbeat",
                "device_latency_s", "lead_frames", "recorded_frames", "volume", "mod")
# Time constant of the volume and mod glides: long enough that a fader's 7-bit
# steps and a jump from 0 to full do not click, short enough to feel immediate.
GLIDE_S = 0.02


#: head room of the default lead: the slowest block measured at start-up times
#: this factor (blocks run slower when other work shares the cores) plus the
#: margin (scheduling jitter).  Host stalls longer than that (a loaded VM's
#: 20-80 ms) need ``lead_s`` (``--lead-ms``).
LEAD_PROCESS_FACTOR = 1.5
LEAD_MARGIN_S = 0.006


def default_lead_frames(block_frames: int, period_frames: int, process_s: float, rate: int,
                        factor: float = LEAD_PROCESS_FACTOR,
                        margin_s: float = LEAD_MARGIN_S) -> int:
    """Frames of silence the output ring starts with: the least that keeps the device fed.

    The device takes one period per callback and hands over one period of input.
    Block m's input is complete at the callback at frame ``m B`` and its output
    written ``process_s`` later.  That output starts at ring position
    ``lead + (m - 1) B``, first read by the callback at frame
    ``lead + (m - 1) B + p`` (lead a whole number of periods).  So the device
    never runs dry when ``lead > B - p + process_s``; the lead is
    ``B - p + factor * process_s + margin_s``, rounded up to whole periods
    (a block that is not a whole number of periods needs ``ceil(B / p) p``
    in place of ``B - p``).
    Input-to-output latency is this lead plus the device's own.

    Parameters
    ----------
    block_frames : int
        Model block in device frames (B).
    period_frames : int
        Device period in frames (p).
    process_s : float
        Processing time of one block in seconds (the slowest measured).
    rate : int
        Device sample rate in Hz.
    """
    whole = -(-block_frames // period_frames) * period_frames
    # A block that is not a whole number of periods may complete one period
    # later and be needed one period earlier than the aligned case.
    base = whole - period_frames if block_frames % period_frames == 0 else whole
    need = base + math.floor((factor * process_s + margin_s) * rate) + 1
    return max(period_frames, -(-need // period_frames) * period_frames)


def mix_weights(cc1: float, cc2: float, n_models: int) -> np.ndarray:
    """Weights of models A, B, C for knob values in [0, 1] (boii's formula and reductions)."""
    if n_models == 1:
        return np.array([1.0])
    if n_models == 2:
        return np.array([1.0 - cc1, cc1])
    if n_models == 3:
        return np.array([1.0 - cc1, cc1 * (1.0 - cc2), cc1 * cc2])
    raise ValueError(f"1 to 3 models, got {n_models}")


def glide(start: float, target: float, n: int, sample_rate: int,
          tau_s: float = GLIDE_S) -> np.ndarray:
    """``n`` samples of a one-pole glide from ``start`` towards ``target`` (time constant
    ``tau_s`` seconds), in closed form: block after block, it equals the per-sample filter."""
    decay = np.exp(-np.arange(1, n + 1) / (tau_s * sample_rate))
    return (target + (start - target) * decay).astype(np.float32)


class LiveChain:
    """The per-block processing of live mode, without audio I/O (testable offline).

    Parameters
    ----------
    runs : list of :class:`~auralize.generate.train.Run`
        1-3 models sharing a sample rate and block size.
    precision : {"fp32", "int8"}
        Inference precision (:func:`~auralize.generate.model.with_precision`).
    """

    def __init__(self, runs: list, precision: str = "fp32") -> None:
        import torch

        from auralize.generate.model import with_precision

        if not 1 <= len(runs) <= 3:
            raise AuralizeError(f"live mixes one to three models, got {len(runs)}")
        rates = {(r.cfg.sample_rate, r.cfg.block_size) for r in runs}
        if len(rates) != 1:
            raise AuralizeError("live models must share sample rate and block size; got "
                                + ", ".join(f"{r.cfg.name}: {r.cfg.sample_rate} Hz x "
                                            f"{r.cfg.block_size}" for r in runs))
        self.runs = runs
        self.models = [with_precision(r.model, precision) for r in runs]
        fell_back = any(m is r.model for m, r in zip(self.models, runs))
        self.precision = "fp32" if fell_back else precision
        self.sample_rate, self.block_size = rates.pop()
        self.states = [None] * len(runs)
        self._torch = torch
        self.weights = mix_weights(0.5, 0.5, len(runs))
        self.gain = volume_gain(KNOB_START["volume"])  # where the glides stand
        self.wet = KNOB_START["mod"]

    def process(self, blocks: np.ndarray, cc1: float, cc2: float, volume: float = 1.0,
                mod: float = 1.0) -> np.ndarray:
        """``(n, block_size)`` input -> ``n * block_size`` output samples in [-1, 1].

        ``cc1``, ``cc2``: boii's model mix; ``mod``: dry/wet (0: the input, 1: the
        models); ``volume``: CC 7 position (gain :func:`~auralize.generate.midi.volume_gain`).
        All knob positions in [0, 1].
        """
        torch = self._torch
        n, b = blocks.shape
        outs = []
        for k, run in enumerate(self.runs):
            c = run.cfg
            z = run.norm.apply(c.codec.encode(blocks))
            with torch.inference_mode():
                y, self.states[k] = self.models[k](torch.from_numpy(z)[None], self.states[k])
            y = np.clip(np.nan_to_num(y[0].numpy(), nan=0.0, posinf=8.0, neginf=-8.0), -8, 8)
            outs.append(c.codec.decode(run.norm.undo(y)))
        new = mix_weights(cc1, cc2, len(self.runs))
        ramp = np.linspace(0.0, 1.0, n * b, endpoint=False, dtype=np.float32)
        mixed = np.zeros(n * b, np.float32)
        for k, o in enumerate(outs):
            w = self.weights[k] + (new[k] - self.weights[k]) * ramp
            mixed += w * o.reshape(-1)
        self.weights = new
        wet = glide(self.wet, min(1.0, max(0.0, mod)), n * b, self.sample_rate)
        gain = glide(self.gain, volume_gain(volume), n * b, self.sample_rate)
        self.wet, self.gain = float(wet[-1]), float(gain[-1])
        out = gain * (wet * mixed + (1.0 - wet) * blocks.reshape(-1))
        return np.clip(np.nan_to_num(out), -1.0, 1.0)

    def measure_block_s(self, n_blocks: int = 12) -> float:
        """Warm the models up and return the slowest of ``n_blocks`` one-block steps (s).

        torch pays one-off costs on the first calls of each shape, and the live
        loop may take up to three pending blocks at once: those shapes are run
        first, untimed.  Quiet noise goes in (the cost does not depend on the
        signal); states and knob weights are reset afterwards, so the first real
        block starts fresh.
        """
        rng = np.random.default_rng(0)

        def step(n: int) -> float:
            blocks = (0.01 * rng.standard_normal((n, self.block_size))).astype(np.float32)
            t = time.perf_counter()
            self.process(blocks, 0.5, 0.5)
            return time.perf_counter() - t

        for n in (1, 1, 2, 2, 3, 3):
            step(n)
        slowest = max(step(1) for _ in range(n_blocks))
        self.states = [None] * len(self.runs)
        self.weights = mix_weights(0.5, 0.5, len(self.runs))
        self.gain = volume_gain(KNOB_START["volume"])  # the knob glides start where they stand
        self.wet = KNOB_START["mod"]
        return slowest


@dataclass
class GenLiveStats(StreamStats):
    """What a live generation session did (fields of
    :class:`~auralize.audio.live.stream_stats.StreamStats`, and these).

    ``latency_s`` here is input to output: the primed lead + the device's
    input and output latency; ``underruns`` includes ``input_overflows``.
    """

    blocks: int = 0
    input_overflows: int = 0
    block_s: float = math.nan
    process_ms_mean: float = math.nan
    process_ms_max: float = math.nan
    cc1: float = 0.5
    cc2: float = 0.5
    volume: float = 1.0
    mod: float = 1.0
    midi_port: str = ""
    midi_messages: int = 0
    models: tuple = ()
    recorded_to: str = ""
    recorded_s: float = 0.0
    precision: str = ""

    def summary(self) -> str:
        return (f"live: {len(self.models)} model(s) {', '.join(self.models)} "
                f"({self.precision or '?'}) at "
                f"{self.sample_rate} Hz on {self.device or 'no device'}; {self.blocks} blocks "
                f"in {self.wall_s:.1f} s; latency {1000 * self.latency_s:.0f} ms "
                f"({self.latency_s / self.block_s:.1f} blocks); processing "
                f"{self.process_ms_mean:.2f} ms/block mean, {self.process_ms_max:.2f} max; "
                f"CPU share {self.cpu_share:.2f}; underruns {self.underruns} "
                f"(ring {self.ring_underruns}, device {self.device_underflows}, input "
                f"overflows {self.input_overflows}); MIDI {self.midi_port or 'none'} "
                f"({self.midi_messages} messages), knobs cc1={self.cc1:.2f} cc2={self.cc2:.2f} "
                f"volume={self.volume:.2f} mod={self.mod:.2f}"
                + (f"; recorded {self.recorded_s:.1f} s to {self.recorded_to}"
                   if self.recorded_to else ""))


def gen_stats(s, info: dict) -> GenLiveStats:
    """:class:`GenLiveStats` from the shared counters and the child's ``ready`` info."""
    if s is None:
        return GenLiveStats()

    def g(n):
        return s[n]

    blocks = int(g("blocks"))
    sr = int(info.get("sample_rate", 0)) or 1
    block = int(info.get("block_size", 0))
    ring, dev, inp = int(g("ring_underruns")), int(g("device_underflows")), int(
        g("input_overflows"))
    wall = g("wall_s")
    return GenLiveStats(
        blocks=blocks, underruns=ring + dev + inp, ring_underruns=ring, device_underflows=dev,
        input_overflows=inp,
        latency_s=(g("lead_frames") / sr + g("device_latency_s")) if info else math.nan,
        block_s=block / sr if block else math.nan,
        process_ms_mean=1000 * g("proc_s_sum") / blocks if blocks else math.nan,
        process_ms_max=1000 * g("proc_s_max"),
        cpu_share=g("cpu_s") / wall if wall > 0 else math.nan, wall_s=wall,
        cc1=g("cc1"), cc2=g("cc2"), volume=g("volume"), mod=g("mod"),
        midi_port=str(info.get("midi", "")),
        midi_messages=int(g("midi_messages")), device=str(info.get("device", "")),
        sample_rate=int(info.get("sample_rate", 0)), models=tuple(info.get("models", ())),
        recorded_to=str(info.get("out", "")), precision=str(info.get("precision", "")),
        recorded_s=g("recorded_frames") / (info.get("device_rate") or 1),
    )

"""Live generation: audio input -> up to three models -> knob mix -> output (boii).

Structure as :mod:`auralize.audio.live`: everything audio runs in a spawned child
process (:func:`~auralize.audio.processes.start_worker`).  Inside it:

- the PortAudio duplex callback only copies: input samples into one
  :class:`~auralize.audio.ringbuffer.RingBuffer`, output samples out of another;
- the main thread takes every whole block of input, runs it through each model
  (features -> normalise -> LSTM with state kept -> undo -> inverse), mixes and
  writes the result to the output ring, which starts primed with ``lead``
  frames of silence, by default the least that keeps the device fed (see
  :func:`default_lead_frames`): one block less one device period plus the
  processing time measured at start-up; on JACK the stream runs at JACK's own
  period (PortAudio adds no buffer of its own);
- MIDI control changes (mido + python-rtmidi) move the two knobs.

Mix (boii): with three models ``out = cc1*((1-cc2)*B + cc2*C) + (1-cc1)*A``; with
two ``(1-cc1)*A + cc1*B``; with one, ``A``.  Knob moves are ramped over the block
so they never click.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Self

import numpy as np

from auralize.audio.devices import AudioUnavailableWarning
from auralize.audio.live import StreamStats
from auralize.errors import AuralizeError

_FIELDS = ("blocks", "ring_underruns", "device_underflows", "input_overflows", "cpu_s",
           "wall_s", "proc_s_sum", "proc_s_max", "cc1", "cc2", "midi_messages", "heartbeat",
           "device_latency_s", "lead_frames", "recorded_frames")
_IDX = {n: i for i, n in enumerate(_FIELDS)}


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

    def process(self, blocks: np.ndarray, cc1: float, cc2: float) -> np.ndarray:
        """``(n, block_size)`` input -> ``n * block_size`` mixed output samples in [-1, 1]."""
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
        return np.clip(np.nan_to_num(mixed), -1.0, 1.0)

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
        return slowest


@dataclass
class GenLiveStats(StreamStats):
    """What a live generation session did (fields of
    :class:`~auralize.audio.live.StreamStats`, and these).

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
                f"({self.midi_messages} messages), knobs cc1={self.cc1:.2f} cc2={self.cc2:.2f}"
                + (f"; recorded {self.recorded_s:.1f} s to {self.recorded_to}"
                   if self.recorded_to else ""))


class LiveGenerator:
    """Run live generation in a child process.

    Parameters
    ----------
    run_dirs : list of path
        One to three trained run folders (A, B, C in the mix formula).
    midi_port : str, optional
        MIDI input (substring of its name).  ``None``: the first port there is;
        none at all: knobs stay at 0.5 with one warning.  ``False``: no MIDI.
    midi_map : path, optional
        TOML knob map (:class:`~auralize.generate.midi.KnobMap`).
    device : int or str, optional
        Duplex audio device (index or name substring); default: the system's
        input and output choice.
    lead_s : float, optional
        Silence the output starts with (the processing's head room); default the
        least that keeps the device fed with head room: one block less one
        device period plus 1.5 x the slowest block measured at start-up plus
        6 ms (:func:`default_lead_frames`).  Input-to-output latency = lead + device
        latency.  A host that stalls longer (a loaded VM) needs a longer lead.
    threads : int
        torch threads for the models (default 1).
    precision : {"int8", "fp32"}
        Inference precision; default int8: A+B+C live need 0.46 of a core
        instead of 1.86, error ~0.5 % (:func:`~auralize.generate.model.with_precision`).
    out : path, optional
        Record the output (what the device plays, at its rate) to this
        WAV/FLAC/OGG file, flushed at least every 0.5 s.
    """

    def __init__(self, run_dirs, *, midi_port=None, midi_map=None, device=None,
                 gain: float = 1.0, threads: int = 1, lead_s: float | None = None,
                 out=None, precision: str = "int8", start_timeout_s: float = 60.0) -> None:
        from auralize.audio.files import format_for_path
        from auralize.generate.midi import KnobMap, find_port
        from auralize.generate.model import PRECISIONS

        if lead_s is not None and not lead_s > 0:
            raise AuralizeError(f"lead_s must be a positive number of seconds, got {lead_s}")
        self.run_dirs = [str(Path(d)) for d in run_dirs]
        if not 1 <= len(self.run_dirs) <= 3:
            raise AuralizeError(f"live mixes one to three models, got {len(self.run_dirs)}")
        for d in self.run_dirs:
            if not (Path(d) / "checkpoints" / "last.ckpt").is_file():
                raise AuralizeError(f"no trained model in {d!r}; run `auralize generate train`")
        self.knob_map = KnobMap.load(midi_map)
        if precision not in PRECISIONS:
            raise AuralizeError(f"unknown precision {precision!r}: use one of "
                                f"{', '.join(PRECISIONS)}")
        self.precision = precision
        self.out = None if out is None else str(Path(out).expanduser())
        if self.out is not None:
            format_for_path(self.out)  # a bad extension fails here, before any audio starts
        self.midi = None
        if midi_port is not False:
            self.midi = find_port(midi_port)  # raises for a named port that does not exist
            if self.midi is None:
                warnings.warn("no MIDI input port found: the knobs stay at 0.5 "
                              "(connect a controller and pass --midi PORT)",
                              AudioUnavailableWarning, stacklevel=2)
        self.device, self.gain, self.threads = device, float(gain), int(threads)
        self.lead_s = lead_s
        self.start_timeout_s = float(start_timeout_s)
        self._proc = self._cmd = self._status = self._shared = None
        self._final: GenLiveStats | None = None
        self._info: dict = {}
        self._error: str | None = None
        self._ready = threading.Event()
        self._done = threading.Event()

    def start(self) -> LiveGenerator:
        from auralize.audio.processes import start_worker

        ctx = mp.get_context("spawn")
        self._shared = ctx.Array("d", len(_FIELDS), lock=False)
        self._shared[_IDX["cc1"]] = self._shared[_IDX["cc2"]] = 0.5
        cmd_recv, self._cmd = ctx.Pipe(duplex=False)
        self._status, status_send = ctx.Pipe(duplex=False)
        cfg = {"run_dirs": self.run_dirs, "midi": self.midi, "knob_map": asdict(self.knob_map),
               "device": self.device, "gain": self.gain, "threads": self.threads,
               "lead_s": self.lead_s, "out": self.out, "precision": self.precision}
        self._proc = start_worker(_child_main, (cfg, cmd_recv, status_send, self._shared),
                                  "auralize-generate-live")
        cmd_recv.close()
        status_send.close()
        threading.Thread(target=self._read_status, daemon=True).start()
        if not self._ready.wait(self.start_timeout_s):
            self.close()
            raise AuralizeError("live generation: the audio child did not start in time")
        if self._error:
            self.close()
            raise AuralizeError(self._error)
        return self

    def set_knobs(self, cc1: float | None = None, cc2: float | None = None) -> None:
        """Move the knobs from code (as MIDI would)."""
        self._cmd.send(("knobs", cc1, cc2))

    def _read_status(self) -> None:
        while True:
            try:
                msg = self._status.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "ready":
                self._info = msg[1]
                self._ready.set()
            elif msg[0] == "error":
                self._error = msg[1]
                self._ready.set()
            elif msg[0] == "warning":
                warnings.warn(msg[1], AudioUnavailableWarning, stacklevel=2)
            elif msg[0] == "closed":
                self._final = GenLiveStats(**msg[1])
                break
        self._ready.set()
        self._done.set()

    def stats(self) -> GenLiveStats:
        if self._final is not None:
            return self._final
        return _stats(self._shared, self._info)

    def close(self, timeout_s: float = 10.0) -> GenLiveStats:
        if self._proc is None:
            return GenLiveStats()
        if self._final is None:
            try:
                self._cmd.send(("close",))
            except (OSError, BrokenPipeError):
                pass
            self._done.wait(timeout_s)
        self._proc.join(3.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(2.0)
        return self.stats()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def play_live(run_dirs, *, midi_port=None, midi_map=None, seconds=None, device=None,
              gain: float = 1.0, out=None, lead_s: float | None = None,
              precision: str = "int8") -> GenLiveStats:
    """Play until ``seconds`` pass or Ctrl-C; return the statistics."""
    gen = LiveGenerator(run_dirs, midi_port=midi_port, midi_map=midi_map, device=device,
                        gain=gain, out=out, lead_s=lead_s, precision=precision).start()
    print(f"live: playing ({gen._info.get('device', '')}); Ctrl-C stops", flush=True)
    try:
        t0 = time.monotonic()
        while seconds is None or time.monotonic() - t0 < seconds:
            time.sleep(0.1)
            if gen._done.is_set():
                break
    except KeyboardInterrupt:
        pass
    return gen.close()


def _stats(s, info: dict) -> GenLiveStats:
    if s is None:
        return GenLiveStats()

    def g(n):
        return s[_IDX[n]]

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
        cc1=g("cc1"), cc2=g("cc2"), midi_port=str(info.get("midi", "")),
        midi_messages=int(g("midi_messages")), device=str(info.get("device", "")),
        sample_rate=int(info.get("sample_rate", 0)), models=tuple(info.get("models", ())),
        recorded_to=str(info.get("out", "")), precision=str(info.get("precision", "")),
        recorded_s=g("recorded_frames") / (info.get("device_rate") or 1),
    )


# ---------------------------------------------------------------------------------
# The child process
# ---------------------------------------------------------------------------------


def _child_main(cfg: dict, cmd, status, shared) -> None:
    warnings.simplefilter("ignore")

    def send(*msg) -> None:
        try:
            status.send(msg)
        except (OSError, BrokenPipeError):
            pass

    def put(name, value) -> None:
        shared[_IDX[name]] = value

    try:
        from auralize.audio.live import _raise_priority

        priority = _raise_priority()
        sys.setswitchinterval(0.0005)
        import torch

        torch.set_num_threads(max(1, cfg["threads"]))
        from auralize.audio import devices
        from auralize.audio.ringbuffer import RingBuffer
        from auralize.generate.midi import KnobMap, open_input
        from auralize.generate.train import load_run

        runs = [load_run(d) for d in cfg["run_dirs"]]
        chain = LiveChain(runs, cfg["precision"])
        sr, B = chain.sample_rate, chain.block_size
        process_s = chain.measure_block_s()  # warms torch up; sizes the default lead
        sd = devices.load_sounddevice(warn=False)
        if sd is None:
            raise AuralizeError(devices.portaudio_error() or "PortAudio unavailable")
        out_dev = devices.choose_output_device(cfg["device"], warn=False)
        in_dev = devices.choose_input_device(cfg["device"])
        if out_dev is None or in_dev is None:
            raise AuralizeError("live generation needs an audio input and output device "
                                "(is a sound server such as JACK running?)")
    except AuralizeError as exc:
        send("error", str(exc))
        os._exit(0)
    except Exception as exc:  # noqa: BLE001
        send("error", f"live generation failed to start: {type(exc).__name__}: {exc}")
        os._exit(0)

    knobs = {"cc1": 0.5, "cc2": 0.5}
    kmap = KnobMap(**cfg["knob_map"])

    def on_midi(msg) -> None:
        k = kmap.knob_of(msg)
        if k is not None:
            knobs[k] = msg.value / 127.0
            put(k, knobs[k])
        shared[_IDX["midi_messages"]] += 1

    midi_port = None
    if cfg["midi"]:
        try:
            midi_port = open_input(cfg["midi"][0], cfg["midi"][1], on_midi)
        except Exception as exc:  # noqa: BLE001
            send("warning", f"cannot open MIDI input {cfg['midi'][1]!r} ({exc}); knobs stay "
                            "at 0.5")

    st = {"under": 0, "over": 0}
    wake = threading.Event()
    buf = np.zeros(1 << 16, np.float32)
    gain = np.float32(cfg["gain"])
    rings: dict = {}

    def callback(indata, outdata, frames, time_info, cb_status) -> None:
        if cb_status.output_underflow:
            st["under"] += 1
        if cb_status.input_overflow:
            st["over"] += 1
        rings["in"].write(indata[:, 0])
        rings["out"].read_into(buf[:frames])
        outdata[:] = buf[:frames, None]
        wake.set()

    def open_stream(rate: int):
        """Rings sized and primed for ``rate``, then the duplex stream at that rate."""
        period = 512 if rate >= 32000 else 256
        dev_block = math.ceil(B * rate / sr)
        rings["in"] = RingBuffer(8 * (max(period, 1024) + dev_block) + rate)
        rings["out"] = RingBuffer(8 * (max(period, 1024) + dev_block) + rate)
        out_ch = max(1, min(2, out_dev.max_output_channels))
        # On JACK, blocksize 0 = JACK's own period, no PortAudio buffer on top
        # (its output latency is then that one period).
        jack = "JACK" in out_dev.hostapi_name
        stream = sd.Stream(samplerate=rate, blocksize=0 if jack else period,
                           device=(in_dev.index, out_dev.index), channels=(1, out_ch),
                           dtype="float32", callback=callback, latency="low")
        if jack:
            period = max(1, round(stream.latency[1] * rate))
        # Output primed with silence (+ the resampler's delay when resampling).
        lead = (default_lead_frames(dev_block, period, process_s, rate)
                + (64 if rate != sr else 0) if cfg["lead_s"] is None
                else max(dev_block, round(cfg["lead_s"] * rate)))
        rings["out"].write(np.zeros(lead, np.float32))
        stream.start()
        return stream, lead

    sd._initialize()  # held for the child's life (it ends with os._exit)
    dev_rate = sr
    try:
        stream, lead = open_stream(sr)
    except Exception as exc:  # noqa: BLE001  (the device runs at another rate: resample)
        dev_rate = round(out_dev.default_samplerate)
        try:
            if dev_rate == sr:
                raise
            stream, lead = open_stream(dev_rate)
        except Exception as exc2:  # noqa: BLE001
            send("error", f"cannot open a duplex stream on {out_dev.label!r} at {sr} Hz ({exc}) "
                          f"or {dev_rate} Hz ({exc2})")
            os._exit(0)
    from auralize.generate.resample import StreamResampler

    rs_in, rs_out = StreamResampler(dev_rate, sr), StreamResampler(sr, dev_rate)
    sink = None
    if cfg["out"]:
        from auralize.audio.sinks import BackgroundWriter, FileSink

        try:  # written on its own thread: a flush stalled on the disk must not stall the models
            sink = BackgroundWriter(FileSink(cfg["out"], dev_rate))
        except Exception as exc:  # noqa: BLE001
            stream.stop()
            send("error", f"cannot record to {cfg['out']!r}: {exc}")
            os._exit(0)
    in_ring, out_ring = rings["in"], rings["out"]
    lat = stream.latency
    put("device_latency_s", float(sum(lat)) if isinstance(lat, tuple) else float(lat))
    put("lead_frames", lead * sr / dev_rate)  # in model-rate frames, as latency_s expects
    stop = threading.Event()

    def reader() -> None:
        while True:
            try:
                msg = cmd.recv()
            except (EOFError, OSError):
                break
            if msg[0] == "close":
                break
            if msg[0] == "knobs":
                for name, v in (("cc1", msg[1]), ("cc2", msg[2])):
                    if v is not None:
                        knobs[name] = min(1.0, max(0.0, float(v)))
                        put(name, knobs[name])
        stop.set()
        wake.set()

    threading.Thread(target=reader, daemon=True).start()
    info = {"device": out_dev.label + (f" (resampled {dev_rate} <-> {sr} Hz)" if dev_rate != sr
                                       else ""),
            "sample_rate": sr, "block_size": B, "priority": priority, "device_rate": dev_rate,
            "out": cfg["out"] or "", "precision": chain.precision,
            "midi": cfg["midi"][1] if midi_port is not None else "",
            "models": [r.cfg.name for r in runs]}
    t0, c0 = time.perf_counter(), time.process_time()
    send("ready", info)
    inb = np.zeros(in_ring.capacity, np.float32)
    acc = np.zeros(0, np.float32)  # model-rate input not yet a whole block
    try:
        while not stop.is_set():
            wake.wait(0.1)
            wake.clear()
            got = in_ring.fill
            if got:
                in_ring.read_into(inb[:got])
                acc = np.concatenate([acc, rs_in.process(inb[:got])])
            n = acc.shape[0] // B
            if n:
                t = time.perf_counter()
                out = chain.process(acc[: n * B].reshape(n, B), knobs["cc1"], knobs["cc2"])
                acc = acc[n * B :]
                dt = (time.perf_counter() - t) / n
                # Gain and the resampler's ringing may pass full scale: clip what plays.
                y = np.clip(rs_out.process(out * gain), -1.0, 1.0)
                out_ring.write(y)
                if sink is not None:
                    sink.write(y)
                    shared[_IDX["recorded_frames"]] += y.shape[0]
                shared[_IDX["blocks"]] += n
                shared[_IDX["proc_s_sum"]] += dt * n
                put("proc_s_max", max(shared[_IDX["proc_s_max"]], dt))
            now = time.perf_counter()
            put("ring_underruns", out_ring.underruns)
            put("device_underflows", st["under"])
            put("input_overflows", st["over"])
            put("wall_s", now - t0)
            put("cpu_s", time.process_time() - c0)
            put("heartbeat", now)
    except Exception as exc:  # noqa: BLE001
        send("warning", f"live generation stopped: {type(exc).__name__}: {exc}")
    final = _stats(shared, info)
    for closer in (stream.stop, getattr(midi_port, "close", None),
                   getattr(sink, "close", None)):
        try:
            if closer is not None:
                closer()
        except Exception as exc:  # noqa: BLE001
            send("warning", f"live generation: closing failed ({exc})")
    send("closed", final.to_dict())
    os._exit(0)

"""Live generation's worker process: duplex audio -> models -> knob mix -> output.

- the PortAudio duplex callback only copies: input samples into one
  :class:`~auralize.audio.live.ringbuffer.RingBuffer`, output samples out of another;
- the main loop takes every whole block of input, runs it through the
  :class:`~auralize.generate.live.LiveChain`, and writes the result (gain,
  resampled to the device's rate, clipped) to the output ring, which starts
  primed with ``lead`` frames of silence;
- MIDI control changes (mido + python-rtmidi) and ``set_knobs`` move the knobs.
"""

from __future__ import annotations

import math
import time

import numpy as np

from auralize.errors import AuralizeError
from auralize.workers.worker import WorkerChild


class GenerateChild(WorkerChild):
    priority = "realtime"
    hard_exit = True  # PortAudio's teardown can block forever once the JACK server is gone
    name = "live generation"

    # -- set-up ---------------------------------------------------------------------
    def setup(self) -> dict:
        import torch

        from auralize.audio.live import devices
        from auralize.generate.live_chain import LiveChain
        from auralize.generate.midi import KNOB_START, KnobMap
        from auralize.generate.train import load_run

        cfg = self.cfg
        torch.set_num_threads(max(1, cfg["threads"]))
        runs = [load_run(d) for d in cfg["run_dirs"]]
        self.chain = LiveChain(runs, cfg["precision"])
        self.sr, self.block = self.chain.sample_rate, self.chain.block_size
        self.process_s = self.chain.measure_block_s()  # warms torch up; sizes the default lead
        self.sd = devices.load_sounddevice(warn=False)
        if self.sd is None:
            raise AuralizeError(devices.portaudio_error() or "PortAudio unavailable")
        self.out_dev = devices.choose_output_device(cfg["device"], warn=False)
        self.in_dev = devices.choose_input_device(cfg["device"])
        if self.out_dev is None or self.in_dev is None:
            raise AuralizeError("live generation needs an audio input and output device "
                                "(is a sound server such as JACK running?)")
        self.knobs = dict(KNOB_START)
        self.knob_map = KnobMap(**cfg["knob_map"])
        self.midi_port = self._open_midi()
        self.cb = {"under": 0, "over": 0}
        self.buf = np.zeros(1 << 16, np.float32)
        self.sd._initialize()  # held for the child's life (it ends with os._exit)
        self.stream, lead, self.dev_rate = self._open_stream()
        from auralize.generate.resample import StreamResampler

        self.rs_in = StreamResampler(self.dev_rate, self.sr)
        self.rs_out = StreamResampler(self.sr, self.dev_rate)
        self.sink = self._open_file()
        latency = self.stream.latency
        self.shared["device_latency_s"] = float(sum(latency) if isinstance(latency, tuple) else latency)
        self.shared["lead_frames"] = lead * self.sr / self.dev_rate  # model-rate frames, as latency_s expects
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        resampled = f" (resampled {self.dev_rate} <-> {self.sr} Hz)" if self.dev_rate != self.sr else ""
        self.ready_info = {"device": self.out_dev.label + resampled, "sample_rate": self.sr,
                           "block_size": self.block, "priority": self.priority_obtained,
                           "device_rate": self.dev_rate, "out": cfg["out"] or "",
                           "precision": self.chain.precision,
                           "midi": cfg["midi"][1] if self.midi_port is not None else "",
                           "models": [r.cfg.name for r in runs]}
        return self.ready_info

    def _open_midi(self):
        from auralize.generate.midi import open_input

        if not self.cfg["midi"]:
            return None
        try:
            return open_input(self.cfg["midi"][0], self.cfg["midi"][1], self._on_midi)
        except Exception as exc:  # noqa: BLE001
            self.warn("midi", f"cannot open MIDI input {self.cfg['midi'][1]!r} ({exc}); knobs stay at 0.5")
            return None

    def _on_midi(self, msg) -> None:
        knob = self.knob_map.knob_of(msg)
        if knob is not None:
            self._set_knob(knob, msg.value / 127.0)
        self.shared.add("midi_messages")

    def _set_knob(self, name: str, value: float) -> None:
        self.knobs[name] = min(1.0, max(0.0, float(value)))
        self.shared[name] = self.knobs[name]

    def _open_stream(self):
        """The duplex stream at the models' rate, or at the device's (resampled)."""
        try:
            return (*self._stream_at(self.sr), self.sr)
        except Exception as exc:  # noqa: BLE001  (the device runs at another rate: resample)
            dev_rate = round(self.out_dev.default_samplerate)
            if dev_rate == self.sr:
                raise AuralizeError(f"cannot open a duplex stream on {self.out_dev.label!r} at "
                                    f"{self.sr} Hz ({exc})") from exc
            try:
                return (*self._stream_at(dev_rate), dev_rate)
            except Exception as exc2:  # noqa: BLE001
                raise AuralizeError(f"cannot open a duplex stream on {self.out_dev.label!r} at "
                                    f"{self.sr} Hz ({exc}) or {dev_rate} Hz ({exc2})") from exc2

    def _stream_at(self, rate: int):
        """Rings sized and primed for ``rate``, then the started duplex stream; returns (stream, lead)."""
        from auralize.audio.live.ringbuffer import RingBuffer
        from auralize.generate.live_chain import default_lead_frames

        period = 512 if rate >= 32000 else 256
        dev_block = math.ceil(self.block * rate / self.sr)
        self.in_ring = RingBuffer(8 * (max(period, 1024) + dev_block) + rate)
        self.out_ring = RingBuffer(8 * (max(period, 1024) + dev_block) + rate)
        out_channels = max(1, min(2, self.out_dev.max_output_channels))
        # On JACK, blocksize 0 = JACK's own period, no PortAudio buffer on top
        # (its output latency is then that one period).
        jack = "JACK" in self.out_dev.hostapi_name
        stream = self.sd.Stream(samplerate=rate, blocksize=0 if jack else period,
                                device=(self.in_dev.index, self.out_dev.index),
                                channels=(1, out_channels), dtype="float32",
                                callback=self._callback, latency="low")
        if jack:
            period = max(1, round(stream.latency[1] * rate))
        # Output primed with silence (+ the resampler's delay when resampling): the lead
        # covers one block, a period and the processing measured at start-up.
        lead = (default_lead_frames(dev_block, period, self.process_s, rate)
                + (64 if rate != self.sr else 0) if self.cfg["lead_s"] is None
                else max(dev_block, round(self.cfg["lead_s"] * rate)))
        self.out_ring.write(np.zeros(lead, np.float32))
        stream.start()
        return stream, lead

    def _callback(self, indata, outdata, frames, time_info, cb_status) -> None:
        if cb_status.output_underflow:
            self.cb["under"] += 1
        if cb_status.input_overflow:
            self.cb["over"] += 1
        self.in_ring.write(indata[:, 0])
        self.out_ring.read_into(self.buf[:frames])
        outdata[:] = self.buf[:frames, None]
        self.wake.set()

    def _open_file(self):
        if not self.cfg["out"]:
            return None
        from auralize.audio.sinks import BackgroundWriter, FileSink

        try:  # written on its own thread: a flush stalled on the disk must not stall the models
            return BackgroundWriter(FileSink(self.cfg["out"], self.dev_rate))
        except Exception as exc:  # noqa: BLE001
            self.stream.stop()
            raise AuralizeError(f"cannot record to {self.cfg['out']!r}: {exc}") from exc

    # -- running --------------------------------------------------------------------
    def receive(self, items: list) -> None:
        for item in items:
            if item[0] == "knobs":
                for name, value in (("cc1", item[1]), ("cc2", item[2])):
                    if value is not None:
                        self._set_knob(name, value)

    def loop(self) -> None:
        shared, block = self.shared, self.block
        gain = np.float32(self.cfg["gain"])
        inb = np.zeros(self.in_ring.capacity, np.float32)
        acc = np.zeros(0, np.float32)  # model-rate input not yet a whole block
        while not self.stop.is_set():
            self.wake.wait(0.1)
            self.wake.clear()
            got = self.in_ring.fill
            if got:
                self.in_ring.read_into(inb[:got])
                acc = np.concatenate([acc, self.rs_in.process(inb[:got])])
            n = acc.shape[0] // block
            if n:
                t = time.perf_counter()
                out = self.chain.process(acc[: n * block].reshape(n, block), **self.knobs)
                acc = acc[n * block:]
                dt = (time.perf_counter() - t) / n
                # Gain and the resampler's ringing may pass full scale: clip what plays.
                y = np.clip(self.rs_out.process(out * gain), -1.0, 1.0)
                self.out_ring.write(y)
                if self.sink is not None:
                    self.sink.write(y)
                    shared.add("recorded_frames", y.shape[0])
                shared.add("blocks", n)
                shared.add("proc_s_sum", dt * n)
                shared["proc_s_max"] = max(shared["proc_s_max"], dt)
            now = time.perf_counter()
            shared["ring_underruns"] = self.out_ring.underruns
            shared["device_underflows"] = self.cb["under"]
            shared["input_overflows"] = self.cb["over"]
            shared["wall_s"] = now - self.t0
            shared["cpu_s"] = time.process_time() - self.c0
            shared["heartbeat"] = now

    def finish(self) -> dict:
        from auralize.generate.live_chain import gen_stats

        final = gen_stats(self.shared, self.ready_info)
        for closer in (self.stream.stop, getattr(self.midi_port, "close", None),
                       getattr(self.sink, "close", None)):
            try:
                if closer is not None:
                    closer()
            except Exception as exc:  # noqa: BLE001
                self.warn("close", f"live generation: closing failed ({exc})")
        return final.to_dict()

"""The speaker's worker process: the engine plays ahead of the device.

Why a child process: a sounddevice callback inside a busy host process
underflows (the host's loop holds the GIL), the same callback in a spawned
child process does not (docs/architecture.md, "Live audio").  A host loop holding the
GIL cannot starve a process it does not share a GIL with.

Inside the child:

- the main thread synthesises: it keeps ``lead_s`` seconds of engine output in a
  :class:`~auralize.audio.live.ringbuffer.RingBuffer` and writes every rendered block
  to the optional file sink;
- the PortAudio callback only copies from the ring buffer to the device (the
  engine's channels in order, repeated over a wider device; a mono device gets
  their mix, the mean), counting underruns, and tells the
  :class:`~auralize.audio.live.frame_clock.FrameClock` which frame it hands out when;
- the inbox thread takes events from the parent.

Without PortAudio, without an output device, or when the device or JACK server
vanishes mid-run, the parent gets one warning and the child keeps rendering to
the file at real-time pace.
"""

from __future__ import annotations

import collections
import math
import threading
import time

import numpy as np

from auralize.audio.live.frame_clock import FrameClock
from auralize.audio.score import Event
from auralize.workers.worker import WorkerChild


class LiveChild(WorkerChild):
    priority = "realtime"
    hard_exit = True  # PortAudio's teardown can block forever once the JACK server is gone
    name = "live output"

    # -- set-up ---------------------------------------------------------------------
    def setup(self) -> dict:
        try:  # BLAS worker threads are not real-time: keep the engine's BLAS on this thread
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except Exception:  # noqa: BLE001
            pass
        from auralize.audio.engine import Engine
        from auralize.audio.live.ringbuffer import RingBuffer
        from auralize.audio.warm_up import warm_up_kernels

        cfg = self.cfg
        self.sr = sr = int(cfg["sample_rate"])
        # every kernel compiled or loaded now: one met first mid-stream is a dropout
        self.warm_up_s = warm_up_kernels(sr, cfg["engine_kwargs"])
        self.engine = Engine(sr, **cfg["engine_kwargs"])
        self.engine_channels = self.engine.channels
        for name, spec in cfg["voices"].items():
            self.engine.add_voice(name, spec)
        for event in cfg["events"]:
            self.engine.schedule(event)
        self.chunk = self.engine.chunk_size
        self.writer = self._open_file()
        self.pending: collections.deque = collections.deque()
        self.probes: collections.deque = collections.deque()
        self.lead_frames = max(self.chunk, round(cfg["lead_s"] * sr))
        block = int(cfg["block_size"])
        self.ring = RingBuffer(max(4 * (self.lead_frames + max(block, 1024) + self.chunk), 8192),
                               self.engine_channels)
        self.cb = {"frames_start": 0, "time": 0.0, "count": 0, "underflows": 0}
        self.wall_clock = FrameClock(sr)
        self.device_info, self.stream, self.channels = None, None, 0
        if cfg["live"]:
            self._open_device(block)
        self.device_latency = float(self.stream.latency) if self.stream is not None else 0.0
        self.shared["device_latency_s"] = self.device_latency
        while self.ring.fill < self.lead_frames:  # the device starts on real samples
            self._render_one()
        self.live = self._start_device()
        self.shared["live"] = 1.0 if self.live else 0.0
        dev = self.device_info
        self.info_device = ({"index": dev.index, "name": dev.name, "hostapi": dev.hostapi_name,
                             "label": dev.label} if dev is not None and self.live else {})
        self.t_start, self.cpu_start = time.perf_counter(), time.process_time()
        return {"device": self.info_device, "channels": self.channels if self.live else 0,
                "priority": self.priority_obtained, "chunk_size": self.chunk,
                "lead_frames": self.lead_frames}

    def _open_file(self):
        if not self.cfg["out"]:
            return None
        try:
            from auralize.audio.sinks import BackgroundWriter, FileSink

            return BackgroundWriter(FileSink(self.cfg["out"], self.sr,
                                             channels=self.engine.channels,
                                             subtype=self.cfg["file_subtype"]))
        except Exception as exc:  # noqa: BLE001
            self.warn("file", f"live output: cannot write {self.cfg['out']!r}: {exc}")
            return None

    def _open_device(self, block: int) -> None:
        from auralize.audio.live import devices

        sd = devices.load_sounddevice(warn=False)
        if sd is None:
            self.warn("portaudio", devices.portaudio_error())
            return
        try:
            self.device_info = devices.choose_output_device(self.cfg["device"], warn=False)
        except Exception as exc:  # noqa: BLE001  (AuralizeError: bad explicit device)
            self.warn("no-output", f"live audio disabled: {exc}; file output continues")
            return
        if self.device_info is None:
            self.warn("no-output", "live audio disabled: no audio output device found (is a sound "
                                   "server such as JACK running?); file output continues")
            return
        # Held for the life of this process (it ends with os._exit, never with
        # PortAudio's teardown, which aborts once JACK is gone).
        sd._initialize()  # noqa: SLF001
        self.channels = max(1, min(int(self.cfg["channels"]), self.device_info.max_output_channels))
        shape = (1 << 16,) if self.engine_channels == 1 else (1 << 16, self.engine_channels)
        self.mono = np.zeros(shape, dtype=np.float32)  # the callback's block of engine frames
        # device channel k plays engine channel k mod C (mono: every channel the same)
        self.route = [k % self.engine_channels for k in range(self.channels)]
        try:
            self.stream = sd.OutputStream(samplerate=self.sr, blocksize=block,
                                          device=self.device_info.index, channels=self.channels,
                                          dtype="float32", callback=self._callback, latency="low")
        except Exception as exc:  # noqa: BLE001
            self.warn("open", f"live audio disabled: cannot open {self.device_info.label!r} ({exc}); "
                              "file output continues")

    def _start_device(self) -> bool:
        if self.stream is None:
            return False
        try:
            self.stream.start()
            return True
        except Exception as exc:  # noqa: BLE001
            self.warn("open", f"live audio disabled: cannot start the device ({exc})")
            self.stream = None
            return False

    def _callback(self, outdata, frames, time_info, cb_status) -> None:
        """The device's callback: copy from the ring, nothing else."""
        if cb_status.output_underflow:
            self.cb["underflows"] += 1
        start = self.ring.frames_read
        buf = (self.mono[:frames] if frames <= self.mono.shape[0]
               else np.zeros((frames, *self.mono.shape[1:]), np.float32))
        self.ring.read_into(buf)
        if buf.ndim == 1:
            outdata[:] = buf[:, None]
        elif outdata.shape[1] == 1:  # a mono device: the mix
            np.mean(buf, axis=1, out=outdata[:, 0])
        elif self.route == list(range(buf.shape[1])):
            outdata[:] = buf
        else:
            outdata[:] = buf[:, self.route]
        now = time.perf_counter()
        self.cb["frames_start"], self.cb["time"] = start, now
        self.cb["count"] += 1
        self.wall_clock.observe(now + self.device_latency, start)
        self.wake.set()

    # -- events ---------------------------------------------------------------------
    def receive(self, items: list) -> None:
        for item in items:
            if item[0] == "event":  # ("event", event, time sent): time_s in score time
                self.pending.append((item[1], item[2]))
            elif item[0] == "at_wall":  # ("at_wall", events): time_s are wall-clock moments
                self.pending.extend((event, None) for event in item[1])

    def _apply_pending(self) -> None:
        while self.pending:
            event, t_sent = self.pending.popleft()
            if t_sent is None:
                at = None if event.time_s is None else self.wall_clock.engine_time_s(event.time_s)
                event = Event(at, event.voice, event.param, event.value, event.glide_s)
            elif event.time_s is None:  # a latency probe: when does its first sample leave?
                self.probes.append((max(self.engine.synth_frame, self.engine.frames_rendered), t_sent))
            self.engine.schedule(event)
            self.shared.add("events_applied")

    def _render_one(self) -> None:
        if self.pending:
            self._apply_pending()
        data = self.engine.render(self.chunk)
        self.ring.write(data)
        if self.writer is not None:
            self.writer.write(data)

    def _measure_probes(self) -> None:
        cb_start, cb_time = self.cb["frames_start"], self.cb["time"]
        while self.probes and self.probes[0][0] < self.ring.frames_read:
            frame, t_sent = self.probes.popleft()
            lat = cb_time + max(0, frame - cb_start) / self.sr + self.device_latency - t_sent
            worst = self.shared["event_latency_max_s"]
            self.shared["event_latency_s"] = lat
            self.shared["event_latency_max_s"] = lat if math.isnan(worst) else max(worst, lat)

    # -- the loop ---------------------------------------------------------------------
    def loop(self) -> None:
        pace_t0, pace_f0 = time.perf_counter(), self.engine.frames_rendered
        if not self.live:  # with a device, its callbacks tell when each frame is heard
            self.wall_clock.observe(pace_t0, pace_f0)
        t_live, last_stats = time.perf_counter(), 0.0
        dead_after_s = max(0.5, 8.0 * max(int(self.cfg["block_size"]), 256) / self.sr)
        while not self.stop.is_set():
            now = time.perf_counter()
            if self.pending:
                self._apply_pending()
            if self.live:
                while self.ring.fill < self.lead_frames and not self.stop.is_set():
                    self._render_one()
                if self.probes and self.cb["count"]:
                    self._measure_probes()
                if self._device_gone(now, self.cb["time"] or t_live, dead_after_s):
                    pace_t0, pace_f0 = now, self.engine.frames_rendered
                    self.wall_clock = FrameClock(self.sr)  # the file goes on at its own pace
                    self.wall_clock.observe(pace_t0, pace_f0)
                    continue
                self.wake.wait(0.05)  # the callback and new events wake us; this is a watchdog
            else:
                due = pace_f0 + int((now - pace_t0) * self.sr)
                while self.engine.frames_rendered < due and not self.stop.is_set():
                    self._render_one()
                self.wake.wait(self.chunk / self.sr)
            self.wake.clear()
            if now - last_stats > 0.05:
                self._publish(now)
                last_stats = now

    def _device_gone(self, now: float, last_callback: float, dead_after_s: float) -> bool:
        """JACK server killed, device unplugged: callbacks just stop."""
        try:
            inactive = not self.stream.active
        except Exception:  # noqa: BLE001
            inactive = True
        if not inactive and now - last_callback <= dead_after_s:
            return False
        self.live = False
        self.shared["live"] = 0.0
        self.shared["device_lost"] = 1.0
        self.warn("device-lost", f"live audio stopped: the output device "
                                 f"{self.info_device.get('label', '')!r} or its sound server went "
                                 "away; file output continues")
        return True

    def _publish(self, now: float) -> None:
        s = self.shared
        s["frames_played"] = self.ring.frames_read
        s["frames_rendered"] = self.engine.frames_rendered
        s["ring_underruns"] = self.ring.underruns
        s["device_underflows"] = self.cb["underflows"]
        s["ring_fill"] = self.ring.fill
        s["cpu_s"] = time.process_time() - self.cpu_start
        s["wall_s"] = now - self.t_start
        s["heartbeat"] = now

    def finish(self) -> dict:
        from auralize.audio.live.stream_stats import live_stats

        lost = bool(self.shared["device_lost"])
        if self.stream is not None and not lost:
            closer = threading.Thread(target=_close_stream, args=(self.stream,), daemon=True)
            closer.start()
            closer.join(3.0)
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception as exc:  # noqa: BLE001
                self.warn("file", f"live output: closing the file failed: {exc}")
        self._publish(time.perf_counter())
        info = {"device": self.info_device, "channels": self.channels if self.info_device else 0,
                "chunk_size": self.chunk, "priority": self.priority_obtained}
        final = live_stats(self.shared, info, self.cfg["out"], self.sr, self.cfg["lead_s"])
        final.live = False
        return final.to_dict()


def _close_stream(stream) -> None:
    try:
        stream.stop()
        stream.close()
    except Exception:  # noqa: BLE001
        pass

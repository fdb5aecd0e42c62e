"""A real JACK server (dummy driver) and a JACK client that records what is played.

Used by tests/conftest.py and benchmarks/bench_live.py.  The recorder runs in its
own process so that a test's busy threads (GIL-holding Python loops, torch) cannot
delay its process callback and tear holes into the capture.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _die_with_parent() -> None:
    """In the forked jackd: get SIGTERM when the test process dies (Linux); raise priority."""
    try:  # best effort: the server should not be the late one in a busy test
        os.nice(-15)
    except OSError:
        pass
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


_servers: list = []


@atexit.register
def _stop_all() -> None:
    for srv in list(_servers):
        srv.stop()



@contextmanager
def exported_env(env: dict[str, str]) -> Iterator[None]:
    """Export ``env`` (e.g. ``JackServer.env()``) to this process and its children; restore after."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

class JackServer:
    """``jackd --no-realtime -d dummy -r RATE -p PERIOD`` under a unique server name."""

    def __init__(self, sample_rate: int = 44100, period: int = 512, name: str | None = None):
        self.sample_rate = int(sample_rate)
        self.period = int(period)
        self.name = name or f"auralize-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.proc: subprocess.Popen | None = None
        self.log = ""
        # Real-time scheduling (as on a real audio setup) unless refused or
        # AURALIZE_JACK_NORT=1; `jackd --no-realtime` is the fallback.
        self.rt_args = ["--no-realtime"] if os.environ.get("AURALIZE_JACK_NORT") else ["-R"]

    @staticmethod
    def available() -> bool:
        return shutil.which("jackd") is not None

    def env(self) -> dict:
        return {"JACK_DEFAULT_SERVER": self.name, "JACK_NO_START_SERVER": "1"}

    def start(self, timeout_s: float = 15.0) -> JackServer:
        """Start jackd; real-time scheduling where permitted, else ``--no-realtime``."""
        try:
            return self._start(timeout_s)
        except RuntimeError:
            if self.rt_args == ["--no-realtime"]:
                raise
            self.rt_args = ["--no-realtime"]
            return self._start(timeout_s)

    @property
    def realtime(self) -> bool:
        return self.rt_args != ["--no-realtime"]

    def _start(self, timeout_s: float) -> JackServer:
        env = dict(os.environ, **self.env())
        # A file, not a pipe: jackd must never block on a full pipe of xrun messages.
        self._logfile = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as jackd
            "w+b", prefix=f"{self.name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            ["jackd", *self.rt_args, "-n", self.name, "-d", "dummy",
             "-r", str(self.sample_rate), "-p", str(self.period)],
            stdout=self._logfile, stderr=subprocess.STDOUT, env=env,
            preexec_fn=_die_with_parent,
        )
        _servers.append(self)
        # Probe from a separate process: one process must not hold JACK clients of
        # two servers (libjack crashes), and this one may already have one.
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"jackd exited with {code}: {self.read_log()[-2000:]}")
            rc = subprocess.run(["jack_lsp", "-s", self.name], env=env, capture_output=True,
                                check=False, timeout=10).returncode
            if rc == 0:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"jackd server {self.name!r} did not accept clients in {timeout_s} s")

    def _drop_logfile(self) -> None:
        try:
            self._logfile.close()
            os.unlink(self._logfile.name)
        except (OSError, AttributeError):
            pass

    def read_log(self) -> str:
        """Everything jackd printed so far."""
        try:
            with open(self._logfile.name, "rb") as f:
                return f.read().decode(errors="replace")
        except (OSError, AttributeError):
            return ""

    def xrun_blame(self, since: int = 0) -> list[str]:
        """jackd's xrun lines (which client was late) after character ``since`` of the log."""
        return [ln for ln in self.read_log()[since:].splitlines() if "XRun" in ln]

    def kill(self) -> None:
        """SIGKILL the server (simulates a sound server vanishing)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
            self._killed = True

    def _release_registry_slot(self) -> None:
        """After a SIGKILL: free the server's slot in JACK's shared registry.

        libjack reuses a dead server's slot only for the same name, and holds
        eight; every SIGKILLed uniquely named server would otherwise use one up
        for good.  Starting a server of the same name and stopping it cleanly
        releases it.
        """
        self._killed = False
        try:
            self._start(10.0)
        except RuntimeError:
            return
        self.stop()
        for f in Path("/dev/shm").glob(f"jack_sem.*_{self.name}_*"):
            try:
                f.unlink()
            except OSError:
                pass

    def stop(self) -> None:
        if getattr(self, "_killed", False):
            self.log = self.read_log()
            self.proc = None
            self._drop_logfile()
            self._release_registry_slot()
            return
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log = self.read_log()
        self.proc = None
        self._drop_logfile()
        if self in _servers:
            _servers.remove(self)


@dataclass
class Capture:
    """What the recorder heard: ``data`` (frames, channels) float32, plus timing."""

    data: np.ndarray
    sample_rate: int
    block_frames: np.ndarray  # index in ``data`` where each process cycle's block starts
    block_times: np.ndarray  # time.perf_counter() at that cycle's callback
    xruns: int
    connected: list
    # JACK's frame counter at the start of each recorded cycle
    cycle_frames: np.ndarray | None = None
    # what an idle JACK client (the probe: no ports, no work) saw in each cycle it ran:
    # the cycle's frame counter and how late it ran after the cycle's scheduled start
    probe_frames: np.ndarray | None = None
    probe_late_s: np.ndarray | None = None

    def host_late_cycles(self, tolerance: float = 0.5) -> np.ndarray:
        """Frame counters of the cycles in which the host, not the player, was late.

        The probe is a client with nothing to do, started by the server in the same
        cycles as the player (it depends on no other client).  A cycle counts as
        late when the probe ran more than ``tolerance`` periods after the cycle's
        scheduled start, or did not run at all: the host ran the server's or its
        clients' real-time threads late (seen on a 2-core VM whose kernel does not
        preempt: ``Dynamic Preempt: none``), and every client of that cycle
        misses its deadline, whatever it does.
        """
        frames, late = self.probe_frames, self.probe_late_s
        period = int(np.median(np.diff(frames)))
        out = [frames[late > tolerance * period / self.sample_rate]]
        for a, b in zip(frames[:-1], frames[1:]):  # cycles the probe never ran
            out.append(np.arange(a + period, b, period))
        return np.unique(np.concatenate(out))

    def longest_gap_ms(self, t0: float, t1: float) -> float:
        """Longest gap between the recorder's process cycles within (t0, t1), in ms.

        One cycle is one JACK period (11.6 ms at 512 frames / 44.1 kHz); a longer
        gap means the JACK graph, or the whole host, stalled.  ``inf`` when fewer
        than two cycles fall in the window.
        """
        bt = self.block_times[(self.block_times > t0) & (self.block_times < t1)]
        return float(np.diff(bt).max() * 1000) if len(bt) > 1 else float("inf")

    def time_of_frame(self, i: int) -> float:
        """perf_counter time at which frame ``i`` passed through the recorder."""
        k = int(np.searchsorted(self.block_frames, i, side="right")) - 1
        k = max(k, 0)
        return float(self.block_times[k] + (i - self.block_frames[k]) / self.sample_rate)


def _recorder_main(server: str, pattern: str, channels: int, max_s: float, conn) -> None:
    import jack

    os.environ["JACK_DEFAULT_SERVER"] = server
    os.environ["JACK_NO_START_SERVER"] = "1"
    # The harness must not be the late client in a busy test (best effort): FIFO
    # priority for the main thread too, so that it is never preempted while it
    # holds the GIL that the JACK process callback needs.
    try:
        os.nice(-15)
    except OSError:
        pass
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(2))
    except (OSError, AttributeError):
        pass
    client = jack.Client(f"rec{os.getpid()}", no_start_server=True, servername=server)
    sr = client.samplerate
    cap = int(max_s * sr)
    buf = np.zeros((cap, channels), dtype=np.float32)
    nblk = cap // 16 + 16
    bframes = np.zeros(nblk, dtype=np.int64)
    btimes = np.zeros(nblk, dtype=np.float64)
    bcycle = np.zeros(nblk, dtype=np.int64)
    pcycle = np.zeros(nblk, dtype=np.int64)
    plate = np.zeros(nblk, dtype=np.float64)
    st = {"pos": 0, "blk": 0, "xruns": 0, "recording": False}
    ports = [client.inports.register(f"in_{i}") for i in range(channels)]

    @client.set_process_callback
    def process(frames):
        if not st["recording"]:
            return
        pos = st["pos"]
        n = min(frames, cap - pos)
        if n <= 0:
            return
        if st["blk"] < nblk:
            now = time.perf_counter()
            bframes[st["blk"]] = pos
            btimes[st["blk"]] = now
            bcycle[st["blk"]] = client.last_frame_time
            st["blk"] += 1
        for c, p in enumerate(ports):
            buf[pos : pos + n, c] = p.get_array()[:n]
        st["pos"] = pos + n

    # The probe: a second client with no ports, started by the server in the same cycles
    # as the player, that notes how late it ran (Capture.host_late_cycles).
    probe = jack.Client(f"probe{os.getpid()}", no_start_server=True, servername=server)
    pst = {"n": 0}

    @probe.set_process_callback
    def probe_process(frames):
        if st["recording"] and pst["n"] < nblk:
            pcycle[pst["n"]] = probe.last_frame_time
            plate[pst["n"]] = probe.frames_since_cycle_start / sr
            pst["n"] += 1

    @client.set_xrun_callback
    def xrun(delay):
        st["xruns"] += 1

    rescan = {"flag": True}

    @client.set_port_registration_callback
    def on_port(port, register):
        rescan["flag"] = True

    client.activate()
    probe.activate()
    rx = re.compile(pattern)
    connected: list[str] = []
    conn.send(("ready", sr))
    while True:
        if conn.poll(0.01):
            msg = conn.recv()
            if msg == "record":
                st["recording"] = True
                conn.send(("ok",))
            elif msg == "connected":
                conn.send(("connected", list(connected)))
            elif msg == "stop":
                st["recording"] = False
                break
        if not rescan["flag"]:
            continue
        rescan["flag"] = False
        try:
            outs = client.get_ports(is_audio=True, is_output=True)
        except jack.JackError:
            continue
        srcs = [p for p in outs if rx.search(p.name) and not p.name.startswith(client.name)]
        by_client: dict[str, list] = {}
        for p in srcs:
            by_client.setdefault(p.name.split(":")[0], []).append(p)
        for plist in by_client.values():
            plist.sort(key=lambda p: p.name)
            for c, src in enumerate(plist[:channels]):
                if src.name in connected:
                    continue
                try:
                    client.connect(src, ports[c])
                    connected.append(src.name)
                except jack.JackError:
                    pass
    n = st["pos"]
    nb = st["blk"]
    conn.send(("capture", buf[:n].copy(), int(sr), bframes[:nb].copy(), btimes[:nb].copy(),
               st["xruns"], connected, bcycle[:nb].copy(), pcycle[:pst["n"]].copy(),
               plate[:pst["n"]].copy()))
    probe.deactivate()
    probe.close()
    client.deactivate()
    client.close()


class JackRecorder:
    """Record, in a separate process, every JACK output port matching ``pattern``.

    The first matching client's ports go to channels 0, 1, ... (sorted by name);
    the recorder keeps watching and connects ports that appear later, so start it
    before the player.
    """

    def __init__(self, server: str, pattern: str = r"^PortAudio", channels: int = 2,
                 max_s: float = 40.0):
        self.server, self.pattern, self.channels, self.max_s = server, pattern, channels, max_s
        self._proc = None
        self._conn = None
        self.sample_rate = 0

    def start(self, timeout_s: float = 15.0) -> JackRecorder:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_recorder_main,
            args=(self.server, self.pattern, self.channels, self.max_s, child),
            daemon=True,
        )
        self._proc.start()
        child.close()
        if not self._conn.poll(timeout_s):
            raise RuntimeError("JACK recorder did not start")
        self.sample_rate = self._conn.recv()[1]
        self._conn.send("record")
        self._conn.recv()
        return self

    def connected(self) -> list[str]:
        self._conn.send("connected")
        return self._conn.recv()[1]

    def wait_connected(self, n: int = 1, timeout_s: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            c = self.connected()
            if len(c) >= n:
                return c
            time.sleep(0.01)
        return self.connected()

    def stop(self, timeout_s: float = 15.0) -> Capture:
        self._conn.send("stop")
        if not self._conn.poll(timeout_s):
            self._proc.kill()
            raise RuntimeError("JACK recorder did not answer")
        _, data, sr, bf, bt, xruns, connected, cycles, pframes, plate = self._conn.recv()
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
        return Capture(data, sr, bf, bt, xruns, connected, cycles, pframes, plate)


def cycles_not_rendered(cap: Capture, reference: np.ndarray, n_played: int,
                        skip_cycles: np.ndarray = (), margin: int = 2,
                        max_shift: int = 4) -> list[int]:
    """Recorded JACK cycles whose samples differ from ``reference`` (their frame counters).

    ``reference`` is what the player should have played (channel 0 of ``cap``
    judged), ``n_played`` how many frames it handed to the device.  Cycles within
    ``margin`` periods of a ``skip_cycles`` frame counter (the host's late cycles:
    :meth:`Capture.host_late_cycles`) are not judged; they split the capture into
    stretches.  The first stretch is aligned by cross-correlation; each later one
    may move by at most ``max_shift`` whole periods (a cycle the host kept the
    player or the recorder from running shifts the rest by one period), and
    within a stretch every sample must be the reference's: one lost, repeated or
    altered sample, or a cycle missed while the host kept time, makes a cycle
    that differs.
    """
    played = cap.data[:, 0]
    frames = cap.cycle_frames
    period = int(np.median(np.diff(frames))) if len(frames) > 1 else 512
    skip = np.asarray(skip_cycles, dtype=np.int64)
    judged = np.ones(len(frames), bool)
    for f in skip:
        judged &= np.abs(frames - f) > margin * period
    starts = list(cap.block_frames) + [len(played)]
    k = align(reference, played)  # reference[0] is played[k]
    bad, first = [], True
    b = 0
    while b < len(frames):
        if not judged[b]:
            b += 1
            continue
        e = b  # one stretch: judged cycles with consecutive frame counters
        while e + 1 < len(frames) and judged[e + 1] and frames[e + 1] - frames[e] == period:
            e += 1
        def misses(off: int, b: int = b, e: int = e) -> list[int]:
            out = []
            for c in range(b, e + 1):
                a, z = max(starts[c], off), min(starts[c + 1], off + min(n_played, len(reference)))
                if a < z and not np.allclose(played[a:z], reference[a - off:z - off],
                                             atol=1e-6, rtol=0):
                    out.append(int(frames[c]))
            return out

        shifts = [0] if first else sorted(range(-max_shift, max_shift + 1), key=abs)
        results = [misses(k + m * period) for m in shifts]
        best = min(range(len(shifts)), key=lambda i: len(results[i]))
        k += shifts[best] * period
        bad += results[best]
        first = False
        b = e + 1
    return bad


def align(reference: np.ndarray, captured: np.ndarray) -> int:
    """Offset of ``reference`` inside ``captured`` (``captured[k:] ~ reference``).

    Cross-correlation via FFT over the first part of the reference.
    """
    ref = reference[: min(len(reference), 44100)].astype(np.float64)
    cap = captured.astype(np.float64)
    n = 1 << int(np.ceil(np.log2(len(cap) + len(ref))))
    corr = np.fft.irfft(np.fft.rfft(cap, n) * np.conj(np.fft.rfft(ref, n)), n)
    return int(np.argmax(corr[: len(cap)]))


def send_probe_events(live, n_events: int = 6, gap_s: float = 0.25) -> list[float]:
    """Switch the ``"probe"`` voice on (0.5) and off ``n_events`` times, ASAP.

    ``live`` must play :data:`PROBE_VOICE` (a sine at amplitude 0, no glide) under
    the name ``"probe"``; other voices must stay below 0.1 peak.  Returns the
    ``time.perf_counter()`` of each send.
    """
    from auralize.audio.score import Event

    sent = []
    for k in range(n_events):
        time.sleep(gap_s + 0.0371 * (k % 4))  # vary the phase against the JACK period
        sent.append(time.perf_counter())
        live.send(Event(None, "probe", "amp", [0.5 if k % 2 == 0 else 0.0], glide_s=0.0))
    time.sleep(gap_s)
    return sent


def event_latencies(cap: Capture, sent: list[float]) -> np.ndarray:
    """Seconds from each send to the first affected sample the JACK client captured."""
    loud = np.abs(cap.data[:, 0]) > 0.1  # the probe peaks at 0.5 x master gain
    lat = []
    for k, t0 in enumerate(sent):
        j = max(int(np.searchsorted(cap.block_times, t0)) - 1, 0)
        i0 = int(cap.block_frames[j])
        if k % 2 == 0:
            idx = np.flatnonzero(loud[i0:])
        else:  # switched off: the first sample after which all stays quiet for 50 ms
            # (a JACK xrun on a loaded host can zero one period while the tone is on)
            win = int(0.05 * cap.sample_rate)
            idx = np.flatnonzero(np.convolve(~loud[i0:], np.ones(win), "valid") >= win)
        lat.append(cap.time_of_frame(i0 + int(idx[0])) - t0 if idx.size else float("nan"))
    return np.array(lat)


PROBE_VOICE = {"kind": "sines", "freq_hz": [1000.0], "amp": [0.0], "glide_s": 0.0}


def sound_bursts(x: np.ndarray, sample_rate: int, threshold: float = 0.02,
                 gap_s: float = 0.012) -> list[tuple[int, int]]:
    """(start, end) sample indices of the sound bursts in ``x``: louder than ``threshold``,
    separated by quiet gaps longer than ``gap_s`` (1 ms resolution)."""
    hop = sample_rate // 1000
    env = np.abs(x[: len(x) // hop * hop]).reshape(-1, hop).max(axis=1)
    loud = np.flatnonzero(env > threshold)
    if not loud.size:
        return []
    breaks = np.flatnonzero(np.diff(loud) > gap_s * 1000)
    starts = np.r_[loud[0], loud[breaks + 1]]
    ends = np.r_[loud[breaks], loud[-1]] + 1
    return [(int(s) * hop, int(e) * hop) for s, e in zip(starts, ends)]

"""Offline render speed of the sine-bank engine against pyo and naive numpy.

One core (CPU affinity pinned to the least busy allowed core, BLAS/OpenMP
limited to one thread), 44.1 kHz, random partial frequencies 100-4000 Hz, for
16, 128, 1024 and 4096 partials, all in the same process and run:

- ``auralize``: :class:`auralize.audio.engine.Engine` rendering a steady bank in
  1024-frame blocks (what ``render_score`` does); everything from the first
  ``render`` call on is timed (tables, first spans), construction is not.
- ``auralize+glides``: the same bank given new random frequencies every 0.1 s,
  gliding over the voice's default 0.02 s (a sonification with events).
- ``auralize+amp events``: new random amplitudes every 0.1 s, 0.02 s glide
  (activations mapped to loudness).
- ``pyo``: pyo's offline server (``Server(audio="offline")``) rendering the
  same bank (one ``Sine`` with a list of frequencies, one stream per partial,
  all summed into one channel) to a float WAV; only ``Server.start()`` (the
  render) is timed.
- ``pyo+glides`` / ``pyo+amp events``: ``SigTo(..., time=0.02)`` on the
  frequencies / amplitudes and a ``Pattern`` setting the same new values at the
  same times as the auralize events.
- ``naive numpy``: ``amp @ sin(phase + w * n)`` with a float32 (partials x 1024)
  matrix per 1024-frame block.

Figures are "x real time": seconds of audio per CPU second of this
(single-threaded, pinned) process, best of several repeats; CPU time rather
than wall time because the benchmark machine may be shared (the best wall-time
figure is in the JSON rows and, when it differs by over 10%, in the notes).
- ``demo event stream``: the events a real training run makes (``auralize demo
  --no-live --epochs 2``: loss tone, gradient blips, a band-passed weight chord
  with filter sweeps, the alarm), re-rendered from its ``telemetry.jsonl`` as
  ``auralize render`` does; pyo renders the same events with the equivalent
  patch (``SigTo`` per parameter, ``Biquad`` band-passes with ``Phasor``
  sweeps, a ``Sine`` tremolo), the events applied by a server callback at the
  start of each of its 256-frame buffers.  Set ``AURALIZE_BENCH_DEMO_RUN`` to
  an existing run folder to skip the training.

Also reported: the live engine's CPU share for a 4096-unit bank (CPU time /
audio time, rendering 512-frame chunks as the live child does), steady and with
events.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

SR = 44100
SIZES = (16, 128, 1024, 4096)
FMIN, FMAX = 100.0, 4000.0
EVENT_EVERY_S = 0.1
GLIDE_S = 0.02  # the sine voice's default glide
BLOCK = 1024  # offline block (render_score's default)
LIVE_CHUNK = 512  # live child renders engine.chunk_size frames at a time

# Seconds of audio rendered per measurement (quick: shorter): a steady auralize
# bank is cheap, everything else by bank size.
STEADY_DURATION = {False: 4.0, True: 1.0}
DURATION = {
    False: {16: 4.0, 128: 4.0, 1024: 2.0, 4096: 1.0},
    True: {16: 1.0, 128: 0.5, 1024: 0.3, 4096: 0.2},
}
TARGET_VS_PYO_1024 = 5.0
TARGET_RT_4096 = 20.0
TARGET_LIVE_SHARE = 5.0  # % of one core


# -- environment -----------------------------------------------------------------------
def _cpu_busy(cores: list[int], seconds: float = 0.2) -> dict[int, float]:
    """Fraction of time each core was busy over ``seconds`` (from /proc/stat)."""

    def sample():
        stats = {}
        for line in Path("/proc/stat").read_text().splitlines():
            head, *fields = line.split()
            if head.startswith("cpu") and head != "cpu":
                values = [int(v) for v in fields]
                idle = values[3] + (values[4] if len(values) > 4 else 0)
                stats[int(head[3:])] = (sum(values), idle)
        return stats

    a = sample()
    time.sleep(seconds)
    b = sample()
    busy = {}
    for core in cores:
        if core in a and core in b:
            total = b[core][0] - a[core][0]
            idle = b[core][1] - a[core][1]
            busy[core] = 1.0 - idle / total if total > 0 else 0.0
    return busy


def pin_one_core() -> str:
    """Pin this process to one CPU (the least busy) and BLAS/OpenMP to one thread."""
    note = "one thread"
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        try:
            busy = _cpu_busy(cores)
            core = min(cores, key=lambda c: (busy.get(c, 1.0), -c))
        except (OSError, ValueError):
            core = cores[-1]
        os.sched_setaffinity(0, {core})
        note = f"pinned to cpu {core}"
    os.environ["OMP_NUM_THREADS"] = "1"
    return note


class Clock:
    """Wall and CPU time of this process (CPU time: process_time, all its threads)."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0


def best_of(fn, *, min_repeats: int, max_repeats: int, budget_s: float) -> dict:
    """Best (smallest) CPU and wall time of ``fn()`` over repeats.

    ``fn`` returns a :class:`Clock`.  Repeats at least ``min_repeats`` times, then
    until ``budget_s`` of wall time is spent or ``max_repeats`` is reached.
    """
    clocks: list[Clock] = []
    spent = 0.0
    while len(clocks) < max_repeats and (len(clocks) < min_repeats or spent < budget_s):
        clock = fn()
        clocks.append(clock)
        spent += clock.wall
    return {"cpu": min(c.cpu for c in clocks), "wall": min(c.wall for c in clocks),
            "repeats": len(clocks)}


# -- workloads ---------------------------------------------------------------------------
def bank(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(FMIN, FMAX, n), np.full(n, 0.5 / n)


def glide_targets(n: int, duration_s: float, seed: int, param: str = "freq_hz"):
    """[(time, param, values)]: new random frequencies (or amplitudes, summing to at
    most 0.5) every EVENT_EVERY_S seconds after the start."""
    rng = np.random.default_rng(seed + 1)
    count = int(np.floor(duration_s / EVENT_EVERY_S - 1e-9))
    if param == "freq_hz":
        values = [rng.uniform(FMIN, FMAX, n) for _ in range(count)]
    else:
        values = [rng.uniform(0.0, 1.0 / n, n) for _ in range(count)]
    return [((k + 1) * EVENT_EVERY_S, param, v) for k, v in enumerate(values)]


def spread_pans(n: int) -> np.ndarray:
    """Per-partial pans for the stereo rows: partial k of n at -1 + 2k/(n-1) (left to right)."""
    return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)


def time_auralize(freqs, amps, duration_s, events=(), *, block=BLOCK, chunk=LIVE_CHUNK,
                  pans=None) -> Clock:
    """Build an engine with one sine voice, schedule ``events``, render ``duration_s``.

    ``pans``: a stereo engine, each partial at its pan (None: mono)."""
    from auralize.audio.engine import Engine
    from auralize.audio.score import Event

    evs = [Event(t, "bank", param, v) for t, param, v in events]
    total = round(duration_s * SR)
    engine = Engine(SR, chunk_size=chunk, channels=1 if pans is None else 2)
    spec = {"kind": "sines", "freq_hz": freqs, "amp": amps, "glide_s": GLIDE_S}
    if pans is not None:
        spec["pan"] = pans
    engine.add_voice("bank", spec)
    for ev in evs:
        engine.schedule(ev)
    return render_timed(engine, total, block)


def render_timed(engine, total: int, block: int) -> Clock:
    """Render ``total`` frames in ``block``-frame calls (as ``render_score``); the time taken."""
    with Clock() as clock:
        done = 0
        while done < total:
            n = min(block, total - done)
            engine.render(n)
            done += n
    return clock


def time_naive(freqs, amps, duration_s, *, block=BLOCK) -> Clock:
    """``amp @ sin(phase + w n)``: a (partials x block) float32 matrix per block."""
    total = round(duration_s * SR)
    with Clock() as clock:
        w = (2.0 * np.pi * freqs / SR).astype(np.float32)
        a = amps.astype(np.float32)
        phase = np.zeros(len(freqs))
        n = np.arange(block, dtype=np.float32)
        done = 0
        while done < total:
            m = min(block, total - done)
            arg = w[:, None] * n[None, :m]
            arg += phase.astype(np.float32)[:, None]
            a @ np.sin(arg, out=arg)
            phase = np.mod(phase + w.astype(np.float64) * m, 2.0 * np.pi)
            done += m
    return clock


class PyoBench:
    """pyo's offline server; one per process (pyo allows one server)."""

    def __init__(self, tmpdir: str) -> None:
        with contextlib.redirect_stdout(io.StringIO()):  # its GUI-toolkit banner
            import pyo
        self.pyo = pyo
        self.version = getattr(pyo, "PYO_VERSION", "?")
        self.server = pyo.Server(audio="offline", nchnls=1, sr=SR, duplex=0, verbosity=1)
        self.server.boot()
        self.path = str(Path(tmpdir) / "pyo-render.wav")
        self.event_calls = 0

    def stereo(self) -> None:
        """Reboot the server with two output channels (for the stereo rows)."""
        self.server.shutdown()
        self.server.reinit(audio="offline", nchnls=2, sr=SR, duplex=0)
        self.server.boot()
        self.channels = 2

    def _out(self, osc, pans):
        """``osc`` out mono, or each stream through an equal-power SPan at its pan."""
        if pans is None:
            return osc.out(), []
        # SPan: equal power, 0 = left .. 1 = right; one pan per stream
        panned = self.pyo.SPan(osc, outs=2, pan=((np.asarray(pans) + 1) / 2).tolist()).out()
        return panned, [osc]

    def time(self, freqs, amps, duration_s, events=(), pans=None) -> Clock:
        """Render the bank (one Sine, one stream per partial) to a float WAV
        (``pans``: in stereo, each partial through an equal-power panner)."""
        pyo = self.pyo
        # fileformat 0 = WAV, sampletype 3 = 32-bit float
        self.server.recordOptions(dur=duration_s, filename=self.path, fileformat=0,
                                  sampletype=3)
        keep = []
        if events:
            param = events[0][1]
            init = (freqs if param == "freq_hz" else amps).tolist()
            sig = pyo.SigTo(init, time=GLIDE_S, init=init)
            if param == "freq_hz":
                osc, extra = self._out(pyo.Sine(freq=sig, mul=amps.tolist()), pans)
            else:
                osc, extra = self._out(pyo.Sine(freq=freqs.tolist(), mul=sig), pans)
            pending = [v.tolist() for _, _, v in events]

            def change():
                if pending:
                    sig.setValue(pending.pop(0))
                    self.event_calls += 1

            # first call after EVENT_EVERY_S, as the auralize events
            pattern = pyo.Pattern(change, time=EVENT_EVERY_S).play(delay=EVENT_EVERY_S)
            keep = [sig, pattern, *extra]
        else:
            osc, keep = self._out(pyo.Sine(freq=freqs.tolist(), mul=amps.tolist()), pans)
        with Clock() as clock:
            self.server.start()  # offline: returns when the file is rendered
        osc.stop()
        for obj in keep:
            obj.stop()
        del osc, keep
        return clock

    def time_events(self, events, duration_s) -> Clock:
        """Render an engine event stream (sine voices) with the equivalent pyo patch."""
        pyo = self.pyo
        self.server.recordOptions(dur=duration_s, filename=self.path, fileformat=0,
                                  sampletype=3)
        voices, master = {}, pyo.SigTo(0.5, time=0.05, init=0.5)
        pending = sorted((e for e in events if e.param != "add"), key=lambda e: e.time_s or 0.0)
        for event in events:
            if event.param == "add":
                voices[event.voice] = PyoVoice(pyo, event.value, master)
        buffer_s = self.server.getBufferSize() / SR
        clock = {"t": 0.0, "i": 0}

        def apply_due():
            t = clock["t"]
            while clock["i"] < len(pending) and (pending[clock["i"]].time_s or 0.0) <= t:
                event = pending[clock["i"]]
                clock["i"] += 1
                if event.voice == "master" and event.param == "gain":
                    master.setValue(float(event.value))
                elif event.voice in voices:
                    voices[event.voice].set(event.param, event.value, event.glide_s)
            clock["t"] = t + buffer_s

        self.server.setCallback(apply_due)
        with Clock() as timer:
            self.server.start()
        self.server.setCallback(lambda: None)
        for voice in voices.values():
            voice.stop()
        master.stop()
        self.event_calls = clock["i"]
        return timer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.server.shutdown()


class PyoVoice:
    """A sine voice of the engine as a pyo patch (the parameters training sound uses)."""

    def __init__(self, pyo, spec: dict, master) -> None:
        n = int(np.size(spec["freq_hz"]))
        self.glide_s = float(spec.get("glide_s", GLIDE_S))

        def sig(value, size):
            values = np.broadcast_to(np.asarray(value, dtype=float), (size,)).tolist()
            return pyo.SigTo(values, time=self.glide_s, init=values)

        self.size = n
        self.sigs = {"freq_hz": sig(spec["freq_hz"], n), "amp": sig(spec.get("amp", 0.0), n),
                     "shift_hz": sig(spec.get("shift_hz", 0.0), n),
                     "gain": sig(spec.get("gain", 1.0), 1)}
        level = self.sigs["amp"] * self.sigs["gain"] * master
        self.objects = list(self.sigs.values())
        depth = float(spec.get("tremolo_depth", 0.0))
        if depth > 0:  # level x (1 - depth x (0.5 - 0.5 cos)), as the engine's tremolo
            tremolo = pyo.Sine(freq=float(spec.get("tremolo_hz", 0.0)), phase=0.75,
                               mul=0.5 * depth, add=1.0 - 0.5 * depth)
            level = level * tremolo
            self.objects.append(tremolo)
        osc = pyo.Sine(freq=self.sigs["freq_hz"] + self.sigs["shift_hz"], mul=level)
        self.objects.append(osc)
        self.sweep = None
        q = float(spec.get("bp_q", 0.0))
        if q > 0:
            lo, hi = float(spec.get("sweep_lo_hz", 200.0)), float(spec.get("sweep_hi_hz", 2200.0))
            rates = np.broadcast_to(np.asarray(spec.get("sweep_hz", 0.0), float), (n,)).tolist()
            # saw_down from hi to lo, the engine's default sweep shape
            self.sweep = pyo.Phasor(freq=rates, mul=lo - hi, add=hi)
            osc = pyo.Biquad(osc, freq=self.sweep, q=q, type=2)
            self.objects += [self.sweep, osc]
        pan = spec.get("pan")
        if pan is None:
            self.out = osc.out()
        else:  # equal power, 0 = left .. 1 = right, per partial
            pans = ((np.broadcast_to(np.asarray(pan, float), (n,)) + 1) / 2).tolist()
            self.objects.append(osc)
            self.out = pyo.SPan(osc, outs=2, pan=pans).out()

    def set(self, param, value, glide_s) -> None:
        if param == "sweep_hz" and self.sweep is not None:
            rates = np.broadcast_to(np.asarray(value, float), (self.size,)).tolist()
            self.sweep.setFreq(rates)
            return
        target = self.sigs.get(param)
        if target is None:
            return
        size = 1 if param == "gain" else self.size
        target.setTime(self.glide_s if glide_s is None else float(glide_s))
        target.setValue(np.broadcast_to(np.asarray(value, float), (size,)).tolist())

    def stop(self) -> None:
        for obj in self.objects:
            obj.stop()


def demo_events(tmp: str, quick: bool):
    """(events, duration_s, run folder) of a demo training run's re-rendered telemetry."""
    import subprocess
    import sys

    from auralize.sonify.logs import load_log
    from auralize.sonify.timeline import SonifyConfig, replay

    run_dir = os.environ.get("AURALIZE_BENCH_DEMO_RUN")
    if not run_dir:
        run_dir = str(Path(tmp) / "demo")
        src = Path(__file__).resolve().parents[1] / "src"
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        subprocess.run([sys.executable, "-m", "auralize", "demo", "--no-live", "--epochs",
                        "1" if quick else "2", "--out", run_dir], check=True, env=env,
                       stdout=subprocess.DEVNULL)
    records, recorded = load_log(run_dir)
    config = recorded or SonifyConfig()
    score, duration_s = replay(records, config)
    return score.events, duration_s, config, run_dir


def time_events(events, duration_s, config, *, block=BLOCK, channels=1) -> Clock:
    """Render an event stream as ``auralize render`` does (engine settings of the run)."""
    from auralize.audio.engine import Engine

    total = round(duration_s * SR)
    engine = Engine.from_events(events, sample_rate=SR, **{**config.engine_kwargs(),
                                                          "channels": channels})
    return render_timed(engine, total, block)


# -- the benchmark -----------------------------------------------------------------------
def _row(name, value, unit, baseline=None, notes="", **extra):
    ratio = value / baseline if value is not None and baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
            "notes": notes, **extra}


def run(quick: bool = False) -> list[dict]:
    from threadpoolctl import threadpool_limits

    where = pin_one_core()
    durations = DURATION[quick]
    reps = ({"min_repeats": 2, "max_repeats": 3, "budget_s": 0.5} if quick
            else {"min_repeats": 3, "max_repeats": 7, "budget_s": 3.0})
    rows: list[dict] = []
    xrt: dict[tuple[str, int], float | None] = {}
    with threadpool_limits(limits=1), tempfile.TemporaryDirectory() as tmp:
        pyo_bench, pyo_error = None, None
        try:
            pyo_bench = PyoBench(tmp)
        except Exception as exc:  # noqa: BLE001  (ImportError, OSError for a missing lib...)
            pyo_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        # warm-up (imports, first-call allocations), untimed
        f, a = bank(16, 0)
        time_auralize(f, a, 0.2, glide_targets(16, 0.2, 0))
        time_naive(f, a, 0.05)
        if pyo_bench:
            pyo_bench.time(f, a, 0.05)

        def measure(label, n, dur, fn, notes, baseline_case=None):
            got = best_of(fn, **reps)
            xrt[label, n] = dur / got["cpu"]
            base = xrt.get((baseline_case, n)) if baseline_case else None
            wall_xrt = dur / got["wall"]
            contention = got["cpu"] / got["wall"]
            rows.append(_row(
                f"{n} sines: {label}", xrt[label, n], "x real time", base,
                f"{notes}{'; ' if notes else ''}{dur:g} s audio, best of {got['repeats']}"
                + (f"; wall {wall_xrt:.3g}x" if contention < 0.9 else ""),
                wall_x_real_time=wall_xrt, cpu_s=got["cpu"], wall_s=got["wall"],
                audio_s=dur, repeats=got["repeats"]))

        for n in SIZES:
            dur = durations[n]
            freqs, amps = bank(n, seed=n)
            events = glide_targets(n, dur, seed=n)
            amp_events = glide_targets(n, dur, seed=n, param="amp")
            ev_note = (f"new freqs every {EVENT_EVERY_S:g} s, {GLIDE_S:g} s glide "
                       f"({len(events)} events)")
            amp_note = f"new amps every {EVENT_EVERY_S:g} s, {GLIDE_S:g} s glide"
            if pyo_bench:
                measure("pyo", n, dur, partial(pyo_bench.time, freqs, amps, dur),
                        f"pyo {pyo_bench.version} offline server")
                pyo_bench.event_calls = 0
                measure("pyo+glides", n, dur, partial(pyo_bench.time, freqs, amps, dur, events),
                        f"SigTo + Pattern, {ev_note}")
                calls = pyo_bench.event_calls / rows[-1]["repeats"]
                if calls != len(events):
                    rows[-1]["notes"] += f"; WARNING: {calls:g} events/run"
                measure("pyo+amp events", n, dur,
                        partial(pyo_bench.time, freqs, amps, dur, amp_events),
                        f"Sine(mul=SigTo), {amp_note}")
            else:
                rows.append(_row(f"{n} sines: pyo", None, "x real time",
                                 notes=f"error: pyo unavailable ({pyo_error})"))
            measure("naive numpy", n, dur, partial(time_naive, freqs, amps, dur),
                    f"float32 amp @ sin(phase + w*n), {BLOCK}-frame blocks")
            steady = STEADY_DURATION[quick]
            measure("auralize", n, steady, partial(time_auralize, freqs, amps, steady),
                    "ratio: vs pyo", "pyo")
            rows[-1]["notes"] += f"; {xrt['auralize', n] / xrt['naive numpy', n]:.3g}x naive"
            measure("auralize+glides", n, dur, partial(time_auralize, freqs, amps, dur, events),
                    f"ratio: vs pyo+glides; {ev_note}", "pyo+glides")
            measure("auralize+amp events", n, dur,
                    partial(time_auralize, freqs, amps, dur, amp_events),
                    f"ratio: vs pyo+amp events; {amp_note}", "pyo+amp events")

        # A real training run's event stream.
        events, dur, config, run_dir = demo_events(tmp, quick)
        n_events = sum(1 for e in events if e.param != "add")
        density = f"{n_events} events in {dur:.2f} s of audio ({n_events / dur:.0f}/s)"
        if pyo_bench:
            measure("pyo", "demo", dur, partial(pyo_bench.time_events, events, dur),
                    f"pyo {pyo_bench.version}, same events, {density}")
            if pyo_bench.event_calls != n_events:
                rows[-1]["notes"] += f"; WARNING: {pyo_bench.event_calls} events applied"
        measure("auralize", "demo", dur, partial(time_events, events, dur, config),
                f"ratio: vs pyo; {density}; from {Path(run_dir).name}/telemetry.jsonl",
                "pyo" if pyo_bench else None)
        rows[-1]["events_per_cpu_s"] = n_events * xrt["auralize", "demo"] / dur
        for row in rows[-2:]:
            row["name"] = row["name"].replace("demo sines", "demo event stream")

        # Stereo: the same banks, each partial at its own pan (left to right), in a
        # two-channel engine and in pyo with an equal-power SPan per partial.
        if pyo_bench:
            pyo_bench.stereo()
        for n in SIZES:
            s_dur = durations[n]
            freqs, amps = bank(n, seed=n)
            pans = spread_pans(n)
            s_events = glide_targets(n, s_dur, seed=n)
            s_amp_events = glide_targets(n, s_dur, seed=n, param="amp")
            pan_note = "stereo, partials panned left to right"
            for label, evs in (("", ()), ("+glides", s_events), ("+amp events", s_amp_events)):
                if pyo_bench:
                    measure(f"pyo stereo{label}", n, s_dur,
                            partial(pyo_bench.time, freqs, amps, s_dur, evs, pans),
                            f"{pan_note}: SPan per partial")
                measure(f"auralize stereo{label}", n, s_dur,
                        partial(time_auralize, freqs, amps, s_dur, evs, pans=pans),
                        f"ratio: vs pyo stereo{label}; {pan_note}",
                        f"pyo stereo{label}" if pyo_bench else None)
                mono = xrt.get((f"auralize{label}", n))
                if mono:
                    cost = mono / xrt[f"auralize stereo{label}", n]
                    rows[-1]["notes"] += f"; stereo costs {cost:.2g}x the mono render"

        # The demo's events in stereo: voice k of V at -1 + 2k/(V-1), in both engines.
        adds = [e for e in events if e.param == "add"]
        voice_pan = dict(zip((e.voice for e in adds), spread_pans(len(adds)).tolist()))
        stereo_events = [replace(e, value={**e.value, "pan": voice_pan[e.voice]})
                         if e.param == "add" else e for e in events]
        if pyo_bench:
            measure("pyo stereo", "demo", dur, partial(pyo_bench.time_events, stereo_events, dur),
                    f"pyo {pyo_bench.version}, same events, voices panned left to right "
                    "(SPan per voice)")
        measure("auralize stereo", "demo", dur,
                partial(time_events, stereo_events, dur, config, channels=2),
                "ratio: vs pyo stereo; voices panned left to right",
                "pyo stereo" if pyo_bench else None)
        cost = xrt["auralize", "demo"] / xrt["auralize stereo", "demo"]
        rows[-1]["notes"] += f"; stereo costs {cost:.2g}x the mono render"
        for row in rows[-2:]:
            row["name"] = row["name"].replace("demo sines", "demo event stream")

        # Live: the child renders chunk_size (512) frames per call.
        n = SIZES[-1]
        freqs, amps = bank(n, seed=n)
        dur = durations[n]
        for label, seconds, evs in (
            ("steady", STEADY_DURATION[quick], ()),
            (f"new amps every {EVENT_EVERY_S:g} s", dur, glide_targets(n, dur, n, "amp")),
            (f"new freqs every {EVENT_EVERY_S:g} s", dur, glide_targets(n, dur, n)),
        ):
            got = best_of(partial(time_auralize, freqs, amps, seconds, evs, block=LIVE_CHUNK),
                          **reps)
            share = 100.0 * got["cpu"] / seconds
            verdict = "meets" if share < TARGET_LIVE_SHARE else "misses"
            rows.append(_row(f"live CPU share, {n} sines {label}", share, "% of a core",
                             notes=f"CPU time / audio time, {LIVE_CHUNK}-frame chunks; {verdict} "
                                   f"target < {TARGET_LIVE_SHARE:g}%; best of {got['repeats']}",
                             cpu_s=got["cpu"], wall_s=got["wall"], audio_s=seconds))
        if pyo_bench:
            pyo_bench.close()

    # Targets from the issue.
    vs_pyo = (xrt["auralize", 1024] / xrt["pyo", 1024]) if xrt.get(("pyo", 1024)) else None
    rows.append(_row("target: auralize vs pyo, 1024 sines", vs_pyo, "x pyo",
                     notes=("no pyo" if vs_pyo is None else
                            ("PASS" if vs_pyo >= TARGET_VS_PYO_1024 else "FAIL"))
                     + f" (target >= {TARGET_VS_PYO_1024:g}x)"))
    rt = xrt["auralize", 4096]
    rows.append(_row("target: auralize x real time, 4096 sines", rt, "x real time",
                     notes=("PASS" if rt >= TARGET_RT_4096 else "FAIL")
                     + f" (target >= {TARGET_RT_4096:g}x); {where}; x real time = audio "
                       "seconds per CPU second of this process"))
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)

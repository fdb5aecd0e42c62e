"""Generation (boii/GRUV): cost per block with cached state vs GRUV's re-run, real-time factors.

Rows:

- cost of generating block 10 and block 1000 with the LSTM state cached
  (:func:`auralize.generate.model.Streamer`): flat;
- the same blocks the GRUV way (:func:`~auralize.generate.model.generate_rerun`:
  the whole sequence so far is run again for each new block): grows with the
  block index, so the total for n blocks grows quadratically;
- real-time factor of each shipped config in streaming generation on one CPU
  thread (audio seconds per compute second, features and inverse included),
  int8 inference against float32: A, B, C at 8 kHz, GRUV at 44.1 kHz.  Random
  weights: the cost does not depend on what was learnt;
- A, B and C together live (random weights) through a JACK server (dummy driver,
  8 kHz, 256-frame periods), int8 against float32: underruns, CPU share,
  reported latency in blocks;
- live latency at JACK's 32-frame periods (4 ms), default lead, 60 s each:
  A+B+C and A alone (int8), in ms over one block, with underruns and the
  host-stall probe's figures for the same minute; and A+B+C for 30 s while
  ``auralize demo`` trains beside it (the full live chain under a training load).

Quick run (~1 min on 2 cores): config A for the per-block rows, 60 blocks per
real-time factor.  Run alone: ``.venv/bin/python benchmarks/bench_generate.py [--quick]``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from auralize.generate.config import load_config
from auralize.generate.features import Normalizer
from auralize.generate.model import BlockLSTM, Streamer, with_precision

ROOT = Path(__file__).resolve().parents[1]


def _median_ms(times: list[float]) -> float:
    return 1000.0 * float(np.median(times))


def per_block_rows(cfg_name: str, marks=(10, 1000), repeats: int = 21) -> list[dict]:
    """Cached-state step cost at each mark vs the cost of re-running the whole sequence."""
    cfg = load_config(cfg_name)
    torch.manual_seed(0)
    model = BlockLSTM.from_config(cfg).eval()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(cfg.feature_size).astype(np.float32)
    # One stream per mark, advanced to it; then their steps are timed alternately so
    # that every mark sees the same machine load (this host's load varies by the second).
    streams = {}
    with torch.inference_mode():
        for m in marks:
            s = Streamer(model)
            s.warm_up(np.tile(x, (m - 1, 1)))
            streams[m] = s
        cached: dict[int, list[float]] = {m: [] for m in marks}
        for _ in range(repeats):
            for m in marks:
                t = time.perf_counter()
                streams[m].step(x)
                cached[m].append(time.perf_counter() - t)
    rerun: dict[int, list[float]] = {}
    seq = torch.as_tensor(rng.standard_normal((1, max(marks), cfg.feature_size)),
                          dtype=torch.float32)
    with torch.inference_mode():
        for m in marks:
            rerun[m] = []
            for _ in range(3 if m >= 1000 else repeats):
                t = time.perf_counter()
                model(seq[:, :m])
                rerun[m].append(time.perf_counter() - t)
    rows = []
    for m in marks:
        c, r = _median_ms(cached[m]), _median_ms(rerun[m])
        rows.append({"name": f"generate {cfg.name}: cost of block {m}, cached state", "value": c,
                     "unit": "ms", "baseline": r, "ratio": r / c,
                     "notes": f"baseline = GRUV re-run of the {m}-block sequence "
                              f"({cfg.hidden}x{cfg.depth}, 1 thread)"})
    lo, hi = marks[0], marks[-1]
    rows.append({"name": f"generate {cfg.name}: block {hi} / block {lo} cost, cached state",
                 "value": _median_ms(cached[hi]) / _median_ms(cached[lo]), "unit": "x",
                 "baseline": _median_ms(rerun[hi]) / _median_ms(rerun[lo]),
                 "notes": "1.0 = flat; baseline = the same ratio re-running the sequence"})
    total_cached = sum(_median_ms(cached[lo]) for _ in range(hi)) / 1000
    rows.append({"name": f"generate {cfg.name}: {hi} blocks total, cached vs re-run (est.)",
                 "value": total_cached, "unit": "s",
                 "baseline": hi * (_median_ms(rerun[lo]) + _median_ms(rerun[hi])) / 2 / 1000,
                 "notes": "re-run total ~ n * (cost(1) + cost(n)) / 2: quadratic in n"})
    return rows


def _rtf(cfg, model, n_blocks: int) -> tuple[float, float]:
    """(real-time factor, ms per block) of streaming generation, codec included."""
    norm = Normalizer(np.zeros(cfg.feature_size, np.float32), np.ones(cfg.feature_size, np.float32))
    s = Streamer(model)
    x = np.random.default_rng(0).uniform(-0.1, 0.1, cfg.block_size).astype(np.float32)
    feats = norm.apply(cfg.codec.encode(x))
    for _ in range(3):  # warm up
        s.step(feats)
    t = time.perf_counter()
    for _ in range(n_blocks):
        y = s.step(feats)
        block = cfg.codec.decode(norm.undo(y))
        feats = norm.apply(cfg.codec.encode(np.clip(block, -1, 1)))
    dt = time.perf_counter() - t
    return n_blocks * cfg.block_size / cfg.sample_rate / dt, 1000 * dt / n_blocks


def rtf_row(cfg_name: str, n_blocks: int) -> dict:
    """Audio seconds generated per compute second, streaming: int8 vs float32 (baseline)."""
    cfg = load_config(cfg_name)
    torch.manual_seed(0)
    model = BlockLSTM.from_config(cfg).eval()
    fp32, fp32_ms = _rtf(cfg, model, n_blocks)
    int8, int8_ms = _rtf(cfg, with_precision(model, "int8"), n_blocks)
    n_params = sum(p.numel() for p in model.parameters())
    return {"name": f"generate {cfg.name}: real-time factor, streaming, 1 thread, int8",
            "value": int8, "unit": "x real time", "baseline": fp32, "ratio": int8 / fp32,
            "notes": f"baseline float32; {cfg.sample_rate} Hz, block {cfg.block_size}, "
                     f"{cfg.hidden}x{cfg.depth} ({n_params / 1e6:.1f} M params), "
                     f"{int8_ms:.2f} vs {fp32_ms:.2f} ms/block; "
                     "RAVE ~20x (laptop CPU), Neutone ~6x (1 thread)"}


def training_load(out_dir: Path) -> subprocess.Popen:
    """A training run beside live generation: ``auralize demo`` (file output only)."""
    import os

    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.Popen([sys.executable, "-m", "auralize", "demo", "--no-live", "--epochs",
                             "100", "--out", str(out_dir)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _live_once(dirs, seconds: float, threads: int, precision: str, server_name: str,
               stall_ms: float = 8.0, load_dir: Path | None = None):
    """Play ``dirs`` live for ``seconds`` with a sine fed in; (stats, host stalls meanwhile:
    wake-ups of a real-time thread later than ``stall_ms``).  With ``load_dir``, a
    training run (:func:`training_load`) runs from 10 s before the start to the end."""
    import threading

    from host_stalls import measure

    from auralize.generate.live import LiveGenerator
    from test_generate_live import FEEDER

    feeder = subprocess.Popen([sys.executable, "-c", FEEDER, server_name],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    load = None
    try:
        feeder.stdout.readline()
        if load_dir is not None:
            load = training_load(load_dir)
            time.sleep(10.0)  # imports done, training under way
        gen = LiveGenerator(dirs, midi_port=False, threads=threads,
                            precision=precision).start()
        stalls: dict = {}
        probe = threading.Thread(target=lambda: stalls.update(measure(seconds, stall_ms)),
                                 daemon=True)
        probe.start()
        probe.join()
        return gen.close(), stalls
    finally:
        if load is not None:
            load.kill()
            load.wait()
        feeder.communicate("stop\n", timeout=10)


def _stall_note(stalls: dict, stall_ms: float = 8.0) -> str:
    worst = max((ms for _, ms in stalls.get("worst", [])), default=0.0)
    return (f"host: {stalls.get('gaps', '?')} stalls > {stall_ms:g} ms, worst {worst:.0f} ms, steal "
            f"{stalls.get('steal_s', 0.0):.1f} s (benchmarks/host_stalls.py)")


#: JACK period for the latency rows: 32 frames = 4 ms at 8 kHz
LOW_PERIOD = 32
TARGET_ABC_MS, TARGET_ONE_MS = 30.0, 15.0  # over one block


def live_rows(seconds: float, latency_seconds: float, threads: int = 2) -> list[dict]:
    """Configs A, B, C (random weights) live through a JACK server (dummy driver, 8 kHz).

    A feeder client plays a sine into the input.  Latency rows (JACK at 32-frame
    periods, default lead, ``latency_seconds`` each): A+B+C and A alone, int8,
    underruns and the input->output latency auralize reports (primed lead +
    PortAudio's latencies) against one block, with a host-stall probe running
    meanwhile.  CPU rows (256-frame periods, ``seconds`` each): A+B+C int8
    against float32.
    """
    import tempfile

    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "benchmarks")]
    from jackutil import JackServer, exported_env

    if not JackServer.available():
        return [{"name": "generate live A+B+C", "value": None, "unit": "",
                 "notes": "skipped: jackd not installed"}]
    from auralize.generate.train import save_run

    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    dirs = []
    for name in ("A", "B", "C"):
        cfg = load_config(name)
        norm = Normalizer(np.zeros(cfg.feature_size, np.float32),
                          np.ones(cfg.feature_size, np.float32))
        dirs.append(save_run(tmp / name, cfg, BlockLSTM.from_config(cfg), norm))
    results = {}
    low_stall_ms = 1000 * LOW_PERIOD / 8000  # a stall of one period is a possible xrun
    # Latency rows: live's default of one torch thread (two threads on a shared
    # 2-core machine spike to 100+ ms per block when a core is taken).
    for period, runs in ((LOW_PERIOD, (("abc", dirs, "int8", latency_seconds, 1),
                                       ("a", dirs[:1], "int8", latency_seconds, 1),
                                       ("abc+training", dirs, "int8", latency_seconds / 2, 1))),
                         (256, (("abc", dirs, "int8", seconds, threads),
                                ("abc", dirs, "fp32", seconds, threads)))):
        server = JackServer(8000, period).start()
        try:
            with exported_env(server.env()):
                for key, run_dirs, precision, secs, n_threads in runs:
                    results[period, key, precision] = _live_once(
                        run_dirs, secs, n_threads, precision, server.name,
                        low_stall_ms if period == LOW_PERIOD else 8.0,
                        tmp / "training" if key.endswith("training") else None)
        finally:
            server.stop()

    def notes(st):
        return (f"{st.process_ms_mean:.1f} ms/block mean ({st.process_ms_max:.1f} max) for a "
                f"{1000 * st.block_s:.0f} ms block; ring {st.ring_underruns}, device "
                f"{st.device_underflows}, input overflows {st.input_overflows}")

    rows = []
    for key, label, target in (("abc", "A+B+C", TARGET_ABC_MS), ("a", "A", TARGET_ONE_MS)):
        st, stalls = results[LOW_PERIOD, key, "int8"]
        over_ms = 1000 * (st.latency_s - st.block_s)
        verdict = "PASS" if over_ms <= target and st.underruns == 0 else "FAIL"
        common = (f"JACK dummy 8 kHz/{LOW_PERIOD}, default lead, 1 torch thread, "
                  f"{st.wall_s:.0f} s; {_stall_note(stalls, low_stall_ms)}")
        rows += [
            {"name": f"generate live {label} int8, low latency: latency", "value": over_ms,
             "unit": "ms over one block", "baseline": 1000 * 2.0 * st.block_s,
             "notes": f"{verdict} (target <= 1 block + {target:g} ms, 0 underruns); "
                      f"{1000 * st.latency_s:.0f} ms = {st.latency_s / st.block_s:.2f} blocks "
                      "= lead + device latency; baseline = before (3 blocks = 1 block + 128 ms)"
                      f"; {common}"},
            {"name": f"generate live {label} int8, low latency: underruns", "value": st.underruns,
             "unit": "", "notes": f"{notes(st)}; CPU share {st.cpu_share:.2f}; {common}"},
        ]
    st, stalls = results[LOW_PERIOD, "abc+training", "int8"]
    rows.append(
        {"name": "generate live A+B+C int8, low latency, training beside: underruns",
         "value": st.underruns, "unit": "",
         "notes": f"`auralize demo` training (torch, both cores) from 10 s before; latency "
                  f"{1000 * st.latency_s:.0f} ms = {st.latency_s / st.block_s:.2f} blocks (lead "
                  f"sized from blocks measured under that load); {notes(st)}; CPU share "
                  f"{st.cpu_share:.2f}; JACK dummy 8 kHz/{LOW_PERIOD}, 1 torch thread, "
                  f"{st.wall_s:.0f} s; {_stall_note(stalls, low_stall_ms)}"})
    (q, q_stalls), (f, _) = results[256, "abc", "int8"], results[256, "abc", "fp32"]
    common = f"JACK dummy 8 kHz/256, {threads} torch threads, {q.wall_s:.1f} s each"
    rows += [
        {"name": "generate live A+B+C int8: underruns", "value": q.underruns, "unit": "",
         "baseline": f.underruns,
         "notes": f"baseline = float32; int8: {notes(q)}; float32: {notes(f)}; {common}; "
                  f"{_stall_note(q_stalls)}"},
        {"name": "generate live A+B+C int8: CPU share", "value": q.cpu_share, "unit": "cores",
         "baseline": f.cpu_share, "notes": "baseline = float32; target: fits in 2 cores"},
        {"name": "generate live A+B+C int8: latency", "value": q.latency_s / q.block_s,
         "unit": "blocks", "baseline": 3.0,
         "notes": f"{1000 * q.latency_s:.0f} ms = default lead + device latency at 256-frame "
                  "periods; baseline = before (3 blocks)"},
    ]
    return rows


def run(quick: bool = False) -> list[dict]:
    torch.set_num_threads(1)
    rows = per_block_rows("A")
    if not quick:
        rows += per_block_rows("C")
    for name in ("A", "B", "C", "GRUV"):
        n = 60 if quick else 300
        if name == "GRUV":
            n = 12 if quick else 60
        rows.append(rtf_row(name, n))
    rows += live_rows(5.0 if quick else 10.0, 10.0 if quick else 60.0)
    return rows


def _lines(rows: list[dict]) -> str:
    out = []
    for r in rows:
        base = f"  (baseline {r['baseline']:.3g})" if "baseline" in r else ""
        out.append(f"{r['name']}: {r['value']:.3g} {r['unit']}{base}  {r.get('notes', '')}")
    return "\n".join(out)


def main() -> None:
    from standalone import standalone_main

    standalone_main(__doc__, run, _lines)


if __name__ == "__main__":
    main()

"""Engine A/B: this tree's engine against another tree's, in one process, call by call.

For an engine change that should cost nothing (a kernel merged, a loop reordered): a
separate process per side, on a shared machine, measures the machine.  Here the other
tree's ``auralize`` package is copied into a temporary folder as ``auralize_base``
(its own imports renamed), both engines are loaded in one process pinned to one core
(one BLAS thread), and every row renders alternately with the base and this tree's
engine (ABBA order), ``--repeats`` times.  Rows, in x real time (audio seconds per CPU
second), best and median of each side: sine banks of 16, 128 and 1024 partials, steady
and with frequency glides every 0.1 s (``bench_engine``'s workloads), mono and stereo
(each partial at its own pan).

``--control`` compares the base with a second copy of itself: the spread that identical
code shows in this harness (code placement, load), against which an A/B's ratios are
read.  Run alone (not one of ``make bench``'s modules)::

    .venv/bin/python benchmarks/engine_ab.py --base /work/main/src --repeats 45
    .venv/bin/python benchmarks/engine_ab.py --base /work/main/src --repeats 45 --control
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SR = 44100
BLOCK = 1024  # render_score's block
CHUNK = 512


def copy_renamed(src: Path, dest: Path, name: str) -> None:
    """``src/auralize`` as the package ``name`` in ``dest`` (every ``auralize`` import renamed)."""
    target = dest / name
    shutil.copytree(src / "auralize", target, ignore=shutil.ignore_patterns("__pycache__"))
    pattern = re.compile(r"\bauralize(?=[.\s]|$)", re.MULTILINE)
    for path in target.rglob("*.py"):
        path.write_text(pattern.sub(name, path.read_text()))


def render_rate(package: str, freqs, amps, seconds: float, events, channels: int) -> float:
    """x real time of one render: audio seconds per CPU second."""
    engine_mod = sys.modules[f"{package}.audio.engine"]
    event = sys.modules[f"{package}.audio.score"].Event
    engine = engine_mod.Engine(SR, chunk_size=CHUNK, channels=channels)
    spec = {"kind": "sines", "freq_hz": freqs, "amp": amps, "glide_s": 0.02}
    if channels == 2:
        spec["pan"] = list(np.linspace(-1.0, 1.0, len(freqs)))
    engine.add_voice("bank", spec)
    for t, param, value in events:
        engine.schedule(event(t, "bank", param, value))
    total = round(seconds * SR)
    t0 = time.process_time()
    done = 0
    while done < total:
        n = min(BLOCK, total - done)
        engine.render(n)
        done += n
    return seconds / (time.process_time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the other tree's src folder (holds auralize/)")
    ap.add_argument("--repeats", type=int, default=15, help="interleaved renders per side (15)")
    ap.add_argument("--control", action="store_true",
                    help="A/A: the base against a second copy of itself")
    args = ap.parse_args()

    sys.path.insert(0, str(HERE))
    import bench_engine as be

    print(be.pin_one_core(), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="engine_ab_"))
    try:
        copy_renamed(Path(args.base), tmp, "auralize_base")
        sides = {"base": "auralize_base", "this": "auralize"}
        if args.control:
            copy_renamed(Path(args.base), tmp, "auralize_base2")
            sides["this"] = "auralize_base2"
        sys.path.insert(0, str(tmp))
        for package in sides.values():
            importlib.import_module(f"{package}.audio.engine")
            importlib.import_module(f"{package}.audio.score")
        rows = {}
        for n in (16, 128, 1024):
            freqs, amps = be.bank(n, seed=n)
            seconds = 10.0 if n == 1024 else 20.0
            glides = be.glide_targets(n, seconds, seed=1)
            for channels in (1, 2):
                label = "mono" if channels == 1 else "stereo"
                rows[f"{n} steady {label}"] = (freqs, amps, seconds, (), channels)
                rows[f"{n} glides {label}"] = (freqs, amps, seconds, glides, channels)
        print(f"{'row':22s} {'base best':>9s} {'this best':>9s} {'ratio':>6s} "
              f"{'base med':>9s} {'this med':>9s} {'ratio':>6s}   x real time, "
              f"{args.repeats} interleaved renders a side"
              + ("   (A/A control: 'this' is a copy of the base)" if args.control else ""))
        for name, (freqs, amps, seconds, events, channels) in rows.items():
            got = {side: [] for side in sides}
            for package in sides.values():  # warm: compile or load the kernels
                render_rate(package, freqs, amps, min(seconds, 2.0), events, channels)
            for r in range(args.repeats):
                for side in (("base", "this") if r % 2 == 0 else ("this", "base")):
                    got[side].append(render_rate(sides[side], freqs, amps, seconds, events,
                                                 channels))
            bb, tb = max(got["base"]), max(got["this"])
            bm, tm = statistics.median(got["base"]), statistics.median(got["this"])
            print(f"{name:22s} {bb:9.0f} {tb:9.0f} {tb / bb:6.3f} {bm:9.0f} {tm:9.0f} "
                  f"{tm / bm:6.3f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

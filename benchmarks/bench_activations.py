"""Activation sonification (netsounds) benchmark.

    python benchmarks/bench_activations.py [--quick]        # or: benchmarks/run.py --only activations

Figures:
1. Images per second from an image file to the four bank WAVs (SqueezeNet 1.0, sum
   scheme, no plots), at 256 and 1024 px short edge, on CPU (and CUDA when present);
   also the full CLI output set (tensors + WAVs + mix, no plots).
2. The activation-to-audio step alone, all four banks of one image, against
   netsounds' method on the same maps: a Python loop over rows calling numpy's
   ``ifft`` per row, real part, per-filter min/max scaling, then summed.  Timed as
   the best of several runs, on one torch thread (same single core as numpy, so the
   ratio is the algorithm's, not parallelism's) and on all threads.  Target >= 20x.
3. Peak memory (growth of the kernel's peak RSS, VmHWM) for one 2048 px image
   through SqueezeNet 1.0 to audio, sum and concat schemes.  Target < 4 GB.

Weights are random (seeded); the work done does not depend on their values.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from auralize.activations import activations_to_audio, capture
from auralize.activations.images import load_image
from auralize.activations.pipeline import sonify_image
from auralize.models.squeezenet import BANKS, SqueezeNet

BANK_LAYERS = BANKS["squeezenet1_0"]


def netsounds_step(maps: list[np.ndarray]) -> list[np.ndarray]:
    """netsounds' activation-to-audio: per-row numpy ifft in a Python loop (sum scheme)."""
    out = []
    for bank in maps:
        total = None
        for fmap in bank:
            sig = np.concatenate([np.fft.ifft(row).real for row in fmap])
            lo, hi = sig.min(), sig.max()
            sig = 2 * (sig - lo) / (hi - lo) - 1 if hi > lo else np.zeros_like(sig)
            total = sig if total is None else total + sig
        lo, hi = total.min(), total.max()
        out.append(2 * (total - lo) / (hi - lo) - 1 if hi > lo else np.zeros_like(total))
    return out


def _row(name, value, unit, baseline=None, ratio=None, notes=""):
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
            "notes": notes}


def _photo(folder: Path) -> Path:
    """A 1200 x 1600 px JPEG with photo-like smooth structure and texture."""
    from PIL import Image

    rng = np.random.default_rng(0)
    h, w = 1600, 1200
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    for _ in range(20):
        cy, cx, r = rng.random() * h, rng.random() * w, 60 + 300 * rng.random()
        img += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))[..., None] * rng.random(3)
    img = np.clip(img / img.max() + 0.08 * rng.standard_normal((h, w, 3)), 0, 1)
    path = folder / "photo.jpg"
    Image.fromarray((img * 255).astype(np.uint8)).save(path, quality=90)
    return path


def _best(fn, repeats: int, clock=time.perf_counter) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def _maps_for(model, path: Path, size: int) -> list[torch.Tensor]:
    acts = capture(model, BANK_LAYERS)
    acts(load_image(path, size).to(next(model.parameters()).device))
    return [acts[name][0] for name in BANK_LAYERS]


def _load() -> str:
    """1-minute load average / cores: other work on the machine slows every figure."""
    try:
        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    except OSError:  # pragma: no cover
        return "unknown"


def _threads(n: int):
    class _T:
        def __enter__(self):
            self.old = torch.get_num_threads()
            torch.set_num_threads(n)

        def __exit__(self, *exc):
            torch.set_num_threads(self.old)

    return _T()


def _peak_memory(path: Path, size: int, scheme: str, out: Path):
    from auralize.activations import memory

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src")] + (
        [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    try:
        growth, peak, seconds = memory.measure(path, size, scheme, out, env=env)
    except RuntimeError as exc:
        return None, None, None, [str(exc)]
    return growth, peak, seconds, None


def run(quick: bool = False) -> list[dict]:
    rows: list[dict] = []
    torch.manual_seed(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory(prefix="auralize-bench-act-") as tmp:
        tmp = Path(tmp)
        photo = _photo(tmp)
        for device in devices:
            model = SqueezeNet("1_0").eval().to(device)
            # 1. file -> four WAVs
            for size, reps in ((256, 2 if quick else 5), (1024, 1 if quick else 3)):
                sonify_image(model, photo, BANK_LAYERS, tmp / "warm", image_size=min(size, 128),
                             save_plots=False)

                def four_wavs(size=size, model=model):
                    sonify_image(model, photo, BANK_LAYERS, tmp / f"o{size}", image_size=size,
                                 save_tensors=False, save_plots=False, mix=None)

                def full_set(size=size, model=model):
                    sonify_image(model, photo, BANK_LAYERS, tmp / f"f{size}", image_size=size,
                                 save_plots=False)

                t = _best(four_wavs, reps)
                rows.append(_row(f"{device}: file -> 4 WAVs, {size} px", 1.0 / t, "images/s",
                                 notes=f"{t * 1e3:.0f} ms per image, sum scheme, "
                                       f"{threads} torch threads; load {_load()}"))
                if device == "cpu" and threads > 1:
                    with _threads(1):
                        t = _best(four_wavs, reps)
                    rows.append(_row(f"cpu: file -> 4 WAVs, {size} px, 1 thread", 1.0 / t,
                                     "images/s", notes=f"{t * 1e3:.0f} ms per image"))
                t = _best(full_set, max(1, reps // 2))
                rows.append(_row(f"{device}: file -> .pt + WAVs + mix, {size} px", 1.0 / t,
                                 "images/s", notes=f"{t * 1e3:.0f} ms per image, no PNGs"))

            # 2. activation-to-audio step vs netsounds' per-row numpy loop
            for size in (256, 1024):
                maps = _maps_for(model, photo, size)
                shapes = " ".join("x".join(map(str, m.shape)) for m in maps)
                ref_maps = [m.cpu().numpy() for m in maps]
                ref_reps = 1 if (quick or size > 256) else 3
                t_ref_cpu = _best(lambda ref_maps=ref_maps: netsounds_step(ref_maps), ref_reps,
                                  time.process_time)
                t_ref = _best(lambda ref_maps=ref_maps: netsounds_step(ref_maps), 1)

                def step(maps=maps, device=device):
                    for m in maps:
                        activations_to_audio(m, "sum")
                    if device == "cuda":
                        torch.cuda.synchronize()

                step()
                reps = 3 if quick else 10
                if device == "cpu":
                    with _threads(1):
                        step()
                        t1_cpu = _best(step, reps, time.process_time)
                        t1 = _best(step, reps)
                    rows.append(_row(
                        f"cpu: maps -> audio, 4 banks, {size} px, 1 thread (CPU time)",
                        t1_cpu * 1e3, "ms", baseline=t_ref_cpu * 1e3, ratio=t_ref_cpu / t1_cpu,
                        notes=f"netsounds per-row numpy loop {t_ref_cpu * 1e3:.0f} ms CPU; "
                              f"maps {shapes}; target >= 20x; load {_load()}"))
                    rows.append(_row(
                        f"cpu: maps -> audio, 4 banks, {size} px, 1 thread (wall)",
                        t1 * 1e3, "ms", baseline=t_ref * 1e3, ratio=t_ref / t1,
                        notes=f"netsounds {t_ref * 1e3:.0f} ms wall"))
                t = _best(step, reps)
                rows.append(_row(
                    f"{device}: maps -> audio, 4 banks, {size} px, {threads if device == 'cpu' else 'GPU'}"
                    f"{' threads' if device == 'cpu' else ''} (wall)",
                    t * 1e3, "ms", baseline=t_ref * 1e3, ratio=t_ref / t,
                    notes="netsounds on CPU, wall; target >= 20x"))
                del maps, ref_maps
            del model
            if device == "cuda":
                torch.cuda.empty_cache()

        # 3. peak memory at 2048 px (CPU)
        cases = [(1024, "sum")] if quick else [(2048, "sum"), (2048, "concat")]
        for size, scheme in cases:
            growth, peak, seconds, err = _peak_memory(photo, size, scheme, tmp / f"m{size}")
            if err:
                rows.append(_row(f"cpu: peak memory, {size} px, {scheme}", None, "MB",
                                 notes=f"error: {err}"))
                continue
            rows.append(_row(
                f"cpu: peak memory, {size} px, {scheme}", growth / 2**20, "MB",
                notes=f"growth of peak RSS over the loaded process; process peak "
                      f"{peak / 2**20:.0f} MB; {seconds:.1f} s; target < 4096 MB"))
    return rows


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    for row in run(quick=quick):
        value = "-" if row["value"] is None else f"{row['value']:.3g}"
        ratio = f"  x{row['ratio']:.1f}" if row.get("ratio") else ""
        print(f"{row['name']:<62} {value:>10} {row['unit']:<9}{ratio}  {row['notes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

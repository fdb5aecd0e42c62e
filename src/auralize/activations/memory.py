"""Peak memory of sonifying one image, measured by the kernel (Linux).

Run in a fresh process, so nothing else the caller did counts::

    python -m auralize.activations.memory IMAGE SIZE SCHEME OUT_DIR

prints ``growth_bytes peak_bytes seconds``: how far the process's peak resident
set (VmHWM, reset just before the work) rose above its resident set after a
small warm-up image, the peak itself, and the wall time of the measured call.
Used by the memory test and the activations benchmark.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def _status(key: str) -> int:
    """A ``/proc/self/status`` field in bytes (``VmRSS:``, ``VmHWM:``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def can_measure() -> bool:
    """Whether this kernel lets a process reset its peak-RSS counter."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def measure_here(image: str | Path, size: int, scheme: str, out_dir: str | Path):
    """Measure in this process: ``(growth_bytes, peak_bytes, seconds)``."""
    import torch

    from auralize.activations.pipeline import sonify_image
    from auralize.models.squeezenet import BANKS, SqueezeNet

    torch.manual_seed(0)
    model = SqueezeNet("1_0").eval()
    banks = BANKS["squeezenet1_0"]
    # Warm up at a small size so that libraries and kernels are loaded before measuring.
    sonify_image(model, image, banks, Path(out_dir) / "warm", image_size=48, save_plots=False)
    base = _status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    t = time.perf_counter()
    sonify_image(model, image, banks, Path(out_dir) / "big", image_size=size, scheme=scheme,
                 save_plots=False)
    seconds = time.perf_counter() - t
    peak = _status("VmHWM:")
    return peak - base, peak, seconds


def measure(image: str | Path, size: int, scheme: str, out_dir: str | Path,
            timeout_s: float = 1800.0, env: dict | None = None):
    """Measure in a fresh Python process: ``(growth_bytes, peak_bytes, seconds)``.

    Raises
    ------
    RuntimeError
        The child failed; the message is its last line of error output.
    """
    proc = subprocess.run(
        [sys.executable, "-m", "auralize.activations.memory", str(image), str(size), scheme,
         str(out_dir)], check=False, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"exit code {proc.returncode}")
    growth, peak, seconds = proc.stdout.split()[-3:]
    return int(growth), int(peak), float(seconds)


if __name__ == "__main__":
    g, p, s = measure_here(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
    print(g, p, s)

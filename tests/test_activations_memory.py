"""Memory bound: an image through SqueezeNet 1.0 to audio stays within a cap.

The acceptance figure (2048 px under 4 GB) is measured by benchmarks/bench_activations.py;
this guards the same path at 384 px, in a fresh process, from the kernel's own
peak-RSS counter (VmHWM, reset just before the work).  Peak memory grows with the
pixel count, so 384 px (1/28 of 2048 px's pixels) gets a proportionally smaller cap.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent(
    """
    import sys
    import numpy as np
    import torch
    from PIL import Image
    from auralize.activations.pipeline import sonify_image
    from auralize.models.squeezenet import BANKS, SqueezeNet

    size, scheme, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    def status(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    torch.manual_seed(0)
    model = SqueezeNet("1_0").eval()
    rng = np.random.default_rng(0)
    path = out + "/photo.jpg"
    Image.fromarray((rng.random((size * 4 // 3, size, 3)) * 255).astype(np.uint8)).save(path)
    # Warm up at a small size so that libraries and kernels are loaded before measuring.
    sonify_image(model, path, BANKS["squeezenet1_0"], out + "/warm", image_size=48,
                 save_plots=False)
    base = status("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    sonify_image(model, path, BANKS["squeezenet1_0"], out + "/big", image_size=size,
                 scheme=scheme, save_plots=False)
    print(status("VmHWM:") - base)
    """
)


def _peak_growth(tmp_path: Path, size: int, scheme: str) -> int:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("cannot reset the peak-RSS counter here (/proc/self/clear_refs)")
    proc = subprocess.run([sys.executable, "-c", PROBE, str(size), scheme, str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip().splitlines()[-1])


def test_peak_memory_of_one_image_is_bounded(tmp_path):
    # 384 px short edge, 512 x 384 image, concat (the largest output: every filter's audio).
    # Measured about 105 MB (maps + bank audio + mix buffer + the WAV writer's copy); 2048 px
    # has 28x the pixels and measured 2.7 GB, so 4 GB there corresponds to ~145 MB here.
    growth = _peak_growth(tmp_path, 384, "concat")
    assert growth < 145 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MB"

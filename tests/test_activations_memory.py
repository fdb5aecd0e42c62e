"""Memory bound: an image through SqueezeNet 1.0 to audio stays within a cap.

The acceptance figure (2048 px under 4 GB) is measured by benchmarks/bench_activations.py;
this guards the same path at 384 px, in a fresh process, from the kernel's own
peak-RSS counter (VmHWM, reset just before the work).  Peak memory grows with the
pixel count, so 384 px (1/28 of 2048 px's pixels) gets a proportionally smaller cap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auralize.activations import memory


def _peak_growth(tmp_path: Path, size: int, scheme: str) -> int:
    if not memory.can_measure():
        pytest.skip("cannot reset the peak-RSS counter here (/proc/self/clear_refs)")
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.jpg"
    Image.fromarray((rng.random((size * 4 // 3, size, 3)) * 255).astype(np.uint8)).save(photo)
    growth, _, _ = memory.measure(photo, size, scheme, tmp_path, timeout_s=300)
    return growth


def test_peak_memory_of_one_image_is_bounded(tmp_path):
    # 384 px short edge, 512 x 384 image, concat (the largest output: every filter's audio).
    # Measured about 105 MB (maps + bank audio + mix buffer + the WAV writer's copy); 2048 px
    # has 28x the pixels and measured 2.7 GB, so 4 GB there corresponds to ~145 MB here.
    growth = _peak_growth(tmp_path, 384, "concat")
    assert growth < 145 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MB"

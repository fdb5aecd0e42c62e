"""A live stream compiles nothing after start-up: :func:`auralize.audio.warm_up.warm_up_kernels`.

On a fresh install numba compiles each kernel at its first use (about 20 s for
all of them here).  A live output (speaker, page, notebook widget) that paid that
at the first note fell silent for as long: the notebook widget played 2 s of a
6 s run on a fresh clone.  The outputs now warm the kernels up before they report
ready; this test checks that the warm-up score covers what the mappings really
play, by counting the compiled variants of every kernel in a fresh process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, math, sys
import numba
from auralize.audio.voices import bank_kernels
from auralize.audio import kernels
from auralize.audio.warm_up import warm_up_kernels
from auralize.sonify.presets import sound_mappings
from auralize.sonify.telemetry import TrainingStep
from auralize import Sonifier

def variants():
    out = {}
    for module in (kernels, bank_kernels):
        for name, obj in vars(module).items():
            if isinstance(obj, numba.core.registry.CPUDispatcher):
                out[f"{module.__name__}.{name}"] = len(obj.signatures)
    return out

for channels in (1, 2):
    warm_up_kernels(44100, {"channels": channels})
warmed = variants()
for channels in (1, 2):
    for preset in ("training", "earcons"):
        son = Sonifier(None, mappings=sound_mappings(preset), live=False, plot=False,
                       channels=channels, step_s=0.05, log_to=())
        for step in range(40):
            loss = float("nan") if step == 25 else 1.0 / (1 + step)
            norms = {f"h.{i}": (1e3 if step == 30 else 1.0) * 0.1 * (i + 1) for i in range(6)}
            son.log(TrainingStep(step=step, epoch=step // 10, loss=loss, grad_norms=norms,
                                 unit_means={"h.5": [0.1 * k - 0.5 for k in range(12)]},
                                 epoch_end=step % 10 == 9))
        son.close()
print(json.dumps({"warmed": warmed, "after": variants()}))
"""


def test_after_the_warm_up_the_mappings_compile_no_kernel(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), NUMBA_CACHE_DIR=str(tmp_path / "numba"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    warmed, after = seen["warmed"], seen["after"]
    assert sum(warmed.values()) > 10  # the warm-up compiled the kernels
    late = {name: (warmed.get(name, 0), n) for name, n in after.items() if n != warmed.get(name, 0)}
    assert late == {}, f"compiled after the warm-up (kernel: before, after): {late}"

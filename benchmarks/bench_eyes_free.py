"""What speech and earcons cost the training loop: ``Sonifier.log`` per step.

Three sessions side by side in one run, same records (an epoch end every 20
steps with accuracy and val_loss): ``loss`` (baseline), ``loss + earcons``,
``loss + speech``.  The speech cache starts empty, so every sentence is
synthesised by espeak-ng in the training process (once per announcement); plain
steps should cost what the baseline costs.  The ``follow`` latency is measured by
``tests/test_follow_live.py`` (JACK), not here.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time


def _session(mappings, n_steps: int) -> tuple[list[float], list[float]]:
    from auralize import Sonifier, TrainingStep

    son = Sonifier(None, mappings=mappings, live=False, plot=False, step_s=0.05)
    plain, ends = [], []
    for step in range(n_steps):
        record = TrainingStep(step=step, epoch=step // 20, loss=1 / (1 + step),
                              epoch_end=step % 20 == 19)
        if record.epoch_end:
            record.metrics = {"accuracy": 0.5 + step / 1000, "val_loss": 1 / (2 + step)}
        t0 = time.perf_counter()
        son.log(record)
        (ends if record.epoch_end else plain).append((time.perf_counter() - t0) * 1000)
    son.close()
    return plain, ends


def run(quick: bool) -> list[dict]:
    os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="auralize-bench-")  # cold cache
    n_steps = 100 if quick else 400
    base_plain, base_ends = _session(["loss"], n_steps)
    rows = []
    for name, mappings in (("earcons", ["loss", "earcons"]), ("speech", ["loss", "speech"])):
        plain, ends = _session(mappings, n_steps)
        rows.append({"name": f"log() plain step, loss + {name}",
                     "value": statistics.median(plain), "unit": "ms",
                     "baseline": statistics.median(base_plain)})
        rows.append({"name": f"log() epoch end, loss + {name}",
                     "value": statistics.median(ends), "unit": "ms",
                     "baseline": statistics.median(base_ends),
                     "notes": f"max {max(ends):.1f} ms"})
    return rows

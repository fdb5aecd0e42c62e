"""Hashes of engine renders that exercise every path of the finish kernel, for old-vs-new checks.

Mono and stereo; 16- and 2048-partial banks (with per-partial pans) and a noise voice;
frequency glides, master-gain glides, the limiter engaged and the soft clip shaping;
each rendered in blocks of 1 to 44100 frames.  Run it under two trees and compare::

    PYTHONPATH=/tmp/base/src python benchmarks/engine_hashes.py > old.json
    PYTHONPATH=src python benchmarks/engine_hashes.py > new.json
    diff old.json new.json && echo identical
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from auralize.audio.engine import Engine
from auralize.audio.score import Event

SR = 44100
BLOCKS = (1000, 37, 4096, 512, 20000, 333, 1, 44100, 22050)


def main() -> None:
    rng = np.random.default_rng(0)
    out = {}
    for channels in (1, 2):
        for case in ("quiet", "loud", "clip", "glides", "master", "bigbank"):
            n = 2048 if case == "bigbank" else 16
            top = {"quiet": 0.01, "loud": 0.3, "clip": 3.0}.get(case, 0.05)
            engine = Engine(SR, channels=channels, master_gain=1.0 if case == "clip" else 0.8)
            engine.add_voice("bank", {"kind": "sines", "freq_hz": list(rng.uniform(100, 4000, n)),
                                      "amp": list(rng.uniform(0.0, top, n)),
                                      "pan": list(np.linspace(-1, 1, n))})
            engine.add_voice("noise", {"kind": "noise", "amp": 0.2 if case == "loud" else 0.02})
            for k in range(1, 20):
                t = 0.1 * k
                if case in ("glides", "bigbank", "loud"):
                    engine.schedule(Event(t, "bank", "freq_hz", list(rng.uniform(100, 4000, n)),
                                          0.02))
                if case == "master":
                    engine.schedule(Event(t, "master", "gain", float(rng.uniform(0.1, 1.0)), 0.05))
                if case == "clip":
                    engine.schedule(Event(t, "bank", "amp", list(rng.uniform(0, 5.0, n)), 0.0))
            audio = np.concatenate([engine.render(size) for size in BLOCKS])
            stats = engine.stats.as_dict()
            out[f"{channels}ch {case}"] = {
                "sha256": hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest(),
                "shape": list(audio.shape), "limiter_spans": stats["limiter_engaged_blocks"],
                "soft_clipped": stats["limited_samples"]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

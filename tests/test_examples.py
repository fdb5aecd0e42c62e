"""The scripts in examples/ run as a user runs them, and leave a recording."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_every_example_is_tested():
    names = {p.name for p in EXAMPLES}
    assert names >= {"pytorch_loop.py", "keras_fit.py", "lightning_trainer.py",
                     "follow_tensorboard.py", "eyes_free.py"}


@pytest.mark.slow
@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_its_recording(script, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), MPLBACKEND="Agg")
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    wav = tmp_path / "run" / "sonification.wav"
    assert f"{wav}" in out.stdout or "wrote" in out.stdout
    info = sf.info(str(wav))
    assert info.frames > info.samplerate  # more than a second of sound
    steps = len((tmp_path / "run" / "telemetry.jsonl").read_text().splitlines())
    assert steps >= 16
    if script.stem == "follow_tensorboard":
        heard = int(re.search(r"heard (\d+) steps", out.stdout).group(1))
        assert heard >= 16  # every step the training wrote was heard

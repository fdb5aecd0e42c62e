"""A 2-process DDP run (torchrun, gloo, CPU) under auralize.torch.watch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapter_util import check_run_folder, close

HERE = Path(__file__).parent


@pytest.mark.slow
def test_ddp_two_processes_one_recording_from_rank_zero_no_hang(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
        "torchrun")
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nproc_per_node", "2", str(HERE / "ddp_script.py"), str(tmp_path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    # a hang at exit (a renderer child, a process group left open) fails here
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = {r: json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)}
    assert ranks[0]["sonifier"] and ranks[0]["result"]
    assert not ranks[1]["sonifier"] and not ranks[1]["hooks"] and ranks[1]["result"] is None
    # exactly one recording, rank 0's
    wavs = sorted(tmp_path.rglob("*.wav"))
    assert wavs == [tmp_path / "run" / "sonification.wav"]
    recs = check_run_folder(tmp_path / "run", n_steps=8)
    assert list(recs[0].grad_norms) == ["0", "2"]          # DDP's "module." looked through
    for rec, loss in zip(recs, ranks[0]["losses"]):
        assert close(rec.loss, loss, 1e-6)
    assert [r.epoch_end for r in recs] == [False, False, False, True] * 2

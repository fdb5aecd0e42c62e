"""Per-layer gradient norms are the global ones under DDP, FSDP2, HSDP, FSDP1, ZeRO 1-3, Lightning.

Each configuration trains the tiny GPT-2 of ``sharded_util`` for 3 SGD steps on
real process groups (gloo, CPU) started by real launchers
(``torch.multiprocessing.spawn``, the ``deepspeed`` launcher, Lightning's own),
with ``auralize.torch.watch`` / ``SonifyCallback`` on every rank.  Rank 0's
``telemetry.jsonl`` is compared with a reference trained on ONE process from the
same initial weights and global batches (unsharded fp32 gradients): every layer,
every step, within 1e-4 relative — a shard-local norm (what a rank sees alone)
is off by tens of percent.  Rank 0 alone makes a Sonifier and a run folder;
every rank joins the collective (else the run would hang, and the launchers'
timeouts would fail the test).

One launch per group of configurations sharing a world size (the ranks' start-up
is most of the time): ~20-60 s each on 2 idle cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapter_util import check_run_folder
from sharded_util import CLIP, STEPS, read_telemetry, reference, worst_relative

HERE = Path(__file__).parent
TOL = 1e-4
TWO_RANKS = ["ddp", "fsdp2-layer", "fsdp2-model", "fsdp1-orig", "fsdp1-flat"]
UNREAD = "fsdp2-two-meshes"     # parameters on two device meshes: not read
ZERO_ONLY = "fsdp2-rank0-only"   # watch() on rank 0 alone (``if rank == 0: watch(...)``)
FOUR_RANKS = ["fsdp2-layer", "fsdp2-model", "hsdp"]
ZERO = [1, 2, 3]

pytestmark = pytest.mark.slow


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE.parent / "src")] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def _launch(cmd: list[str], env: dict) -> None:
    # a rank left waiting in a collective hangs the launch: the timeout fails it
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def refs():
    return {"plain": reference(), "clipped": reference(clip=CLIP)}


@pytest.fixture(scope="module")
def spawned(tmp_path_factory):
    """world size -> folder holding one sub-folder per configuration."""
    cache = {}

    def get(world: int) -> Path:
        if world not in cache:
            out = tmp_path_factory.mktemp(f"world{world}")
            configs = [*TWO_RANKS, UNREAD, ZERO_ONLY] if world == 2 else FOUR_RANKS
            try:
                _launch([sys.executable, str(HERE / "sharded_script.py"), str(out),
                         str(world), *configs], _env())
                cache[world] = out
            except AssertionError as err:    # one launch per world size, failed or not
                cache[world] = err
        if isinstance(cache[world], AssertionError):
            raise cache[world]
        return cache[world]
    return get


@pytest.fixture(scope="module")
def zero_runs(tmp_path_factory):
    pytest.importorskip("deepspeed")
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("the deepspeed launcher is not installed")
    out = tmp_path_factory.mktemp("zero")
    port = str(29500 + os.getpid() % 2000)
    _launch([launcher, "--num_gpus", "2", "--master_port", port,
             str(HERE / "deepspeed_script.py"), str(out), *map(str, ZERO)],
            _env(DS_ACCELERATOR="cpu"))
    return out


def check_config(folder: Path, world: int, ref: list[dict], prefix: str = "") -> None:
    """Rank 0 alone sonified; its norms are the one-process reference's."""
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(world)]
    assert ranks[0]["sonifier"]
    for info in ranks[1:]:
        assert not info["sonifier"]
    for info in ranks:
        assert info["warnings"] == []          # nothing left out, nothing to apologise for
    # the folder holds the ranks' notes and one run folder: nobody else wrote files
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"rank{r}.json" for r in range(world)] + ["run"])
    check_run_folder(folder / "run", n_steps=STEPS)
    recs = read_telemetry(folder / "run")
    assert [r["step"] for r in recs] == list(range(STEPS))
    n_weights = 0
    for rec, want in zip(recs, ref):
        got = {k.removeprefix(prefix): v for k, v in rec["grad_norms"].items()}
        assert worst_relative(got, want["grads"]) < TOL, (rec["step"], got, want["grads"])
        stats = {k.removeprefix(prefix): v for k, v in (rec.get("weight_stats") or {}).items()}
        if stats:
            n_weights += 1
            assert worst_relative({k: v["norm"] for k, v in stats.items()},
                                  {k: v["norm"] for k, v in want["weights"].items()}) < TOL
            for k, v in want["weights"].items():
                assert abs(stats[k]["mean"] - v["mean"]) <= TOL * (abs(v["mean"]) + 1e-3)
    assert n_weights >= 1      # the first step always has weight statistics


@pytest.mark.parametrize("config", TWO_RANKS)
def test_two_ranks_hear_the_global_norms(spawned, refs, config):
    check_config(spawned(2) / config, 2, refs["plain"])


def test_a_layout_it_cannot_read_is_said_once_and_left_out(spawned):
    folder = spawned(2) / UNREAD
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]
    for info in ranks:             # every rank trained all its steps
        assert len(info["losses"]) == STEPS
        assert len(info["warnings"]) == 1
        assert "gradient norms under FSDP2 are not available" in info["warnings"][0]
        assert "\n" not in info["warnings"][0]
    recs = read_telemetry(folder / "run")
    assert len(recs) == STEPS
    for rec, loss in zip(recs, ranks[0]["losses"]):
        assert not rec.get("grad_norms") and not rec.get("weight_stats")
        assert abs(rec["loss"] - loss) < 1e-6


def test_watch_on_rank_zero_alone_says_so_and_does_not_hang(spawned):
    # the all-reduce would wait for ever for rank 1: rank 0 sees that rank 1 never
    # registered, warns once and leaves gradients out; the launch's timeout is the hang test
    folder = spawned(2) / ZERO_ONLY
    ranks = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(2)]
    assert len(ranks[0]["losses"]) == len(ranks[1]["losses"]) == STEPS
    assert len(ranks[0]["warnings"]) == 1
    assert "watch() was not called on rank(s) [1]" in ranks[0]["warnings"][0]
    recs = read_telemetry(folder / "run")
    assert len(recs) == STEPS and not any(r.get("grad_norms") for r in recs)


@pytest.mark.parametrize("config", FOUR_RANKS)
def test_four_ranks_hear_the_global_norms(spawned, refs, config):
    # hsdp: a 2x2 mesh (replicate x shard); summing over the replicas too would
    # double every squared norm (norms off by sqrt 2)
    check_config(spawned(4) / config, 4, refs["plain"])


@pytest.mark.parametrize("stage", ZERO)
def test_deepspeed_zero_two_ranks_hear_the_global_preclip_norms(zero_runs, refs, stage):
    # DeepSpeed clips (gradient_clipping=1.0): the norms heard are those before it,
    # and the reference clips the same way so that the weights stay the same
    check_config(zero_runs / f"zero{stage}", 2, refs["clipped"])


@pytest.mark.parametrize("strategy", ["ddp", "fsdp2", "fsdp2-clip"])
def test_lightning_two_ranks(tmp_path, refs, strategy):
    # fsdp2: Lightning's ModelParallelStrategy with fully_shard (DTensor gradient shards);
    # Lightning 2.6 refuses strategy="fsdp" and "deepspeed" on CPU (README, per-stack notes).
    # -clip: gradient_clip_val clips every step here; the norms heard are those before it
    out = tmp_path / "lightning"
    _launch([sys.executable, str(HERE / "lightning_sharded_script.py"), str(out), strategy],
            _env())
    check_config(out, 2, refs["clipped" if strategy.endswith("-clip") else "plain"],
                 prefix="net.")

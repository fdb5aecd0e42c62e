"""What the global gradient norms cost under FSDP2: the all-reduce per step.

Under ``fully_shard`` every rank computes its shards' squared norms and the
ranks sum them in one ``all_reduce`` per step (:mod:`auralize.sharded_norms`).
This benchmark trains a GPT-2-config model (random weights, CPU, gloo) sharded
per block on 2 and 4 ranks (``torch.multiprocessing.spawn``) and measures,
**side by side in one run** (A/B alternated in blocks of ``K`` steps, same
model, same batches, same machine load):

- *plain step*: median wall time of a training step without auralize;
- *watched step*: the same with the norms taken each step on every rank
  (``watch(..., rank_zero=False)`` on all ranks: the hook, the local norms and
  the collective, without any sound: what training pays for the numbers);
- *inside auralize*: the median time of the pre-step work itself
  (``LayerTelemetry.device_parts``: local norms + all-reduce), measured
  directly on the rank that arrives last at the all-reduce (the others also
  wait there for it: that is the ranks' skew, not auralize's work, and the
  next FSDP all-gather would wait it out anyway; it is reported too), and the
  all-reduce alone.

The A/B difference is noisy on a shared machine (a step is 50-200 ms, the
work ~1 ms); the direct time is the figure to trust, the A/B one shows it is
not hiding anything.  4 ranks on 2 cores are oversubscribed: their step times
say little about a real cluster, the collective's size (one float64 vector
of 4 x parameter tensors + 2) is the same.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODEL = {"n_layer": 4, "n_embd": 128, "n_head": 4, "vocab_size": 2048, "n_positions": 64}
BATCH, SEQ = 8, 64      # per rank


def _worker(rank, world, port, steps, k, out):
    import json

    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import GPT2Config, GPT2LMHeadModel

    from auralize.torch import watch

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(**MODEL, resid_pdrop=0.0, embd_pdrop=0.0,
                                       attn_pdrop=0.0, bos_token_id=0, eos_token_id=0))
    for block in model.transformer.h:
        fully_shard(block)
    fully_shard(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(rank)
    times = {"plain": [], "watched": []}
    inside, coll = [], []

    def step():
        ids = torch.randint(0, MODEL["vocab_size"], (BATCH, SEQ), generator=g)
        t0 = time.perf_counter()
        opt.zero_grad()
        model(ids, labels=ids).loss.backward()
        opt.step()
        return time.perf_counter() - t0

    for _ in range(2):          # warm-up, both kinds
        step()
    for block in range(steps // (2 * k)):
        order = ("plain", "watched") if block % 2 == 0 else ("watched", "plain")
        for kind in order:
            dist.barrier()
            if kind == "plain":
                times[kind].extend(step() for _ in range(k))
                continue
            with watch(model, opt, rank_zero=False) as w:
                parts = w.telemetry.sharded
                orig = w.telemetry.device_parts

                def timed(grads=True, weights=True, orig=orig, parts=parts):
                    t0 = time.perf_counter()
                    res = orig(grads, weights)
                    inside.append(time.perf_counter() - t0)
                    coll.append(parts.collective_s)
                    return res
                w.telemetry.device_parts = timed
                times[kind].extend(step() for _ in range(k))
    Path(out, f"rank{rank}.json").write_text(json.dumps(
        {"times": times, "inside": inside, "collective": coll,
         "params": sum(p.numel() for p in model.parameters()),
         "tensors": len(list(model.parameters()))}))
    dist.barrier()
    dist.destroy_process_group()


def _spawn(world: int, steps: int, k: int, out: str) -> None:
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(world, port, steps, k, out), nprocs=world, join=True)


def measure(world: int, steps: int, k: int) -> dict:
    import json
    import subprocess

    src = str(Path(__file__).resolve().parent.parent / "src")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([src] + ([env["PYTHONPATH"]] if env.get(
        "PYTHONPATH") else []))
    with tempfile.TemporaryDirectory(prefix="auralize-bench-sharded-") as out:
        # spawned ranks import their function from a file run as __main__
        subprocess.run([sys.executable, __file__, "--ranks", str(world), str(steps), str(k),
                        out], env=env, check=True)
        ranks = [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(world)]
    # a step ends when the slowest rank's does: per step, the max over ranks
    plain = [max(v) for v in zip(*(r["times"]["plain"] for r in ranks))]
    watched = [max(v) for v in zip(*(r["times"]["watched"] for r in ranks))]
    # inside the collective a rank also waits for the slowest one to arrive (the
    # ranks' skew, which the next FSDP collective would wait out anyway): the
    # last rank to arrive waits least, its time is the work itself
    inside = [min(v) for v in zip(*(r["inside"] for r in ranks))]
    coll = [min(v) for v in zip(*(r["collective"] for r in ranks))]
    skew = [max(v) for v in zip(*(r["collective"] for r in ranks))]
    return {"plain_ms": 1e3 * statistics.median(plain),
            "watched_ms": 1e3 * statistics.median(watched),
            "inside_ms": 1e3 * statistics.median(inside),
            "collective_ms": 1e3 * statistics.median(coll),
            "wait_ms": 1e3 * statistics.median(skew),
            "params": ranks[0]["params"], "tensors": ranks[0]["tensors"], "steps": len(plain)}


def run(quick: bool) -> list[dict]:
    rows = []
    steps, k = (16, 4) if quick else (80, 5)
    for world in (2, 4):
        m = measure(world, steps, k)
        note = (f"FSDP2 per block, GPT-2 {MODEL['n_layer']} layers n_embd {MODEL['n_embd']} "
                f"({m['params'] / 1e6:.2f} M params, {m['tensors']} tensors), batch {BATCH}x"
                f"{SEQ} per rank, gloo CPU, {m['steps']} steps each A/B")
        rows.append({"name": f"FSDP2 {world} ranks: step with norms (A/B)",
                     "value": round(m["watched_ms"], 2), "unit": "ms",
                     "baseline": round(m["plain_ms"], 2),
                     "ratio": round(m["watched_ms"] / m["plain_ms"], 4), "notes": note})
        rows.append({"name": f"FSDP2 {world} ranks: inside auralize per step (direct)",
                     "value": round(m["inside_ms"], 3), "unit": "ms",
                     "baseline": round(m["plain_ms"], 2),
                     "ratio": round(m["inside_ms"] / m["plain_ms"], 5),
                     "notes": f"local norms + one all-reduce, the rank arriving last; "
                              f"the all-reduce alone {m['collective_ms']:.3f} ms (the first "
                              f"rank to arrive waits {m['wait_ms']:.1f} ms in it)"})
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    if sys.argv[1:2] == ["--ranks"]:
        _spawn(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        sys.exit(0)
    for row in run("--quick" in sys.argv):
        print(row)

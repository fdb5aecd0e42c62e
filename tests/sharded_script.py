"""Helper for tests/test_sharded_norms.py: several sharded trainings in one process group.

    python tests/sharded_script.py OUT_DIR WORLD CONFIG [CONFIG ...]

Spawns WORLD ranks (``torch.multiprocessing.spawn``, gloo, CPU) once and runs
each CONFIG (``ddp``, ``fsdp2-layer``, ``fsdp2-model``, ``hsdp``, ``fsdp1-orig``,
``fsdp1-flat``, ``fsdp2-two-meshes``, ``fsdp2-rank0-only``) in turn under
``auralize.torch.watch`` on every rank (but the last one).  Rank 0
writes the run folder ``OUT_DIR/CONFIG/run``; every rank writes
``OUT_DIR/CONFIG/rank<r>.json`` (did it make a Sonifier, which warnings it saw,
its losses).
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sharded_util import LR, STEPS, local_batch, tiny_gpt2  # noqa: E402


def wrap(cfg: str, model, world: int):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    if cfg == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP
        return DDP(model)
    if cfg == "fsdp2-two-meshes":   # a layout auralize does not read: said once, left out
        from torch.distributed.fsdp import fully_shard
        for block in model.transformer.h:
            fully_shard(block, mesh=init_device_mesh("cpu", (world,)))
        fully_shard(model, mesh=init_device_mesh("cpu", (1, world),
                                                 mesh_dim_names=("replicate", "shard")))
        return model
    if cfg in ("fsdp2-layer", "fsdp2-model", "hsdp", "fsdp2-rank0-only"):
        from torch.distributed.fsdp import fully_shard
        if cfg == "hsdp":
            mesh = init_device_mesh("cpu", (2, world // 2),
                                    mesh_dim_names=("replicate", "shard"))
        else:
            mesh = init_device_mesh("cpu", (world,))
        if cfg != "fsdp2-model":
            for block in model.transformer.h:
                fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    if cfg in ("fsdp1-orig", "fsdp1-flat"):
        import torch
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy
        from transformers.models.gpt2.modeling_gpt2 import GPT2Block
        return FSDP(model, auto_wrap_policy=ModuleWrapPolicy({GPT2Block}),
                    use_orig_params=cfg == "fsdp1-orig", device_id=torch.device("cpu"))
    raise SystemExit(f"unknown config {cfg} ({dist.get_rank()})")


def run(cfg: str, rank: int, world: int, out: Path) -> None:
    import torch
    import torch.distributed as dist

    from auralize.torch import watch

    folder = out / cfg
    model = wrap(cfg, tiny_gpt2(), world)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    losses = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # fsdp2-rank0-only: a user who guards watch() with "if rank == 0"
        only_zero = cfg == "fsdp2-rank0-only" and rank != 0
        with (_Unwatched() if only_zero else watch(
                model, opt, out_dir=folder / "run", clock="step", live=False,
                mappings=("loss", "gradients", "alarm"),
                groups="layers", weights=True, weights_every=1)) as w:
            for step in range(STEPS):
                opt.zero_grad()
                ids = local_batch(step, rank, world)
                loss = model(ids, labels=ids).loss
                loss.backward()
                opt.step()
                w.log_loss(loss)
                losses.append(float(loss))
    info = {"rank": rank, "sonifier": w.sonifier is not None, "hooks": len(w._hooks) > 0
            or w.telemetry is not None, "losses": losses,
            "warnings": [str(c.message) for c in caught if "auralize" in str(c.message)]}
    dist.barrier()
    (folder / f"rank{rank}.json").write_text(json.dumps(info))


class _Unwatched:
    sonifier = telemetry = None
    _hooks = ()

    def log_loss(self, loss):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def worker(rank: int, world: int, out: str, configs: list[str], port: int) -> None:
    import torch
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for cfg in configs:
            run(cfg, rank, world, Path(out))
            dist.barrier()
    finally:
        dist.destroy_process_group()


def main() -> None:
    import socket

    import torch.multiprocessing as mp

    out, world, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for cfg in configs:
        (Path(out) / cfg).mkdir(parents=True, exist_ok=True)
    mp.spawn(worker, args=(world, out, configs, port), nprocs=world, join=True)


if __name__ == "__main__":
    main()

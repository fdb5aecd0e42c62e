"""Helper for tests/test_ddp.py: a 2-process DDP training (gloo, CPU) under watch().

    torchrun --standalone --nproc_per_node 2 tests/ddp_script.py OUT_DIR

Each rank trains on its half of scikit-learn's digits and writes
``OUT_DIR/rank<r>.json`` (what it saw); rank 0 alone writes the run folder
``OUT_DIR/run``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP


def main() -> None:
    out = Path(sys.argv[1])
    t0 = time.perf_counter()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    from sklearn.datasets import load_digits

    from auralize.torch import watch

    d = load_digits()
    x = torch.tensor(d.data[:512] / 16.0, dtype=torch.float32)[rank::world]
    y = torch.tensor(d.target[:512])[rank::world]
    torch.manual_seed(0)
    model = DDP(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    losses = []
    with watch(model, opt, out_dir=out / "run", clock="step", live=False,
               mappings=("loss", "gradients", "weights", "alarm")) as w:
        for _ in range(2):
            for i in range(0, len(x), 64):
                opt.zero_grad()
                loss = nn.functional.cross_entropy(model(x[i:i + 64]), y[i:i + 64])
                loss.backward()
                opt.step()
                w.log_loss(loss)
                losses.append(loss.item())
            w.end_epoch()
    info = {"rank": rank, "world": world, "sonifier": w.sonifier is not None,
            "hooks": bool(w._hooks), "losses": losses,
            "result": str(w.result.wav_path) if w.result is not None else None,
            "seconds": time.perf_counter() - t0}
    (out / f"rank{rank}.json").write_text(json.dumps(info))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

"""Helper for tests/test_sharded_norms.py: Lightning on 2 CPU processes under SonifyCallback.

    python tests/lightning_sharded_script.py OUT_DIR STRATEGY

STRATEGY is ``ddp`` or ``fsdp2`` (Lightning's ``ModelParallelStrategy``, FSDP2's
``fully_shard`` per block and on the model in ``configure_model``: the FSDP that
Lightning runs on CPU; its ``strategy="fsdp"`` and ``"deepspeed"`` refuse CPU);
``-clip`` after it: ``gradient_clip_val=CLIP`` (clipping by total norm).
Lightning starts the second process itself.  The tiny GPT-2 of sharded_util is
trained for ``STEPS`` steps; each rank's batches are its slices of the global
batches (a DistributedSampler without shuffling: Lightning's own one shuffles).
Rank 0 writes ``OUT_DIR/run``; every rank writes ``OUT_DIR/rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sharded_util import CLIP, GLOBAL_BATCH, LR, STEPS, global_batch, tiny_gpt2  # noqa: E402


def main() -> None:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    from auralize.lightning import SonifyCallback

    out, strategy = Path(sys.argv[1]), sys.argv[2]
    clip = strategy.endswith("-clip")
    strategy = strategy.removesuffix("-clip")
    world = 2

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = tiny_gpt2()

        def configure_model(self):
            if strategy == "fsdp2":
                from torch.distributed.fsdp import fully_shard

                mesh = self.device_mesh["data_parallel"]
                for block in self.net.transformer.h:
                    fully_shard(block, mesh=mesh)
                fully_shard(self.net, mesh=mesh)

        def training_step(self, ids, batch_idx):
            return self.net(ids, labels=ids).loss

        def train_dataloader(self):
            rows = list(torch.cat([global_batch(s) for s in range(STEPS)]))
            sampler = DistributedSampler(rows, shuffle=False)   # rank r: rows r::world
            return DataLoader(rows, batch_size=GLOBAL_BATCH // world, sampler=sampler)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=LR)

    cb = SonifyCallback(out_dir=out / "run", clock="step", live=False,
                        mappings=("loss", "gradients", "alarm"),
                groups="layers", weights=True, weights_every=1)
    kwargs = {}
    if strategy == "fsdp2":
        from lightning.pytorch.strategies import ModelParallelStrategy
        kwargs["strategy"] = ModelParallelStrategy(data_parallel_size=world,
                                                   tensor_parallel_size=1,
                                                   process_group_backend="gloo")
    kwargs.setdefault("strategy", strategy)
    if clip:
        kwargs["gradient_clip_val"] = CLIP
    trainer = pl.Trainer(accelerator="cpu", devices=world, max_steps=STEPS,
                         callbacks=[cb], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         use_distributed_sampler=False, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Module())
    rank = trainer.global_rank
    info = {"rank": rank, "sonifier": cb.sonifier is not None,
            "hooks": cb.watch is not None, "result": cb.result is not None,
            "warnings": [str(c.message) for c in caught if "auralize" in str(c.message)]}
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main()

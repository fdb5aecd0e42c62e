"""Helper for tests/test_sharded_norms.py: DeepSpeed ZeRO trainings under watch().

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 tests/deepspeed_script.py OUT_DIR STAGE [STAGE ...]

One launch, the ZeRO stages in turn (each a fresh engine on the same process
group), the tiny GPT-2 of sharded_util with a client SGD optimizer in fp32.
Rank 0 writes ``OUT_DIR/zero<STAGE>/run``; every rank writes
``OUT_DIR/zero<STAGE>/rank<r>.json``.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sharded_util import CLIP, GLOBAL_BATCH, LR, STEPS, local_batch, tiny_gpt2  # noqa: E402


def run(stage: int, out: Path) -> None:
    import deepspeed
    import torch
    import torch.distributed as dist

    from auralize.torch import watch

    rank, world = dist.get_rank(), dist.get_world_size()
    folder = out / f"zero{stage}"
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_gpt2()
    config = {"train_batch_size": GLOBAL_BATCH,
              "train_micro_batch_size_per_gpu": GLOBAL_BATCH // world,
              "gradient_accumulation_steps": 1,
              "gradient_clipping": CLIP,   # heard: the norms before clipping
              "zero_optimization": {"stage": stage},
              "zero_allow_untested_optimizer": True,
              "steps_per_print": 10 ** 6}
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    engine, optimizer, _, _ = deepspeed.initialize(model=model, optimizer=opt, config=config)
    losses = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with watch(engine, optimizer, out_dir=folder / "run", clock="step", live=False,
                   mappings=("loss", "gradients", "alarm"),
                groups="layers", weights=True, weights_every=1) as w:
            for step in range(STEPS):
                ids = local_batch(step, rank, world)
                loss = engine(ids, labels=ids).loss
                engine.backward(loss)
                engine.step()
                w.log_loss(loss)
                losses.append(float(loss))
    info = {"rank": rank, "sonifier": w.sonifier is not None,
            "hooks": w.telemetry is not None, "losses": losses,
            "warnings": [str(c.message) for c in caught if "auralize" in str(c.message)]}
    (folder / f"rank{rank}.json").write_text(json.dumps(info))
    dist.barrier()
    engine.destroy()


def main() -> None:
    import deepspeed
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    deepspeed.init_distributed(dist_backend="gloo")
    args = [a for a in sys.argv[1:] if not a.startswith("--")]   # the launcher adds --local_rank
    out = Path(args[0])
    for stage in (int(s) for s in args[1:]):
        run(stage, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()

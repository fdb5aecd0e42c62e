"""Helper for tests/test_transformers_trainer.py: a Hugging Face Trainer on 2 DDP processes.

    torchrun --standalone --nproc_per_node 2 tests/hf_ddp_script.py OUT_DIR [fsdp]

``fsdp``: the arguments ask for FSDP, which Accelerate turns on only on GPUs and other
accelerators: on CPU it trains DDP (``ddp`` in the saved notes says which ran).

Each rank trains the tiny GPT-2 with ``SonifyCallback(OUT_DIR/run)`` and the test's
``Replay`` callback, and saves what it saw to ``OUT_DIR/rank<r>.pt`` (the weights at each
optimizer step's start on rank 0, every rank's micro-batches); only rank 0 may write the run
folder.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments

sys.path.insert(0, str(Path(__file__).parent))
from auralize.transformers import SonifyCallback  # noqa: E402
from test_transformers_trainer import BATCH, Replay, Tokens, tiny_gpt2, trainer_tokens  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1])
    fsdp = {"fsdp": "full_shard", "fsdp_config": {"fsdp_version": 2}} if sys.argv[2:] == [
        "fsdp"] else {}
    model = tiny_gpt2()
    replay = Replay(model)
    sound = SonifyCallback(out / "run", live=False, plot=False, step_s=0.05, groups="layers")
    args = TrainingArguments(output_dir=str(out / "trainer"), per_device_train_batch_size=BATCH,
                             gradient_accumulation_steps=2, num_train_epochs=1, use_cpu=True,
                             report_to=[], save_strategy="no", disable_tqdm=True,
                             learning_rate=1e-3, logging_steps=1, **fsdp)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        trainer = Trainer(model=model, args=args, train_dataset=Tokens(64),
                          callbacks=[replay, sound])
        trainer.train()
    rank = trainer.args.process_index
    windows = replay.windows if rank == 0 else [{"batches": w["batches"]} for w in replay.windows]
    torch.save({"windows": windows, "tokens": trainer_tokens(trainer), "run_dirs": sound.run_dirs,
                "steps": trainer.state.global_step, "world": trainer.args.world_size,
                "ddp": type(trainer.model_wrapped).__name__,
                "warnings": [str(w.message) for w in got if "auralize" in str(w.message)]},
               out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()

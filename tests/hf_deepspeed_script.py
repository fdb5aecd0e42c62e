"""Helper for tests/test_transformers_trainer.py: the Trainer under DeepSpeed ZeRO on 2 CPU ranks.

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 tests/hf_deepspeed_script.py OUT_DIR STAGE [broken]

``broken``: rank 0's run folder cannot be made (its parent is a file): its sound
fails at the start, and it must still take its part in every step's all-reduce.

Each rank trains the tiny GPT-2 with ``SonifyCallback(OUT_DIR/run)`` (accumulation 2,
clipping at ``MAX_NORM``, fp32) and the test's ``Replay`` callback, and saves what it saw to
``OUT_DIR/rank<r>.pt``: the weights at each optimizer step's start (rank 0; under ZeRO-3
gathered from the partitions), every rank's micro-batches, the auralize warnings and the
losses the Trainer logged.  Only rank 0 may write the run folder.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")

import torch  # noqa: E402
from transformers import Trainer, TrainingArguments  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from auralize.transformers import SonifyCallback  # noqa: E402
from test_transformers_trainer import BATCH, Replay, Tokens, tiny_gpt2, trainer_tokens  # noqa: E402

MAX_NORM = 0.7    # amid the gradients' norms: some steps are clipped, some not


class GatheredReplay(Replay):
    """``Replay`` under ZeRO-3: each rank holds a partition, the weights are gathered to copy."""

    def on_step_begin(self, args, state, control, **kwargs):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(self.model.parameters())):
            super().on_step_begin(args, state, control, **kwargs)


def zero_config(stage: int) -> dict:
    return {"zero_optimization": {"stage": stage}, "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto", "gradient_clipping": "auto",
            "train_batch_size": "auto", "steps_per_print": 10 ** 6,
            "optimizer": {"type": "AdamW", "params": {"lr": "auto", "torch_adam": True}}}


def main() -> None:
    torch.set_num_threads(1)
    args = [a for a in sys.argv[1:] if not a.startswith("--")]   # the launcher adds --local_rank
    out, stage = Path(args[0]), int(args[1])
    run_dir = out / "run"
    if args[2:] == ["broken"]:
        run_dir = out / "blocked" / "run"
        if int(os.environ.get("RANK", "0")) == 0:
            out.mkdir(parents=True, exist_ok=True)
            (out / "blocked").write_text("a file where the run folder's parent should be")
    model = tiny_gpt2()
    replay = (GatheredReplay if stage == 3 else Replay)(model)
    sound = SonifyCallback(run_dir, live=False, plot=False, step_s=0.05, groups="layers")
    targs = TrainingArguments(output_dir=str(out / "trainer"), per_device_train_batch_size=BATCH,
                              gradient_accumulation_steps=2, num_train_epochs=1, use_cpu=True,
                              report_to=[], save_strategy="no", disable_tqdm=True,
                              learning_rate=1e-3, logging_steps=1, max_grad_norm=MAX_NORM,
                              deepspeed=zero_config(stage), ddp_backend="gloo")
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        trainer = Trainer(model=model, args=targs, train_dataset=Tokens(64),
                          callbacks=[replay, sound])
        trainer.train()
    rank = trainer.args.process_index
    windows = replay.windows if rank == 0 else [
        {"batches": w["batches"]} for w in replay.windows]
    torch.save({"windows": windows, "tokens": trainer_tokens(trainer), "run_dirs": sound.run_dirs,
                "steps": trainer.state.global_step, "world": trainer.args.world_size,
                "engine": type(trainer.model_wrapped).__name__,
                "warnings": [str(w.message) for w in got if "auralize" in str(w.message)],
                "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
                "grad_norms": [h["grad_norm"] for h in trainer.state.log_history
                               if "grad_norm" in h]},
               out / f"rank{rank}.pt")


if __name__ == "__main__":
    main()

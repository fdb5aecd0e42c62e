"""Helper for tests/test_transformers_trainer.py: the Trainer under DeepSpeed ZeRO-2 (CPU).

    python tests/hf_deepspeed_script.py OUT_DIR

One process (its own process group, so the test process keeps none), the tiny GPT-2,
``SonifyCallback(OUT_DIR/run)``; writes ``OUT_DIR/result.json``: the auralize warnings,
the optimizer steps and the losses the Trainer logged.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("DS_ACCELERATOR", "cpu")
for key, value in {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "LOCAL_RANK": "0",
                   "WORLD_SIZE": "1"}.items():
    os.environ.setdefault(key, value)

sys.path.insert(0, str(Path(__file__).parent))
from auralize.transformers import SonifyCallback  # noqa: E402
from test_transformers_trainer import train  # noqa: E402

ZERO2 = {"zero_optimization": {"stage": 2}, "train_micro_batch_size_per_gpu": "auto",
         "gradient_accumulation_steps": "auto",
         "optimizer": {"type": "AdamW", "params": {"lr": "auto", "torch_adam": True}}}


def main() -> None:
    out = Path(sys.argv[1])
    sound = SonifyCallback(out / "run", live=False, plot=False, step_s=0.05)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        trainer, _ = train(out, sound, deepspeed=ZERO2, n_train=64, logging_steps=1)
    (out / "result.json").write_text(json.dumps({
        "warnings": [str(w.message) for w in got if "auralize" in str(w.message)],
        "steps": trainer.state.global_step,
        "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h]}))


if __name__ == "__main__":
    main()

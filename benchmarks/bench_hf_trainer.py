"""What hearing a Hugging Face Trainer costs: ``auralize.transformers.SonifyCallback``.

A 12-block GPT-2 (n_embd 64, random weights from its config) trains on random tokens
(batch 8 x 64 tokens, ``gradient_accumulation_steps=2``, ``bf16=True`` on the CPU, the
Trainer's default fused AdamW, ``logging_steps=1``), torch on one thread.  Runs without
and with the callback (default mappings, file sink, no sound device) alternate
(A B A B), so both see the same machine load.  Figures:

- *train CPU per optimizer step*: the training process's CPU time of ``train()``
  divided by its steps, plain and with the callback (their difference includes the
  callback's start: the Sonifier, its renderer child's spawn, and the end: closing
  the WAV, drawing the spectrogram);
- *in the loop*: CPU time spent inside the callback's per-step hooks
  (``on_pre_optimizer_step``, ``on_step_end``, ``on_log``, ...), counted per step,
  as a fraction of the plain step: what it adds to the training thread;
- *start and end*: CPU time of ``on_train_begin`` + ``on_train_end``, once per run.

Full run ~3 min on 2 busy cores (``--quick``: ~1 min).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

PER_STEP_HOOKS = ("on_epoch_begin", "on_pre_optimizer_step", "on_step_end", "on_log",
                  "on_evaluate", "on_epoch_end")


class _Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.ids = torch.randint(0, 1000, (n, 64), generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def _timed(callback) -> list[float]:
    """Wrap the callback's hooks to count their thread CPU time: [per-step hooks, start + end]."""
    spent = [0.0, 0.0]
    for name in (*PER_STEP_HOOKS, "on_train_begin", "on_train_end"):
        hook = getattr(callback, name)
        slot = 0 if name in PER_STEP_HOOKS else 1

        def timed(*args, _hook=hook, _slot=slot, **kwargs):
            t0 = time.thread_time()
            try:
                return _hook(*args, **kwargs)
            finally:
                spent[_slot] += time.thread_time() - t0

        setattr(callback, name, timed)
    return spent


def _train(n_steps: int, sound: bool, out: Path) -> tuple[float, list[float], int]:
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from auralize.transformers import SonifyCallback

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=64, n_head=4, vocab_size=1000,
                                       n_positions=64))
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=8,
                             gradient_accumulation_steps=2, max_steps=n_steps, bf16=True,
                             use_cpu=True, logging_steps=1, report_to=[], save_strategy="no",
                             disable_tqdm=True)
    callbacks, spent = [], [0.0, 0.0]
    if sound:
        callback = SonifyCallback(out / "run", live=False)
        spent = _timed(callback)
        callbacks.append(callback)
    trainer = Trainer(model=model, args=args, train_dataset=_Tokens(16 * n_steps),
                      callbacks=callbacks)
    c0 = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.train()
    return time.process_time() - c0, spent, trainer.state.global_step


def run(quick: bool) -> list[dict]:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    n_steps = 12 if quick else 40
    plain, heard, loop, ends = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        _train(2, True, Path(tmp) / "warm")       # imports, numba cache: not a run's cost
        for i in range(2):
            cpu, _, steps = _train(n_steps, False, Path(tmp) / f"a{i}")
            plain.append(cpu / steps)
            cpu, spent, steps = _train(n_steps, True, Path(tmp) / f"b{i}")
            heard.append(cpu / steps)
            loop.append(spent[0] / steps)
            ends.append(spent[1])
    step = statistics.mean(plain)
    return [
        {"name": "HF Trainer: train CPU per optimizer step, with SonifyCallback",
         "value": 1000 * statistics.mean(heard), "unit": "ms", "baseline": 1000 * step,
         "ratio": statistics.mean(heard) / step,
         "notes": f"{n_steps} steps per run, A B A B; includes the session's start and end"},
        {"name": "HF Trainer: CPU inside the callback's hooks per step",
         "value": 1000 * statistics.mean(loop), "unit": "ms", "baseline": 1000 * step,
         "ratio": statistics.mean(loop) / step,
         "notes": "12-block GPT-2, n_embd 64, batch 8x64 tokens, accumulation 2, bf16, 1 thread"},
        {"name": "HF Trainer: CPU of the callback's start and end, once per train()",
         "value": statistics.mean(ends), "unit": "s",
         "notes": "Sonifier and renderer child start; WAV, metrics.csv and spectrogram at the end"},
    ]

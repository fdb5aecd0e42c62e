"""What auralize costs per optimizer step under AMP, clipping and accumulation.

A 4-block GPT-2 (``transformers`` config, random weights, n_embd 32) trains on the
CPU with bf16 autocast, ``torch.amp.GradScaler`` + fused AdamW, ``scaler.unscale_``
+ ``clip_grad_norm_`` and 4 micro-batches per optimizer step, ``log_loss`` every
micro-batch.  The figure is auralize's own CPU time (its step pre-hook, forward
pre-hook, pre-clip read, ``scaler.step`` wrapper and ``log_loss``) per optimizer
step; the baseline, measured in the same run, is the same model's plain fp32
loop (one micro-batch per step, no scaler, no clipping) under ``watch``.
"""

from __future__ import annotations

import tempfile
import time

import torch

STEPS = 24
WARMUP = 4


def _timed(cls, spent):
    def wrap(f):
        def g(*a, **k):
            c = time.process_time()
            try:
                return f(*a, **k)
            finally:
                spent[0] += time.process_time() - c
        return g

    class Timed(cls):
        pass

    for name in ("_pre_step", "_skipped_step", "log_loss", "_on_forward", "before_clip"):
        setattr(Timed, name, wrap(getattr(cls, name)))
    return Timed


def measure(amp: bool, steps: int) -> tuple[float, float]:
    """(auralize ms CPU per optimizer step, loop ms CPU per optimizer step)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from auralize.torch import Watch

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=4, n_embd=32, n_head=2, vocab_size=100,
                                       n_positions=16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=amp)
    scaler = torch.amp.GradScaler("cpu", enabled=amp)
    accumulate = 4 if amp else 1
    x = torch.randint(0, 100, (4, 16))
    spent = [0.0]
    w = _timed(Watch, spent)(model, opt, scaler=scaler, out_dir=tempfile.mkdtemp(),
                             mappings=["loss", "gradients"], live=False, clock="step")
    with w:
        for step in range(steps + WARMUP):
            if step == WARMUP:
                spent[0], t0 = 0.0, time.process_time()
            for _ in range(accumulate):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    loss = model(input_ids=x, labels=x).loss
                scaler.scale(loss / accumulate).backward()
                w.log_loss(loss)
            if amp:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad()
        total = time.process_time() - t0
    return spent[0] / steps * 1e3, total / steps * 1e3


def run(quick: bool) -> list[dict]:
    steps = 8 if quick else STEPS
    base_ms, base_loop = measure(False, steps)
    amp_ms, amp_loop = measure(True, steps)
    return [{
        "name": "watch CPU per optimizer step, bf16 + GradScaler + fused AdamW + clip + accum x4",
        "value": amp_ms, "unit": "ms", "baseline": base_ms, "ratio": amp_ms / base_ms,
        "notes": (f"4-block GPT-2 (n_embd 32), {steps} steps; {100 * amp_ms / amp_loop:.2f}% of "
                  f"the {amp_loop:.0f} ms CPU step (4 micro-batches); baseline: plain fp32 "
                  f"loop, 1 micro-batch, {base_ms:.2f} ms = {100 * base_ms / base_loop:.2f}% of "
                  f"{base_loop:.0f} ms"),
    }]


if __name__ == "__main__":
    for row in run(quick=False):
        print(row)

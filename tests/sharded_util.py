"""What the sharded-gradient tests share: the model, the data and the one-process reference.

Every configuration trains the same tiny GPT-2 (same seed) on the same global
batches for ``STEPS`` SGD steps; each rank takes its slice of the global batch.
The reference trains the same model on ONE process on the whole global batch
(the mean loss over it: the gradient DDP/FSDP/ZeRO average to) and records the
per-layer L2 norms of the unsharded fp32 gradients and the weight statistics,
with tied weights counted once in their first layer (as auralize does).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

STEPS = 3
GLOBAL_BATCH = 8
SEQ = 8
VOCAB = 100
LR = 0.1
CLIP = 1.0   # DeepSpeed's gradient_clipping in its tests (and the reference's)


def tiny_gpt2(n_layer: int = 2):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_layer=n_layer, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=SEQ,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    return GPT2LMHeadModel(cfg)


def global_batch(step: int):
    import torch

    g = torch.Generator().manual_seed(1000 + step)
    return torch.randint(0, VOCAB, (GLOBAL_BATCH, SEQ), generator=g)


def local_batch(step: int, rank: int, world: int):
    return global_batch(step)[rank::world]


def reference(n_layer: int = 2, steps: int = STEPS, clip: float | None = None) -> list[dict]:
    """Per step: {"grads": {layer: norm}, "weights": {layer: {"norm", "mean"}}, "loss"}.

    Weights are read before the step (where auralize's pre-step hook reads them);
    gradient norms before clipping (``clip``: the total-norm clipping the
    optimizer step then applies, as DeepSpeed's ``gradient_clipping``).
    """
    import torch

    model = tiny_gpt2(n_layer)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    owner = {}
    for name, mod in model.named_modules():
        for p in mod.parameters(recurse=False):
            owner.setdefault(id(p), name or type(mod).__name__)
    out = []
    for step in range(steps):
        opt.zero_grad()
        ids = global_batch(step)
        loss = model(ids, labels=ids).loss
        loss.backward()
        sq, wsq, wsum, wn = {}, {}, {}, {}
        for p in model.parameters():     # parameters() yields a tied tensor once
            name = owner[id(p)]
            g = p.grad.double()
            sq[name] = sq.get(name, 0.0) + float((g * g).sum())
            w = p.detach().double()
            wsq[name] = wsq.get(name, 0.0) + float((w * w).sum())
            wsum[name] = wsum.get(name, 0.0) + float(w.sum())
            wn[name] = wn.get(name, 0) + p.numel()
        out.append({"loss": loss.item(),
                    "grads": {k: math.sqrt(v) for k, v in sq.items()},
                    "weights": {k: {"norm": math.sqrt(wsq[k]), "mean": wsum[k] / wn[k]}
                                for k in wsq}})
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return out


def read_telemetry(run: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run) / "telemetry.jsonl").read_text().splitlines()
            if line.strip()]


def worst_relative(got: dict, want: dict) -> float:
    """Largest relative difference over the layers (a missing or extra layer: inf)."""
    if set(got) != set(want):
        return math.inf
    return max(abs(got[k] - want[k]) / max(abs(want[k]), 1e-12) for k in want)

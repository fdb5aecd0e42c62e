"""Hear a plain PyTorch training loop: loss tone, gradient tones, spoken epochs.

    python examples/pytorch_loop.py [OUT_DIR]

Plays on the speaker when there is one; always writes OUT_DIR (default
runs/examples/pytorch): sonification.wav, telemetry.jsonl, metrics.csv.
"""

import sys

import torch
from torch import nn

from auralize.torch import watch

out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/pytorch"
torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, :2].sum(dim=1) > 0).long()  # a task a small net learns in a few epochs
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.2)

with watch(model, optimizer, out_dir=out_dir, step_s=0.03,
           mappings=["loss", "gradients", "alarm", "speech"]) as w:
    for _epoch in range(3):
        for batch in range(16):
            xb, yb = x[batch * 32:(batch + 1) * 32], y[batch * 32:(batch + 1) * 32]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            w.log_loss(loss)
        with torch.no_grad():
            accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
        w.end_epoch(accuracy=accuracy)  # spoken: "epoch 1, loss 0.52, accuracy 81 percent"
print(f"wrote {out_dir}/sonification.wav")

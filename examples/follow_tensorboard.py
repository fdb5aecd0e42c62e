"""Hear a run that knows nothing about auralize, from its TensorBoard logs, while it trains.

    python examples/follow_tensorboard.py [OUT_DIR]

The training below only writes TensorBoard scalars (torch's SummaryWriter); a
second thread follows the log folder as ``auralize follow LOGDIR`` does on the
command line, and speaks each epoch.  Any folder works the same way, e.g. one
synced from a GPU box: ``auralize follow /mnt/box/lightning_logs/version_0``.
"""

import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from auralize import Sonifier
from auralize.sonify.follow import follow

out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/follow"
logdir = Path(tempfile.mkdtemp(prefix="tb-"))
sonifier = Sonifier(out_dir, clock="wall", mappings=[
    {"kind": "loss", "reference_amp": 0.05, "octave_ticks": True}, "alarm", "speech"])
listener = threading.Thread(target=follow, args=(logdir, sonifier),
                            kwargs={"poll_s": 0.1, "idle_exit_s": 2.0})
listener.start()

torch.manual_seed(0)  # the training: it only knows TensorBoard
x = torch.randn(256, 8)
y = (x[:, :2].sum(dim=1) > 0).long()
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
writer = SummaryWriter(str(logdir))
step = 0
for epoch in range(2):
    for batch in range(8):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x[batch * 32:(batch + 1) * 32]),
                                           y[batch * 32:(batch + 1) * 32])
        loss.backward()
        optimizer.step()
        writer.add_scalar("loss", loss.item(), step)
        writer.add_scalar("epoch", epoch, step)
        step += 1
        writer.flush()
        time.sleep(0.05)
    writer.add_scalar("val_loss", nn.functional.cross_entropy(model(x), y).item(), step - 1)
    writer.flush()
writer.close()

listener.join()  # returns 2 s after the last new step
result = sonifier.close()
print(f"heard {result.steps} steps; wrote {result.wav_path}")

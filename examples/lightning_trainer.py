"""Hear a Lightning ``Trainer.fit``: loss tone, gradient tones, spoken epochs.

    python examples/lightning_trainer.py [OUT_DIR]
"""

import sys

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from auralize.lightning import SonifyCallback

out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/lightning"


class Classifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)


torch.manual_seed(0)
x = torch.randn(512, 8)
y = (x[:, :2].sum(dim=1) > 0).long()
train = DataLoader(TensorDataset(x[:384], y[:384]), batch_size=32)
val = DataLoader(TensorDataset(x[384:], y[384:]), batch_size=128)
sound = SonifyCallback(out_dir=out_dir, step_s=0.03,
                       mappings=["loss", "gradients", "alarm", "speech"])
trainer = L.Trainer(max_epochs=3, callbacks=[sound], logger=False, enable_checkpointing=False,
                    enable_progress_bar=False, enable_model_summary=False,
                    accelerator="cpu", devices=1)
trainer.fit(Classifier(), train, val)
print(f"wrote {sound.result.wav_path}")

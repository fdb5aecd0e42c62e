"""The LightningModule of a dream training run (SB-CNN or the seed's fat_shallow).

Defined on use (:func:`make_module`), so that importing the dream package needs no
Lightning.  Each step seeds its random numbers with ``(seed, step)`` and augments
its batch (:func:`~auralize.dream.batches.augment_batch`); validation logs the loss,
accuracy and confusion matrix to TensorBoard.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from auralize.dream.batches import augment_batch
from auralize.dream.evaluate import confusion_figure, summarize
from auralize.dream.models import build_model

if TYPE_CHECKING:
    from auralize.dream.train import TrainConfig


def lightning():
    """``lightning.pytorch``, imported on use (`auralize dream run` does not need it)."""
    import lightning.pytorch as pl

    return pl


def make_module(model_config: dict, cfg: TrainConfig, train_clips=None, val_clips=None):
    """The LightningModule (defined lazily so that importing this file needs no Lightning)."""
    pl = lightning()

    class DreamModule(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = build_model(model_config)
            self.model_config = model_config
            self.cfg = cfg
            self._val_preds: list = []
            self._val_labels: list = []
            self._logged_audio = False

        def forward(self, x):
            return self.model(x)

        def on_train_batch_start(self, batch, batch_idx):
            # per-step seeding: dropout and augmentation depend on (seed, step) only
            torch.manual_seed(cfg.seed * 1_000_003 + self.global_step)

        def training_step(self, batch, batch_idx):
            x, y, _ = batch
            if cfg.augment:
                gen = torch.Generator().manual_seed(cfg.seed * 7_919 + self.global_step)
                x = augment_batch(x, cfg.augment, gen)
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(1) == y).float().mean()
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/acc", acc, prog_bar=True)
            if self.global_step == 0 and cfg.audio_examples and self._tb() is not None:
                self._tb().add_audio(
                    "train/augmented_example", x[0].detach().clamp(-1, 1).unsqueeze(0),
                    0, sample_rate=model_config["sample_rate"],
                )
            self._last_loss = float(loss.detach())
            return loss

        def validation_step(self, batch, batch_idx):
            x, y, _ = batch
            logits = self.model(x)
            self.log("val/loss", F.cross_entropy(logits, y), prog_bar=False)
            self._val_preds.append(logits.argmax(1).cpu())
            self._val_labels.append(y.cpu())
            if not self._logged_audio and batch_idx == 0 and self._tb() is not None:
                names = model_config["class_names"]
                for i in range(min(cfg.audio_examples, len(x))):
                    self._tb().add_audio(
                        f"val/example{i}_{names[int(y[i])]}", x[i].clamp(-1, 1).unsqueeze(0),
                        self.global_step, sample_rate=model_config["sample_rate"],
                    )

        def on_validation_epoch_end(self):
            if not self._val_preds:
                return
            preds = torch.cat(self._val_preds).numpy()
            labels = torch.cat(self._val_labels).numpy()
            self._val_preds, self._val_labels = [], []
            if self.trainer.sanity_checking:
                return
            self._logged_audio = True
            res = summarize(labels, preds, model_config["class_names"])
            self.log("val/acc", res.accuracy, prog_bar=True)
            tb = self._tb()
            if tb is not None:
                import matplotlib.pyplot as plt

                fig = confusion_figure(
                    res.confusion, res.class_names, f"validation, step {self.global_step}"
                )
                tb.add_figure("val/confusion_matrix", fig, self.global_step)
                plt.close(fig)

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

        def on_save_checkpoint(self, checkpoint):
            checkpoint["auralize"] = {
                "model_config": model_config,
                "train_config": json.loads(json.dumps(asdict(cfg), default=str)),
            }

        def _tb(self):
            logger = self.logger
            return getattr(logger, "experiment", None) if logger is not None else None

        def train_dataloader(self):
            return self._train_loader

        def val_dataloader(self):
            return self._val_loader

    module = DreamModule()
    return module

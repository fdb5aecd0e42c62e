"""Hear a Lightning training run: ``SonifyCallback``.

Quick start::

    from auralize.lightning import SonifyCallback

    trainer = L.Trainer(max_epochs=5, callbacks=[SonifyCallback(out_dir="runs/lit")])
    trainer.fit(model, train_loader, val_loader)   # runs/lit/sonification.wav, ...

- Gradients: in ``on_before_optimizer_step``, i.e. after the backward pass and
  after Lightning's precision plugin unscaled AMP gradients (gradient clipping
  comes later, so the norms are the unclipped ones).  One fused reduction and,
  together with the loss, one device->host transfer per step (see
  :mod:`auralize.torch`).
- Loss: the ``loss`` that ``training_step`` returned, in ``on_train_batch_end``
  (with gradient accumulation, batches without an optimizer step have the loss
  only).
- Epoch ends: ``on_train_epoch_end`` (after the epoch's validation), with the
  trainer's ``callback_metrics`` (``val_loss`` and whatever ``self.log`` logged).
- Distributed: sound and files on global rank 0 only; other ranks make no
  Sonifier at all.
- The Sonifier is closed (run folder written) at ``on_train_end``, and also on
  an exception (``on_exception``), so an interrupted run keeps its recording.
"""

from __future__ import annotations

import math
import warnings

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - the standalone package
    import pytorch_lightning as pl

import torch

from auralize.errors import AuralizeError
from auralize.torch import Watch

__all__ = ["SonifyCallback"]


class SonifyCallback(pl.Callback):
    """Send one :class:`~auralize.sonify.TrainingStep` per training batch to a Sonifier.

    Parameters
    ----------
    sonifier : Sonifier, optional
        Share an existing session (then closed only with ``close_sonifier=True``).
    grads, weights : bool
        Collect per-layer gradient norms / weight statistics each step.
    weights_every : int or "auto"
        Weight statistics every n-th step (see :func:`auralize.torch.watch`).
    close_sonifier : bool, optional
        Close at train end (default: only a Sonifier this callback made).
    **sonifier_kwargs
        ``out_dir``, ``mappings``, ``clock``, ``live``... for the ``Sonifier``
        this callback makes on global rank 0.

    Attributes
    ----------
    sonifier : Sonifier or None
    result : RunResult or None
        The run folder's files, after training ends (rank 0).
    """

    def __init__(self, sonifier=None, *, grads: bool = True, weights: bool = True,
                 weights_every: int | str = "auto", close_sonifier: bool | None = None,
                 **sonifier_kwargs):
        super().__init__()
        if sonifier is not None and sonifier_kwargs:
            raise AuralizeError("pass either sonifier= or Sonifier keyword arguments, not both: "
                                + ", ".join(sorted(sonifier_kwargs)))
        self._given = sonifier
        self._kwargs = sonifier_kwargs
        self._close = close_sonifier
        self.grads = grads
        self.weights = weights
        self.weights_every = weights_every
        self.watch: Watch | None = None
        self.result = None

    @property
    def sonifier(self):
        return self.watch.sonifier if self.watch is not None else self._given

    # -- lifecycle --------------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module) -> None:
        self.result = None
        if not trainer.is_global_zero:
            self.watch = None          # no Sonifier at all off rank 0
            return
        kwargs = dict(self._kwargs)
        self.watch = Watch(pl_module, None, self._given, grads=self.grads, weights=self.weights,
                           weights_every=self.weights_every, rank_zero=True,
                           close_sonifier=self._close, **kwargs)
        self.watch.loss_closes_step = True

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.watch is not None:
            self.watch.take_gradients(optimizer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.watch is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self.watch.log_loss(loss)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.watch is None:
            return
        metrics = {}
        for key, value in trainer.callback_metrics.items():
            if key == "loss":
                continue
            if torch.is_tensor(value):
                if value.numel() != 1:
                    continue
                value = value.detach().float().cpu().item()
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
        self.watch.end_epoch(**{k: v for k, v in metrics.items() if not math.isnan(v)})

    def on_train_end(self, trainer, pl_module) -> None:
        self._finish()

    def on_exception(self, trainer, pl_module, exception) -> None:
        try:
            self._finish()
        except Exception as err:  # noqa: BLE001 - the original exception matters more
            warnings.warn(f"auralize: closing the Sonifier after an error failed: {err}",
                          stacklevel=2)

    def _finish(self) -> None:
        if self.watch is not None and not self.watch.closed:
            self.result = self.watch.close()

    def state_dict(self) -> dict:
        return {}

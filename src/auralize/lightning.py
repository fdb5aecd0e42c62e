"""Hear a Lightning training run: ``SonifyCallback``.

Quick start::

    from auralize.lightning import SonifyCallback

    trainer = L.Trainer(max_epochs=5, callbacks=[SonifyCallback(out_dir="runs/lit")])
    trainer.fit(model, train_loader, val_loader)   # runs/lit/sonification.wav, ...

- Gradients: in ``on_before_optimizer_step``, i.e. after the backward pass
  (of all accumulated batches) and after Lightning's precision plugin unscaled
  AMP gradients; gradient clipping comes later, so the norms are the pre-clip
  ones and ``clipped`` says whether ``gradient_clip_val`` scaled them.  A step
  the ``16-mixed`` scaler skips is recorded as skipped, without gradient norms.
  One fused reduction and, together with the loss, one device->host transfer
  per step (see :mod:`auralize.torch` and :mod:`auralize.amp_steps`).
- Loss: the ``loss`` that ``training_step`` returned, in ``on_train_batch_end``;
  with ``accumulate_grad_batches=k`` one record per optimizer step, its loss
  the mean of its k batches' losses (as ``training_step`` returned them, not
  divided by k).
- Epoch ends: ``on_train_epoch_end`` (after the epoch's validation), with the
  trainer's ``callback_metrics`` (``val_loss`` and whatever ``self.log`` logged).
- Distributed: sound and files on global rank 0 only; other ranks make no
  Sonifier at all.  Where gradients are sharded (``strategy="deepspeed"``,
  FSDP) every rank takes part in the one all-reduce per step that gives the
  global norms (:mod:`auralize.sharded_norms`); under DDP rank 0 reads its
  already all-reduced gradients alone.
- Several ``SonifyCallback`` instances in one Trainer share one Sonifier (one
  recording, run folder and live stream; their mappings and keyword arguments
  combine as :mod:`auralize.fit_session` says) and send one record per step.
  Callbacks given the same ``sonifier=`` also send one record per step.
- The Sonifier is made at ``on_train_start`` (after the sanity check) and closed
  (run folder written) at ``on_train_end``, and also on an exception
  (``on_exception``), so an interrupted run keeps its recording.
"""

from __future__ import annotations

import math
import warnings

import lightning.pytorch as pl
import torch

from auralize.errors import AuralizeError
from auralize.fit_session import DEFAULT_MAPPINGS, FitSession
from auralize.torch import Watch

__all__ = ["SonifyCallback"]


class SonifyCallback(pl.Callback):
    """Send one :class:`~auralize.sonify.TrainingStep` per training batch to a Sonifier.

    Parameters
    ----------
    sonifier : Sonifier, optional
        Use this session instead of the Trainer's shared one (then closed only
        with ``close_sonifier=True``).
    grads : bool
        Collect per-group gradient norms each step.
    weights : bool or "auto"
        Collect per-group weight statistics (``"auto"``: when the Sonifier's
        mappings use them; see :func:`auralize.torch.watch`).  Callbacks sharing
        a Sonifier collect what any of them asks for.
    groups : optional
        Which layers sound as one gradient voice (see :func:`auralize.torch.watch`);
        the first of the callbacks sharing a Sonifier decides.
    weights_every : int or "auto"
        Weight statistics every n-th step (see :func:`auralize.torch.watch`); the
        first of the callbacks sharing a Sonifier decides.
    close_sonifier : bool, optional
        Close at train end (default: yes for the Trainer's shared Sonifier, no for
        a ``sonifier=`` you pass in).
    **sonifier_kwargs
        ``out_dir``, ``mappings``, ``clock``, ``live``... for the Sonifier that the
        Trainer's callbacks share on global rank 0.

    Attributes
    ----------
    sonifier : Sonifier or None
    result : RunResult or None
        The run folder's files, after training ends (rank 0).
    """

    def __init__(self, sonifier=None, *, grads: bool = True, weights: bool | str = "auto",
                 weights_every: int | str = "auto", groups=None,
                 close_sonifier: bool | None = None, **sonifier_kwargs):
        super().__init__()
        if sonifier is not None and sonifier_kwargs:
            raise AuralizeError("pass either sonifier= or Sonifier keyword arguments, not both: "
                                + ", ".join(sorted(sonifier_kwargs)))
        self._given = sonifier
        self._mappings = list(sonifier_kwargs.pop("mappings", DEFAULT_MAPPINGS))
        self._kwargs = sonifier_kwargs
        self._close = close_sonifier
        self._session: FitSession | None = None
        self._leads = False       # this callback's hooks feed the shared Watch
        self._rank_zero = False
        self.grads = grads
        self.weights = weights
        self.weights_every = weights_every
        self.groups = groups
        self.watch: Watch | None = None
        self.result = None

    @property
    def sonifier(self):
        return self.watch.sonifier if self.watch is not None else self._given

    # -- lifecycle --------------------------------------------------------------------
    def on_fit_start(self, trainer, pl_module) -> None:
        self.result = None
        self.watch = None
        self._leads = False
        self._rank_zero = trainer.is_global_zero
        if self._rank_zero and self._given is None:   # no Sonifier at all off rank 0
            self._session = FitSession.join(trainer, self, mappings=self._mappings,
                                            kwargs=self._kwargs, keep_open=self._close is False)

    def _target(self):
        return self._session if self._session is not None else self._given

    def on_train_start(self, trainer, pl_module) -> None:
        peers = [c for c in trainer.callbacks
                 if isinstance(c, SonifyCallback) and c._target() is self._target()]
        first = peers[0]
        # under DeepSpeed the gradients live in the engine, not in pl_module
        model = _engine(trainer) or pl_module
        if not trainer.is_global_zero:
            # sharded gradients (FSDP, ZeRO): every rank joins the one all-reduce per
            # step; this Watch makes no Sonifier and writes nothing
            if first is self:
                watch = Watch(model, None, None, grads=any(c.grads for c in peers),
                              weights=any(c.weights for c in peers),
                              weights_every=self.weights_every, groups=self.groups,
                              rank_zero=False)
                if watch.telemetry is not None:
                    self.watch, self._leads = watch, True
            return
        # One Watch per Sonifier, made by the first of the callbacks sharing it: one
        # record per step, with what any of them collects.
        if first is self:
            sonifier = self._session.start() if self._session is not None else self._given
            self.watch = Watch(model, None, sonifier,
                               grads=any(c.grads for c in peers),
                               weights=_combined_weights([c.weights for c in peers]),
                               weights_every=self.weights_every, groups=self.groups,
                               rank_zero=True, close_sonifier=False,
                               scaler=getattr(trainer.precision_plugin, "scaler", None))
            # on_train_batch_end comes after the batch's optimizer step
            self.watch.loss_after_step = True
            self._leads = True
        else:
            self.watch = first.watch

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self._leads:
            self.watch.take_gradients(optimizer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self._leads or not self._rank_zero:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        # Lightning hands back training_step's loss divided by accumulate_grad_batches
        accumulate = getattr(trainer, "accumulate_grad_batches", 1) or 1
        self.watch.log_loss(loss * accumulate if accumulate != 1 else loss)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self._leads or not self._rank_zero:
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
        if self._leads and not self.watch.closed:
            self.watch.close()                 # the last step's record; the Sonifier stays
        if self._session is not None:
            session, self._session = self._session, None
            session.leave(self)                # the last member closes it: _session_closed
        elif self._close and self._given is not None and self._rank_zero:
            self.result = self._given.close()

    def _session_closed(self, result) -> None:
        self.result = result


def _engine(trainer):
    """The DeepSpeed engine under Lightning's DeepSpeed strategy, else None."""
    from auralize.sharded_norms import deepspeed_engine
    return deepspeed_engine(getattr(trainer.strategy, "model", None))


def _combined_weights(wishes: list) -> bool | str:
    """True if any callback asks for weight statistics, else "auto" if any leaves it to the mappings."""
    if any(w is True for w in wishes):
        return True
    return "auto" if any(w == "auto" for w in wishes) else False

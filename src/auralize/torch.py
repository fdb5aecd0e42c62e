"""Hear a PyTorch training loop: ``auralize.torch.watch``.

Quick start::

    from auralize.torch import watch

    with watch(model, optimizer, out_dir="runs/mnist", mappings=("loss", "gradients")) as w:
        for epoch in range(epochs):
            for x, y in loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()           # gradient norms are taken here (step pre-hook)
                w.log_loss(loss, acc=acc)  # one call per batch: loss and other scalars
            w.end_epoch(val_loss=val)      # marks the epoch's last step (WeightChord plays here)
    # leaving the block closes the Sonifier: run folder written, w.sonifier.result

What is collected, and how cheaply
----------------------------------
*Layers* are the modules that own trainable parameters directly, in
``named_modules()`` order, named by their qualified names (``"conv1"``,
``"layer1.0.bn1"``; a ``DistributedDataParallel`` or ``torch.compile`` wrapper is
looked through).  Layers are heard in *groups* (:mod:`auralize.layer_groups`):
by default one per repeated block (``transformer.h.3``, ``layer2.1``), the
embeddings together, every other layer alone, at most 24 (blocks merge into
spans beyond that); ``groups=`` chooses ("layers": one per layer, a list of
names or glob patterns, or a callable name -> group).  A group's gradient norm
is the L2 norm over all its parameters' gradients together (weights and biases
of all its layers), and the records' ``grad_norms`` and ``weight_stats`` are
keyed by group name.

Gradients are read in an ``optimizer.register_step_pre_hook``, after
``loss.backward()``.  All gradient norms come from one ``torch._foreach_norm``
call, the weight norms from another, the weight sums from one small reduction per
parameter (only when the Sonifier's mappings need weight statistics, or
``weights=True``; then every step unless, on the CPU, that costs over 0.5% of a
step: see ``weights_every``); everything — these, the loss and tensor metrics —
is stacked into one vector and brought to the host in **one** transfer per step (on CUDA a
non-blocking copy into pinned memory, read a step or more later, so the training
loop never waits for it).  Per-parameter numbers are combined into per-layer
numbers on the host in float64.

The numbers are those of the gradient the optimizer applies (details in
:mod:`auralize.amp_steps`): with ``torch.amp.GradScaler`` the norms are
unscaled (fused optimizers, which unscale inside ``step``, included; the scale
travels in the vector and is divided out on the host); a step the scaler skips
is recorded with ``skipped=True`` and no gradient norms (pass ``scaler=`` to
see those of plain/foreach optimizers); with ``clip_grad_norm_`` the norms are
the pre-clip ones that clipping saw, and ``clipped`` says whether it scaled
them; with gradient accumulation there is one record per optimizer step, its
loss the mean of the losses logged for its micro-batches.

Distributed: rank 0 alone creates a Sonifier and writes files; on other ranks
``log_loss`` and ``end_epoch`` return at once.  The gradient norms are the
global ones of the gradient the optimizer applies.  Under DDP they are already
all-reduced: rank 0 reads them alone and other ranks install nothing.  Where
gradients are sharded (FSDP2 / HSDP, FSDP1, DeepSpeed ZeRO 1-3) every rank
installs the hook and joins one all-reduce per step over the shard group
(:mod:`auralize.sharded_norms`); a layout it cannot read is said once and the
gradients are left out.  The loss heard is rank 0's own (local batch) loss.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import deque

import torch
import torch.distributed as dist

from auralize.amp_steps import (
    MicroBatches,
    ScalerStepWatch,
    listen_to_clipping,
    scale_extras,
    stop_listening_to_clipping,
    warn_once,
)
from auralize.errors import AuralizeError
from auralize.sharded_norms import install_step_hook, sharded_telemetry
from auralize.sonify.session import Sonifier
from auralize.step_records import StepBuffer, unit_request, wants_weight_stats
from auralize.torch_layers import LayerTelemetry, hookable_optimizer, is_rank_zero, unwrap_model
from auralize.torch_steps import StepRecords, _StepRead, _Transfer

WEIGHTS_BUDGET = 0.005   # weights_every="auto": weight statistics cost <= 0.5% of a step

__all__ = ["LayerTelemetry", "Watch", "hookable_optimizer", "is_rank_zero", "unwrap_model",
           "watch"]


class Watch(StepRecords):
    """Handle returned by :func:`watch`; see the module docstring.

    Attributes
    ----------
    sonifier : Sonifier or None
        The session the records go to (None on non-zero distributed ranks).
    telemetry : LayerTelemetry or None
    result : RunResult or None
        What :meth:`close` returned (the run folder's files), when this handle
        created the Sonifier.
    loss_after_step : bool or None
        Whether ``log_loss`` comes after the optimizer step of its micro-batch
        (then the first loss logged after a step closes that step's record).
        None: learned from the first two steps (logging before the step, each
        step has as many losses before it as the first; logging after it, the
        first step has one fewer); adapters that know set it.
    """

    def __init__(self, model, optimizer, sonifier=None, *, grads: bool = True,
                 weights: bool | str = "auto", weights_every: int | str = "auto",
                 groups=None, rank_zero: bool | None = None,
                 close_sonifier: bool | None = None, scaler=None,
                 **sonifier_kwargs):
        self.rank_zero = is_rank_zero() if rank_zero is None else bool(rank_zero)
        self.model = model
        self.optimizer = optimizer
        self.scaler = scaler
        self.grads = grads
        if not (isinstance(weights, bool) or weights == "auto"):
            raise AuralizeError(f"weights must be True, False or 'auto', not {weights!r}")
        self.weights = weights
        if not (weights_every == "auto" or (isinstance(weights_every, int)
                                              and weights_every >= 1)):
            raise AuralizeError(f"weights_every must be 'auto' or a positive integer, "
                                f"not {weights_every!r}")
        self.weights_every = weights_every
        self._w_interval = 1 if weights_every == "auto" else int(weights_every)
        self._n_pre = 0
        self._weights_due = False     # an epoch ended: its next step reads the weights
        self._last_pre_t: float | None = None
        self.result = None
        self.closed = False
        self._hooks = []
        self._pending_grads: _StepRead | None = None   # the last step, until its record
        self._before_clip: _StepRead | None = None     # gradients read as clipping saw them
        self._micro = MicroBatches()                   # losses logged since the last record
        self._forwards = 0
        self._scaler_watch = None
        self._inflight: deque[_Transfer] = deque()
        self.loss_after_step: bool | None = None
        # FSDP / HSDP / ZeRO: norms from one all-reduce that every rank joins
        sharded = sharded_telemetry(model, weights_every, weights, groups) if (
            dist.is_available() and dist.is_initialized() and (grads or weights)) else None
        if not self.rank_zero:
            self.sonifier = None
            self.telemetry = sharded
            self._owns = False
            self.buffer = StepBuffer(None)
            if sharded is not None and optimizer is not None:
                self._hooks.extend(install_step_hook(model, _as_list(optimizer),
                                                     self._peer_step))
            return
        self.telemetry = sharded or LayerTelemetry.from_module(model, groups=groups)
        self._param_ids = {id(p) for p in getattr(self.telemetry, "params", ())}
        self._owns = sonifier is None if close_sonifier is None else bool(close_sonifier)
        if sonifier is None:
            sonifier = Sonifier(**sonifier_kwargs)
        elif sonifier_kwargs:
            raise AuralizeError("pass either sonifier= or Sonifier keyword arguments, not both: "
                                + ", ".join(sorted(sonifier_kwargs)))
        self.sonifier = sonifier
        if self.weights == "auto":    # only when a mapping uses them: they cost a pass over the weights
            self.weights = wants_weight_stats(sonifier)
        self._unit_epoch, self._unit_step = _unit_requests(sonifier, self.telemetry, sharded)
        self._units_started = False
        self.buffer = StepBuffer(sonifier)
        if isinstance(model, torch.nn.Module):
            # counts forward passes: a pre-clip read from before the last forward
            # belongs to a step that never came (skipped), not to the next one
            self._hooks.append(model.register_forward_pre_hook(self._on_forward))
        if optimizer is not None:
            opts = optimizer if isinstance(optimizer, (list, tuple)) else [optimizer]
            self._hooks.extend(install_step_hook(model, [hookable_optimizer(o) for o in opts],
                                                 self._pre_step))
            if scaler is not None:
                self._scaler_watch = ScalerStepWatch(scaler, opts, lambda: self._n_pre,
                                                     self._skipped_step)
        if self.grads:
            listen_to_clipping(self)

    # -- hooks and calls ----------------------------------------------------------------
    def take_gradients(self, optimizer=None) -> None:
        """Read gradient norms (and weights) now: what the step pre-hook does.

        For loops that call the optimizer themselves through a wrapper (Lightning's
        ``on_before_optimizer_step``, before clipping); pass ``optimizer=None`` to
        :func:`watch` then.
        """
        if self.rank_zero and not self.closed:
            self._pre_step(optimizer, (), {}, True)   # until_clip
        elif self.telemetry is not None and not self.closed:
            self._peer_step(optimizer, (), {})

    def _peer_step(self, optimizer, args, kwargs):
        """A non-zero rank's part in the sharded norms' all-reduce (results unused)."""
        self.telemetry.device_parts(self.grads, self.weights)

    def _on_forward(self, module, args) -> None:
        self._forwards += 1

    def _read(self, optimizer, grads: bool, weights: bool, until_clip=False) -> _StepRead:
        read = _StepRead(optimizer, self._forwards, until_clip)
        if grads:
            read.segments.append(self.telemetry.device_parts(True, False))
        if weights:
            read.segments.append(self.telemetry.device_parts(False, True))
        read.set_extras(scale_extras(optimizer, self.scaler))
        return read

    def _pre_step(self, optimizer, args, kwargs, until_clip=False):
        if self.closed:
            return
        try:
            now = time.perf_counter()
            step_s = None if self._last_pre_t is None else now - self._last_pre_t
            self._last_pre_t = now
            do_weights = self.weights and (self._weights_due
                                           or self._n_pre % self._w_interval == 0)
            self._weights_due = False
            self._n_pre += 1
            clip_read, self._before_clip = self._before_clip, None
            if clip_read is not None and clip_read.forwards == self._forwards:
                # clipping saw these gradients: keep its (pre-clip) norms, add the weights
                read = clip_read
                read.optimizer, read.t_s = optimizer, now
                extras = scale_extras(optimizer, self.scaler)
                extras.pop("scaled_by", None)
                if read.scaled_by is not None:
                    extras["scaled_by"] = read.scaled_by
                read.set_extras(extras)
                if do_weights:
                    read.segments.append(self.telemetry.device_parts(False, True))
            else:
                read = self._read(optimizer, self.grads, do_weights, until_clip)
            if do_weights and self.weights_every == "auto" and step_s:
                # weight statistics at most every step, and no more often than keeps
                # their cost under WEIGHTS_BUDGET of the step time
                cost = self.telemetry.weights_cost_s
                self._w_interval = max(1, min(1000, math.ceil(cost / (WEIGHTS_BUDGET * step_s))))
            self._step_taken(read)
        except Exception as err:  # noqa: BLE001 - auralize never breaks training
            warn_once(self, f"reading the step's gradients failed: {err}")

    def _skipped_step(self, optimizer) -> None:
        """``scaler.step`` skipped ``optimizer``'s step (inf/NaN gradients): record it so."""
        self._before_clip = None
        read = _StepRead(optimizer, self._forwards)
        extras = scale_extras(optimizer, self.scaler)
        extras["found_inf"] = torch.ones((), device=extras["loss_scale"].device) if (
            "loss_scale" in extras) else torch.ones(())
        extras.pop("scaled_by", None)
        read.set_extras(extras)
        self._step_taken(read)
    def before_clip(self, params, max_norm: float, total_norm) -> None:
        """Called by ``clip_grad_norm_`` before it scales the gradients (see amp_steps)."""
        if self.closed or not self.rank_zero or getattr(self.telemetry, "sharded", False) or not any(
                id(p) in self._param_ids for p in params):
            # sharded stacks: a read here would be a collective on rank 0 alone
            return
        pending = self._pending_grads
        if pending is not None and pending.until_clip:    # read already, before clipping
            pending.clips.append((total_norm.detach(), max_norm))
            return
        read = self._before_clip
        if read is None or read.forwards != self._forwards:
            read = _StepRead(None, self._forwards)
            read.segments.append(self.telemetry.device_parts(True, False))
            opts = self.optimizer if isinstance(self.optimizer, (list, tuple)) else [
                self.optimizer]
            scaled_by = scale_extras(opts[0], self.scaler).get("scaled_by")
            read.scaled_by = None if scaled_by is None else scaled_by.detach().clone()
            self._before_clip = read
        read.clips.append((total_norm.detach(), max_norm))

    def fail_once(self, message: str) -> None:
        warn_once(self, message)
    def close(self):
        """Flush, remove the hooks, close the Sonifier if this handle made it."""
        if self.closed:
            return self.result
        self.closed = True
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        stop_listening_to_clipping(self)
        if self._scaler_watch is not None:
            self._scaler_watch.remove()
        if not self.rank_zero:
            return None
        try:
            self._flush()
            self._drain(block=True)
            self.buffer.close()
        finally:
            if self._owns and self.sonifier is not None:
                self.result = self.sonifier.close()
        return self.result

    def audio(self):
        """A notebook player of what the Sonifier rendered (``Sonifier.audio()``)."""
        if self.sonifier is None:
            return None
        return self.sonifier.audio()

    def __enter__(self) -> Watch:  # noqa: PYI034
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

def watch(model: torch.nn.Module, optimizer, sonifier=None, **sonifier_kwargs) -> Watch:
    """Sonify a PyTorch training loop (use as a context manager).

    Parameters
    ----------
    model : torch.nn.Module
        The model (DDP / compile wrappers are looked through for layer names).
    optimizer : torch.optim.Optimizer or list of them, or None
        Gradient norms and weight statistics are taken in its step pre-hook.
        None: only what ``log_loss`` is given.
    sonifier : Sonifier, optional
        An existing session (several adapters or loops can share one); it is
        then not closed by this handle (pass ``close_sonifier=True`` to change
        that).  Without it, a ``Sonifier(**sonifier_kwargs)`` is made and closed
        when the block ends.
    grads : bool, keyword
        Collect gradient norms (default True).
    weights : bool or "auto", keyword
        Collect per-group weight statistics (mean, std, norm).  ``"auto"``
        (default): only when the Sonifier's mappings use them (the built-in
        ones do not; the weight chord reads per-unit means, taken at epoch
        ends only).
    groups : optional, keyword
        Which layers sound as one gradient voice (:mod:`auralize.layer_groups`):
        ``None``/``"auto"`` by structure, at most 24 (one per repeated block,
        embeddings together); ``"layers"`` one per layer; a list of names or
        glob patterns (``["transformer.h.*", "lm_head"]``); or a callable
        ``name -> group name``.
    weights_every : int or "auto", keyword
        Weight statistics every n-th step and on each epoch's first step,
        always of the weights the step started from.  ``"auto"`` (default):
        every step unless, on the CPU, their reduction costs more than 0.5% of
        the step time; then every n-th step with n chosen to keep that budget.
        On a GPU they cost next to nothing and "auto" means every step.
    scaler : torch.amp.GradScaler, keyword, optional
        The loop's loss scaler.  Needed only to see the steps it skips with
        plain/foreach optimizers (their ``step`` never runs then); the norms are
        unscaled, and a fused optimizer's skipped steps are seen, without it.
    **sonifier_kwargs
        ``out_dir``, ``mappings``, ``clock``, ``live``... (see ``Sonifier``).

    Returns
    -------
    Watch
        ``.log_loss(loss, **metrics)`` once per batch, ``.end_epoch(**metrics)`` at
        epoch ends, ``.sonifier``; leaving the ``with`` block closes it.
    """
    return Watch(model, optimizer, sonifier, **sonifier_kwargs)


def _as_list(optimizer) -> list:
    return list(optimizer) if isinstance(optimizer, (list, tuple)) else [optimizer]


def _unit_requests(sonifier, telemetry: LayerTelemetry, sharded=None):
    """Split the Sonifier's unit-mean requests into per-epoch and per-step layer names."""
    per_epoch: list[str] = []
    per_step: list[str] = []
    if sharded is not None:
        if getattr(sonifier, "unit_means_requests", None):
            warnings.warn(f"auralize: per-unit weight means (WeightChord) are not available "
                          f"under {sharded.sharded.stack} (weights are sharded); left out",
                          RuntimeWarning, stacklevel=4)
        return per_epoch, per_step
    for req in getattr(sonifier, "unit_means_requests", None) or []:
        which, when, most = unit_request(req)
        name = telemetry.linear_name(which)
        telemetry.unit_pool[name] = most
        target = per_step if when == "step" else per_epoch
        if name not in target:
            target.append(name)
    return per_epoch, per_step

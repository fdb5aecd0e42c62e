"""The Hugging Face Trainer's sharded stacks, for :class:`auralize.transformers.SonifyCallback`.

DeepSpeed ZeRO 1-3 through the Trainer: the gradients are partitions (``p.grad``
is None), and Accelerate runs the engine's step inside the last micro-batch's
``backward``, before ``on_pre_optimizer_step``.  The callback hooks the ZeRO
optimizer's ``step`` on every rank (:mod:`auralize.deepspeed_zero`): there, after
accumulation and before DeepSpeed unscales and clips, every rank joins one
all-reduce of the squared partition norms (:mod:`auralize.sharded_norms`) and rank
0 hears the global, pre-clip per-layer norms; ``clipped`` follows the engine's
``gradient_clipping``.  Weight statistics are the whole weights' (ZeRO-3: from the
partitions, on the agreed ``weights_every`` schedule); per-unit weight means are
left out.  FSDP: Accelerate turns it on only on GPUs and other accelerators (on
CPU, ``fsdp=...`` quietly trains DDP, heard exactly); under FSDP, and DeepSpeed
without ZeRO, the callback says so once and leaves gradients and weights out
(loss, learning rate and evaluations are heard).
"""

from __future__ import annotations

import os

import torch

from auralize.deepspeed_zero import install_step_hook
from auralize.torch import Watch

__all__ = ["ZeroStepHook", "join_all_reduce", "unread_stack"]


class ZeroStepHook:
    """Before the ZeRO optimizer's step, on every rank: a callback's step record opens here.

    Accelerate runs the engine's step inside the last micro-batch's ``backward``
    (before ``on_pre_optimizer_step``), and the step frees the reduced gradient
    partitions: they are read now, by one all-reduce that every rank joins, even
    one whose sound failed (a rank that stayed away would hang the others).

    Parameters
    ----------
    callback : SonifyCallback
        Its ``_watch``, ``_failed``, ``_open_step`` and ``_fail`` are used.
    zero : ZeroView
        The engine's module and ZeRO optimizer (:func:`auralize.deepspeed_zero.zero_view`).
    telemetry : LayerTelemetry
        This rank's sharded norms (joined on failure too).
    """

    def __init__(self, callback, zero, telemetry) -> None:
        self.callback = callback
        self.telemetry = telemetry
        self._hooks = install_step_hook(zero, [], self)

    def __call__(self, optimizer, step_args, step_kwargs) -> None:
        cb = self.callback
        watch = cb._watch
        if watch is None or cb._failed:
            self._join()
            return
        if not watch.rank_zero:
            watch.take_gradients(None)      # its part of the all-reduce; never raises
            return
        try:
            cb._open_step(optimizer)
        except Exception as err:  # noqa: BLE001 - auralize must not end a training run
            cb._fail(err)
            self._join()

    def _join(self) -> None:
        """This rank's part of the all-reduce, the numbers unused (its sound failed)."""
        if self.telemetry is None:
            return
        try:
            with torch.no_grad():
                self.telemetry.device_parts(True, True)
        except Exception:  # noqa: BLE001 - already failed: training goes on
            pass

    def remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def join_all_reduce(callback, zero, grads: bool, weights: bool) -> tuple[Watch, ZeroStepHook]:
    """A Watch that only takes this rank's part in the sharded norms (no Sonifier), hooked."""
    watch = Watch(zero, None, None, grads=grads, weights=weights,
                  weights_every=callback.weights_every, groups=callback.groups, rank_zero=False)
    return watch, ZeroStepHook(callback, zero, watch.telemetry)


def unread_stack(args, model) -> str | None:
    """A sharded stack whose gradients the callback cannot read as applied, or None.

    FSDP: Accelerate turns it on only on GPUs and other accelerators (on CPU it
    quietly trains DDP, heard exactly); its clipping happens before any callback
    and no CPU run here can test a pre-clip read, so its gradients stay out.
    DeepSpeed without ZeRO: the engine steps inside ``backward`` and zeroes the
    gradients before ``on_pre_optimizer_step``.
    """
    from auralize.sharded_norms import stack_name

    stack = stack_name(model) if model is not None else None
    if stack is not None:
        return stack
    if getattr(args, "deepspeed", None) or os.environ.get(
            "ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes"):
        return "DeepSpeed without ZeRO"
    return None

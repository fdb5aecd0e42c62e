"""DeepSpeed ZeRO 1-3: where each rank's piece of a gradient lives, and the step hook.

Used by :mod:`auralize.sharded_norms`.  ZeRO leaves ``p.grad`` None: after the
backward pass the reduced (averaged) gradients sit in each rank's partition —
ZeRO-1/2 in fp32 fragments mapped per parameter (``p._hp_mapping``, what
``deepspeed.utils.safe_get_full_grad`` all-reduces per parameter), ZeRO-3 in the
optimizer's per-parameter partitions (``safe_get_local_grad``).  They are read
when the ZeRO optimizer's ``step`` begins: before unscaling and clipping (the
norms are divided by the loss scale here) and before ``step`` frees them.
``deepspeed`` itself is never imported here: a model is an engine only if the
user's code imported it.
"""

from __future__ import annotations

import math
import sys

import torch.distributed as dist

__all__ = ["ZeroView", "deepspeed_engine", "install_step_hook", "zero_layout", "zero_view"]

_ZERO_OPTIMIZERS = {"DeepSpeedZeroOptimizer": None, "DeepSpeedZeroOptimizer_Stage3": 3}


class ZeroView:
    """What this module needs of a ``DeepSpeedEngine``, from its module and ZeRO optimizer.

    For code that holds the engine's pieces but not the engine: a Hugging Face
    ``Trainer``'s callbacks get the user's model and Accelerate's optimizer
    wrapper, never the engine (see :func:`zero_view`).
    """

    def __init__(self, module, optimizer, stage: int) -> None:
        self.module = module
        self.optimizer = optimizer
        self._stage = int(stage)

    def zero_optimization_stage(self) -> int:
        return self._stage


def zero_view(model, optimizer) -> ZeroView | None:
    """A :class:`ZeroView` when ``optimizer`` (or what it wraps) is a ZeRO optimizer, else None."""
    seen = 0
    while optimizer is not None and seen < 8:
        stage = _ZERO_OPTIMIZERS.get(type(optimizer).__name__, 0)
        if stage != 0:
            break
        optimizer, seen = getattr(optimizer, "optimizer", None), seen + 1
    else:
        return None
    if stage is None:   # stage 1 and 2 share a class: stage 2 also partitions gradients
        stage = 2 if getattr(optimizer, "partition_gradients", False) else 1
    return ZeroView(model, optimizer, stage)


def deepspeed_engine(model):
    """The ``deepspeed.DeepSpeedEngine`` that ``model`` is or wraps (or a :class:`ZeroView`), else None."""
    if isinstance(model, ZeroView):
        return model
    ds = sys.modules.get("deepspeed")
    if ds is not None and isinstance(model, getattr(ds, "DeepSpeedEngine", ())):
        return model
    inner = getattr(model, "module", None)    # e.g. an Accelerate / Lightning wrapper
    if ds is not None and isinstance(inner, getattr(ds, "DeepSpeedEngine", ())):
        return inner
    return None


def zero_layout(engine, LayerTelemetry):
    """The engine's layers and, per parameter, ``(numel, grad(), weight())`` readers of
    this rank's fp32 partition; the data-parallel group; the loss-scale reader."""
    tel = LayerTelemetry.from_module(engine.module)
    stage = int(engine.zero_optimization_stage())
    zero = engine.optimizer
    pieces = []
    if stage >= 3:
        group = zero.dp_process_group
        tel.counts = [int(getattr(p, "ds_numel", p.numel())) for p in tel.params]
        for p, n in zip(tel.params, tel.counts):
            pieces.append((n, _z3_grad(zero, p), _z3_weight(p)))
    else:
        group = None
        for p in tel.params:
            if not hasattr(p, "_hp_mapping"):
                raise ValueError(f"parameter of shape {tuple(p.shape)} has no ZeRO "
                                 "fragment mapping")
            group = p._dp_group if group is None else group
            pieces.append((p.numel(), _z12_grad(p), _z12_weight(p)))
    return tel, pieces, [group], _loss_scale(zero)


def _loss_scale(zero):
    def scale():
        value = getattr(zero, "loss_scale", 1.0)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return 1.0
        return value if value > 0 and math.isfinite(value) else 1.0
    return scale


def _z3_grad(zero, p):
    def grad():
        return zero.get_local_fp32_grad_for_param(p) if p.requires_grad else None
    return grad


def _z3_weight(p):
    def weight():
        local = p.ds_tensor
        # the last partition is padded to an equal size: only real elements count
        start = local.numel() * dist.get_rank(p.ds_process_group) if hasattr(
            p, "ds_process_group") else None
        if start is None:
            return local
        real = max(0, min(local.numel(), int(p.ds_numel) - start))
        return local.reshape(-1).narrow(0, 0, real)
    return weight


def _z12_fragment(p, grad: bool):
    mapping = p._hp_mapping
    if mapping is None:
        return None
    if not grad:
        return mapping.hp_fragment
    frag = mapping.get_lp_grad_fragment(p._index_in_param_group).reshape(-1)
    address = mapping.lp_fragment_address
    if frag.numel() == p.numel() and frag.numel() != address.numel:
        frag = frag.narrow(0, address.start, address.numel)
    return frag


def _z12_grad(p):
    return lambda: _z12_fragment(p, True)


def _z12_weight(p):
    return lambda: _z12_fragment(p, False)


def install_step_hook(model, optimizers, fn) -> list:
    """Hook ``fn(optimizer, args, kwargs)`` before each optimizer step, for this stack.

    DeepSpeed's ZeRO optimizers are no ``torch.optim.Optimizer`` and free the
    reduced gradient partitions inside their ``step``: their ``step`` is wrapped
    (the hook runs first).  Everything else: ``register_step_pre_hook``.
    Returns handles with ``remove()``.
    """
    engine = deepspeed_engine(model)
    if engine is not None and int(engine.zero_optimization_stage()) > 0:
        return [_WrappedStep(engine.optimizer, fn)]
    return [opt.register_step_pre_hook(fn) for opt in optimizers]


class _WrappedStep:
    """``optimizer.step`` replaced by one that calls a hook first; ``remove()`` undoes it."""

    def __init__(self, optimizer, fn):
        self.optimizer = optimizer
        self.original = optimizer.step

        def step(*args, **kwargs):
            fn(optimizer, args, kwargs)
            return self.original(*args, **kwargs)

        optimizer.step = step

    def remove(self) -> None:
        if "step" in vars(self.optimizer):
            del self.optimizer.step

"""True gradient numbers under mixed precision, accumulation and clipping (PyTorch).

:mod:`auralize.torch` reads a step's gradients on the device and sends them to
the host in one vector.  This module holds what decides *which* gradients those
are and what the numbers mean, without any host synchronisation:

- **Loss scaling** (``torch.amp.GradScaler``).  Plain and foreach optimizers
  are stepped by the scaler after ``unscale_``, so their step pre-hook sees
  unscaled gradients; optimizers with ``_step_supports_amp_scaling`` (fused
  Adam/AdamW/SGD/Adagrad) unscale inside ``step``: the scaler hands them the
  scale and its inf/NaN flag as ``optimizer.grad_scale`` / ``optimizer.found_inf``.
  :func:`scale_extras` reads whichever applies as device tensors; they travel in
  the step's vector and :func:`decode_extras` divides the norms on the host.
- **Skipped steps.**  A fused optimizer's step runs (and skips internally):
  its ``found_inf`` says so.  A plain optimizer's step never runs: the Watch
  learns it from :class:`ScalerStepWatch`, which wraps ``scaler.step`` of the
  scaler given to ``watch(..., scaler=...)`` (a skipped step is one where the
  scaler's ``step`` returned without calling the optimizer's).
- **Clipping.**  ``torch.nn.utils.clip_grad_norm_`` scales the gradients in
  place before the step.  While a Watch listens, :func:`listen_to_clipping`
  routes the clipping half of it (``clip_grads_with_norm_``, which every
  ``clip_grad_norm_`` call goes through, and which Accelerate >= 1.16 calls
  directly after ``get_total_norm``) past the Watch first, so the
  norms are read as clipping saw them, with the total norm and ``max_norm``
  (whether the step was clipped).
- **Accumulation.**  :class:`MicroBatches` gathers the losses logged between
  optimizer steps; the step's record gets their mean.
"""

from __future__ import annotations

import math
import warnings

import torch

__all__ = [
    "MicroBatches",
    "ScalerStepWatch",
    "decode_extras",
    "listen_to_clipping",
    "scale_extras",
    "stop_listening_to_clipping",
]


# -- loss scale -----------------------------------------------------------------------
def _scaler_state(scaler, optimizer):
    """(stage name, found_inf tensor or None) of ``scaler`` for ``optimizer``, or None."""
    if scaler is None or not getattr(scaler, "_enabled", False):
        return None
    states = getattr(scaler, "_per_optimizer_states", None)
    state = states.get(id(optimizer)) if states is not None else None   # .get: no new entry
    if state is None:
        return ("READY", None)
    infs = list(state.get("found_inf_per_device", {}).values())
    found = None
    if infs:
        found = infs[0] if len(infs) == 1 else torch.stack(
            [t.to(infs[0].device) for t in infs]).sum()
    return (getattr(state.get("stage"), "name", "READY"), found)


def scale_extras(optimizer, scaler) -> dict[str, torch.Tensor]:
    """Device scalars describing the loss scale of the gradients about to be read.

    Keys (each present only when it applies):

    - ``"scaled_by"``: the gradients are still multiplied by this (fused
      optimizers inside ``step``; or read before ``scaler.unscale_``);
    - ``"found_inf"``: the scaler's inf/NaN flag for this optimizer (> 0: the
      step is skipped);
    - ``"loss_scale"``: the scale the loss was multiplied by this step.

    Everything is a tensor on the scaler's device; nothing is read to the host.
    """
    out: dict[str, torch.Tensor] = {}
    if optimizer is not None and hasattr(optimizer, "found_inf"):
        # GradScaler.step -> optimizer.step of a fused optimizer: attributes set just
        # for this call (grad_scale None: unscale_ already ran)
        grad_scale = getattr(optimizer, "grad_scale", None)
        if torch.is_tensor(grad_scale):
            out["scaled_by"] = out["loss_scale"] = grad_scale
        if torch.is_tensor(optimizer.found_inf):
            out["found_inf"] = optimizer.found_inf
    state = _scaler_state(scaler, optimizer)
    scale = getattr(scaler, "_scale", None) if state is not None else None
    if state is not None and torch.is_tensor(scale):
        out.setdefault("loss_scale", scale)
        stage, found = state
        if stage == "UNSCALED" and found is not None:
            out.setdefault("found_inf", found)
        elif stage == "READY" and "found_inf" not in out:
            out.setdefault("scaled_by", scale)   # not unscaled yet: the grads carry the scale
    return out


def snapshot(extras: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor | None]:
    """Copy the extras now (the scaler updates its scale in place later): keys, one vector."""
    if not extras:
        return [], None
    keys = list(extras)
    dev = extras[keys[0]].device
    vec = torch.stack([extras[k].detach().reshape(()).float().to(dev) for k in keys])
    return keys, vec


def decode_extras(extras: dict[str, float], grad_norms: dict[str, float]):
    """Host side: ``(grad_norms, fields)`` with the scale divided out and the step's flags.

    ``fields`` holds the :class:`~auralize.sonify.TrainingStep` fields this step
    sets: ``loss_scale``, ``skipped`` and ``skip_reason``, ``clipped``.
    """
    fields: dict[str, object] = {}
    scaled_by = extras.get("scaled_by")
    if scaled_by is not None and math.isfinite(scaled_by) and scaled_by > 0 and scaled_by != 1:
        grad_norms = {k: v / scaled_by for k, v in grad_norms.items()}
    loss_scale = extras.get("loss_scale")
    if loss_scale is not None:
        fields["loss_scale"] = loss_scale
    scaled = loss_scale is not None or "found_inf" in extras or scaled_by is not None
    found = extras.get("found_inf")
    nonfinite = any(not math.isfinite(v) for v in grad_norms.values())
    if (found is not None and found != 0) or (scaled and found is None and nonfinite):
        fields["skipped"] = True
        at = f" at loss scale {loss_scale:g}" if loss_scale is not None else ""
        fields["skip_reason"] = f"GradScaler found inf/NaN gradients{at}; the optimizer skipped the step"
        grad_norms = {}
    total, max_norm = extras.get("clip_total"), extras.get("clip_max")
    if total is not None and max_norm is not None and not fields.get("skipped"):
        # clip_grads_with_norm_ multiplies by min(max_norm / (total + 1e-6), 1)
        fields["clipped"] = bool(math.isfinite(total) and max_norm < total + 1e-6)
    return grad_norms, fields


class ScalerStepWatch:
    """Wraps ``scaler.step`` (on this scaler object only) to see steps it skips.

    ``on_skip(optimizer)`` is called when ``scaler.step(optimizer)`` returned
    without the optimizer's step running, for optimizers in ``optimizers``.
    ``stepped`` is a callable returning a counter the Watch's step pre-hook
    increments.  :meth:`remove` restores the scaler.
    """

    def __init__(self, scaler, optimizers, stepped, on_skip):
        self.scaler = scaler
        self.ids = {id(o) for o in optimizers}
        self.stepped = stepped
        self.on_skip = on_skip
        original = scaler.step      # bound method (or a wrapper someone else put there)

        def step(optimizer, *args, **kwargs):
            before = self.stepped()
            out = original(optimizer, *args, **kwargs)
            try:
                if (id(optimizer) in self.ids and self.stepped() == before
                        and scaler.is_enabled()):
                    self.on_skip(optimizer)
            except Exception as err:  # noqa: BLE001 - auralize never breaks training
                warnings.warn(f"auralize: recording a skipped step failed: {err}; training "
                              "goes on", RuntimeWarning, stacklevel=2)
            return out

        self._original = original
        scaler.step = step

    def remove(self) -> None:
        if self.scaler is not None:
            if "step" in vars(self.scaler):
                del self.scaler.step
            self.scaler = None


# -- clipping ------------------------------------------------------------------------
_LISTENERS: list = []
_ORIGINAL_CLIP = None


def _clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    if not isinstance(parameters, (list, tuple, torch.Tensor)):
        parameters = list(parameters)       # a generator is read once: keep it for clipping
    params = [parameters] if isinstance(parameters, torch.Tensor) else parameters
    for listener in list(_LISTENERS):
        try:
            listener.before_clip(params, float(max_norm), total_norm)
        except Exception as err:  # noqa: BLE001 - auralize never breaks training
            listener.fail_once(f"reading the gradients before clipping failed: {err}")
    return _ORIGINAL_CLIP(parameters, max_norm, total_norm, foreach)


def _clip_bindings():
    """The module attributes through which code reaches torch's clipping half.

    ``clip_grad_norm_`` calls ``clip_grad._clip_grads_with_norm_``; the public
    ``torch.nn.utils.clip_grads_with_norm_`` (with ``get_total_norm``, the two-part
    API that Accelerate >= 1.16 uses) is a second name for the same function.
    """
    import torch.nn.utils as nn_utils
    from torch.nn.utils import clip_grad
    return [(clip_grad, "_clip_grads_with_norm_"), (nn_utils, "clip_grads_with_norm_")]


def listen_to_clipping(listener) -> None:
    """Have ``listener.before_clip(params, max_norm, total_norm)`` called before each clip.

    Installs the routing on the first listener (on every name the clipping function
    is reached by, see :func:`_clip_bindings`); :func:`stop_listening_to_clipping`
    removes it with the last.
    """
    global _ORIGINAL_CLIP
    if not _LISTENERS:
        from torch.nn.utils import clip_grad
        _ORIGINAL_CLIP = clip_grad._clip_grads_with_norm_
        for module, name in _clip_bindings():
            if getattr(module, name, None) is _ORIGINAL_CLIP:
                setattr(module, name, _clip_grads_with_norm_)
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def stop_listening_to_clipping(listener) -> None:
    global _ORIGINAL_CLIP
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)
    if not _LISTENERS and _ORIGINAL_CLIP is not None:
        for module, name in _clip_bindings():
            if getattr(module, name, None) is _clip_grads_with_norm_:
                setattr(module, name, _ORIGINAL_CLIP)
        _ORIGINAL_CLIP = None


# -- accumulation -----------------------------------------------------------------------
#: a step record is closed after this many micro-batches without an optimizer step
#: (a loop whose watched optimizer never steps still sounds, and memory stays bounded)
MAX_MICRO_BATCHES = 256


class MicroBatches:
    """The losses and scalars logged since the last step record: averaged into it.

    Values stay as they were given (tensors are not read): :meth:`items` lists
    ``(key, value)`` pairs for the step's vector, :meth:`mean` averages the host
    values by key afterwards.
    """

    def __init__(self):
        self.entries: list[tuple[object, dict]] = []

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, loss, metrics: dict) -> None:
        self.entries.append((loss, metrics))

    def take(self) -> list[tuple[object, dict]]:
        entries, self.entries = self.entries, []
        return entries


def mean_by_key(pairs: list[tuple[str, float]]) -> dict[str, float]:
    """Mean of the values of each key (NaN stays NaN: a NaN micro-batch makes a NaN step)."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key, value in pairs:
        sums[key] = sums.get(key, 0.0) + value
        counts[key] = counts.get(key, 0) + 1
    return {k: sums[k] / counts[k] for k in sums}


def warn_once(owner, message: str) -> None:
    """One warning per Watch: auralize never breaks training."""
    if not getattr(owner, "_warned", False):
        owner._warned = True
        warnings.warn(f"auralize: {message}; training goes on", RuntimeWarning, stacklevel=3)

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
import os
import time
import warnings
from collections import deque

import numpy as np
import torch
import torch.distributed as dist

from auralize.amp_steps import (
    MAX_MICRO_BATCHES,
    MicroBatches,
    ScalerStepWatch,
    decode_extras,
    listen_to_clipping,
    mean_by_key,
    scale_extras,
    snapshot,
    stop_listening_to_clipping,
    warn_once,
)
from auralize.errors import AuralizeError
from auralize.layer_groups import group_layers
from auralize.sharded_norms import install_step_hook, sharded_telemetry
from auralize.sonify.session import Sonifier
from auralize.step_records import (
    UNIT_POOL_MAX,
    StepBuffer,
    combine_layer_norms,
    layer_weight_stats,
    pick_chord_layer,
    pool_edges,
    resolve_layer,
    unit_request,
    wants_weight_stats,
)

WEIGHTS_BUDGET = 0.005   # weights_every="auto": weight statistics cost <= 0.5% of a step
VOCAB_UNITS = 30000      # a dense layer this wide is a vocabulary head (GPT-2 50257, BERT 30522)

__all__ = ["LayerTelemetry", "Watch", "hookable_optimizer", "unwrap_model", "watch"]


def is_rank_zero() -> bool:
    """True unless this process is a non-zero rank of a distributed run.

    Uses ``torch.distributed`` when it is initialised, else the ``RANK``
    (torchrun, Lightning) or ``SLURM_PROCID`` environment variable.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    for var in ("RANK", "SLURM_PROCID"):
        value = os.environ.get(var)
        if value not in (None, ""):
            try:
                return int(value) == 0
            except ValueError:
                return True
    return True


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The user's module inside DDP / DataParallel / torch.compile wrappers."""
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        elif isinstance(model, (torch.nn.parallel.DistributedDataParallel,
                                torch.nn.DataParallel)):
            model = model.module
        else:
            break
    return model


def hookable_optimizer(optimizer):
    """The optimizer whose ``step`` really runs, inside wrappers that forward to it.

    Hugging Face Accelerate's ``AcceleratedOptimizer`` (``accelerator.prepare``)
    holds the torch optimizer as ``.optimizer`` and calls its ``step`` only on
    steps that apply gradients (not while accumulating; not when the GradScaler
    skips): the wrapper has no step hooks of its own, the inner one does.
    """
    seen = 0
    while (seen < 8 and "_optimizer_step_pre_hooks" not in vars(optimizer)
           and isinstance(getattr(optimizer, "optimizer", None), torch.optim.Optimizer)):
        optimizer = optimizer.optimizer
        seen += 1
    return optimizer


def _dense(g: torch.Tensor) -> torch.Tensor:
    if g.is_sparse:
        return g.coalesce()._values()
    return g


class LayerTelemetry:
    """Per-group gradient norms and weight statistics from one fused reduction.

    Parameters
    ----------
    names : list of str
        Layer names, in model order.
    params : list of list of torch.Tensor
        Each layer's trainable parameters (the tensors whose ``.grad`` is read).
    linear : dict of str -> callable, optional
        Dense layers (``nn.Linear``, transformers' ``Conv1D``, Keras ``Dense``;
        all of them, in model order) for per-unit weight means: name -> function
        returning the per-output-unit mean as a 1-D tensor.
    groups : optional
        How layers are grouped into voices (:func:`auralize.layer_groups.group_layers`:
        ``"auto"`` by default, ``"layers"``, names/patterns or a callable).
    kinds : list of str, optional
        Each layer's class name (finds embeddings for the automatic grouping).
    vocab_heads : set of str, optional
        Dense layers that are vocabulary heads (never the default chord layer).

    Attributes
    ----------
    names : list of str
        Group names, in model order: the keys of ``grad_norms`` and ``weight_stats``.
    layer_names, layer_group : list of str
        Every layer (a tied parameter counted once, in its first layer) and its group.
    params, layer_of : list
        Parameters in model order and the group index of each (what
        :meth:`device_parts` reduces and :meth:`decode` combines).
    """

    sharded = None   # a sharded_norms.ShardedNorms where gradients are sharded (FSDP, ZeRO)

    def __init__(self, names, params, linear=None, groups=None, kinds=None, vocab_heads=None):
        self.layer_names: list[str] = []
        layer_params: list[list[torch.Tensor]] = []
        layer_kinds: list[str] = []
        kinds = list(kinds) if kinds is not None else [""] * len(names)
        seen: set[int] = set()
        for name, group, kind in zip(names, params, kinds):
            # tied weights: counted once, in their first layer (a layer left empty goes)
            own = [p for p in group if id(p) not in seen]
            if not own:
                continue
            seen.update(id(p) for p in own)
            self.layer_names.append(name)
            layer_params.append(own)
            layer_kinds.append(kind)
        self.layer_group = group_layers(self.layer_names, groups, kinds=layer_kinds)
        self.names: list[str] = list(dict.fromkeys(self.layer_group))
        index = {g: i for i, g in enumerate(self.names)}
        self.params: list[torch.Tensor] = []
        self.layer_of: list[int] = []
        for group, own in zip(self.layer_group, layer_params):
            for p in own:
                self.params.append(p)
                self.layer_of.append(index[group])
        self.counts = [int(p.numel()) for p in self.params]
        self.linear = dict(linear or {})
        self.vocab_heads = set(vocab_heads or ())
        self.unit_pool: dict[str, int] = {}      # dense layer -> most partials (pooled units)
        self.weights_cost_s = 0.0

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_module(cls, model: torch.nn.Module, groups=None) -> LayerTelemetry:
        """Layers of a torch module (modules owning trainable parameters directly), grouped."""
        model = unwrap_model(model)
        names, params, kinds = [], [], []
        linear = {}
        heads = set()
        embedding_weights = {id(m.weight): m.num_embeddings for m in model.modules()
                             if isinstance(m, torch.nn.Embedding)}
        vocab = max(embedding_weights.values(), default=-1)
        for name, mod in model.named_modules():
            own = [p for p in mod.parameters(recurse=False) if p.requires_grad]
            label = name or type(mod).__name__
            if own:
                names.append(label)
                params.append(own)
                kinds.append(type(mod).__name__)
            weight = getattr(mod, "weight", None)
            if weight is None or isinstance(weight, torch.nn.parameter.UninitializedParameter):
                continue
            if isinstance(mod, torch.nn.Linear):
                linear[label] = _linear_unit_mean(mod)
                units = mod.out_features
            elif _is_gpt2_conv1d(mod):
                linear[label] = _conv1d_unit_mean(mod)
                units = mod.nf
            else:
                continue
            # a vocabulary head: tied to an embedding, as wide as the largest one, or huge
            if id(weight) in embedding_weights or units == vocab or units >= VOCAB_UNITS:
                heads.add(label)
        if not names:
            raise AuralizeError("the model has no trainable parameters to sonify")
        return cls(names, params, linear, groups=groups, kinds=kinds, vocab_heads=heads)

    # -- requests -----------------------------------------------------------------
    def linear_name(self, which) -> str:
        """Name of the dense layer ``which``: an index among them, a name, or ``"auto"``.

        ``"auto"``: the last dense layer that is not a vocabulary head (see
        :func:`auralize.step_records.pick_chord_layer`).
        """
        names = list(self.linear)
        if isinstance(which, str) and which == "auto":
            return pick_chord_layer(names, self.vocab_heads)
        if isinstance(which, str) and which not in names:
            raise AuralizeError(
                f"no Dense/Linear layer named {which!r}; the model's Dense/Linear layers: "
                f"{', '.join(names) or '(none)'}; all layers: {', '.join(self.layer_names)}")
        return names[resolve_layer(which, names, "Dense/Linear layer")]

    def unit_mean_tensor(self, name: str) -> torch.Tensor:
        """Per-unit weight means of dense layer ``name``, pooled to its partial budget (device)."""
        with torch.no_grad():
            return _pool_units(self.linear[name]().float().reshape(-1),
                               self.unit_pool.get(name, UNIT_POOL_MAX))

    def unit_means(self, layer_names) -> dict[str, list[float]]:
        """Per-unit weight means of the named dense layers (host lists, pooled)."""
        return {name: [float(v) for v in self.unit_mean_tensor(name).cpu().tolist()]
                for name in layer_names}

    # -- the fused reduction --------------------------------------------------------
    def device_parts(self, grads: bool = True, weights: bool = True):
        """Scalars on the device: grad norms of present grads, weight norms, sums.

        Returns ``(parts, layout)``: ``parts`` a list of 0-d float32 tensors to be
        stacked with other scalars; ``layout`` what :meth:`decode` needs.
        """
        if self.sharded is not None:   # one all-reduce over the shard group, every rank
            with torch.no_grad():
                return self.sharded.device_parts(grads, weights)
        parts: list[torch.Tensor] = []
        present: list[int] = []
        with torch.no_grad():
            if grads:
                gs = []
                for i, p in enumerate(self.params):
                    g = p.grad
                    if g is not None:
                        gs.append(_dense(g))
                        present.append(i)
                if gs:
                    parts.extend(torch._foreach_norm(gs, 2, dtype=torch.float32))
            if weights:
                t0 = time.perf_counter()
                ws = [p.detach() for p in self.params]
                parts.extend(torch._foreach_norm(ws, 2, dtype=torch.float32))
                parts.extend(w.sum(dtype=torch.float32) for w in ws)
                # on the CPU the reductions are done now: their cost is measurable
                self.weights_cost_s = (time.perf_counter() - t0) if not (
                    ws and ws[0].is_cuda) else 0.0
        return parts, (grads, present, weights)

    def decode(self, values, layout) -> tuple[dict, dict]:
        """Host values (in :meth:`device_parts` order) -> (grad_norms, weight_stats)."""
        grads, present, weights = layout
        pos = 0
        grad_norms: dict[str, float] = {}
        weight_stats: dict[str, dict[str, float]] = {}
        if grads:
            n = len(present)
            g = values[pos:pos + n]
            pos += n
            layer_of = [self.layer_of[i] for i in present]
            per_layer = combine_layer_norms(g, layer_of, len(self.names))
            have = set(layer_of)
            grad_norms = {name: float(per_layer[i]) for i, name in enumerate(self.names)
                          if i in have}
        if weights:
            n = len(self.params)
            norms = values[pos:pos + n]
            sums = values[pos + n:pos + 2 * n]
            pos += 2 * n
            weight_stats = layer_weight_stats(norms, sums, self.counts, self.layer_of,
                                              self.names)
        return grad_norms, weight_stats

    def grad_norms(self) -> dict[str, float]:
        """Per-layer gradient norms now (one reduction, one transfer)."""
        parts, layout = self.device_parts(grads=True, weights=False)
        values = _to_host(parts)
        return self.decode(values, layout)[0]


def _linear_unit_mean(mod: torch.nn.Linear):
    def f():
        return mod.weight.detach().mean(dim=1)  # (out, in): mean over the input axis
    return f


def _pool_units(means: torch.Tensor, max_units: int) -> torch.Tensor:
    """Means of contiguous runs of units (:func:`auralize.step_records.pool_edges`), on the device."""
    n = int(means.numel())
    if n <= max_units:
        return means
    edges = torch.as_tensor(pool_edges(n, max_units), device=means.device)
    csum = torch.cat([means.new_zeros(1, dtype=torch.float64), means.double().cumsum(0)])
    return ((csum[edges[1:]] - csum[edges[:-1]]) / (edges[1:] - edges[:-1])).float()


def _is_gpt2_conv1d(mod) -> bool:
    """transformers' ``Conv1D`` (GPT-2's dense layers), found without importing transformers."""
    return type(mod).__name__ == "Conv1D" and hasattr(mod, "nf") and \
        getattr(mod, "weight", None) is not None and mod.weight.dim() == 2


def _conv1d_unit_mean(mod):
    def f():
        return mod.weight.detach().mean(dim=0)  # (in, out): mean over the input axis
    return f


def _to_host(parts: list[torch.Tensor]) -> list[float]:
    if not parts:
        return []
    dev = parts[0].device
    if any(p.device != dev for p in parts):
        parts = [p.to(dev) for p in parts]
    return torch.stack(parts).cpu().tolist()


class _Transfer:
    """One step's vector on its way to the host."""

    __slots__ = ("event", "finish", "host")

    def __init__(self, vec: torch.Tensor | None, finish):
        self.finish = finish
        if vec is None:
            self.host = None
            self.event = None
        elif vec.is_cuda:
            self.host = torch.empty(vec.shape, dtype=vec.dtype, pin_memory=True)
            self.host.copy_(vec, non_blocking=True)
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.host = vec.detach().cpu()
            self.event = None

    def ready(self) -> bool:
        return self.event is None or self.event.query()

    def complete(self):
        if self.event is not None:
            self.event.synchronize()
        self.finish(self.host.tolist() if self.host is not None else [])


class _StepRead:
    """One optimizer step's device reads, held until its record is made.

    ``segments``: ``(parts, layout)`` pairs from :meth:`LayerTelemetry.device_parts`
    (gradients and weights, read at different moments when clipping is seen);
    ``extra_keys``/``extra_vec``: the loss-scale scalars (:mod:`auralize.amp_steps`);
    ``clips``: ``(total_norm tensor, max_norm)`` of each clipping call.
    """

    __slots__ = ("clips", "extra_keys", "extra_vec", "forwards", "group", "optimizer",
                 "scaled_by", "segments", "t_s", "until_clip")

    def __init__(self, optimizer, forwards: int, until_clip: bool = False):
        self.optimizer = optimizer
        self.segments: list = []
        self.extra_keys: list[str] = []
        self.extra_vec = None
        self.clips: list = []
        self.t_s = time.perf_counter()
        self.forwards = forwards
        self.until_clip = until_clip   # read before clipping (Lightning): clipping adds its flag
        self.scaled_by = None          # read before the step: the scale its gradients carried
        self.group = None              # its losses, when taken before the record is made

    def set_extras(self, extras: dict) -> None:
        self.extra_keys, self.extra_vec = snapshot(extras)


class Watch:
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

    def _step_taken(self, read: _StepRead) -> None:
        pending = self._pending_grads
        if self.loss_after_step is None:
            if pending is None:
                if not self._micro:      # nothing logged before the first step: after it
                    self.loss_after_step = True
                else:                    # its losses; the next step says where the next goes
                    read.group = self._micro.take()
                self._pending_grads = read
                return
            # Second step.  Logging before the step, every step gets all its
            # micro-batches' losses before it; logging after it, the first step lacks
            # one (its last micro-batch's, logged right after it).
            after = len(self._micro) == len(pending.group) + 1
            self.loss_after_step = after
            if after:
                pending.group.append(self._micro.entries.pop(0))
            self._flush(pending, [])
            self._pending_grads = read
            if not after:
                self._flush()
            return
        if pending is not None:   # two optimizer steps without log_loss
            self._flush()
        self._pending_grads = read
        if self.loss_after_step is False:    # the step's losses came before it: complete
            self._flush()

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

    def log_loss(self, loss, **metrics) -> None:
        """Log this micro-batch's loss (a tensor or number) and other scalars.

        Call once per batch, before or after ``optimizer.step()``.  With gradient
        accumulation, call it every micro-batch: the losses (and metrics) logged
        for one optimizer step are averaged into that step's record.  Tensors are
        not read here: they travel to the host together with the step's gradient
        norms, in one transfer.
        """
        if not self.rank_zero or self.closed:
            return
        if self.optimizer is None and not self.loss_after_step:
            self._micro.add(loss, metrics)     # no optimizer steps to group by
            self._flush()
            return
        if self._pending_grads is not None and self.loss_after_step is not None:
            if self.loss_after_step:
                self._micro.add(loss, metrics)
                self._flush()
                return
            self._flush()
        self._micro.add(loss, metrics)
        if len(self._micro) >= MAX_MICRO_BATCHES:
            self._flush()

    def end_epoch(self, **metrics) -> None:
        """Mark the last logged step as its epoch's end.

        ``metrics`` (e.g. ``val_loss=0.31``) are added to that step's record; the
        per-unit weight means that the Sonifier's mappings asked for (WeightChord)
        are computed now.  The next step starts the next epoch.
        """
        if not self.rank_zero or self.closed:
            return
        self._flush()
        self._drain(block=True)
        # weights_every > 1: the next epoch's first step reads them.  Not read now for
        # this epoch's last record: its step has updated them (a record's weights are
        # those its step started from).
        self._weights_due = True
        units = self.telemetry.unit_means(self._unit_epoch) if self._unit_epoch else None
        self.buffer.end_epoch(metrics, units)

    def _flush(self, read=None, entries=None) -> None:
        """Send the held step and the losses logged for it as one step record."""
        if entries is None:
            read, entries = self._pending_grads, self._micro.take()
            self._pending_grads = None
        if read is not None and read.group is not None:
            entries = read.group + entries
        if read is None and not entries:
            return
        if read is None:
            read = _StepRead(None, self._forwards)
        opt = read.optimizer if read.optimizer is not None else (
            self.optimizer[0] if isinstance(self.optimizer, (list, tuple)) else self.optimizer)
        parts: list[torch.Tensor] = []
        for seg_parts, _ in read.segments:
            parts.extend(seg_parts)
        n_seg = [len(p) for p, _ in read.segments]
        parts.extend(total for total, _ in read.clips)
        pairs: list[tuple[str, object]] = []
        for value, metrics in entries:
            pairs.append(("__loss__", value))
            pairs.extend(metrics.items())
        if opt is not None and getattr(opt, "param_groups", None):
            pairs.append(("__lr__", opt.param_groups[0].get("lr")))   # may be a tensor
        tensor_keys: list[str] = []
        floats: list[tuple[str, float]] = []
        for key, value in pairs:
            if torch.is_tensor(value):
                parts.append(value.detach().reshape(-1)[0].float() if value.numel()
                             else torch.tensor(math.nan))
                tensor_keys.append(key)
            elif value is not None:
                try:
                    floats.append((key, float(value)))
                except (TypeError, ValueError):
                    continue
        # The first step also carries the per-epoch layers' unit means, so the
        # weight chord sounds from the initial weights on (as soNNify's did).
        unit_layers = self._unit_step or ([] if self._units_started else self._unit_epoch)
        self._units_started = True
        units_step = None
        if unit_layers:
            units_step = [self.telemetry.unit_mean_tensor(n) for n in unit_layers]
        rec = self.buffer.new()
        rec.wall_time_s = read.t_s - self.buffer.t0   # when the step was taken
        has_loss = bool(entries)
        n_parts = len(parts)
        extra_keys = read.extra_keys
        clip_max = [m for _, m in read.clips]

        def finish(values, rec=rec, read=read, n_seg=n_seg, tensor_keys=tensor_keys,
                   floats=floats, has_loss=has_loss, unit_layers=unit_layers):
            pos = 0
            for (_, layout), n in zip(read.segments, n_seg):
                g, w = self.telemetry.decode(values[pos:pos + n], layout)
                pos += n
                rec.grad_norms.update(g)
                rec.weight_stats.update(w)
            totals = values[pos:pos + len(clip_max)]
            pos += len(clip_max)
            scalars = floats + list(zip(tensor_keys, values[pos:pos + len(tensor_keys)]))
            pos = n_parts
            extras = dict(zip(extra_keys, values[pos:pos + len(extra_keys)]))
            pos += len(extra_keys)
            if units_step:
                for name, t in zip(unit_layers, units_step):
                    n = t.numel()
                    rec.unit_means[name] = [float(v) for v in values[pos:pos + n]]
                    pos += n
            if totals:   # several clipping calls (parameter groups): clipped if any was
                over = [i for i, (t, m) in enumerate(zip(totals, clip_max)) if m < t + 1e-6]
                i = over[0] if over else 0
                extras["clip_total"], extras["clip_max"] = totals[i], clip_max[i]
            rec.grad_norms, fields = decode_extras(extras, rec.grad_norms)
            for name, value in fields.items():
                setattr(rec, name, value)
            means = mean_by_key(scalars)
            rec.loss = means.pop("__loss__", None) if has_loss else None
            rec.lr = means.pop("__lr__", None)
            rec.metrics = means
            rec.micro_batches = len(entries)
            self.buffer.push(rec)

        vec = None
        pieces = []
        if parts:
            dev = parts[0].device
            pieces.append(torch.stack([p if p.device == dev else p.to(dev) for p in parts]))
        if read.extra_vec is not None:
            dev = pieces[0].device if pieces else read.extra_vec.device
            pieces.append(read.extra_vec.to(dev))
        if units_step:
            dev = pieces[0].device if pieces else units_step[0].device
            pieces.extend(u.to(dev) for u in units_step)
        if pieces:
            vec = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        self._inflight.append(_Transfer(vec, finish))
        self._drain(block=False)

    def _drain(self, block: bool) -> None:
        while self._inflight and (block or self._inflight[0].ready()):
            self._inflight.popleft().complete()

    # -- end ---------------------------------------------------------------------------
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


def per_parameter_norms_loop(model: torch.nn.Module) -> dict[str, float]:
    """Reference: per-layer gradient norms the slow way (``p.grad.norm().item()``).

    What Perone's code and Lightning's ``grad_norm`` do: one reduction and one
    host transfer per parameter.  Used by tests and the benchmark.
    """
    model = unwrap_model(model)
    out = {}
    for name, mod in model.named_modules():
        sq = 0.0
        have = False
        for p in mod.parameters(recurse=False):
            if p.requires_grad and p.grad is not None:
                sq += float(p.grad.norm().item()) ** 2
                have = True
        if have:
            out[name or type(mod).__name__] = float(np.sqrt(sq))
    return out

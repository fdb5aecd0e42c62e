"""Global per-layer gradient norms when the gradients are sharded across ranks.

Under FSDP2 (``fully_shard``, HSDP on a 2-D mesh), FSDP1
(``FullyShardedDataParallel``, ``use_orig_params`` True or False) and DeepSpeed
ZeRO 1-3 no rank holds a whole gradient: each holds a shard.  The norm of a
parameter's gradient is ``sqrt(sum over shards of ||shard||^2)``, so every rank
computes the squared L2 norms of its local pieces and **one** ``all_reduce(SUM)``
over the shard group per step (for all layers together: one float64 vector) gives
the global squared norms; the same vector carries the weight statistics (squared
norms and sums add up the same way), a "this parameter has a gradient" count and
a "something failed" flag.  Replicated copies (the replica dimension of an HSDP
mesh, a parameter FSDP does not shard) are counted once: only the copy at
coordinate 0 of the reduced dimensions contributes.

Every rank must take part in the collective (one rank alone would hang), so
:class:`auralize.torch.Watch` installs its step hook on every rank when
:func:`sharded_telemetry` finds sharded gradients; rank 0 alone sonifies.  The
weight-statistics schedule (``weights_every``) must agree across ranks too: the
group's rank 0 decides it and sends it in the same vector.

Where the numbers cannot be had (a layout this module does not know, a failure on
any rank), auralize warns once, naming the stack, and leaves gradients out of the
records; it never reports shard-local values and never stops training.

DDP needs none of this: its gradients are already all-reduced, every rank holds
the full gradient, and rank 0 reads them alone (``sharded_telemetry`` returns None).
"""

from __future__ import annotations

import math
import time
import warnings

import torch
import torch.distributed as dist

from auralize.deepspeed_zero import deepspeed_engine, install_step_hook, zero_layout
from auralize.shard_layouts import Piece, dtensor_layout, fsdp1_layout, fsdp1_units, is_dtensor

__all__ = ["ShardedNorms", "deepspeed_engine", "install_step_hook", "sharded_telemetry",
           "stack_name"]

WEIGHTS_BUDGET = 0.005   # as auralize.torch: weight statistics cost <= 0.5% of a step


class ShardedNorms:
    """Per-parameter global norms from local pieces and one all-reduce per step.

    Parameters
    ----------
    stack : str
        What the training runs on, for the one warning ("FSDP2", "DeepSpeed ZeRO-3"...).
    pieces : list of Piece
        In :class:`~auralize.torch_layers.LayerTelemetry` parameter order.
    groups : list of ProcessGroup or None
        The shard group(s) to sum over (one in every common layout; a parameter
        sharded over two mesh dimensions sums over both, one after the other).
    weights_every : int or "auto"
        As in :func:`auralize.torch.watch`; agreed across the group (see module doc).
    grad_scale : callable, optional
        Returns the factor the local gradients are multiplied by (a loss scale
        not yet divided out); the norms are divided by it.
    weights : bool
        Weight statistics at all (on the agreed schedule).
    """

    def __init__(self, stack, pieces, groups, weights_every="auto", grad_scale=None,
                 weights=True):
        self.stack = stack
        self.weights = bool(weights)
        self.pieces = list(pieces)
        self.groups = list(groups)
        self.weights_every = weights_every
        self.grad_scale = grad_scale
        self.broken: str | None = None
        self._interval = 1 if weights_every == "auto" else int(weights_every)
        self._n = 0
        self._last_t: float | None = None
        self.weights_cost_s = 0.0
        self.collective_s = 0.0     # wall time of the last all-reduce (benchmark)
        self._roll_call = _RollCall() if self.groups else None

    # -- what LayerTelemetry.device_parts returns ---------------------------------
    def device_parts(self, grads: bool, weights: bool):
        """0-d float32 tensors in LayerTelemetry's order, and the decode layout.

        Called on every rank with the same ``grads`` at each optimizer step.  The
        ``weights`` request is replaced by the schedule the group agreed on; a call
        without ``grads`` (an epoch-end top-up on rank 0 alone) makes no collective
        and returns nothing.
        """
        none = ([], (False, [], False))
        if not grads or self.broken is not None:
            return none
        if self._roll_call is not None:
            call, self._roll_call = self._roll_call, None
            missing = call.missing(self.groups)
            if missing:    # those ranks would never join: the all-reduce would hang
                self._give_up(f"watch() was not called on rank(s) {missing}; call it on "
                              "every rank")
                return none
        now = time.perf_counter()
        step_s = None if self._last_t is None else now - self._last_t
        self._last_t = now
        n = len(self.pieces)
        do_w = self.weights and self._n % self._interval == 0
        self._n += 1
        failed = 0.0
        try:
            vec, dev = self._local_vector(do_w)
        except Exception as err:  # noqa: BLE001 - a failure here must not hang the others
            failed, vec, dev = 1.0, None, torch.device("cpu")
            self._reason = f"{type(err).__name__}: {err}"
        if vec is None:
            vec = torch.zeros(2 * n + (2 * n if do_w else 0) + 2, dtype=torch.float64,
                              device=dev)
        vec[-1] = failed
        if self._leader():
            vec[-2] = float(self._next_interval(do_w, step_s))
        t0 = time.perf_counter()
        try:
            for group in self.groups:
                dist.all_reduce(vec, op=dist.ReduceOp.SUM, group=group)
        except Exception as err:  # noqa: BLE001
            self._give_up(f"the all-reduce failed ({type(err).__name__}: {err})")
            return none
        # the host needs which parameters have gradients, the failure flag and the
        # interval now: one small read (on a GPU it waits for the all-reduce)
        host = vec[n:2 * n].tolist() + vec[-2:].tolist()
        self.collective_s = time.perf_counter() - t0
        if host[-1] > 0:
            self._give_up(getattr(self, "_reason", "reading a rank's gradient shard failed"))
            return none
        if self.weights_every == "auto":
            self._interval = max(1, int(round(host[-2])))
        present = [i for i in range(n) if host[i] > 0]
        g = vec[:n].clamp_min(0).sqrt()
        if self.grad_scale is not None:
            g = g / float(self.grad_scale())
        parts = list(g[present].float().unbind()) if present else []
        if do_w:
            w_sq, w_sum = vec[2 * n:3 * n], vec[3 * n:4 * n]
            parts.extend(w_sq.clamp_min(0).sqrt().float().unbind())
            parts.extend(w_sum.float().unbind())
        return parts, (True, present, do_w)

    # -- parts --------------------------------------------------------------------
    def _local_vector(self, do_w: bool):
        n = len(self.pieces)
        gl, gi = [], []
        for i, piece in enumerate(self.pieces):
            g = piece.grad()
            if g is not None:
                gl.append(g.detach().reshape(-1))
                gi.append(i)
        wl, wi = [], []
        if do_w:
            t0 = time.perf_counter()
            for i, piece in enumerate(self.pieces):
                w = piece.weight()
                if w is not None:
                    wl.append(w.detach().reshape(-1))
                    wi.append(i)
        dev = (gl or wl or [torch.zeros(())])[0].device
        if dev.type == "cpu" and any(dist.get_backend(g) == "nccl" for g in self.groups):
            dev = torch.device("cuda", torch.cuda.current_device())  # NCCL reduces on GPU
        vec = torch.zeros(2 * n + (2 * n if do_w else 0) + 2, dtype=torch.float64, device=dev)
        if gl:
            idx = torch.tensor(gi, device=dev)
            sq = torch.stack([t.to(dev) for t in torch._foreach_norm(gl, 2,
                                                                    dtype=torch.float32)])
            vec[idx] = sq.double().square()
            vec[n + idx] = 1.0
        if wl:
            idx = torch.tensor(wi, device=dev)
            sq = torch.stack([t.to(dev) for t in torch._foreach_norm(wl, 2,
                                                                    dtype=torch.float32)])
            vec[2 * n + idx] = sq.double().square()
            vec[3 * n + idx] = torch.stack([w.sum(dtype=torch.float64).to(dev) for w in wl])
            self.weights_cost_s = time.perf_counter() - t0 if dev.type == "cpu" else 0.0
        return vec, dev

    def _leader(self) -> bool:
        """The group's rank 0: it alone writes the weights interval."""
        return all(dist.get_rank(group) == 0 for group in self.groups)

    def _next_interval(self, did_w: bool, step_s) -> int:
        if self.weights_every != "auto":
            return 0
        if did_w and step_s:
            return max(1, min(1000, math.ceil(self.weights_cost_s / (WEIGHTS_BUDGET * step_s))))
        return self._interval

    def _give_up(self, reason: str) -> None:
        self.broken = reason
        warnings.warn(f"auralize: gradient norms under {self.stack} are not available "
                      f"({reason}); the records leave gradients out, training goes on",
                      RuntimeWarning, stacklevel=4)


class _RollCall:
    """Which ranks made a ShardedNorms: each says so in the process group's store.

    Checked at the first step, without waiting: every rank registers when it
    makes its ``watch()``, before its first forward pass, and a sharded forward
    or backward pass needs every rank, so by any rank's first optimizer step
    all those that will ever register have; all ranks see the same answer.  A
    rank that never called ``watch()`` (``if rank == 0: watch(...)``) would
    leave the others waiting in the all-reduce for ever: they give up instead.
    """

    _made = 0

    def __init__(self):
        _RollCall._made += 1
        self.key = f"auralize/sharded-norms/{_RollCall._made}"
        try:
            from torch.distributed.distributed_c10d import _get_default_store
            self.store = _get_default_store()
            self.store.set(f"{self.key}/{dist.get_rank()}", "1")
        except Exception:  # noqa: BLE001 - no store to ask: no check
            self.store = None

    def missing(self, groups) -> list[int]:
        if self.store is None:
            return []
        ranks = sorted({r for g in groups for r in dist.get_process_group_ranks(
            g if g is not None else dist.group.WORLD)})
        try:
            return [r for r in ranks if not self.store.check([f"{self.key}/{r}"])]
        except Exception:  # noqa: BLE001
            return []


# -- which stack ---------------------------------------------------------------------
def stack_name(model) -> str | None:
    """The sharded stack ``model`` trains on ("FSDP2", "HSDP", "FSDP1", "DeepSpeed
    ZeRO-n"), or None for a model whose ranks each hold whole gradients (one
    process, DDP)."""
    engine = deepspeed_engine(model)
    if engine is not None:
        stage = int(engine.zero_optimization_stage())
        return f"DeepSpeed ZeRO-{stage}" if stage > 0 else None
    if fsdp1_units(model):
        return "FSDP1"
    meshes = [p.device_mesh.ndim for p in model.parameters() if is_dtensor(p)]
    if meshes:
        return "HSDP" if min(meshes) > 1 else "FSDP2"
    return None


class _GroupedTelemetry:
    """``LayerTelemetry`` with the user's ``groups=`` bound (the layouts build it two ways)."""

    def __init__(self, groups) -> None:
        from auralize.torch_layers import LayerTelemetry

        self._cls = LayerTelemetry
        self.groups = groups

    def from_module(self, model):
        return self._cls.from_module(model, groups=self.groups)

    def __call__(self, names, params, linear=None):
        return self._cls(names, params, linear, groups=self.groups)


def sharded_telemetry(model, weights_every="auto", weights=True, groups=None):
    """A LayerTelemetry whose norms come from :class:`ShardedNorms`, or None.

    None when the gradients are not sharded (one process, DDP, DeepSpeed without
    ZeRO): the ordinary per-rank reduction is then exact.  A LayerTelemetry with
    ``sharded`` set otherwise; when the layout is one this module cannot read, the
    same with a ``ShardedNorms`` already given up (one warning, no gradients).
    """
    stack = stack_name(model)
    if stack is None:
        return None
    LayerTelemetry = _GroupedTelemetry(groups)
    engine = deepspeed_engine(model)
    try:
        if engine is not None:
            tel, readers, groups, scale = zero_layout(engine, LayerTelemetry)
            pieces = [Piece(*r) for r in readers]
        elif stack == "FSDP1":
            tel, pieces, groups, scale = fsdp1_layout(model, LayerTelemetry)
        else:
            tel, pieces, groups, scale = dtensor_layout(model, LayerTelemetry)
    except Exception as err:  # noqa: BLE001 - an unknown layout: say so, train on
        from auralize.torch_layers import unwrap_model
        tel = LayerTelemetry([type(unwrap_model(model)).__name__], [[]])
        norms = ShardedNorms(stack, [], [], weights_every)
        norms._give_up(f"cannot read its gradient layout: {type(err).__name__}: {err}")
        tel.sharded = norms
        tel.linear = {}
        return tel
    tel.linear = {}   # per-unit weight means would need whole weights: left out
    tel.sharded = ShardedNorms(stack, pieces, groups, weights_every, scale, weights)
    return tel

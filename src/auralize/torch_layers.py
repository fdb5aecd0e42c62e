"""A torch model's layers and their per-step numbers in one fused reduction.

Used by :mod:`auralize.torch` (``watch``), :mod:`auralize.sharded_norms` and the
Keras torch-backend callbacks: :class:`LayerTelemetry` finds the layers (modules
owning trainable parameters), groups them into voices, and reduces all gradient
and weight norms in one ``torch._foreach_norm`` call each; plus the wrappers it
looks through (DDP, ``torch.compile``, Accelerate's optimizer).
"""

from __future__ import annotations

import os
import time

import torch
import torch.distributed as dist

from auralize.errors import AuralizeError
from auralize.layer_groups import group_layers
from auralize.step_records import (
    UNIT_POOL_MAX,
    combine_layer_norms,
    layer_weight_stats,
    pick_chord_layer,
    pool_edges,
    resolve_layer,
)

VOCAB_UNITS = 30000      # a dense layer this wide is a vocabulary head (GPT-2 50257, BERT 30522)

__all__ = ["LayerTelemetry", "hookable_optimizer", "is_rank_zero", "unwrap_model"]


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

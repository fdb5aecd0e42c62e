"""FSDP2 / HSDP and FSDP1: where each rank's piece of a gradient (and weight) lives.

Used by :mod:`auralize.sharded_norms`, as :mod:`auralize.deepspeed_zero` is for
ZeRO.  Each layout gives the layers (a ``LayerTelemetry``), one :class:`Piece`
per original parameter (readers of this rank's local piece, or None where this
rank holds nothing of it or is not the copy that counts), and the process
group(s) the pieces are summed over.
"""

from __future__ import annotations

import sys

import torch.distributed as dist

__all__ = ["Piece", "dtensor_layout", "fsdp1_layout", "fsdp1_units", "is_dtensor"]

_WRAPPER_PREFIXES = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.",
                     "_orig_mod.")


class Piece:
    """One original parameter: how to read this rank's piece of its gradient and weight.

    ``grad()`` / ``weight()`` return a tensor (any shape: only its L2 norm and sum
    are used) or None when this rank holds nothing of it or is not the copy that
    counts.  ``numel()`` is the whole parameter's element count (weight means).
    """

    __slots__ = ("_n", "grad", "weight")

    def __init__(self, numel: int, grad, weight):
        self._n = int(numel)
        self.grad = grad
        self.weight = weight

    def numel(self) -> int:
        return self._n


def fsdp1_units(model):
    if "torch.distributed.fsdp" not in sys.modules:
        return []
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    return [(n, m) for n, m in model.named_modules() if isinstance(m, FSDP)]


def is_dtensor(t) -> bool:
    dt = sys.modules.get("torch.distributed.tensor")
    return dt is not None and isinstance(t, dt.DTensor)


# -- FSDP2 / HSDP: DTensor parameters ---------------------------------------------------
def dtensor_layout(model, LayerTelemetry):
    tel = LayerTelemetry.from_module(model)
    mesh = next(p.device_mesh for p in tel.params if is_dtensor(p))
    key = _mesh_key(mesh)
    shard_dims: set[int] = set()
    for p in tel.params:
        if is_dtensor(p):
            if _mesh_key(p.device_mesh) != key:
                raise ValueError("parameters live on different device meshes")
            shard_dims.update(d for d, pl in enumerate(p.placements) if pl.is_shard())
    dims = sorted(shard_dims)
    groups = [mesh.get_group(d) for d in dims]
    coord = mesh.get_coordinate() or [0] * mesh.ndim
    pieces = []
    for p in tel.params:
        sharded = {d for d, pl in enumerate(p.placements) if pl.is_shard()} if is_dtensor(
            p) else set()
        counts = all(coord[d] == 0 for d in dims if d not in sharded)
        pieces.append(Piece(p.numel(), _dtensor_grad(p, counts), _dtensor_weight(p, counts)))
    return tel, pieces, groups, None


def _mesh_key(mesh):
    return (mesh.device_type, tuple(mesh.mesh.shape), tuple(mesh.mesh.flatten().tolist()))


def _local(t):
    return t.to_local() if is_dtensor(t) else t


def _dtensor_grad(p, counts: bool):
    def grad():
        g = p.grad
        if g is None or not counts:
            return None
        if is_dtensor(g) and any(pl.is_partial() for pl in g.placements):
            raise ValueError("a gradient is still a partial sum (not reduced yet)")
        return _local(g)
    return grad


def _dtensor_weight(p, counts: bool):
    return lambda: _local(p.detach()) if counts else None


# -- FSDP1: FlatParameters -----------------------------------------------------------
def _clean(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def fsdp1_layout(model, LayerTelemetry):
    from auralize.torch_layers import unwrap_model

    root = unwrap_model(model)
    order: dict[str, int] = {}
    for name, _ in root.named_modules():
        order.setdefault(_clean(name), len(order))
    layers: dict[str, list] = {}
    groups = []
    for unit_name, unit in fsdp1_units(root):
        handle = unit._handle
        if handle is None:
            continue
        fp = handle.flat_param
        group = unit.process_group
        if not any(g is group for g in groups):
            groups.append(group)
        if len(groups) > 1:
            raise ValueError("FSDP units shard over different process groups")
        sharded = bool(handle.uses_sharded_strategy)
        counts = sharded or dist.get_rank(group) == 0
        prefix = _clean(unit_name)
        origs = getattr(fp, "_params", None) if handle._use_orig_params else None
        for i, fqn in enumerate(fp._fqns):
            full = f"{prefix}.{fqn}" if prefix else fqn
            mod = full.rsplit(".", 1)[0] if "." in full else ""
            if origs is not None:
                piece = Piece(fp._numels[i], _orig_grad(origs[i], counts),
                               _orig_weight(origs[i], counts))
            else:
                piece = Piece(fp._numels[i], _flat_grad(fp, i, counts),
                               _flat_weight(fp, i, counts))
            layers.setdefault(mod, []).append(piece)
    if not layers:
        raise ValueError("no FSDP unit holds parameters")
    names = sorted(layers, key=lambda m: order.get(m, len(order)))
    labels = [m or type(root.module if hasattr(root, "_handle") else root).__name__
              for m in names]
    tel = LayerTelemetry(labels, [layers[m] for m in names])
    return tel, tel.params, groups, None


def _segment(flat, fp, i):
    info = fp._shard_param_infos[i]
    if flat is None or not info.in_shard:
        return None
    return flat.reshape(-1).narrow(0, info.offset_in_shard, info.numel_in_shard)


def _flat_grad(fp, i, counts):
    return lambda: _segment(fp.grad, fp, i) if counts else None


def _flat_weight(fp, i, counts):
    return lambda: _segment(fp.detach(), fp, i) if counts else None


def _orig_grad(p, counts):
    return lambda: p.grad if counts else None


def _orig_weight(p, counts):
    return lambda: p.detach() if counts else None

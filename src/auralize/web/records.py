"""What the page is told about a run: compact step records and captions (JSON-safe).

A record's gradient norms reach the page as at most :data:`MAX_GRAD_SERIES`
series: a run that logs more layers (``groups="layers"`` on a deep model, or a
log written by another tool) is charted as groups of neighbouring layers
(:func:`auralize.layer_groups.group_layers`, as ``watch()`` groups its voices),
each the true norm of its layers together (the square root of the sum of their
squared norms) and labelled with its layer count.  So what the server keeps
per chart point, and sends, does not grow with the model.
"""

from __future__ import annotations

import math

import numpy as np

from auralize.layer_groups import MAX_GROUPS, group_layers

#: gradient series a chart point carries at most (more layers: grouped)
MAX_GRAD_SERIES = MAX_GROUPS
#: groupings kept (one per distinct tuple of layer names; a run has one or two)
_MAX_PLANS = 8
_plans: dict[tuple, _GroupPlan] = {}


def finite_or_none(value) -> float | None:
    """``value`` as a float, or None when it is not a finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


class _GroupPlan:
    """How one tuple of layer names is charted: group labels and each group's members."""

    __slots__ = ("labels", "order", "starts")

    def __init__(self, names: tuple) -> None:
        members: dict[str, list[int]] = {}
        for i, group in enumerate(group_layers([str(n) for n in names],
                                               max_groups=MAX_GRAD_SERIES)):
            members.setdefault(group, []).append(i)
        self.labels = [g if len(m) == 1 else f"{g} ({len(m)} layers)"
                       for g, m in members.items()]
        self.order = np.array([i for m in members.values() for i in m], dtype=np.intp)
        sizes = [len(m) for m in members.values()]
        self.starts = np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(np.intp)

    def norms(self, values) -> list[float | None]:
        """Each group's norm (None where a member is missing or not finite)."""
        try:
            v = np.fromiter(values, dtype=np.float64, count=len(self.order))
        except (TypeError, ValueError):  # None or a "nan" string among them: the slow path
            v = np.array([_float_or_nan(x) for x in values], dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            sums = np.add.reduceat(np.square(v[self.order]), self.starts)
        return [finite_or_none(s) for s in np.sqrt(sums).tolist()]


def _float_or_nan(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def grad_series(grad_norms: dict) -> tuple[dict, int | None]:
    """``(series name -> norm or None, layers grouped or None)`` of a record's gradient norms.

    Up to :data:`MAX_GRAD_SERIES` layers: each its own series, unchanged.  More:
    groups of layers (module docstring); the second value is then the number of
    layers the groups hold.
    """
    if len(grad_norms) <= MAX_GRAD_SERIES:
        return {str(name): finite_or_none(v) for name, v in grad_norms.items()}, None
    key = tuple(grad_norms)
    plan = _plans.get(key)
    if plan is None:
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        plan = _plans[key] = _GroupPlan(key)
    return dict(zip(plan.labels, plan.norms(grad_norms.values()))), len(key)


def compact_record(record, t_s: float) -> dict:
    """What the page needs of a TrainingStep (or its dict): JSON-safe, no NaN.

    ``grad_norms`` holds at most :data:`MAX_GRAD_SERIES` series; where layers
    were grouped, ``grad_layers`` says how many layers they hold.
    """
    get = record.get if isinstance(record, dict) else (lambda k, d=None: getattr(record, k, d))
    loss_raw = get("loss")
    loss = finite_or_none(loss_raw)
    grads, grouped = grad_series(get("grad_norms") or {})
    metrics = {}
    for name, v in (get("metrics") or {}).items():
        f = finite_or_none(v)
        if f is not None:
            metrics[str(name)] = f
    doc = {"step": int(get("step") or 0), "epoch": int(get("epoch") or 0),
           "t_s": round(float(t_s), 6), "loss": loss, "grad_norms": grads,
           "metrics": metrics, "lr": finite_or_none(get("lr")), "epoch_end": bool(get("epoch_end"))}
    if grouped is not None:
        doc["grad_layers"] = grouped
    if loss_raw is not None and loss is None:
        doc["nonfinite"] = True
    return doc


def captions(events) -> list[dict]:
    """``{"t_s", "text"}`` of events that speak or sound an announcement (speech, earcons)."""
    return [{"t_s": e.time_s, "text": str(e.value["text"])} for e in events
            if e.param == "play" and isinstance(e.value, dict) and e.value.get("text")]

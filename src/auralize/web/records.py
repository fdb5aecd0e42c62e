"""What the page is told about a run: compact step records and captions (JSON-safe)."""

from __future__ import annotations

import math


def finite_or_none(value) -> float | None:
    """``value`` as a float, or None when it is not a finite number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def compact_record(record, t_s: float) -> dict:
    """What the page needs of a TrainingStep (or its dict): JSON-safe, no NaN."""
    get = record.get if isinstance(record, dict) else (lambda k, d=None: getattr(record, k, d))
    loss_raw = get("loss")
    loss = finite_or_none(loss_raw)
    grads = {}
    for name, v in (get("grad_norms") or {}).items():
        grads[str(name)] = finite_or_none(v)
    metrics = {}
    for name, v in (get("metrics") or {}).items():
        f = finite_or_none(v)
        if f is not None:
            metrics[str(name)] = f
    doc = {"step": int(get("step") or 0), "epoch": int(get("epoch") or 0),
           "t_s": round(float(t_s), 6), "loss": loss, "grad_norms": grads,
           "metrics": metrics, "lr": finite_or_none(get("lr")), "epoch_end": bool(get("epoch_end"))}
    if loss_raw is not None and loss is None:
        doc["nonfinite"] = True
    return doc


def captions(events) -> list[dict]:
    """``{"t_s", "text"}`` of events that speak or sound an announcement (speech, earcons)."""
    return [{"t_s": e.time_s, "text": str(e.value["text"])} for e in events
            if e.param == "play" and isinstance(e.value, dict) and e.value.get("text")]

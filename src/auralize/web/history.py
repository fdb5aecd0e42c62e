"""The page's chart history for a run of any length: a fixed number of points, spikes kept.

Steps are grouped into buckets of equal width; a bucket keeps the step with the
lowest and the one with the highest loss (their gradient norms replaced by each
series' minimum and maximum over the bucket: a layer's, or a group's where
``web.records`` grouped many layers), its first non-finite step, its
metrics (the last value of each: an epoch's ``val_loss`` is still charted) and
whether an epoch ended in it.  When the buckets fill up, neighbours merge and
the width doubles, so a history holds at most ``max_points`` records whether
the run has a thousand steps or a million: what the server keeps and what a
page gets when it connects.  A run shorter than that is kept whole.
"""

from __future__ import annotations

import copy

#: records a history holds at most (the charts are about 1000 pixels wide)
MAX_POINTS = 4000


def _lower(a, b) -> bool:
    """Whether loss ``a`` is below ``b`` (None: no loss, never the extreme)."""
    return a is not None and (b is None or a < b)


class _Bucket:
    __slots__ = ("low", "high", "bad", "metrics", "epoch_end", "count", "last_step")

    def __init__(self, doc: dict) -> None:
        self.low = doc
        self.high = doc
        self.bad = doc if doc.get("nonfinite") else None
        self.metrics = dict(doc.get("metrics") or {})
        self.epoch_end = bool(doc.get("epoch_end"))
        self.count = 1
        self.last_step = doc.get("step")

    def merge(self, other: _Bucket) -> _Bucket:
        out = copy.copy(self)
        low_src = other.low if _lower(other.low.get("loss"), self.low.get("loss")) else self.low
        high_src = other.high if _lower(self.high.get("loss"), other.high.get("loss")) else self.high
        out.low = dict(low_src, grad_norms=_combine(self.low, other.low, min))
        out.high = dict(high_src, grad_norms=_combine(self.high, other.high, max))
        out.bad = self.bad or other.bad
        out.metrics = dict(self.metrics, **other.metrics)
        out.epoch_end = self.epoch_end or other.epoch_end
        out.count = self.count + other.count
        out.last_step = other.last_step
        return out

    def docs(self) -> list[dict]:
        if self.count == 1:
            return [self.low]
        picked = {id(d): d for d in (self.low, self.high, self.bad) if d is not None}
        docs = sorted(picked.values(), key=lambda d: (d.get("t_s") or 0.0, d.get("step") or 0))
        docs[-1] = dict(docs[-1], metrics=self.metrics, epoch_end=self.epoch_end)
        return docs


def _combine(a: dict, b: dict, pick) -> dict:
    ga, gb = a.get("grad_norms") or {}, b.get("grad_norms") or {}
    out = dict(ga)
    for name, value in gb.items():
        mine = out.get(name)
        out[name] = value if mine is None else (mine if value is None else pick(mine, value))
    return out


class ChartHistory:
    """Compact step records (``web.records.compact_record``), decimated to at most ``max_points``.

    Used where a deque of records was: ``append``, ``extend``, iteration, ``len``.
    """

    def __init__(self, max_points: int = MAX_POINTS) -> None:
        self.max_buckets = max(1, int(max_points) // 6)  # up to 2x that many, 3 records each
        self.width = 1
        self.buckets: list[_Bucket] = []
        self._open: _Bucket | None = None
        self.steps = 0

    def append(self, doc: dict) -> None:
        bucket = _Bucket(doc)
        self.steps += 1
        self._open = bucket if self._open is None else self._open.merge(bucket)
        if self._open.count < self.width:
            return
        self.buckets.append(self._open)
        self._open = None
        if len(self.buckets) >= 2 * self.max_buckets:
            self.buckets = [a.merge(b) for a, b in zip(self.buckets[::2], self.buckets[1::2])]
            self.width *= 2

    def extend(self, docs) -> None:
        for doc in docs:
            self.append(doc)

    def __iter__(self):
        for bucket in self.buckets:
            yield from bucket.docs()
        if self._open is not None:
            yield from self._open.docs()

    def __len__(self) -> int:
        return sum(1 for _ in self)


__all__ = ["MAX_POINTS", "ChartHistory"]

"""Per-step training records, built on the host: what the adapters share.

The adapters (:mod:`auralize.torch`, :mod:`auralize.keras`,
:mod:`auralize.lightning`) all do the same three things each step: gather
per-parameter numbers on the device in one fused reduction, bring them to the
host in one transfer, and turn them into one :class:`~auralize.sonify.TrainingStep`.
This module holds the host-side half, framework-free: combining per-parameter
norms into per-layer norms and weight statistics (in float64, so a diverging
run's huge norms do not overflow), resolving ``which_layer`` arguments, and the
:class:`StepBuffer` that holds a step's record back until it is known whether
the step closed an epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

from auralize.errors import AuralizeError
from auralize.sonify.telemetry import TrainingStep

__all__ = [
    "UNIT_POOL_MAX",
    "StepBuffer",
    "combine_layer_norms",
    "layer_weight_stats",
    "pick_chord_layer",
    "pool_edges",
    "pool_means",
    "resolve_layer",
    "to_float",
    "unit_request",
    "wants_weight_stats",
]

#: Per-unit weight means of a dense layer wider than this are pooled (contiguous
#: runs of units averaged) to this many values: the chord's partials and the
#: record's size stay small for a 50k-unit layer.
UNIT_POOL_MAX = 48


def pool_edges(n_units: int, max_units: int) -> np.ndarray:
    """Boundaries of ``min(n_units, max_units)`` contiguous, nearly equal runs of units.

    Examples
    --------
    >>> pool_edges(10, 4).tolist()
    [0, 2, 5, 7, 10]
    """
    m = max(1, min(int(n_units), int(max_units)))
    return (np.arange(m + 1, dtype=np.int64) * int(n_units)) // m


def pool_means(values, max_units: int = UNIT_POOL_MAX) -> list[float]:
    """Per-unit means pooled to at most ``max_units`` values (host, float64)."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size <= max_units:
        return [float(x) for x in v]
    edges = pool_edges(v.size, max_units)
    csum = np.concatenate([[0.0], np.cumsum(v)])
    return [float(x) for x in (csum[edges[1:]] - csum[edges[:-1]]) / np.diff(edges)]


def pick_chord_layer(dense_names: Sequence[str], vocab_heads=()) -> str:
    """The weight chord's default layer: the last dense layer that is not a vocabulary head.

    A vocabulary head (an LM head: tied to an embedding, as wide as the
    vocabulary) has tens of thousands of units that say little one by one; the
    last hidden dense layer before it is what the chord plays.  With only heads,
    the last one.

    Raises
    ------
    AuralizeError
        The model has no dense layer.
    """
    names = list(dense_names)
    if not names:
        raise AuralizeError("the model has no Dense/Linear layer for the weight chord; "
                            "leave out the 'weights' mapping")
    hidden = [n for n in names if n not in set(vocab_heads)]
    return (hidden or names)[-1]


def unit_request(req) -> tuple:
    """``(which_layer, when, max_units)`` of a unit-means request.

    Requests are ``which`` alone, ``(which, when)`` or ``(which, when,
    max_units)``; ``when`` is ``"epoch"`` (default) or ``"step"``.
    """
    if not isinstance(req, (tuple, list)):
        return req, "epoch", UNIT_POOL_MAX
    which = req[0]
    when = req[1] if len(req) > 1 else "epoch"
    most = int(req[2]) if len(req) > 2 and req[2] else UNIT_POOL_MAX
    return which, when, most


def wants_weight_stats(sonifier) -> bool:
    """Whether ``sonifier``'s mappings use per-layer weight statistics.

    A :class:`~auralize.sonify.session.Sonifier` says so through its mappings'
    ``needs_weight_stats``; any other receiver of records (a stand-in, a
    user's logger) gets them.
    """
    timeline = getattr(sonifier, "timeline", None)
    mappings = getattr(getattr(timeline, "mappings", None), "mappings", None)
    if mappings is None:
        return True
    return any(getattr(m, "needs_weight_stats", False) for m in mappings)


def combine_layer_norms(param_norms: Sequence[float], layer_of: Sequence[int],
                        n_layers: int) -> np.ndarray:
    """Per-layer L2 norms from per-parameter L2 norms.

    ``||layer|| = sqrt(sum_p ||p||^2)`` over the layer's parameters, computed in
    float64 so that norms near the float32 limit (a diverging run) stay finite.

    Parameters
    ----------
    param_norms : sequence of float
        L2 norm of each parameter tensor.
    layer_of : sequence of int
        Layer index of each parameter (same length as ``param_norms``).
    n_layers : int
        Number of layers; layers without any parameter get 0.

    Returns
    -------
    numpy.ndarray, float64, shape (n_layers,)
    """
    norms = np.asarray(param_norms, dtype=np.float64)
    out = np.zeros(n_layers, dtype=np.float64)
    if norms.size:
        np.add.at(out, np.asarray(layer_of, dtype=np.intp), norms * norms)
    with np.errstate(invalid="ignore"):
        return np.sqrt(out)


def layer_weight_stats(param_norms: Sequence[float], param_sums: Sequence[float],
                       param_counts: Sequence[int], layer_of: Sequence[int],
                       names: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per-layer weight mean, standard deviation and L2 norm.

    Built from per-parameter norms and sums (what one fused device reduction
    gives): ``mean = sum / n``, ``std = sqrt(max(norm^2 / n - mean^2, 0))``,
    in float64.
    """
    n_layers = len(names)
    norms = np.asarray(param_norms, dtype=np.float64)
    sums = np.asarray(param_sums, dtype=np.float64)
    counts = np.asarray(param_counts, dtype=np.float64)
    idx = np.asarray(layer_of, dtype=np.intp)
    sq = np.zeros(n_layers)
    tot = np.zeros(n_layers)
    cnt = np.zeros(n_layers)
    if idx.size:
        np.add.at(sq, idx, norms * norms)
        np.add.at(tot, idx, sums)
        np.add.at(cnt, idx, counts)
    out: dict[str, dict[str, float]] = {}
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.where(cnt > 0, tot / np.maximum(cnt, 1), 0.0)
        var = np.where(cnt > 0, sq / np.maximum(cnt, 1) - mean * mean, 0.0)
        std = np.sqrt(np.where(var > 0, var, np.where(np.isfinite(var), 0.0, var)))
        norm = np.sqrt(sq)
    for i, name in enumerate(names):
        out[name] = {"mean": float(mean[i]), "std": float(std[i]), "norm": float(norm[i])}
    return out


def resolve_layer(which, names: Sequence[str], what: str = "layer") -> int:
    """Index into ``names`` for a ``which_layer`` argument (int index or name).

    Raises
    ------
    AuralizeError
        One line naming the bad value and listing the real names.
    """
    names = list(names)
    listing = ", ".join(names) if names else "(none)"
    if isinstance(which, bool):
        which = int(which)
    if isinstance(which, (int, np.integer)):
        i = int(which)
        if -len(names) <= i < len(names):
            return i % len(names)
        raise AuralizeError(
            f"{what} index {i} does not exist: the model has {len(names)} "
            f"({listing})")
    if isinstance(which, str):
        if which in names:
            return names.index(which)
        raise AuralizeError(f"no {what} named {which!r}; the model has: {listing}")
    raise AuralizeError(f"{what} must be an index or a name, not {type(which).__name__}; "
                        f"the model has: {listing}")


class StepBuffer:
    """Holds each step's record until the next one arrives, then logs it.

    A step's record is only complete when it is known whether the step closed
    an epoch (and then the epoch's metrics, such as ``val_loss``, and the
    per-unit weight means belong to it).  So the buffer logs record *k* when
    record *k+1* arrives, or when :meth:`end_epoch` marks it as the epoch's last,
    or at :meth:`close`.  The sound is therefore one step behind training.

    Parameters
    ----------
    sonifier : object with ``log(TrainingStep)``, or None
        None: records are built and dropped (used on non-zero DDP ranks).
    """

    def __init__(self, sonifier):
        self.sonifier = sonifier
        self.held: TrainingStep | None = None
        self.step = 0
        self.epoch = 0
        self.t0 = time.perf_counter()
        self.logged = 0

    def new(self, **fields) -> TrainingStep:
        """A record for the next step (step and epoch counters filled in)."""
        rec = TrainingStep(step=self.step, epoch=self.epoch,
                           wall_time_s=time.perf_counter() - self.t0, **fields)
        self.step += 1
        return rec

    def push(self, rec: TrainingStep) -> None:
        """Queue ``rec``; the previously held record is logged now."""
        if self.held is not None:
            self._log(self.held)
        self.held = rec

    def end_epoch(self, metrics: dict | None = None,
                  unit_means: dict | None = None) -> None:
        """Mark the held record as its epoch's last, add epoch data, log it."""
        if self.held is not None:
            rec = self.held
            self.held = None
            rec.epoch_end = True
            if metrics:
                rec.metrics.update(_floats(metrics))
            if unit_means:
                rec.unit_means.update(unit_means)
            self._log(rec)
        self.epoch += 1

    def close(self) -> None:
        """Log the held record, if any."""
        if self.held is not None:
            rec, self.held = self.held, None
            self._log(rec)

    def _log(self, rec: TrainingStep) -> None:
        if self.sonifier is not None:
            self.sonifier.log(rec)
        self.logged += 1


def _floats(metrics: dict) -> dict[str, float]:
    out = {}
    for k, v in metrics.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def to_float(value) -> float:
    """A Python float from a number, numpy scalar or 0-d tensor (NaN if not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan

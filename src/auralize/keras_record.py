"""Each Keras training batch's exact loss, and one step record per batch for a Sonifier.

Imported by :mod:`auralize.keras` once Keras is.  :class:`_LossCapture` keeps each
batch's own loss (Keras logs a running mean); :class:`_Recorder` (one per
Sonifier) turns the batches of the callbacks sharing it into one
:class:`~auralize.sonify.TrainingStep` each.
"""

from __future__ import annotations

import weakref
from functools import wraps
from typing import ClassVar

import keras

from auralize.keras_layers import _ModelTelemetry, variable_value
from auralize.sonify.mappings import make_mapping
from auralize.step_records import StepBuffer, to_float, unit_request, wants_weight_stats


class _LossCapture:
    """Wraps ``model.compute_loss`` to keep each training batch's own loss.

    One per model (callbacks share it); removed when the last user detaches.
    """

    _by_model: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()

    def __init__(self, model):
        self.model = model
        self.users = 0
        self.latest = None
        self.original = None

    @classmethod
    def attach(cls, model) -> _LossCapture:
        cap = cls._by_model.get(model)
        if cap is None:
            cap = cls(model)
            cls._by_model[model] = cap
        if cap.users == 0 and keras.backend.backend() == "torch":
            cap._install()
        cap.users += 1
        return cap

    def detach(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0 and self.original is not None:
            try:
                del self.model.compute_loss
            except AttributeError:
                pass
            self.original = None

    def _install(self) -> None:
        original = self.model.compute_loss
        self.original = original

        @wraps(original)
        def compute_loss(*args, **kwargs):
            loss = original(*args, **kwargs)
            training = kwargs.get("training", args[4] if len(args) > 4 else True)
            if training and loss is not None:
                self.latest = loss.detach() if hasattr(loss, "detach") else loss
            return loss

        object.__setattr__(self.model, "compute_loss", compute_loss)

    def take(self):
        loss, self.latest = self.latest, None
        return loss


class _RunningMeanLoss:
    """Batch loss from Keras's running epoch mean (backends where capture is impossible).

    ``L_k = (m_k N_k - m_{k-1} N_{k-1}) / (N_k - N_{k-1})`` with ``N`` the loss
    tracker's sample count, in float64.
    """

    def __init__(self):
        self.prev_total = 0.0
        self.prev_count = 0.0

    def reset(self):
        self.prev_total = self.prev_count = 0.0

    def batch_loss(self, model, running_mean) -> float | None:
        if running_mean is None:
            return None
        m = to_float(running_mean)
        tracker = getattr(model, "_loss_tracker", None)
        count = getattr(tracker, "count", None)
        if count is None:
            return m
        n = float(keras.ops.convert_to_numpy(variable_value(model, count)))
        total = m * n
        dn = n - self.prev_count
        value = (total - self.prev_total) / dn if dn > 0 else m
        self.prev_total, self.prev_count = total, n
        return value


# ---------------------------------------------------------------------------------
# one recorder per Sonifier: one record per step, whatever the number of callbacks
# ---------------------------------------------------------------------------------
class _Recorder:
    _by_sonifier: ClassVar[dict] = {}

    def __init__(self, sonifier):
        self.sonifier = sonifier
        self.leader = None
        self.members: list = []
        self.model = None
        self.need_grads = False
        # per-group weight statistics only when the Sonifier's mappings use them
        self.need_weights = wants_weight_stats(sonifier)

    @classmethod
    def for_sonifier(cls, sonifier) -> _Recorder:
        key = id(sonifier)
        rec = cls._by_sonifier.get(key)
        if rec is None or rec.sonifier is not sonifier:
            rec = cls(sonifier)
            cls._by_sonifier[key] = rec
        return rec

    def join(self, callback, model) -> None:
        if callback not in self.members:
            self.members.append(callback)
        self.need_grads = self.need_grads or callback._needs_grads
        if self.leader is not None:
            return
        self.leader = callback
        self.model = model
        self.tel = _ModelTelemetry(model, groups=callback._groups)
        self.unit_epoch, self.unit_step = [], []
        for req in getattr(self.sonifier, "unit_means_requests", None) or []:
            which, when, most = unit_request(req)
            name = self.tel.dense_name(which)
            self.tel.unit_pool[name] = most
            (self.unit_step if when == "step" else self.unit_epoch).append(name)
        self.capture = _LossCapture.attach(model)
        self.tap = self.tel.tap
        if self.tap is not None:
            # every member has joined by now (the session starts at the first epoch)
            self.tap.attach(grads=self.need_grads or self._sonifier_hears_gradients(),
                            weights=self.need_weights)
        self.running = _RunningMeanLoss()
        self.buffer = StepBuffer(self.sonifier)
        self.first = True

    def _sonifier_hears_gradients(self) -> bool:
        mappings = getattr(getattr(self.sonifier, "config", None), "mappings", None)
        if mappings is None:
            return True     # a stand-in without a config: give it everything
        return any(make_mapping(m).config()["kind"] == "gradients" for m in mappings)

    def leave(self, callback) -> None:
        if callback in self.members:
            self.members.remove(callback)
        if callback is self.leader:
            self.buffer.close()
            self.capture.detach()
            if self.tap is not None:
                self.tap.detach()
            self.leader = None
        if not self.members:
            _Recorder._by_sonifier.pop(id(self.sonifier), None)

    def batch_end(self, callback, logs) -> None:
        if callback is not self.leader:
            return
        logs = logs or {}
        captured = self.capture.take()
        loss, gn, ws = self.tel.step_numbers(captured, self.need_weights,
                                             self.need_grads or self.tel.torch)
        if loss is None:
            loss = self.running.batch_loss(self.model, logs.get("loss"))
        metrics = {}
        for k, v in logs.items():
            if k == "loss" or k.startswith("gradient_norm_"):
                continue
            metrics[k] = to_float(v)
        rec = self.buffer.new(loss=loss, metrics=metrics, grad_norms=gn, weight_stats=ws,
                              lr=_learning_rate(self.model))
        if self.unit_step or (self.first and self.unit_epoch):
            # the chord starts from the initial weights, then moves at epoch ends
            rec.unit_means.update(self.tel.unit_means(self.unit_step or self.unit_epoch))
        self.first = False
        self.buffer.push(rec)

    def epoch_begin(self, callback) -> None:
        if callback is self.leader:
            self.running.reset()

    def epoch_end(self, callback, logs) -> None:
        if callback is not self.leader:
            return
        units = self.tel.unit_means(self.unit_epoch) if self.unit_epoch else None
        metrics = {k: v for k, v in (logs or {}).items() if not k.startswith("gradient_norm_")
                   and not k.startswith("val_gradient_norm_") and k != "loss"}
        self.buffer.end_epoch(metrics, units)


def _learning_rate(model) -> float | None:
    opt = getattr(model, "optimizer", None)
    lr = getattr(opt, "learning_rate", None)
    if lr is None:
        return None
    try:
        return float(getattr(lr, "value", lr))
    except Exception:  # noqa: BLE001 - a schedule object, etc.
        return None

"""Hear Keras 3 training: soNNify's and the gradient seed's callbacks, rebuilt.

Quick start::

    from auralize.keras import GradientSonification, ListenToLoss, WeightsDense

    model.fit(x, y, epochs=8, callbacks=[ListenToLoss(max_freq=500, out_dir="runs/loss")])

    grad_son = GradientSonification(path="sample", model=model)   # after model is built
    model.compile(loss="categorical_crossentropy", optimizer="sgd",
                  metrics=["accuracy"] + grad_son.metrics)       # gradient_norm_<layer> in logs
    model.fit(x, y, batch_size=32, epochs=5, callbacks=[grad_son])  # -> sample.wav,
                                                                    #    sample_spectrogram.png

Callbacks given to one ``fit`` play together: they share one Sonifier (one
recording, one run folder, one live stream, one record per step), made from all
their mappings and keyword arguments (:mod:`auralize.fit_session` says how they
combine)::

    model.fit(x, y, callbacks=[ListenToLoss(max_freq=500, out_dir="runs/all"),
                               WeightsDense(harmony="minor")])   # loss tone + chord
    model.fit(x, y, callbacks=[...])     # a second fit: a new session

To share a session across fits, or to choose its mappings yourself, pass one::

    son = Sonifier("runs/all", mappings=["loss", "gradients", "weights", "alarm"])
    model.fit(..., callbacks=[ListenToLoss(sonifier=son), WeightsDense(sonifier=son)])
    son.close()        # a Sonifier you pass in is yours to close (or close_sonifier=True)

Backends
--------
Importing this module makes Keras use the **torch** backend unless
``KERAS_BACKEND`` is already set (an explicit choice is respected; so is an
already imported Keras).  All three callbacks work on ``torch``, ``jax`` and
``tensorflow``:

- ``torch``: gradients are the variables' ``.grad`` tensors, which Keras's torch
  ``train_step`` leaves in place after the optimizer step; their norms come from
  one fused ``torch._foreach_norm`` per step.  The batch loss is captured exactly
  from ``Model.compute_loss``.
- ``jax``, ``tensorflow``: the step is compiled and its gradients never reach
  Python, so :mod:`auralize.keras_step` computes what is heard inside it: the
  per-layer norms of the gradients the optimizer is given, divided by the loss
  scale (``LossScaleOptimizer``, ``loss_scale_factor``), the batch's unscaled
  loss and the updated weights' statistics, returned in one vector per step
  that is taken out of the logs before Keras sees them.  Attaching rebuilds the
  train function once (one more trace at the first step of each ``fit``).  A
  step the loss-scale optimizer skips (non-finite gradients) has no gradient
  norms.  With ``gradient_accumulation_steps`` the norms are each batch's, not
  the accumulated gradient's.

Batch loss: Keras 3 logs a running mean of the loss over the epoch; auralize
sonifies each batch's own loss (soNNify's TF1 batch logs had that).  Other
per-batch metrics in the records (``accuracy``...) are Keras's running means, as
logged.  Tested with each backend's default ``jit_compile`` (off on torch, on on jax and tensorflow).

``gradient_norm_<layer>`` metrics hold the latest training step's norms; with
validation, Keras also reports ``val_gradient_norm_<layer>``: the same values
(evaluation computes no gradients).

Layers: those that own trainable variables, in model order, under their Keras
names; a layer's gradient norm is the L2 norm over all its trainable variables
(kernel and bias; the seed used the kernel alone).  Records are keyed by
gradient *voices*, groups of layers (``groups=`` on every callback, see
:mod:`auralize.layer_groups`): a model of at most 24 layers without repeated
blocks has one voice per layer, under the layer's name.  ``which_layer`` of
``WeightsDense`` indexes the model's ``Dense`` layers (-1: the last) or names one.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
import weakref
from functools import wraps
from pathlib import Path
from typing import ClassVar

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np

from auralize.audio.files import read_audio, write_audio
from auralize.audio.plots import save_spectrogram
from auralize.errors import AuralizeError
from auralize.fit_session import DEFAULT_MAPPINGS, FitSession
from auralize.layer_groups import group_layers
from auralize.sonify.mappings import GradientTones, LossTone, WeightChord, make_mapping
from auralize.step_records import (
    UNIT_POOL_MAX,
    StepBuffer,
    layer_weight_stats,
    pick_chord_layer,
    pool_means,
    resolve_layer,
    to_float,
    unit_request,
    wants_weight_stats,
)

_BACKEND_EXTRAS = {"jax": "jax", "tensorflow": "tensorflow"}


def _import_keras():
    """Keras, or a one-line error naming the extra when its chosen backend is not installed."""
    import importlib.util
    import sys

    wanted = os.environ.get("KERAS_BACKEND", "torch")
    if "keras" not in sys.modules and wanted in _BACKEND_EXTRAS \
            and importlib.util.find_spec(wanted) is None:
        raise AuralizeError(f"KERAS_BACKEND={wanted} needs {wanted}, which is not installed: "
                            f"pip install auralize[{_BACKEND_EXTRAS[wanted]}] "
                            f"(or unset KERAS_BACKEND for torch)")
    import keras

    return keras


keras = _import_keras()

from auralize.keras_step import StepTap, variable_value  # noqa: E402 - needs keras imported

__all__ = [
    "GradientNormMetric",
    "GradientSonification",
    "ListenToLoss",
    "SonifyCallback",
    "WeightsDense",
    "backend_gives_gradients",
]


TRAINING_BACKENDS = ("torch", "jax", "tensorflow")


def backend_gives_gradients() -> bool:
    """True when auralize can hear gradients on the Keras backend in use (torch, jax, tensorflow)."""
    return keras.backend.backend() in TRAINING_BACKENDS


def _check_training_backend(what: str) -> None:
    backend = keras.backend.backend()
    if backend not in TRAINING_BACKENDS:
        raise AuralizeError(f"{what} needs a Keras backend that trains (torch, jax or tensorflow); "
                            f"this Keras runs on {backend!r}: set KERAS_BACKEND before importing keras")


# ---------------------------------------------------------------------------------
# layers of a Keras model
# ---------------------------------------------------------------------------------
def _own_trainable(layer) -> list:
    own = getattr(layer, "_trainable_variables", None)
    if own is None:  # pragma: no cover - older Keras 3
        own = [v for v in layer.trainable_weights]
    return [v for v in own if getattr(v, "trainable", True)]


def _all_layers(model) -> list:
    flatten = getattr(model, "_flatten_layers", None)
    if flatten is not None:
        return list(flatten(include_self=False, recursive=True))
    return list(model.layers)  # pragma: no cover


def trainable_layers(model) -> list:
    """(name, layer) of layers owning trainable variables, in model order."""
    if not model.built:
        raise AuralizeError("the Keras model is not built yet: give it an Input shape "
                            "(keras.Input) or call model.build(...) before sonifying it")
    out = [(layer.name, layer) for layer in _all_layers(model) if _own_trainable(layer)]
    if not out:
        raise AuralizeError("the Keras model has no trainable layers to sonify")
    return out


def dense_layers(model) -> list:
    return [(layer.name, layer) for layer in _all_layers(model)
            if isinstance(layer, keras.layers.Dense)]


def _torch_param(variable):
    value = getattr(variable, "_value", None)
    return value if value is not None else variable.value


class _ModelTelemetry:
    """Per-group numbers of a Keras model (fused torch reductions on the torch backend).

    Layers are grouped as :mod:`auralize.layer_groups` says (``groups``); the
    records' ``grad_norms`` and ``weight_stats`` are keyed by group name (a
    model without repeated blocks and at most 24 layers: one group per layer,
    under the layer's name).
    """

    def __init__(self, model, groups=None):
        self.model = model
        layers = trainable_layers(model)
        layer_names = [n for n, _ in layers]
        kinds = [type(layer).__name__ for _, layer in layers]
        self.variables = [_own_trainable(layer) for _, layer in layers]
        self.dense = dense_layers(model)
        vocab = max((getattr(layer, "input_dim", -1) for layer in _all_layers(model)
                     if isinstance(layer, keras.layers.Embedding)), default=-1)
        self.vocab_heads = {name for name, layer in self.dense
                            if layer.units == vocab or layer.units >= 30000}
        self.unit_pool: dict[str, int] = {}
        self.torch = keras.backend.backend() == "torch"
        self._tel = None
        self.tap = None
        if not self.torch:
            # the compiled step reduces each voice's variables together: true group norms
            self.layer_group = group_layers(layer_names, groups, kinds=kinds)
            self.names = list(dict.fromkeys(self.layer_group))
            by_group: dict[str, list] = {name: [] for name in self.names}
            for group, vs in zip(self.layer_group, self.variables):
                by_group[group].extend(vs)
            self.tap = StepTap.of(model, list(by_group.items()))
        else:
            from auralize.torch_layers import LayerTelemetry

            linear = {name: _dense_unit_mean_torch(layer) for name, layer in self.dense}
            self._tel = LayerTelemetry(layer_names, [[_torch_param(v) for v in vs]
                                                    for vs in self.variables], linear,
                                       groups=groups, kinds=kinds, vocab_heads=self.vocab_heads)
            self.unit_pool = self._tel.unit_pool
            self.names = self._tel.names
        self._grad_cache = None     # (weakref to a grad tensor, its version, norms)
        self._warned_untapped = False

    # per-unit weight means of Dense layers (WeightsDense)
    def dense_name(self, which) -> str:
        names = [n for n, _ in self.dense]
        if isinstance(which, str) and which == "auto":
            return pick_chord_layer(names, getattr(self, "vocab_heads", ()))
        return names[resolve_layer(which, names, "Dense layer")]

    def unit_means(self, names) -> dict[str, list[float]]:
        """Per-unit kernel means of the named Dense layers, pooled to at most the request's size."""
        if self._tel is not None:
            return self._tel.unit_means(names)
        layers = dict(self.dense)
        out = {}
        for n in names:
            kernel = keras.ops.convert_to_numpy(variable_value(self.model, layers[n].kernel))
            out[n] = pool_means(np.asarray(kernel, np.float64).mean(axis=0),
                                self.unit_pool.get(n, UNIT_POOL_MAX))
        return out

    # gradient norms, computed at most once per optimizer step
    def _grad_key(self):
        for p in self._tel.params:
            g = p.grad
            if g is not None:
                return g
        return None

    def grad_norms(self) -> dict[str, float]:
        """This step's norms from the variables' ``.grad`` (torch backend)."""
        g = self._grad_key()
        if g is None:
            return {}
        cache = self._grad_cache
        if cache is not None and cache[0]() is g and cache[1] == g._version:
            return cache[2]
        norms = self._tel.grad_norms()
        self._grad_cache = (weakref.ref(g), g._version, norms)
        return norms

    def step_numbers(self, loss, weights: bool, grads: bool):
        """(loss, grad_norms, weight_stats) for the step just taken, one transfer."""
        if not self.torch:
            numbers = self.tap.take()
            if numbers is not None:
                return numbers.loss, numbers.grad_norms, numbers.weight_stats
            if not self._warned_untapped:
                self._warned_untapped = True
                warnings.warn("auralize: this fit's compiled train step did not report auralize's "
                              "numbers (a train function Keras did not build from train_step?): "
                              "the loss comes from Keras's running mean, gradients are left out",
                              stacklevel=2)
            return self._step_numbers_numpy(loss, weights)
        import torch

        cached = None
        if grads:
            g = self._grad_key()
            c = self._grad_cache
            if g is None:
                grads = False
                cached = {}
            elif c is not None and c[0]() is g and c[1] == g._version:
                cached = c[2]      # the metrics already computed them this step
                grads = False
        parts, layout = self._tel.device_parts(grads=grads, weights=weights)
        n = len(parts)
        has_loss = torch.is_tensor(loss)
        if has_loss:
            parts.append(loss.detach().reshape(-1)[0].float())
        values = []
        if parts:
            dev = parts[0].device
            values = torch.stack([p.to(dev) for p in parts]).cpu().tolist()
        gn, ws = self._tel.decode(values[:n], layout)
        if grads:
            g = self._grad_key()
            self._grad_cache = (weakref.ref(g), g._version, gn)
        if cached is not None:
            gn = cached
        loss_value = values[n] if has_loss else (None if loss is None else to_float(loss))
        return loss_value, gn, ws

    def _step_numbers_numpy(self, loss, weights: bool):
        ws = {}
        if weights:
            norms, sums, counts, layer_of = [], [], [], []
            index = {g: i for i, g in enumerate(self.names)}
            for group, vs in zip(self.layer_group, self.variables):
                i = index[group]
                for v in vs:
                    a = np.asarray(keras.ops.convert_to_numpy(variable_value(self.model, v)),
                                   np.float64)
                    norms.append(float(np.sqrt((a * a).sum())))
                    sums.append(float(a.sum()))
                    counts.append(a.size)
                    layer_of.append(i)
            ws = layer_weight_stats(norms, sums, counts, layer_of, self.names)
        return (None if loss is None else to_float(loss)), {}, ws


def _dense_unit_mean_torch(layer):
    def f():
        return _torch_param(layer.kernel).detach().mean(dim=0)  # (in, out): mean over inputs
    return f


# ---------------------------------------------------------------------------------
# exact batch loss
# ---------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------
# callbacks
# ---------------------------------------------------------------------------------
def _this_fit(model):
    """What identifies the running ``fit``: the History object Keras makes for each call.

    Keying by the model alone would let a fit that raised before its first
    epoch (Keras then calls no ``on_train_end``) hand its half-joined session
    to the next fit.
    """
    history = getattr(model, "history", None)
    return history if history is not None else model


class SonifyCallback(keras.callbacks.Callback):
    """Send one record per training batch to a Sonifier (base of the seed callbacks).

    Callbacks given to the same ``fit`` share one Sonifier (one recording, run
    folder and live stream; see :mod:`auralize.fit_session`): made at the first
    epoch from all their mappings and keyword arguments, closed when the last of
    them sees the training end.

    Parameters
    ----------
    mappings : sequence
        What this callback wants heard (names, config dicts or mapping objects).
    sonifier : Sonifier, optional
        Use this session instead of the fit's shared one.
    close_sonifier : bool, optional
        Close the Sonifier at train end (default: yes for the fit's shared one,
        no for a ``sonifier=`` you pass in).
    groups : optional
        Which layers sound as one gradient voice (:func:`auralize.layer_groups.group_layers`;
        default: by structure, at most 24); the first callback of a session decides.
    **sonifier_kwargs
        ``out_dir``, ``clock``, ``live``, ``sample_rate``... (see ``Sonifier``), for
        the fit's shared Sonifier.

    Attributes
    ----------
    sonifier : Sonifier or None
        The session this callback sends to (set at the first epoch).
    result : RunResult or None
        The run folder's files, once the Sonifier is closed.
    """

    _needs_grads = False

    def __init__(self, mappings=DEFAULT_MAPPINGS, sonifier=None,
                 close_sonifier: bool | None = None, groups=None, **sonifier_kwargs):
        super().__init__()
        self._groups = groups
        if sonifier is not None and sonifier_kwargs:
            raise AuralizeError("pass either sonifier= or Sonifier keyword arguments, not both: "
                                + ", ".join(sorted(sonifier_kwargs)))
        self._mappings = list(mappings)
        self._sonifier_kwargs = sonifier_kwargs
        self._sonifier_defaults: dict = {}
        self._given = sonifier
        self._close = close_sonifier
        self.sonifier = sonifier
        self.result = None
        self._recorder = None
        self._session: FitSession | None = None

    def on_train_begin(self, logs=None):
        if self._recorder is not None or self._session is not None:
            self._finish()      # the previous fit raised: Keras never called on_train_end
        self.result = None
        if self._given is None:
            self.sonifier = None
            self._session = FitSession.join(
                _this_fit(self.model), self, mappings=self._mappings, kwargs=self._sonifier_kwargs,
                defaults=self._sonifier_defaults, keep_open=self._close is False)
        else:
            self._start_recording(self._given)

    def _start_recording(self, sonifier) -> None:
        self.sonifier = sonifier
        self._recorder = _Recorder.for_sonifier(sonifier)
        try:
            self._recorder.join(self, self.model)
        except BaseException:
            self._recorder.leave(self)
            self._recorder = None
            raise

    def on_epoch_begin(self, epoch, logs=None):
        if self._recorder is None and self._session is not None:
            # every callback's on_train_begin has run: the session knows all its members
            self._start_recording(self._session.start())
        if self._recorder is not None:
            self._recorder.epoch_begin(self)

    def on_train_batch_end(self, batch, logs=None):
        if self._recorder is not None:
            self._recorder.batch_end(self, logs)

    def on_epoch_end(self, epoch, logs=None):
        if self._recorder is not None:
            self._recorder.epoch_end(self, logs)

    def on_train_end(self, logs=None):
        self._finish()

    def _finish(self) -> None:
        if self._recorder is not None:
            self._recorder.leave(self)
            self._recorder = None
        if self._session is not None:
            session, self._session = self._session, None
            session.leave(self)           # the last member closes it: _session_closed
        elif self._close and self._given is not None:
            self._session_closed(self._given.close())

    def _session_closed(self, result) -> None:
        self.result = result
        if result is not None:
            self._after_close(result)

    def _after_close(self, result) -> None:
        pass


class ListenToLoss(SonifyCallback):
    """soNNify's ListenToLoss: one gliding sine following the loss.

    ``f = min_freq + (L / L0) * (max_freq - min_freq)``, capped at ``max_freq``;
    ``hear_on="batch"`` follows each batch's own loss, ``"epoch"`` each epoch's
    ``val_loss`` (else loss).  NaN/Inf or a loss spike sounds the alarm.
    """

    def __init__(self, hear_on: str = "batch", min_freq: float = 200.0,
                 max_freq: float = 1000.0, sonifier=None, **sonifier_kwargs):
        self.hear_on = hear_on
        mapping = LossTone(hear_on=hear_on, min_freq=min_freq, max_freq=max_freq)
        super().__init__(mappings=[mapping, "alarm"], sonifier=sonifier, **sonifier_kwargs)


class WeightsDense(SonifyCallback):
    """soNNify's WeightsDense: a chord, one sine per unit of a Dense layer.

    ``which_layer``: index among the model's Dense layers (-1: the last) or a
    layer name; an unknown one is an :class:`~auralize.AuralizeError` listing the
    real ones.  ``harmony``: major, minor, dim, 7th, min7th, maj7th.  With a
    ``sonifier=`` you pass in, that Sonifier's own ``weights`` mapping decides the
    layer and chord (a warning says so when they differ).
    """

    def __init__(self, which_layer: int | str = -1, base_freq: float = 100.0,
                 harmony: str = "major", sonifier=None, **sonifier_kwargs):
        self.which_layer = which_layer
        mapping = WeightChord(which_layer=which_layer, base_freq=base_freq, harmony=harmony)
        super().__init__(mappings=[mapping], sonifier=sonifier, **sonifier_kwargs)

    def on_train_begin(self, logs=None):
        name = _ModelTelemetry.dense_name(_DenseOnly(self.model), self.which_layer)  # clear error
        super().on_train_begin(logs)
        rec = self._recorder
        if rec is not None and name not in rec.unit_epoch + rec.unit_step:
            played = ", ".join(rec.unit_epoch + rec.unit_step) or "no Dense layer"
            warnings.warn(f"WeightsDense(which_layer={self.which_layer!r}) shares a Sonifier whose "
                          f"mappings play {played}, not {name!r}: the Sonifier's own mappings "
                          f"decide what is heard", stacklevel=2)


class _DenseOnly:
    def __init__(self, model):
        self.dense = dense_layers(model)


class GradientNormMetric(keras.metrics.Metric):
    """``gradient_norm_<layer>``: the layer's gradient L2 norm at the latest step.

    Stateless across batches (the value is the current step's, not a mean).
    On torch it reads the gradients Keras's train step leaves on the variables
    (all layers' norms in one fused reduction, by the first of these metrics
    that asks).  On jax and tensorflow it is part of the compiled train step:
    the norms come from the gradients the optimizer is given, unscaled
    (:mod:`auralize.keras_step`), once a :class:`GradientSonification` of the
    model listens; the value lives in a metric variable like any other metric.
    """

    def __init__(self, telemetry_source, layer: str, name: str | None = None):
        super().__init__(name=name or f"gradient_norm_{layer}")
        self._source = telemetry_source
        self.layer = layer
        self._value = math.nan
        self._norm = None
        if keras.backend.backend() != "torch":
            self._norm = self.add_variable(shape=(), initializer=keras.initializers.Constant(math.nan),
                                           dtype="float32", name="norm")

    def update_state(self, y_true=None, y_pred=None, sample_weight=None):
        if self._norm is not None:
            tap = self._source().tap
            value = tap.pending_norm(self.layer) if tap is not None else None
            if value is not None:       # a train step (evaluation keeps the last one)
                self._norm.assign(value)
            return
        norms = self._source().grad_norms()
        if self.layer in norms:
            self._value = norms[self.layer]

    def result(self):
        if self._norm is not None:
            return self._norm.value
        return self._value

    def reset_state(self):
        pass  # the value is the latest step's; nothing accumulates

    def get_config(self):
        return {"name": self.name, "layer": self.layer}


class GradientSonification(SonifyCallback):
    """The gradient seed's callback (after Perone 2019): one tone per layer per batch.

    Layer i sounds for ``duration`` s at ``freq + 100 * ||g_i||`` Hz in model
    order, then ``2 * duration`` of silence (step clock).  At train end writes
    ``<path>.wav`` (mono; ``fs`` Hz sets the session's sample rate, default the
    Sonifier's 44100) and, with ``plot``, ``<path>_spectrogram.png``:
    the recording of the fit's whole session, so with ``ListenToLoss`` or
    ``WeightsDense`` in the same ``fit`` it holds their sound too.
    ``.metrics`` lists one :class:`GradientNormMetric` per gradient voice: compile
    with ``metrics=["accuracy"] + grad_son.metrics`` to see ``gradient_norm_<layer>``
    in the logs and History.  On jax and tensorflow the norms are computed inside
    the compiled train step (see the module docstring).
    Voices are the layers'
    groups (``groups=``, see :func:`auralize.layer_groups.group_layers`): one per
    layer for a model of at most 24 layers without repeated blocks, as the seed
    had; Perone's linear pitch (``scale="linear"``) is kept.

    ``out_dir=`` additionally keeps the full run folder; ``live=True`` plays it.
    Alone in a ``fit`` it does not play live unless asked (the seed wrote files
    only); together with other callbacks the session plays as the Sonifier
    decides (``live="auto"``: when a sound device exists).
    """

    _needs_grads = True

    def __init__(self, path, model, fs: int | None = None, duration: float = 0.01,
                 freq: float = 200.0, plot: bool = True, sonifier=None, groups=None,
                 **sonifier_kwargs):
        _check_training_backend("GradientSonification")
        self.path = Path(path)
        self.plot = bool(plot)
        self._model_ref = model
        self._telemetry = None
        self._groups = groups
        layers = trainable_layers(model)
        # the voices' names (the telemetry itself is made at the first step, as the metrics ask)
        self.layer_names = list(dict.fromkeys(group_layers(
            [n for n, _ in layers], groups, kinds=[type(layer).__name__ for _, layer in layers])))
        self.metrics = [GradientNormMetric(self._source, n) for n in self.layer_names]
        if fs is not None and sonifier is None:
            sonifier_kwargs.setdefault("sample_rate", int(fs))
        mapping = GradientTones(freq=freq, duration=duration, scale="linear")
        super().__init__(mappings=[mapping, "alarm"], sonifier=sonifier, groups=groups,
                         **sonifier_kwargs)
        self._sonifier_defaults = {"live": False, "plot": self.plot, "clock": "step"}

    def _source(self) -> _ModelTelemetry:
        if self._telemetry is None:
            self._telemetry = _ModelTelemetry(self._model_ref, groups=self._groups)
        return self._telemetry

    def _start_recording(self, sonifier) -> None:
        super()._start_recording(sonifier)
        # the metrics' cache and the recorder's must be the same object
        if self._recorder.model is self._model_ref:
            self._recorder.tel = self._source()

    def _after_close(self, result) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wav = self.path.with_name(self.path.name + ".wav")
        if result.wav_path is not None and Path(result.wav_path).exists():
            shutil.copyfile(result.wav_path, wav)
        else:
            write_audio(wav, self.sonifier.samples, int(self.sonifier.config.sample_rate))
        self.wav_path = wav
        self.spectrogram_path = None
        if self.plot:
            png = self.path.with_name(self.path.name + "_spectrogram.png")
            if result.spectrogram_path is not None:
                shutil.copyfile(result.spectrogram_path, png)
            else:
                samples, rate = read_audio(wav, mono=True)
                save_spectrogram(samples, rate, png, title=f"gradient sonification: {self.path.name}")
            self.spectrogram_path = png

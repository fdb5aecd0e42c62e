"""A Keras model's layers and their per-step numbers, for :mod:`auralize.keras`.

Imported by :mod:`auralize.keras` once Keras is (its backend chosen there).
:class:`_ModelTelemetry` finds the layers owning trainable variables, groups them
into voices and gives the step's numbers: on the torch backend from fused torch
reductions (:class:`~auralize.torch_layers.LayerTelemetry`), on jax and
tensorflow from inside the compiled train step (:mod:`auralize.keras_step`);
:class:`GradientNormMetric` shows a layer's norm as a Keras metric;
:func:`variable_value` reads a variable mid-``fit`` on jax.
"""

from __future__ import annotations

import math
import warnings
import weakref

import keras
import numpy as np

from auralize.errors import AuralizeError
from auralize.keras_step import StepTap
from auralize.layer_groups import group_layers
from auralize.step_records import (
    UNIT_POOL_MAX,
    layer_weight_stats,
    pick_chord_layer,
    pool_means,
    resolve_layer,
    to_float,
)

__all__ = ["GradientNormMetric", "dense_layers", "trainable_layers", "variable_value"]


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


def variable_value(model, variable):
    """A variable's current value, also in the middle of a jax ``fit``.

    Keras's jax trainer keeps the training state outside the variables until the
    epoch ends (their values are dropped: reading one then gives a fresh draw of
    its initializer); the state it keeps on the model is read instead.
    """
    state = getattr(model, "_jax_state", None)
    if state and getattr(variable, "_value", True) is None:
        for ref, value in zip(model.trainable_variables, state.get("trainable_variables") or ()):
            if ref is variable:
                return value
        for ref, value in zip(model.non_trainable_variables,
                              state.get("non_trainable_variables") or ()):
            if ref is variable:
                return value
        for ref, value in zip(model.metrics_variables, state.get("metrics_variables") or ()):
            if ref is variable:
                return value
    return variable.value


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

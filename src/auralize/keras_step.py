"""Numbers from inside Keras's compiled train step (jax and tensorflow backends).

On these backends a training step is one compiled function (``jax.jit``,
``tf.function``): the gradients never reach Python and, on jax, the model's
variables are not even updated until the epoch ends.  Callbacks see only the
step's logs.  :class:`StepTap` puts what auralize needs into that function, for
one model, while a session listens, and takes it out again before Keras sees it:

- ``model.optimizer.stateless_apply`` (jax) or ``.apply`` (tensorflow): the
  per-layer L2 norms of the gradients the optimizer is given, divided by the loss
  scale (``LossScaleOptimizer``'s dynamic scale, or ``loss_scale_factor``), so
  they are the unscaled gradients it applies (before its own ``clipnorm``).
- ``model._loss_tracker.update_state``: the batch's own unscaled loss (Keras logs
  a running mean).
- ``model.train_step``: packs ``[flags, loss, grad norms, weight norms, weight
  sums]`` into one float32 vector under a private key of the step's logs; the
  weights are the step's updated values.
- ``model.train_function`` (rebuilt once, when the tap attaches): pops that key,
  so the logs, progress bar and History are what they are without auralize, and
  keeps the vector for the callbacks: one device-to-host copy per step.

The wrappers run while the step is traced; what they compute is compiled into
the step.  Detaching restores the methods and rebuilds Keras's own train function
(traced again at its next call).
"""

from __future__ import annotations

import warnings
import weakref
from typing import ClassVar

import keras
import numpy as np

from auralize.step_records import layer_weight_stats

__all__ = ["StepNumbers", "StepTap"]

_LOG_KEY = "_auralize_step"


class StepNumbers:
    """One step's numbers, decoded from the tap's vector.

    Attributes
    ----------
    loss : float or None
        The batch's unscaled loss.
    grad_norms : dict
        Layer name -> L2 norm of its unscaled gradient (empty when not computed,
        or for a step the loss-scale optimizer skipped).
    weight_stats : dict
        Layer name -> {"mean", "std", "norm"} of its updated weights (empty when
        not computed).
    skipped : bool
        The loss-scale optimizer found non-finite gradients and skipped the update.
    """

    def __init__(self, loss, grad_norms, weight_stats, skipped):
        self.loss = loss
        self.grad_norms = grad_norms
        self.weight_stats = weight_stats
        self.skipped = skipped


class StepTap:
    """The per-step numbers of one Keras model, computed inside its compiled train step.

    One per model (:meth:`of`); callbacks and metrics of that model share it.
    """

    _by_model: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()

    def __init__(self, model, layers: list[tuple[str, list]]):
        self._model = weakref.ref(model)
        self.names = [name for name, _ in layers]
        position = {id(v): i for i, v in enumerate(model.trainable_variables)}
        # layer index -> positions of its variables in model.trainable_variables
        self.layer_vars = [[position[id(v)] for v in variables if id(v) in position]
                           for _, variables in layers]
        self.n_vars = len(position)
        self.counts = [int(np.prod(v.shape)) for v in model.trainable_variables]
        self.layer_counts = [sum(self.counts[p] for p in ps) for ps in self.layer_vars]
        self.users = 0
        self.grads = self.weights = False
        self.in_step = False
        self.pending: dict = {}          # traced values of the step being traced
        self.latest = None               # the last step's vector (host or device array)
        self._saved: list = []           # (object, attribute) pairs to restore
        self._warned_missing = False
        self._warned_failure = False
        self._loss_scaled = False

    @classmethod
    def of(cls, model, layers: list[tuple[str, list]] | None = None) -> StepTap:
        """The tap of ``model`` (made on first use from ``layers``: (name, variables))."""
        tap = cls._by_model.get(model)
        if tap is None:
            if layers is None:
                raise ValueError("StepTap.of: the first call needs the model's layers")
            tap = cls(model, layers)
            cls._by_model[model] = tap
        return tap

    @property
    def model(self):
        return self._model()

    # -- attaching ---------------------------------------------------------------------
    def attach(self, *, grads: bool, weights: bool) -> None:
        """Start (or widen) the taps; the train function is rebuilt when what it packs changes."""
        want = (self.grads or grads, self.weights or weights)
        self.users += 1
        if self._saved and want == (self.grads, self.weights):
            return
        self._restore()
        self.grads, self.weights = want
        from keras.optimizers import LossScaleOptimizer

        self._loss_scaled = isinstance(self.model.optimizer, LossScaleOptimizer)
        self._install()

    def detach(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0:
            self._restore()
            self.grads = self.weights = False
            self.latest = None

    def _wrap(self, obj, name: str, make) -> None:
        original = getattr(obj, name)
        self._saved.append((obj, name, name in vars(obj), original))
        object.__setattr__(obj, name, make(original))

    def _install(self) -> None:
        model = self.model
        backend = keras.backend.backend()
        tap = self

        def loss_update(original):
            def update_state(values, *args, **kwargs):
                if tap.in_step and "loss" not in tap.pending:
                    tap.pending["loss"] = values
                return original(values, *args, **kwargs)
            return update_state

        tracker = getattr(model, "_loss_tracker", None)
        if tracker is not None:
            self._wrap(tracker, "update_state", loss_update)

        optimizer = model.optimizer
        if self.grads and optimizer is not None:
            if backend == "jax":
                def stateless_apply(original):
                    def apply(optimizer_variables, grads, trainable_variables):
                        if tap.in_step:
                            tap._guard("gradient norms", lambda: tap._take_grads(
                                optimizer, optimizer_variables, grads))
                        return original(optimizer_variables, grads, trainable_variables)
                    return apply
                self._wrap(optimizer, "stateless_apply", stateless_apply)
            else:
                def apply_hook(original):
                    def apply(grads, trainable_variables=None):
                        if tap.in_step and "grads" not in tap.pending:
                            grads = list(grads)
                            tap._guard("gradient norms", lambda: tap._take_grads(
                                optimizer, None, grads))
                        return original(grads, trainable_variables)
                    return apply
                self._wrap(optimizer, "apply", apply_hook)

        def train_step(original):
            def step(*args, **kwargs):
                tap.pending, tap.in_step = {}, True
                try:
                    out = original(*args, **kwargs)
                finally:
                    tap.in_step = False
                pending, tap.pending = tap.pending, {}

                def pack():
                    if backend == "jax":
                        logs, state = out
                        weights = state[0] if isinstance(state, (tuple, list)) and state else None
                    else:
                        logs, state = out, None
                        weights = [v.value for v in model.trainable_variables]
                    logs = dict(logs)
                    logs[_LOG_KEY] = tap._pack(pending, weights)
                    return (logs, state) if backend == "jax" else logs

                packed = tap._guard("the step's numbers", pack)
                return out if packed is None else packed
            return step

        self._wrap(model, "train_step", train_step)
        model.make_train_function(force=True)

        def train_function(original):
            def run(*args, **kwargs):
                out = original(*args, **kwargs)
                logs = out[0] if backend == "jax" else out
                if isinstance(logs, dict):
                    tap.latest = logs.pop(_LOG_KEY, None)
                return out
            return run

        self._wrap(model, "train_function", train_function)

    def _guard(self, what: str, compute):
        """Run ``compute`` (while the step is traced); a failure warns once and the
        training goes on without that number."""
        try:
            return compute()
        except Exception as exc:  # noqa: BLE001 - auralize never breaks training
            if not self._warned_failure:
                self._warned_failure = True
                detail = str(exc).splitlines()[0][:200] if str(exc) else ""
                warnings.warn(f"auralize: could not compute {what} inside this Keras train step "
                              f"({type(exc).__name__}: {detail}); training goes on without them",
                              stacklevel=2)
            return None

    def _restore(self) -> None:
        saved, self._saved = self._saved, []
        rebuild = False
        for obj, name, own, original in reversed(saved):
            if name == "train_function":
                rebuild = True      # the compiled function holds the taps
            elif own:
                object.__setattr__(obj, name, original)
            else:
                try:
                    object.__delattr__(obj, name)
                except AttributeError:
                    pass
        model = self.model
        if rebuild and model is not None:
            model.make_train_function(force=True)   # Keras's own, traced at its first call

    # -- traced computations -------------------------------------------------------------
    def _loss_scale(self, optimizer, optimizer_variables):
        """What the gradients are multiplied by (1 when unscaled)."""
        from keras.optimizers import LossScaleOptimizer

        if isinstance(optimizer, LossScaleOptimizer):
            if optimizer_variables is None:
                # as its scale_loss chose in this same step (tensorflow builds the
                # optimizer inside the first traced apply)
                return optimizer.dynamic_scale.value if optimizer.built else optimizer.initial_scale
            for ref, value in zip(optimizer.variables, optimizer_variables):
                if ref is optimizer.dynamic_scale:
                    return value
        factor = getattr(optimizer, "loss_scale_factor", None)
        return factor if factor else 1.0

    def _take_grads(self, optimizer, optimizer_variables, grads) -> None:
        """The norms of the gradient the optimizer applies, into ``pending`` (traced).

        With ``gradient_accumulation_steps=k`` Keras's optimizer applies, every k-th
        batch, the mean of the k batches' gradients (its accumulators plus this
        batch's), and updates nothing on the other batches: the norms are those of
        that mean, flagged as an optimizer step only on the batch that applies it.
        """
        inner = getattr(optimizer, "inner_optimizer", None)
        if inner is not None and getattr(inner, "gradient_accumulation_steps", None):
            self._warned_missing = True     # this one warning says it
            raise ValueError("gradient accumulation inside a LossScaleOptimizer is not read")
        scale = self._loss_scale(optimizer, optimizer_variables)
        steps = getattr(optimizer, "gradient_accumulation_steps", None)
        if not steps:
            self.pending["grads"] = self._layer_norms(grads, scale)
            return
        ops = keras.ops
        values = None if optimizer_variables is None else {
            id(ref): value for ref, value in zip(optimizer.variables, optimizer_variables)}

        def current(variable):
            return variable.value if values is None else values[id(variable)]

        accumulated = [current(a) for a in optimizer._accumulated_gradients]
        applied = [None if g is None else (ops.cast(g, "float32") + ops.cast(a, "float32")) / steps
                   for g, a in zip(grads, accumulated)]
        update = ops.equal((current(optimizer._iterations) + 1) % steps, 0)
        self.pending["grads"] = self._layer_norms(applied, scale)
        # 1: this batch's optimizer step applies them; 0.5: a batch that only accumulates
        self.pending["grads_flag"] = ops.where(update, 1.0, 0.5)

    def _layer_norms(self, grads, scale):
        ops = keras.ops
        scale = ops.cast(scale, "float32")
        squares = []
        for g in grads:
            if g is None:
                squares.append(ops.zeros((), "float32"))
            else:
                # unscaled first, as the optimizer does: the square of a scaled
                # gradient overflows float32 long before the gradient does
                g32 = ops.cast(g, "float32") / scale
                squares.append(ops.sum(g32 * g32))
        out = []
        for positions in self.layer_vars:
            total = ops.zeros((), "float32")
            for p in positions:
                total = total + squares[p]
            out.append(ops.sqrt(total))
        if not out:
            return None
        return ops.stack(out)

    def _pack(self, pending: dict, new_weights):
        ops = keras.ops
        parts = []
        loss = pending.get("loss")
        grads = pending.get("grads")
        flags = [loss is not None, grads is not None,
                 self.weights and new_weights is not None and len(new_weights) == self.n_vars]
        flag_parts = ops.convert_to_tensor([float(f) for f in flags], "float32")
        if flags[1] and "grads_flag" in pending:   # gradient accumulation (see _take_grads)
            flag_parts = ops.concatenate([flag_parts[:1], ops.reshape(ops.cast(
                pending["grads_flag"], "float32"), (1,)), flag_parts[2:]])
        parts.append(flag_parts)
        parts.append(ops.reshape(ops.mean(ops.cast(loss, "float32")), (1,)) if flags[0]
                     else ops.zeros((1,), "float32"))
        if self.grads:
            parts.append(grads if flags[1] else ops.zeros((len(self.names),), "float32"))
        if self.weights and self.names:
            squares, sums = [], []        # per layer, over its variables
            for positions in self.layer_vars:
                sq = total = ops.zeros((), "float32")
                for p in positions if flags[2] else ():
                    w = ops.cast(new_weights[p], "float32")
                    sq = sq + ops.sum(w * w)
                    total = total + ops.sum(w)
                squares.append(sq)
                sums.append(total)
            parts.append(ops.stack(squares))
            parts.append(ops.stack(sums))
        return ops.concatenate(parts)

    # -- the host side -------------------------------------------------------------------
    def take(self) -> StepNumbers | None:
        """The last step's numbers (None when no step ran through the tap since)."""
        vec, self.latest = self.latest, None
        if vec is None:
            return None
        values = np.asarray(vec, dtype=np.float64).reshape(-1)     # the one device-to-host copy
        has_loss, has_grads, has_weights = (bool(v) for v in values[:3])
        accumulating = 0 < values[1] < 1     # a batch whose gradient the optimizer only adds up
        has_grads = has_grads and not accumulating
        at = 3
        loss = float(values[at]) if has_loss else None
        at += 1
        grad_norms, skipped = {}, False
        if self.grads:
            n = len(self.names)
            norms = values[at:at + n]
            at += n
            if has_grads:
                if self._loss_scaled and not np.isfinite(norms).all():
                    skipped = True       # the loss-scale optimizer skipped this update
                else:
                    grad_norms = {name: float(v) for name, v, ps in
                                  zip(self.names, norms, self.layer_vars) if ps}
            elif not self._warned_missing and not accumulating:
                self._warned_missing = True
                warnings.warn("auralize: this model's train step never called its optimizer's "
                              "apply as Keras's own train_step does; gradient norms are left out",
                              stacklevel=2)
        weight_stats = {}
        if self.weights and has_weights and self.names:
            n = len(self.names)
            norms = np.sqrt(values[at:at + n])
            sums = values[at + n:at + 2 * n]
            weight_stats = layer_weight_stats(norms, sums, self.layer_counts, range(n), self.names)
        return StepNumbers(loss, grad_norms, weight_stats, skipped)

    def pending_norm(self, name: str):
        """The traced gradient norm of layer ``name`` in the step being traced (None outside)."""
        grads = self.pending.get("grads") if self.in_step else None
        if grads is None or name not in self.names:
            return None
        value = grads[self.names.index(name)]
        flag = self.pending.get("grads_flag")
        if flag is not None:   # accumulating: only the batch that applies the mean has a norm
            ops = keras.ops
            value = ops.where(ops.equal(flag, 1.0), value,
                              ops.convert_to_tensor(float("nan"), "float32"))
        if self._loss_scaled:
            # any layer's norm non-finite: the optimizer skips this step; no norm (NaN)
            # for every layer, as the telemetry leaves them all out
            ops = keras.ops
            value = ops.where(ops.all(ops.isfinite(grads)), value,
                              ops.convert_to_tensor(float("nan"), "float32"))
        return value

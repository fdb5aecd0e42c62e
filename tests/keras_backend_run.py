"""One Keras ``fit`` with auralize's three callbacks on the backend KERAS_BACKEND names,
and an independent reference computed in the same process.

    KERAS_BACKEND=jax python tests/keras_backend_run.py OUT_DIR \
        --fit NAME:MODEL:PRECISION:OPTIMIZER[:lso[=EXP]][:x=FACTOR] [--fit ...]

MODEL is mlp, cnn or demo (auralize's demo CNN), PRECISION float32 or
mixed_bfloat16, OPTIMIZER sgd or adam; ``lso`` wraps it in a LossScaleOptimizer
(initial scale 2**EXP); ``x=FACTOR`` multiplies the inputs (larger gradients: with
2**127 some steps overflow, and the optimizer skips them); ``acc=K`` gives the
optimizer ``gradient_accumulation_steps=K``.
Each fit writes ``OUT_DIR/NAME/run`` (the run folder) and ``OUT_DIR/NAME/reference.json``:

- ``losses``: each batch's loss, and ``norms``: each layer's gradient L2 norm (all its
  trainable variables), both from the weights before the step, by the backend's own
  autodiff (``jax.value_and_grad`` of ``stateless_call``, ``tf.GradientTape``) on
  the batch the step trains on, unscaled, in float64 on the host;
- ``acc_norms`` (with ``acc=K``): per batch, each layer's L2 norm of the mean of the
  last K batches' gradients on the batches where the optimizer applies it, else None;
- ``weight_norms``: each layer's weight L2 norm after the step;
- ``unit_means``: the per-unit kernel means of the chord's layer at the start and at
  each epoch end;
- ``history``: what ``fit`` returned.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

BATCH = 32


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--fit", action="append", required=True)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--n", type=int, default=192)
    args = p.parse_args()
    for spec in args.fit:
        name, model, precision, optimizer, *options = spec.split(":")
        scale, factor, accumulate = None, 1.0, None
        for option in options:
            key, _, value = option.partition("=")
            if key == "lso":
                scale = 2.0 ** int(value or 15)
            elif key == "x":
                factor = float(value)
            elif key == "acc":
                accumulate = int(value)
        run_fit(Path(args.out) / name, model, precision, optimizer, scale, args.epochs, args.n,
                factor, accumulate)


def run_fit(out: Path, model_kind: str, precision: str, optimizer_name: str,
            loss_scale: float | None, epochs: int, n: int, x_factor: float = 1.0,
            accumulate: int | None = None) -> None:
    from auralize.keras import GradientSonification, ListenToLoss, WeightsDense, keras

    backend = keras.backend.backend()
    assert backend == os.environ["KERAS_BACKEND"], backend
    keras.mixed_precision.set_global_policy(precision)

    sys.path.insert(0, str(Path(__file__).parent))
    from adapter_util import digits

    x, labels = digits(n)
    x = x * np.float32(x_factor)
    y = keras.utils.to_categorical(labels, 10).astype("float32")
    keras.utils.set_random_seed(0)
    layers = keras.layers
    head = layers.Dense(10, activation="softmax", name="out", dtype="float32")
    if model_kind == "mlp":
        model = keras.Sequential([keras.Input((64,)),
                                  layers.Dense(32, activation="relu", name="hidden"),
                                  layers.Dense(16, activation="tanh", name="mid"), head])
    elif model_kind == "cnn":
        x = x.reshape(-1, 8, 8, 1)
        model = keras.Sequential([keras.Input((8, 8, 1)),
                                  layers.Conv2D(8, 3, activation="relu", name="conv"),
                                  layers.Flatten(), layers.Dense(16, activation="relu", name="hidden"),
                                  head])
    else:
        from auralize.digits import build_keras_cnn

        x = x.reshape(-1, 8, 8, 1)
        model = build_keras_cnn(0)
    chord_layer = model.layers[-1].name

    optimizer = (keras.optimizers.SGD(0.3, gradient_accumulation_steps=accumulate)
                 if optimizer_name == "sgd"
                 else keras.optimizers.Adam(1e-2, gradient_accumulation_steps=accumulate))
    if loss_scale is not None:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=loss_scale)
    grad_son = GradientSonification(path=out / "grads", model=model, freq=2000.0, plot=False)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer,
                  metrics=["accuracy"] + grad_son.metrics)
    layer_vars = [(layer.name, [v for v in layer.trainable_weights])
                  for layer in model.layers if layer.trainable_weights]
    positions = {id(v): i for i, v in enumerate(model.trainable_variables)}
    loss_fn = keras.losses.CategoricalCrossentropy()

    ref = {"backend": backend, "losses": [], "norms": [], "acc_norms": [], "weight_norms": [],
           "unit_means": [],
           "layers": [n for n, _ in layer_vars], "chord_layer": chord_layer}

    def per_layer(arrays):
        return {name: float(np.sqrt(sum(np.sum(np.asarray(arrays[positions[id(v)]], np.float64) ** 2)
                                         for v in vs)))
                for name, vs in layer_vars}

    def current(kind):
        """Copies of the model's current variables; mid-epoch on jax they live in the
        trainer's state (reading them does not sync it: the fit runs as without us)."""
        state = getattr(model, "_jax_state", None) if backend == "jax" else None
        if state and not model._jax_state_synced:
            return [np.array(a) for a in state[kind]]
        return [np.array(keras.ops.convert_to_numpy(v.value)) for v in getattr(model, kind)]

    def gradients(xb, yb):
        if backend == "jax":
            import jax

            tv = current("trainable_variables")
            ntv = current("non_trainable_variables")

            def loss_of(tv):
                y_pred, _ = model.stateless_call(tv, ntv, xb, training=True)
                return loss_fn(yb, y_pred)

            loss, grads = jax.value_and_grad(loss_of)(tv)
            return float(loss), [np.asarray(g) for g in grads]
        import tensorflow as tf

        # the forward pass draws dropout masks from the seed generators' state: put it
        # back, so that the train step draws the same masks
        saved = [v.numpy() for v in model.non_trainable_variables]
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        for v, value in zip(model.non_trainable_variables, saved):
            v.assign(value)
        return float(loss), [g.numpy() for g in grads]

    def kernel_means():
        kernel = current("trainable_variables")[positions[id(model.get_layer(chord_layer).kernel)]]
        return [float(v) for v in np.asarray(kernel, np.float64).mean(axis=0)]

    window = []   # the gradients of the batches the optimizer is accumulating

    class Reference(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            lo = batch * BATCH
            loss, grads = gradients(x[lo:lo + BATCH], y[lo:lo + BATCH])
            ref["losses"].append(loss)
            ref["norms"].append(per_layer(grads))
            if accumulate:   # the optimizer applies the mean of every K batches' gradients
                window.append([np.asarray(g, np.float64) for g in grads])
                if len(window) == accumulate:
                    ref["acc_norms"].append(per_layer([sum(gs) / accumulate
                                                       for gs in zip(*window)]))
                    window.clear()
                else:
                    ref["acc_norms"].append(None)

        def on_train_batch_end(self, batch, logs=None):
            ref["weight_norms"].append(per_layer(current("trainable_variables")))
            if len(ref["weight_norms"]) == 1:
                ref["unit_means"].append(kernel_means())    # what the chord starts from

        def on_epoch_end(self, epoch, logs=None):
            ref["unit_means"].append(kernel_means())

    callbacks = [Reference(), grad_son,
                 ListenToLoss(min_freq=700, max_freq=900, out_dir=out / "run", live=False, step_s=0.1),
                 WeightsDense(which_layer=chord_layer, harmony="minor")]
    history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
                        callbacks=callbacks)
    ref["history"] = {k: [float(v) for v in vs] for k, vs in history.history.items()}
    ref["precision"] = precision
    if loss_scale is not None:
        ref["initial_loss_scale"] = loss_scale
        ref["final_loss_scale"] = float(keras.ops.convert_to_numpy(optimizer.dynamic_scale.value))
    (out / "reference.json").write_text(json.dumps(ref))
    print(out.name, "done:", len(ref["losses"]), "steps", flush=True)


if __name__ == "__main__":
    main()

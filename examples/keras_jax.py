"""Hear ``model.fit`` on Keras's JAX backend: loss tone, gradient tones and weight chord.

    python examples/keras_jax.py [OUT_DIR]          (pip install auralize[jax])

The gradient norms are computed inside the jit-compiled train step and come back
as the ``gradient_norm_<layer>`` metrics; the three callbacks share one recording.
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from auralize.keras import GradientSonification, ListenToLoss, WeightsDense  # noqa: E402

out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/keras_jax"
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8)).astype("float32")
y = (x[:, :2].sum(axis=1) > 0).astype("int32")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
grad_son = GradientSonification(path=os.path.join(out_dir, "grads"), model=model, plot=False)
model.compile(optimizer=keras.optimizers.SGD(0.2), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"] + grad_son.metrics)     # gradient_norm_<layer> in the logs
history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[
    grad_son, ListenToLoss(out_dir=out_dir, live=False, step_s=0.1), WeightsDense(harmony="minor")])
print(f"{keras.backend.backend()}: last gradient norms "
      + ", ".join(f"{k[len('gradient_norm_'):]} {v[-1]:.3f}" for k, v in history.history.items()
                  if k.startswith("gradient_norm_")))
print(f"wrote {grad_son.result.wav_path}")

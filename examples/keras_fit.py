"""Hear ``model.fit`` in Keras 3 (torch backend): loss tone, alarm and earcons.

    python examples/keras_fit.py [OUT_DIR]
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from auralize.keras import SonifyCallback  # noqa: E402

out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/keras"
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 8)).astype("float32")
y = (x[:, :2].sum(axis=1) > 0).astype("int32")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(2, activation="softmax")])
model.compile(optimizer=keras.optimizers.SGD(0.2), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
sound = SonifyCallback(mappings=["loss", "alarm", "earcons"], out_dir=out_dir, step_s=0.03)
model.fit(x, y, batch_size=32, epochs=3, validation_split=0.25, verbose=0, callbacks=[sound])
print(f"wrote {sound.result.wav_path}")

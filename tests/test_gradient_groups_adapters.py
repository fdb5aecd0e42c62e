"""groups= on the Keras callbacks and Lightning's SonifyCallback, with real (small) training."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from adapter_util import RecordingSonifier, close, digits

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def test_keras_groups_one_voice_per_pattern_with_the_true_group_norm():
    from auralize.keras import GradientSonification  # first: it chooses the torch backend

    keras = pytest.importorskip("keras")

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu", name="enc_a"),
        keras.layers.Dense(16, activation="relu", name="enc_b"),
        keras.layers.Dense(10, activation="softmax", name="head"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1))
    son = RecordingSonifier()
    grad_son = GradientSonification(path="unused", model=model, sonifier=son,
                                    groups=["enc_*", "head"])
    assert grad_son.layer_names == ["enc_*", "head"]
    norms = []

    class Reference(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            sq = sum(v.value.grad.norm().item() ** 2 for name in ("enc_a", "enc_b")
                     for v in self.model.get_layer(name).trainable_weights)
            norms.append(math.sqrt(sq))

    x, y = digits(128)
    model.fit(x, keras.utils.to_categorical(y, 10).astype("float32"), batch_size=64, epochs=1,
              verbose=0, callbacks=[Reference(), grad_son])
    assert len(son.records) == 2
    for rec, ref in zip(son.records, norms):
        assert list(rec.grad_norms) == ["enc_*", "head"]
        assert close(rec.grad_norms["enc_*"], ref)


def test_lightning_groups_callable():
    from auralize.lightning import SonifyCallback, pl

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                                     nn.Linear(32, 10))

        def training_step(self, batch, batch_idx):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    x, y = digits(128)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=64)
    son = RecordingSonifier()
    cb = SonifyCallback(sonifier=son, groups=lambda n: "last" if n == "net.4" else "body")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[cb])
        trainer.fit(Net(), loader)
    assert len(son.records) == 2
    assert all(list(r.grad_norms) == ["body", "last"] for r in son.records)
    assert all(r.weight_stats and set(r.weight_stats) == {"body", "last"} for r in son.records)
    assert np.isfinite([r.grad_norms["body"] for r in son.records]).all()

"""Small, real training runs on scikit-learn's digits set (ships with scikit-learn).

The demo trains soNNify's demo CNN (or a close cousin sized for 8x8 images);
the sweep trains the gradient-sonification seed's CNN and DNN over learning
rates, optimizers and activations.  Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from auralize.errors import AuralizeError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "linear": nn.Identity,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}
OPTIMIZERS = {
    "sgd": torch.optim.SGD,
    "adam": torch.optim.Adam,
    "rmsprop": torch.optim.RMSprop,
    "adadelta": torch.optim.Adadelta,
}
MODELS = ("sonnify_cnn", "cnn", "dnn")


@dataclass
class DigitsData:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor


def load_digits_data(*, unbalanced_class: int | None = None, val_fraction: float = 0.1,
                     seed: int = 0) -> DigitsData:
    """The 1797 8x8 digit images as float tensors in [0, 1], shape (N, 1, 8, 8).

    Parameters
    ----------
    unbalanced_class : int, optional
        soNNify's unbalanced variant: keep only one training sample of this class.
    val_fraction : float
        Share held out for validation (soNNify: 0.1).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    n_val = int(round(len(x) * val_fraction))
    x_train, y_train, x_val, y_val = x[n_val:], y[n_val:], x[:n_val], y[:n_val]
    if unbalanced_class is not None:
        if not 0 <= unbalanced_class <= 9:
            raise AuralizeError(f"unbalanced class must be a digit 0-9, got {unbalanced_class}")
        idx = torch.nonzero(y_train == unbalanced_class).flatten()
        keep = torch.ones(len(y_train), dtype=torch.bool)
        keep[idx[1:]] = False
        x_train, y_train = x_train[keep], y_train[keep]
    return DigitsData(x_train, y_train, x_val, y_val)


class SonnifyCNN(nn.Module):
    """soNNify's demo CNN on 8x8 inputs: conv32-pool-conv64-pool-dropout-dense10."""

    def __init__(self, activation: str = "relu") -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.act1, self.act2 = act(), act()
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(64 * 2 * 2, 10)

    def forward(self, x):
        x = self.pool(self.act1(self.conv1(x)))
        x = self.pool(self.act2(self.conv2(x)))
        return self.fc(self.dropout(torch.flatten(x, 1)))


def build_model(name: str, activation: str = "relu") -> nn.Module:
    """``sonnify_cnn`` (the demo), ``cnn`` or ``dnn`` (the gradient seed's sweep models)."""
    if activation not in ACTIVATIONS:
        raise AuralizeError(
            f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
    act = ACTIVATIONS[activation]
    if name == "sonnify_cnn":
        return SonnifyCNN(activation)
    if name == "cnn":  # Conv(32,3,same) x2 + MaxPool2 + Dense(32) + Dense(10)
        return nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), act(), nn.Conv2d(32, 32, 3, padding=1), act(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 32), act(), nn.Linear(32, 10),
        )
    if name == "dnn":  # four dense layers of 32, the last one 10 wide
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 32), act(), nn.Linear(32, 32), act(),
            nn.Linear(32, 32), act(), nn.Linear(32, 10),
        )
    raise AuralizeError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def build_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    try:
        return OPTIMIZERS[name](params, lr=lr)
    except KeyError:
        raise AuralizeError(
            f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}") from None


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = (model(x).argmax(1) == y).float().mean().item()
    model.train()
    return correct


def train(model: nn.Module, optimizer: torch.optim.Optimizer, data: DigitsData, *,
          epochs: int, batch_size: int, watch_kwargs: dict, seed: int = 0,
          progress: bool = True) -> dict:
    """Train with cross-entropy while ``auralize.torch.watch`` listens.

    Returns
    -------
    dict
        ``val_accuracy``, ``val_loss``, ``steps`` and the ``result`` of the session.
    """
    from tqdm import tqdm

    from auralize.torch import watch

    torch.manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()
    n = len(data.x_train)
    steps = 0
    val_loss = float("nan")
    with watch(model, optimizer, **watch_kwargs) as w:
        bar = tqdm(range(epochs), desc="training", unit="epoch", disable=not progress)
        for _epoch in bar:
            order = torch.randperm(n)
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                optimizer.zero_grad()
                loss = loss_fn(model(data.x_train[idx]), data.y_train[idx])
                loss.backward()
                optimizer.step()
                w.log_loss(loss)
                steps += 1
            with torch.no_grad():
                model.eval()
                val_loss = float(loss_fn(model(data.x_val), data.y_val))
                model.train()
            acc = accuracy(model, data.x_val, data.y_val)
            w.end_epoch(val_loss=val_loss, val_accuracy=acc)
            bar.set_postfix(val_loss=f"{val_loss:.3f}", val_acc=f"{acc:.2f}")
    acc = accuracy(model, data.x_val, data.y_val)
    return {"val_accuracy": acc, "val_loss": val_loss, "steps": steps,
            "result": getattr(w, "result", None)}


# -- the same demo in Keras 3 (torch backend, or KERAS_BACKEND's) ----------------------

KERAS_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "rmsprop": "RMSprop", "adadelta": "Adadelta"}


def _keras():
    """Keras, imported through :mod:`auralize.keras` so that it runs on the torch backend
    (unless ``KERAS_BACKEND`` chose another)."""
    from auralize import keras as auralize_keras

    return auralize_keras.keras


def keras_backend() -> str:
    """The backend Keras runs on (torch unless ``KERAS_BACKEND`` chose jax or tensorflow)."""
    return _keras().backend.backend()


def build_keras_cnn(seed: int = 0):
    """soNNify's demo CNN in Keras 3, sized for 8x8 inputs as :class:`SonnifyCNN`:
    Conv(32, 3x3, relu) -> MaxPool2 -> Conv(64, 3x3, relu) -> MaxPool2 -> Flatten ->
    Dropout 0.5 -> Dense(10, softmax).  ``same`` padding keeps the 8x8 maps as large as
    soNNify's 28x28 ones were relative to the image."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax", name="fc"),
    ], name="sonnify_cnn")


def train_keras(data: DigitsData, *, epochs: int, batch_size: int, optimizer: str, lr: float,
                sonifier_kwargs: dict, seed: int = 0, progress: bool = True) -> dict:
    """Train :func:`build_keras_cnn` with ``model.fit`` while soNNify's callbacks listen.

    ``ListenToLoss`` and ``WeightsDense`` share one Sonifier (``sonifier_kwargs``: its
    ``out_dir``, ``mappings``, ``live``...), which also hears the gradient norms (on every
    backend: see :mod:`auralize.keras`).  Categorical cross-entropy, as soNNify.

    Returns
    -------
    dict
        ``val_accuracy``, ``val_loss``, ``steps`` and the ``result`` of the session.
    """
    keras = _keras()
    from auralize.keras import ListenToLoss, WeightsDense
    from auralize.sonify.session import Sonifier

    if optimizer not in KERAS_OPTIMIZERS:
        raise AuralizeError(
            f"unknown optimizer {optimizer!r}; choose from {', '.join(KERAS_OPTIMIZERS)}")
    model = build_keras_cnn(seed)
    model.compile(loss="categorical_crossentropy", metrics=["accuracy"],
                  optimizer=getattr(keras.optimizers, KERAS_OPTIMIZERS[optimizer])(
                      learning_rate=lr))

    def nhwc(x: torch.Tensor):
        return x.permute(0, 2, 3, 1).numpy()

    def onehot(y: torch.Tensor):
        return keras.utils.to_categorical(y.numpy(), 10).astype("float32")

    x_val, y_val = nhwc(data.x_val), onehot(data.y_val)
    son = Sonifier(**sonifier_kwargs)
    try:
        history = model.fit(nhwc(data.x_train), onehot(data.y_train), epochs=epochs,
                            batch_size=batch_size, validation_data=(x_val, y_val),
                            shuffle=True, verbose=1 if progress else 0,
                            callbacks=[ListenToLoss(sonifier=son), WeightsDense(sonifier=son)])
    finally:
        result = son.close()
    val_loss, val_acc = model.evaluate(x_val, y_val, verbose=0)
    steps = epochs * -(-len(data.x_train) // batch_size)
    return {"val_accuracy": float(val_acc), "val_loss": float(val_loss), "steps": steps,
            "result": result, "history": history.history}

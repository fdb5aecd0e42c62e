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

import os
import shutil
import warnings
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

from auralize.audio.files import read_audio, write_audio
from auralize.audio.plots import save_spectrogram
from auralize.errors import AuralizeError
from auralize.fit_session import DEFAULT_MAPPINGS, FitSession
from auralize.layer_groups import group_layers
from auralize.sonify.mappings import GradientTones, LossTone, WeightChord

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

from auralize.keras_layers import (  # noqa: E402 - needs keras imported
    GradientNormMetric,
    _ModelTelemetry,
    dense_layers,
    trainable_layers,
)
from auralize.keras_record import _Recorder  # noqa: E402

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

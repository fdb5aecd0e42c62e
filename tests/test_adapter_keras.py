"""auralize.keras callbacks with real Keras 3 (torch backend) training on digits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from adapter_util import RecordingSonifier, check_run_folder, close, digits
from auralize import AuralizeError
from auralize.keras import (
    GradientSonification,
    ListenToLoss,
    WeightsDense,
    backend_gives_gradients,
)

keras = pytest.importorskip("keras")

# Keras's own numpy conversion (keras/src/backend/torch/core.py) under numpy 2
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

BATCH = 64


def data(n=256):
    x, y = digits(n)
    return x, keras.utils.to_categorical(y, 10).astype("float32")


def mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu", name="hidden"),
        keras.layers.Dense(16, activation="tanh", name="mid"),
        keras.layers.Dense(10, activation="softmax", name="out"),
    ])


class Reference(keras.callbacks.Callback):
    """The slow way: batch loss before the update, per-variable grad norms after backward."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y
        self.losses, self.norms, self.running = [], [], []
        self.i = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.i = 0

    def on_train_batch_begin(self, batch, logs=None):
        xb = self.x[self.i:self.i + BATCH]
        yb = self.y[self.i:self.i + BATCH]
        pred = self.model(xb, training=True)
        loss = keras.losses.categorical_crossentropy(yb, pred)
        self.losses.append(float(np.mean(keras.ops.convert_to_numpy(loss))))
        self.i += BATCH

    def on_train_batch_end(self, batch, logs=None):
        out = {}
        for layer in self.model.layers:
            sq = [v.value.grad.norm().item() ** 2 for v in layer.trainable_weights]
            if sq:
                out[layer.name] = math.sqrt(sum(sq))
        self.norms.append(out)
        self.running.append(float(logs["loss"]))


def test_torch_backend_is_the_default():
    assert keras.backend.backend() == "torch" and backend_gives_gradients()


def test_gradient_sonification_metrics_files_and_norms(tmp_path):
    x, y = data()
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    grad_son = GradientSonification(path=tmp_path / "sample", model=model,
                                    out_dir=tmp_path / "run")
    assert [m.name for m in grad_son.metrics] == [
        "gradient_norm_hidden", "gradient_norm_mid", "gradient_norm_out"]
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.1),
                  metrics=["accuracy"] + grad_son.metrics)
    ref = Reference(x, y)
    hist = model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
                     callbacks=[ref, grad_son])
    for name in ("gradient_norm_hidden", "gradient_norm_mid", "gradient_norm_out"):
        assert name in hist.history and len(hist.history[name]) == 2
        # the epoch's value is the last step's norm
        assert close(hist.history[name][-1], ref.norms[-1][name[len("gradient_norm_"):]])
    assert (tmp_path / "sample.wav").is_file() and (tmp_path / "sample_spectrogram.png").is_file()
    import soundfile as sf

    audio, sr = sf.read(str(tmp_path / "sample.wav"))
    assert sr == 44100 and audio.shape[1:] == (2,)  # stereo, the Sonifier's default
    # 3 layers: (3 + 2) * 10 ms per step, 8 steps, plus the session's tail
    assert 0.4 <= len(audio) / sr <= 0.4 + 0.6
    recs = check_run_folder(tmp_path / "run", n_steps=8)
    for rec, norms, loss in zip(recs, ref.norms, ref.losses):
        assert list(rec.grad_norms) == ["hidden", "mid", "out"]     # model order
        for layer, value in norms.items():
            assert close(rec.grad_norms[layer], value), (rec.step, layer)
        assert close(rec.loss, loss)
    assert [r.epoch_end for r in recs] == [False, False, False, True] * 2


def test_batch_loss_is_the_batch_own_loss_not_the_running_mean():
    x, y = data()
    model = mlp(1)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5))
    son = RecordingSonifier()
    ref = Reference(x, y)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[ref, ListenToLoss(sonifier=son)])
    recs = son.records
    assert len(recs) == len(ref.losses) == 8
    for rec, loss in zip(recs, ref.losses):
        assert close(rec.loss, loss), (rec.step, rec.loss, loss)
    # Keras's own logs hold running means, which differ after the first batch
    assert not close(ref.running[3], ref.losses[3], 1e-3)
    assert recs[3].epoch_end and "val_loss" not in recs[3].metrics


def test_running_mean_recovery_when_loss_cannot_be_captured(monkeypatch):
    """The route for backends whose compiled step hides the loss (jax, tensorflow)."""
    from auralize import keras_record

    monkeypatch.setattr(keras_record._LossCapture, "_install", lambda self: None)
    x, y = data()
    model = mlp(2)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5))
    son = RecordingSonifier()
    ref = Reference(x, y)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[ref, ListenToLoss(sonifier=son)])
    for rec, loss in zip(son.records, ref.losses):
        assert close(rec.loss, loss, 1e-4)


def test_weights_dense_unit_means_and_shared_sonifier():
    x, y = data()
    model = mlp(3)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5),
                  metrics=["accuracy"])
    son = RecordingSonifier(unit_means_requests=["mid"])
    grad_son = GradientSonification(path="unused", model=model, sonifier=son)
    model.fit(x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0, validation_split=0.25,
              callbacks=[ListenToLoss(sonifier=son), WeightsDense("mid", sonifier=son), grad_son])
    recs = son.records
    assert len(recs) == 6          # one record per step for three callbacks: 192/64 x 2
    assert all(r.grad_norms and r.loss is not None and r.weight_stats for r in recs)
    ends = [r for r in recs if r.epoch_end]
    assert len(ends) == 2 and all("val_loss" in r.metrics for r in ends)
    assert len(ends[-1].unit_means["mid"]) == 16
    kernel = keras.ops.convert_to_numpy(model.get_layer("mid").kernel)
    assert np.allclose(ends[-1].unit_means["mid"], kernel.mean(axis=0), atol=1e-7)
    assert recs[0].unit_means and not recs[1].unit_means   # chord starts at step 0
    assert son.closed == 0 and not hasattr(grad_son, "wav_path")
    with pytest.warns(UserWarning, match="decide what is heard"):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
                  callbacks=[WeightsDense("out", sonifier=son)])


def fit_error(callbacks) -> str:
    """The one-line AuralizeError that a short fit with ``callbacks`` raises."""
    x, y = data(64)
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    with pytest.raises(AuralizeError) as err:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
    msg = str(err.value)
    assert "\n" not in msg, msg
    return msg


@pytest.mark.parametrize("bad", [7, "dense_9"])
def test_bad_layer_is_one_line_error(bad):
    msg = fit_error([WeightsDense(which_layer=bad, sonifier=RecordingSonifier())])
    assert "hidden, mid, out" in msg, msg


def test_unbuilt_model_is_a_clear_error():
    model = keras.Sequential([keras.layers.Dense(4)])
    with pytest.raises(AuralizeError, match="not built"):
        GradientSonification("x", model)


def test_listen_to_loss_end_to_end_run_folder(tmp_path):
    x, y = data(192)
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5))
    cb = ListenToLoss(max_freq=500, out_dir=tmp_path / "run", live=False)
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[cb])
    recs = check_run_folder(tmp_path / "run", n_steps=6)
    assert cb.result is not None and cb.result.steps == 6
    lines = (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["loss"] == recs[0].loss


# ---------------------------------------------------------------------------------
# one session per fit
# ---------------------------------------------------------------------------------
def band_db(audio, sr, lo_hz, hi_hz):
    """Energy of ``audio`` (its mono mix) between lo_hz and hi_hz, in dB."""
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio)))) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    return 10 * np.log10(spectrum[(freqs >= lo_hz) & (freqs <= hi_hz)].sum() + 1e-12)


def three_callbacks(tmp_path, model, **loss_kwargs):
    """The README's three callbacks, tuned so that each sounds in its own band.

    Loss tone 700..900 Hz, gradient tones 2000 Hz + 100 Hz per unit of norm,
    chord of the 10-unit "out" layer: 100, 120, 150, ... 450 Hz (minor, base 100).
    """
    grad_son = GradientSonification(path=tmp_path / "grads", model=model, freq=2000.0)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5),
                  metrics=["accuracy"] + grad_son.metrics)
    return [grad_son, ListenToLoss(min_freq=700, max_freq=900, **loss_kwargs),
            WeightsDense(which_layer="out", harmony="minor")]


def test_callbacks_of_one_fit_share_one_sonifier_folder_and_recording(tmp_path):
    from auralize.cli import main as cli

    x, y = data()
    model = mlp(4)
    callbacks = three_callbacks(tmp_path, model, out_dir=tmp_path / "run", live=False)
    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=callbacks)
    son = callbacks[0].sonifier
    assert son is not None and all(cb.sonifier is son for cb in callbacks)
    assert all(cb.result is callbacks[0].result for cb in callbacks)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["run"]
    recs = check_run_folder(tmp_path / "run", n_steps=12)       # one record per step
    assert all(r.grad_norms and r.loss is not None for r in recs)
    config = json.loads((tmp_path / "run" / "sonifier.json").read_text())
    kinds = sorted(m["kind"] for m in config["mappings"])
    assert kinds == ["alarm", "gradients", "loss", "weights"]   # the two alarms are one
    loss = next(m for m in config["mappings"] if m["kind"] == "loss")
    chord = next(m for m in config["mappings"] if m["kind"] == "weights")
    assert (loss["max_freq"], chord["harmony"], chord["which_layer"]) == (900, "minor", "out")
    import soundfile as sf

    audio, sr = sf.read(str(tmp_path / "run" / "sonification.wav"), dtype="float32")
    quiet = band_db(audio, sr, 1000, 1500)       # between the three sounds
    assert band_db(audio, sr, 700, 905) > quiet + 25, "no loss tone"
    assert band_db(audio, sr, 1950, 2500) > quiet + 25, "no gradient tones"
    assert band_db(audio, sr, 110, 160) > quiet + 25, "no chord (120 and 150 Hz)"
    assert (tmp_path / "grads.wav").read_bytes() == (tmp_path / "run" / "sonification.wav").read_bytes()
    # the folder re-renders to the same recording
    assert cli(["render", str(tmp_path / "run"), "-o", str(tmp_path / "again.wav"), "--no-plot"]) == 0
    assert (tmp_path / "again.wav").read_bytes() == (tmp_path / "run" / "sonification.wav").read_bytes()
    # a second fit is a new session
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
    assert callbacks[1].sonifier is not son and all(cb.sonifier is callbacks[1].sonifier
                                                    for cb in callbacks)
    check_run_folder(tmp_path / "run", n_steps=4)


def test_conflicting_settings_of_one_fit_are_one_line_errors(tmp_path):
    msg = fit_error([ListenToLoss(out_dir=tmp_path / "a"), WeightsDense(out_dir=tmp_path / "b")])
    assert "ListenToLoss" in msg and "WeightsDense" in msg and "out_dir" in msg, msg
    msg = fit_error([ListenToLoss(max_freq=500), ListenToLoss(max_freq=800)])
    assert "max_freq=500 vs 800" in msg, msg
    assert not any(tmp_path.iterdir())            # nothing was written


@pytest.mark.audio
def test_one_fit_one_live_stream(jack_server, jack_recorder, tmp_path):
    """The README example with a sound device: one PortAudio client plays, not three."""
    rec = jack_recorder()
    x, y = data()
    model = mlp(5)
    callbacks = three_callbacks(tmp_path, model, out_dir=tmp_path / "run", live=True)
    model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=callbacks)
    cap = rec.stop()
    clients = {port.split(":")[0] for port in cap.connected}
    assert len(clients) == 1, cap.connected
    result = callbacks[0].result
    assert result.stats["live"]["frames_played"] > 0
    assert np.abs(cap.data).max() > 0.01, "nothing audible reached JACK"


def test_a_callback_default_holds_only_when_every_callback_of_the_fit_has_it(monkeypatch):
    """GradientSonification alone stays silent (the seed wrote files only); with
    ListenToLoss in the same fit the session plays as the Sonifier decides."""
    from auralize import fit_session

    made = []

    def sonifier(**kwargs):
        made.append(kwargs)
        return RecordingSonifier()

    monkeypatch.setattr(fit_session, "Sonifier", sonifier)
    x, y = data(128)
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[GradientSonification("unused", model, plot=False)])
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[GradientSonification("unused", model, plot=False), ListenToLoss()])
    assert made[0]["live"] is False and "live" not in made[1]
    assert [m["kind"] for m in made[1]["mappings"]] == ["gradients", "alarm", "loss"]


def test_fit_that_raised_is_finished_by_the_next_fit(tmp_path):
    """Keras calls no on_train_end when fit raises: the next fit closes that session."""

    class Boom(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                raise RuntimeError("boom")

    x, y = data()
    model = mlp()
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5))
    callbacks = [ListenToLoss(out_dir=tmp_path / "run", live=False), WeightsDense()]
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[*callbacks, Boom()])
    crashed = callbacks[0].sonifier
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=callbacks)
    assert crashed.close().steps == 3                 # closed, with the steps it heard
    assert callbacks[0].sonifier is not crashed and callbacks[1].sonifier is callbacks[0].sonifier
    check_run_folder(tmp_path / "run", n_steps=4)

"""auralize.keras on Keras's jax (and tensorflow) backends: real fits in subprocesses.

Keras fixes its backend when it is imported, so each backend runs in its own
process (tests/keras_backend_run.py): three ``model.fit`` runs with
``GradientSonification``, ``ListenToLoss`` and ``WeightsDense`` together, each
beside a reference computed in the same process by the backend's own autodiff
from the weights before every step.  These tests read back the run folders.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from adapter_util import check_run_folder
from audio_analysis import dominant_frequency
from auralize.sonify.scales import chord_pitches

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "keras_backend_run.py"

# name -> model, precision, optimizer (+ LossScaleOptimizer)
FITS = {
    "mlp": "mlp:float32:sgd",
    "cnn_bf16": "cnn:mixed_bfloat16:adam:lso",
    "demo_cnn": "demo:float32:sgd",
    # a loss scale of 2**127 and inputs x128: some steps' scaled gradients overflow
    # float32 (the first on jax, the seventh on tensorflow: other initial weights); the
    # optimizer skips each of them and halves its scale
    "skipping": "mlp:float32:adam:lso=127:x=128",
}
# gradient accumulation over 3 batches (the optimizer's gradient_accumulation_steps)
ACCUM_FIT = {"accumulating": "mlp:float32:sgd:acc=3"}
STEPS = 2 * math.ceil(192 / 32)     # 2 epochs of 192 digits in batches of 32
STEP_S = 0.1                        # the session's step slot (ListenToLoss(step_s=0.1))


def backend_env(backend: str, **extra) -> dict:
    path = [str(ROOT / "src")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=os.pathsep.join(path),
                MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="3", **extra)


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


BACKENDS = [
    pytest.param("jax", marks=pytest.mark.skipif(not installed("jax"),
                                                 reason="jax not installed (pip install auralize[jax])")),
    pytest.param("tensorflow", marks=pytest.mark.skipif(
        not installed("tensorflow"), reason="tensorflow not installed (pip install auralize[tensorflow])")),
]


@pytest.fixture(scope="module", params=BACKENDS)
def fits(request, tmp_path_factory):
    """Run the three fits on one backend; returns (backend, out_dir)."""
    backend = request.param
    out = tmp_path_factory.mktemp(f"keras_{backend}")
    cmd = [sys.executable, str(SCRIPT), str(out)]
    for name, spec in {**FITS, **ACCUM_FIT}.items():
        cmd += ["--fit", f"{name}:{spec}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=backend_env(backend))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return backend, out


def load(out: Path, name: str):
    ref = json.loads((out / name / "reference.json").read_text())
    recs = check_run_folder(out / name / "run", n_steps=STEPS)   # one record per step
    return ref, recs


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FITS))
def test_gradient_norms_are_the_unscaled_norms_the_optimizer_applies(fits, name):
    backend, out = fits
    ref, recs = load(out, name)
    assert ref["backend"] == backend and len(ref["losses"]) == STEPS
    tol = 2e-2 if ref["precision"] == "mixed_bfloat16" else 1e-4
    skipped = 0
    for rec, norms, loss in zip(recs, ref["norms"], ref["losses"]):
        assert rel(rec.loss, loss) <= tol, (name, rec.step, rec.loss, loss)   # the batch's own
        if not rec.grad_norms:
            skipped += 1
            continue
        assert list(rec.grad_norms) == ref["layers"]          # model order, every layer
        for layer, value in norms.items():
            assert rel(rec.grad_norms[layer], value) <= tol, (name, rec.step, layer,
                                                               rec.grad_norms[layer], value)
    # only steps the loss-scale optimizer skipped lack norms (each skip halved its scale)
    halvings = round(math.log2(ref.get("initial_loss_scale", 1) / ref.get("final_loss_scale", 1)))
    assert skipped == halvings, (name, skipped, halvings)
    if name == "skipping":
        assert skipped >= 1
    # the metrics: History holds each epoch's last step, and nothing of auralize's plumbing
    history = ref["history"]
    assert not any(k.startswith("_auralize") for k in history)
    for layer in ref["layers"]:
        epochs = history[f"gradient_norm_{layer}"]
        assert len(epochs) == 2
        if recs[-1].grad_norms:
            assert rel(epochs[-1], ref["norms"][-1][layer]) <= tol
        else:
            assert math.isnan(epochs[-1])     # a skipped step: no norm, not inf


@pytest.mark.slow
def test_accumulated_gradients_one_gradient_record_per_optimizer_step(fits):
    """gradient_accumulation_steps=3: the norms are those of the mean gradient the optimizer
    applies, on the batch that applies it; the batches that only add up have none."""
    backend, out = fits
    ref, recs = load(out, "accumulating")
    applied = [k for k, norms in enumerate(ref["acc_norms"]) if norms is not None]
    assert applied == [2, 5, 8, 11]
    assert [k for k, rec in enumerate(recs) if rec.grad_norms] == applied
    for k in applied:
        assert list(recs[k].grad_norms) == ref["layers"]
        for layer, value in ref["acc_norms"][k].items():
            assert rel(recs[k].grad_norms[layer], value) <= 1e-4, (k, layer)
            # not the batch's own gradient: the mean of three differs
            assert rel(recs[k].grad_norms[layer], ref["norms"][k][layer]) > 1e-3, (k, layer)
    for rec, loss in zip(recs, ref["losses"]):
        assert rel(rec.loss, loss) <= 1e-4      # the loss is heard per batch
    history = ref["history"]
    for layer in ref["layers"]:    # the metric: each epoch's last batch applies a step
        assert rel(history[f"gradient_norm_{layer}"][-1], ref["acc_norms"][11][layer]) <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FITS))
def test_weights_are_the_trained_weights_not_the_purged_variables(fits, name):
    """Mid-epoch, jax keeps the weights outside the variables: the chord and the weight
    statistics must follow the training state, not re-drawn initial values."""
    backend, out = fits
    ref, recs = load(out, name)
    # per-layer weight statistics are computed only for a mapping that plays them (none
    # of these does: telemetry rows stay small); the chord's per-unit means carry the check
    assert not any(rec.weight_stats for rec in recs)
    chords = [rec.unit_means[ref["chord_layer"]] for rec in recs if rec.unit_means]
    assert len(chords) == len(ref["unit_means"]) == 3      # after step 0, at both epoch ends
    for got, want in zip(chords, ref["unit_means"]):
        assert np.allclose(got, want, rtol=1e-5, atol=1e-7)


def band(audio: np.ndarray, sr: int, lo_hz: float, hi_hz: float) -> np.ndarray:
    spec = np.fft.rfft(audio)
    freqs = np.fft.rfftfreq(len(audio), 1 / sr)
    spec[(freqs < lo_hz) | (freqs > hi_hz)] = 0
    return np.fft.irfft(spec, len(audio))


@pytest.mark.slow
def test_recording_holds_the_loss_tone_the_gradient_tones_and_the_chord(fits):
    """What a listener hears: the loss tone at 700 + 200 L/L0 Hz in each step's slot,
    layer i's gradient tone at 2000 + 100 ||g_i|| Hz in its 10 ms, the minor chord on 100 Hz."""
    backend, out = fits
    ref, recs = load(out, "mlp")
    audio, sr = sf.read(str(out / "mlp" / "run" / "sonification.wav"), dtype="float64")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    slot = int(STEP_S * sr)
    losses = ref["losses"]
    loss_band = band(audio, sr, 600, 1000)
    for k, loss in enumerate(losses):
        want = 700 + 200 * min(loss / losses[0], 1.0)
        heard = dominant_frequency(loss_band[k * slot + slot // 2:(k + 1) * slot], sr)
        assert heard == pytest.approx(want, abs=3), (k, heard, want)
    grad_band = band(audio, sr, 1900, 2600)
    tone = int(0.01 * sr)
    for k, norms in enumerate(ref["norms"]):
        for i, layer in enumerate(ref["layers"]):
            start = k * slot + i * tone
            heard = dominant_frequency(grad_band[start + tone // 5:start + tone - tone // 20], sr)
            assert heard == pytest.approx(2000 + 100 * norms[layer], abs=15), (k, layer, heard)
    # the chord's lowest five notes (100, 120, 150, 200, 240 Hz): over the first epoch
    # (before the epoch end detunes them) the strongest frequency within 5 Hz of each is
    # that note, 6 dB or more above the band's median level (its filter sweeps make
    # sidebands, so the band between the notes is not silent)
    low = sorted(set(chord_pitches(10, 100.0, "minor")))[:5]
    first = audio[:int(STEPS // 2 * STEP_S * sr)]
    n_fft = 1 << 18
    power = np.abs(np.fft.rfft(first * np.hanning(len(first)), n_fft)) ** 2
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    floor_db = 10 * np.log10(np.median(power[(freqs >= 90) & (freqs <= 480)]))
    for pitch in low:
        near = np.abs(freqs - pitch) <= 5
        k = int(np.argmax(power[near]))
        peak_hz, peak_db = freqs[near][k], 10 * np.log10(power[near][k])
        assert abs(peak_hz - pitch) < 0.5 and peak_db > floor_db + 6, (pitch, peak_hz,
                                                                       peak_db - floor_db)


@pytest.mark.slow
def test_a_skipped_step_has_no_gradient_tones(fits):
    """A step the loss-scale optimizer skipped is not heard as an explosion: its slot has
    no gradient tone (>= 30 dB below the others'), the loss tone still sounds."""
    backend, out = fits
    ref, recs = load(out, "skipping")
    audio, sr = sf.read(str(out / "skipping" / "run" / "sonification.wav"), dtype="float64")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    slot = int(STEP_S * sr)
    grad_band, loss_band = band(audio, sr, 1900, 10000), band(audio, sr, 600, 1000)

    def rms_db(x, k):
        return 10 * np.log10(np.mean(x[k * slot:(k + 1) * slot] ** 2) + 1e-30)

    skipped = [k for k, rec in enumerate(recs) if not rec.grad_norms]
    heard = [k for k, rec in enumerate(recs) if rec.grad_norms]
    assert skipped and heard
    loudest_skipped = max(rms_db(grad_band, k) for k in skipped)
    assert loudest_skipped < min(rms_db(grad_band, k) for k in heard) - 30
    assert min(rms_db(loss_band, k) for k in skipped) > loudest_skipped + 30


# ---------------------------------------------------------------------------------
# errors, the demo, the example
# ---------------------------------------------------------------------------------
def run_python(code: str, backend: str, tmp_path: Path, timeout: float = 300):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=backend_env(backend), cwd=tmp_path)


@pytest.mark.slow
def test_missing_backend_is_one_line_naming_the_extra(tmp_path):
    """KERAS_BACKEND=jax without jax: auralize notices before Keras fails deep inside."""
    hide = "import sys; sys.modules['jax'] = None; sys.modules['tensorflow'] = None\n"
    code = hide + "import auralize.keras"
    for backend, extra in (("jax", "auralize[jax]"), ("tensorflow", "auralize[tensorflow]")):
        proc = run_python(code, backend, tmp_path)
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode != 0 and "AuralizeError" in last and f"pip install {extra}" in last, \
            proc.stderr[-2000:]
    code = hide + ("from auralize.cli import main\n"
                   "sys.exit(main(['demo', '--framework', 'keras', '--epochs', '1', '--no-live',"
                   f" '--out', {str(tmp_path / 'demo')!r}]))")
    proc = run_python(code, "jax", tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "pip install auralize[jax]" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]


def test_backend_that_cannot_train_is_one_line_error(tmp_path):
    code = ("import keras\nfrom auralize import AuralizeError\n"
            "from auralize.keras import GradientSonification\n"
            "m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])\n"
            "try:\n    GradientSonification('g', m)\nexcept AuralizeError as e:\n    print(e)\n")
    proc = run_python(code, "numpy", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1 and "'numpy'" in lines[0] and "jax" in lines[0], proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(not installed("jax"), reason="jax not installed")
def test_demo_trains_on_jax(tmp_path):
    from auralize.cli import main  # noqa: F401 - the CLI imports in this process too

    code = ("import sys\nfrom auralize.cli import main\n"
            "sys.exit(main(['demo', '--framework', 'keras', '--epochs', '1', '--no-live', "
            f"'--out', {str(tmp_path / 'demo')!r}]))")
    proc = run_python(code, "jax", tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Keras 3 (jax backend)" in proc.stdout, proc.stdout
    recs = check_run_folder(tmp_path / "demo")
    assert recs and all(r.grad_norms and r.loss is not None for r in recs)

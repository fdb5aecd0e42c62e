"""MLflow: a watch() run's sound in the active run's artifacts, and MLflow runs followed and
rendered, against a real local tracking server (``mlflow server``, SQLite store)."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from auralize.audio.files import read_audio
from auralize.errors import AuralizeError
from auralize.sonify.logs import read_telemetry
from trackerutil import MlflowLogger, MlflowServer, mlflow_server  # noqa: F401

# a tracking server starts per module (~15-40 s) and real training runs: slow on a busy machine
pytestmark = pytest.mark.slow
mlflow = pytest.importorskip("mlflow")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def gpt2(n_layer: int = 12):
    """A 12-block GPT-2 with random weights, tiny width (fast on the CPU)."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=n_layer, n_embd=16, n_head=2, n_positions=16,
                                     vocab_size=64, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


def train(out_dir, steps_per_epoch: int, epochs: int, on_epoch=None, **kwargs):
    """A real (tiny) language-model training loop under ``watch``; returns the RunResult."""
    from auralize.torch import watch

    model = gpt2()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    data = torch.randint(0, 64, (8, 12), generator=gen)
    with watch(model, opt, out_dir=out_dir, mappings=["loss", "gradients", "alarm"], live=False,
               step_s=0.05, **kwargs) as w:
        for epoch in range(epochs):
            for _ in range(steps_per_epoch):
                loss = model(data, labels=data).loss
                opt.zero_grad()
                loss.backward()
                opt.step()
                w.log_loss(loss.item())
            w.end_epoch()
            if on_epoch is not None:
                on_epoch(epoch, w.sonifier)
    return w.sonifier._result


def artifact_paths(client, run_id: str, path: str = "") -> set[str]:
    out = set()
    for info in client.list_artifacts(run_id, path or None):
        out |= artifact_paths(client, run_id, info.path) if info.is_dir else {info.path}
    return out


def test_watch_logs_its_sound_to_the_active_mlflow_run(mlflow_server, tmp_path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(mlflow_server.uri)
    with mlflow.start_run() as run:
        result = train(tmp_path / "run", steps_per_epoch=8, epochs=3)
    client = MlflowClient(mlflow_server.uri)
    paths = artifact_paths(client, run.info.run_id)
    assert {"auralize/sonification.wav", "auralize/spectrogram.png", "auralize/sonifier.json"} <= paths
    epochs = sorted(p for p in paths if p.startswith("auralize/epochs/"))
    assert epochs == [f"auralize/epochs/epoch_{e:04d}.{ext}" for e in range(3) for ext in ("png", "wav")]
    assert result.stats["trackers"]["mlflow"]["epochs"] == 3
    assert result.stats["trackers"]["mlflow"]["final"] is True

    down = tmp_path / "down"
    client.download_artifacts(run.info.run_id, "auralize", str(down))
    # the whole recording arrives as the run folder holds it, byte for byte
    assert (down / "auralize/sonification.wav").read_bytes() == result.wav_path.read_bytes()
    assert json.loads((down / "auralize/sonifier.json").read_text()) == \
        json.loads((tmp_path / "run/sonifier.json").read_text())
    # each epoch's file is that epoch's part of the recording (8 steps of 0.05 s)
    whole, sr = read_audio(result.wav_path, mono=True)
    per_epoch = int(round(8 * 0.05 * sr))
    for epoch in range(3):
        part, part_sr = read_audio(down / f"auralize/epochs/epoch_{epoch:04d}.wav", mono=True)
        assert part_sr == sr and len(part) == per_epoch
        ref = whole[epoch * per_epoch:(epoch + 1) * per_epoch]
        assert np.abs(part - ref).max() < 1e-3  # 16-bit WAV twice
        assert np.abs(part).max() > 0.01  # sound, not silence
    from PIL import Image

    with Image.open(down / "auralize/spectrogram.png") as image:
        assert image.size[0] > 300
    with Image.open(down / "auralize/epochs/epoch_0001.png") as image:
        assert image.size[0] > 300


def test_log_to_turns_mlflow_off(mlflow_server, tmp_path):  # noqa: F811
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(mlflow_server.uri)
    with mlflow.start_run() as run:
        result = train(tmp_path / "run", steps_per_epoch=3, epochs=2, log_to=())
    assert "trackers" not in result.stats
    assert artifact_paths(MlflowClient(mlflow_server.uri), run.info.run_id) == set()


def test_a_tracking_server_that_dies_mid_run_costs_one_warning(tmp_path, monkeypatch):
    # the user's MLflow settings for a server that may vanish: no minutes of retries
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = MlflowServer(tmp_path / "server").start()
    try:
        mlflow.set_tracking_uri(server.uri)
        mlflow.start_run()

        def kill_after_first(epoch, son):
            # training waits here: epoch 0's upload needs the recording's idle flush
            if epoch == 0:
                import time

                uploads = son._trackers.trackers["mlflow"].stats
                deadline = time.monotonic() + 120  # epoch 0 reached the server, then it dies
                while time.monotonic() < deadline and uploads.epochs < 1:
                    time.sleep(0.05)
                server.kill()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = train(tmp_path / "run", steps_per_epoch=5, epochs=4, on_epoch=kill_after_first)
        try:
            mlflow.end_run()
        except Exception:  # noqa: BLE001 - the user's own call to the dead server
            pass
    finally:
        server.kill()
    ours = [w for w in caught if "MLflow" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert "run folder is complete" in str(ours[0].message)
    stats = result.stats["trackers"]["mlflow"]
    assert stats["epochs"] == 1 and stats["final"] is False and stats["error"]
    # training went on: every step is in the run folder and the recording
    records = read_telemetry(tmp_path / "run/telemetry.jsonl")
    assert [r.step for r in records] == list(range(20))
    audio, sr = read_audio(result.wav_path, mono=True)
    assert len(audio) >= int(20 * 0.05 * sr)


def auralize(*args, timeout: float = 180.0):
    return subprocess.run([sys.executable, "-m", "auralize", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize(("steps", "interval_s"), [(200, 0.02), (40, 0.25)])
def test_follow_writes_every_step_of_an_mlflow_run(mlflow_server, tmp_path, steps,  # noqa: F811
                                                    interval_s):
    logger = MlflowLogger(mlflow_server.uri, steps, interval_s, block=10)
    follower = subprocess.Popen(
        [sys.executable, "-m", "auralize", "follow", f"mlflow:{logger.run_id}", "-o",
         tmp_path / "heard", "--live", "off", "--sound", "loss", "--poll-s", "0.1", "--from-start",
         "--tracking-uri", mlflow_server.uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    # the logger starts once the follower is up (--from-start: steps before its first look count)
    import time

    deadline = time.monotonic() + 120
    while not (tmp_path / "heard/telemetry.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    logger.go()
    logged = logger.finish()
    out, err = follower.communicate(timeout=120)  # it ends by itself: the run finished
    assert follower.returncode == 0, err
    assert f"heard {steps} steps" in out
    records = read_telemetry(tmp_path / "heard/telemetry.jsonl")
    assert [r.step for r in records] == [s for s, _, _ in logged] == list(range(steps))
    assert [r.loss for r in records] == [loss for _, _, loss in logged]


def test_render_an_mlflow_run_equals_rendering_its_metrics_csv(mlflow_server, tmp_path):  # noqa: F811
    logger = MlflowLogger(mlflow_server.uri, 30, 0.0, block=5)
    logger.go()
    logged = logger.finish()
    csv = tmp_path / "metrics.csv"
    csv.write_text("step,loss\n" + "".join(f"{s},{loss}\n" for s, _, loss in logged))
    done = auralize("render", f"mlflow:{logger.run_id}", "-o", tmp_path / "a.wav", "--no-plot",
                    "--tracking-uri", mlflow_server.uri, "--mapping", "loss")
    assert done.returncode == 0, done.stderr
    assert "rendered 30 steps" in done.stdout
    ref = auralize("render", csv, "-o", tmp_path / "b.wav", "--no-plot", "--mapping", "loss")
    assert ref.returncode == 0, ref.stderr
    a, _ = read_audio(tmp_path / "a.wav")
    b, _ = read_audio(tmp_path / "b.wav")
    assert a.shape == b.shape and np.array_equal(a, b)


def test_unknown_run_and_missing_extra_are_one_line_errors(mlflow_server, tmp_path,  # noqa: F811
                                                           monkeypatch):
    done = auralize("follow", "mlflow:0123456789abcdef", "-o", tmp_path / "x", "--live", "off",
                    "--tracking-uri", mlflow_server.uri)
    assert done.returncode == 1
    assert done.stderr.startswith("auralize: error: cannot read MLflow run '0123456789abcdef'")
    assert len(done.stderr.strip().splitlines()) == 1
    done = auralize("render", "mlflow:", "-o", tmp_path / "x.wav")
    assert done.returncode == 1 and "mlflow:RUN_ID" in done.stderr

    from auralize import Sonifier

    with pytest.raises(AuralizeError, match="unknown tracker 'comet'"):
        Sonifier(None, log_to=("comet",), live=False)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed
    with pytest.raises(AuralizeError, match=r"pip install auralize\[mlflow\]"):
        Sonifier(None, log_to="mlflow", live=False)
    from auralize.trackers.mlflow_tail import MlflowTail

    with pytest.raises(AuralizeError, match=r"pip install auralize\[mlflow\]"):
        MlflowTail("mlflow:abc")

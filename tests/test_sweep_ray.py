"""Sweeps on a real local Ray cluster (num_cpus=2), heard on the driver."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from auralize.cli import main
from sweep_audio import assert_earcons_at, expected_ratio, voice_at

GRID = ["--models", "dnn", "--optimizers", "sgd", "--activations", "tanh"]


def test_without_ray_the_engine_is_a_one_line_error(tmp_path):
    code = ("import sys; sys.modules['ray'] = None; from auralize.cli import main; "
            f"sys.exit(main(['sweep', '--engine', 'ray', '--out', {str(tmp_path)!r}, "
            "'--lrs', '0.1', *" + repr(GRID) + "]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("auralize: error: Ray Tune is not installed; install the "
                                   "extra: pip install 'auralize[ray]' (or pip install 'ray[tune]')")


def test_a_cluster_that_does_not_answer_is_a_one_line_error_within_30_s(tmp_path, capsys):
    pytest.importorskip("ray")
    t0 = time.monotonic()
    assert main(["sweep", "--engine", "ray", "--address", "127.0.0.1:9", "--out",
                 str(tmp_path), "--lrs", "0.1", *GRID]) == 1
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err.strip()
    assert err.startswith("auralize: error: no Ray cluster answers at 127.0.0.1:9") and "\n" not in err


@pytest.mark.slow
def test_asha_sweep_with_a_failing_trial_is_heard_on_the_driver(tmp_path):
    pytest.importorskip("ray")
    from ray import tune

    from auralize.sweeps.grid import grid, save_grid, write_gallery, write_summary
    from auralize.sweeps.ray_tune import digits_trainable, run_ray_sweep

    seen: dict = {"start": [], "stopped": [], "error": [], "first_result": {}, "cut": set()}

    class Witness(tune.Callback):
        """The test's own account of when Tune did what (driver wall clock)."""

        def on_trial_start(self, iteration, trials, trial, **info):
            seen["start"].append((trial.trial_id, time.time()))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            seen["first_result"].setdefault(trial.trial_id, time.time())
            if result.get("done"):  # the scheduler ends the trial on this result
                seen["cut"].add(trial.trial_id)

        def on_trial_complete(self, iteration, trials, trial, **info):
            if trial.trial_id in seen["cut"]:
                seen["stopped"].append((trial.trial_id, time.time()))

        def on_trial_error(self, iteration, trials, trial, **info):
            seen["error"].append((trial.trial_id, time.time()))

    def trainable(config):  # the lr=0.3 trial raises after its first report (ASHA's first
        # rung is at the second: it cannot be stopped before it fails)
        from auralize.sweeps import ray_tune

        time.sleep(1.0)  # setting up (a reused worker has torch loaded): the voice holds still
        if config["spec"]["lr"] != 0.3:
            return digits_trainable(config)
        original = ray_tune.TuneReporter.report

        def report(self, record):
            original(self, record)
            if self.reports == 1:
                raise RuntimeError("this trial was made to fail")

        ray_tune.TuneReporter.report = report
        try:
            digits_trainable(config)
        finally:
            ray_tune.TuneReporter.report = original

    specs = grid(["dnn"], [0.5, 0.3, 0.001, 0.0003], ["sgd"], ["tanh"])
    rows, sound = run_ray_sweep(specs, tmp_path, jobs=2, epochs=1, batch_size=64,
                                report_every=3, sound_out=tmp_path / "sweep.wav", live=False,
                                progress=False, trainable=trainable, callbacks=[Witness()])
    by_run = {r["run"]: r for r in rows}
    assert "this trial was made to fail" in by_run["dnn_sgd_lr0.3_tanh"]["error"]
    assert sum("error" in r for r in rows) == 1  # the others went on
    for spec in specs:  # every folder readable, the failed one included
        folder = tmp_path / spec.name
        assert sf.info(str(folder / "sonification.wav")).frames > 0
        assert (folder / "telemetry.jsonl").read_text().count("\n") >= 2
    assert any(r.get("stopped") for r in rows)
    # the gallery, as `auralize sweep --engine ray` writes it: stopped and failed runs too
    write_summary(rows, tmp_path)
    save_grid(rows, tmp_path, tmp_path / "grid.png")
    page = write_gallery(rows, tmp_path).read_text()
    assert "src='sweep.wav'" in page and "stopped early after" in page and "failed: " in page
    stereo, sr = sf.read(str(tmp_path / "sweep.wav"), dtype="float32")
    assert np.all(np.isfinite(stereo)) and np.abs(stereo).max() < 1
    doc = json.loads((tmp_path / "sweep.json").read_text())
    t0 = doc["t0_wall"]
    trials = {t["trial_id"]: t for t in doc["trials"]}
    assert len(trials) == 4 and len({t["base_hz"] for t in trials.values()}) == 4
    assert len({t["pan"] for t in trials.values()}) == 4
    for trial_id, wall in seen["start"]:  # each voice at its pitch and place, before it moves
        start = wall - t0
        end = min(start + 1.0, seen["first_result"][trial_id] - t0)
        assert end - start > 0.4, "the first report came too soon to hear the voice steady"
        freq, ratio = voice_at(stereo, sr, start + 0.25, end, trials[trial_id]["base_hz"])
        assert abs(freq - trials[trial_id]["base_hz"]) < 2.0, trial_id
        assert abs(np.log(ratio / expected_ratio(trials[trial_id]["pan"]))) < 0.2, trial_id
    assert len(seen["stopped"]) >= 1, "ASHA stopped no trial: the test cannot hear a stop"
    assert len(seen["error"]) == 1
    for kind in ("start", "stopped", "error"):
        assert_earcons_at(stereo, sr, kind, [wall - t0 for _, wall in seen[kind]], tol_s=0.2)

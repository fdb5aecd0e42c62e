"""An Optuna study of 4 trials heard on the driver: voices, pruning, a failure."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf
import torch

from sweep_audio import assert_earcons_at, expected_ratio, voice_at

optuna = pytest.importorskip("optuna")


def test_study_trials_are_voices_and_their_ends_are_earcons(tmp_path):
    from auralize.sweeps.optuna_study import StudySound
    from auralize.torch import watch

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    first_report: dict[int, float] = {}
    torch_rng = threading.Lock()

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-6, 1.0, log=True)
        with torch_rng:  # two trials run at once: seed and draw without the other's draws
            torch.manual_seed(0)
            model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(),
                                        torch.nn.Linear(16, 1))
            x = torch.randn(128, 8)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        y = x[:, :1] * 2
        # the sound hears a trial start at its next storage poll: wait for that (a loaded
        # machine polls late), then "set up" for 0.8 s while the voice holds its base pitch
        deadline = time.monotonic() + 30
        while not any(e["event"] == "start" and e["trial_id"] == str(trial.number)
                      for e in list(sound.sound.log)) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.8)
        with watch(model, opt, out_dir=tmp_path / f"trial{trial.number}", live=False, plot=False,
                   mappings=["loss"]) as w:
            for step in range(12):
                opt.zero_grad()
                loss = torch.nn.functional.mse_loss(model(x), y)
                loss.backward()
                opt.step()
                w.log_loss(loss)
                if lr > 0.5 and step == 3:
                    raise RuntimeError("this trial was made to fail")
                trial.set_user_attr("grad_norm", sum(float(p.grad.norm()) ** 2
                                                     for p in model.parameters()) ** 0.5)
                first_report.setdefault(trial.number, time.time())
                trial.report(loss.item(), step)
                if trial.should_prune():
                    raise optuna.TrialPruned()
                time.sleep(0.03)
        return loss.item()

    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=2.0, n_warmup_steps=4))
    for lr in (0.3, 1e-6, 0.9, 0.2):  # learns, too slow (pruned), fails, learns
        study.enqueue_trial({"lr": lr})
    with StudySound(study, tmp_path / "study.wav", live=False) as sound:
        study.optimize(objective, n_trials=4, n_jobs=2, callbacks=[sound], catch=(RuntimeError,))
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert (tmp_path / "trial2" / "sonification.wav").exists()  # the failed trial's folder
    stereo, sr = sf.read(str(tmp_path / "study.wav"), dtype="float32")
    doc = sound.summary
    t0 = doc["t0_wall"]
    trials = {t["trial_id"]: t for t in doc["trials"]}
    assert len(trials) == 4 and len({t["pan"] for t in trials.values()}) == 4
    starts = {e["trial_id"]: e["t_s"] for e in doc["events"] if e["event"] == "start"}
    for number in range(4):
        tid = str(number)
        end = min(starts[tid] + 0.7, first_report[number] - t0)
        freq, ratio = voice_at(stereo, sr, starts[tid] + 0.2, end, trials[tid]["base_hz"])
        assert abs(freq - trials[tid]["base_hz"]) < 2.5, tid
        assert abs(np.log(ratio / expected_ratio(trials[tid]["pan"]))) < 0.2, tid
    events = {kind: [e["t_s"] for e in doc["events"] if e["event"] == kind]
              for kind in ("start", "stopped", "error", "best")}
    ends = {e["event"]: e["trial_id"] for e in doc["events"] if e["event"] in ("stopped", "error")}
    assert ends == {"stopped": "1", "error": "2"}  # the pruned and the failed trial
    for kind, times in events.items():
        assert_earcons_at(stereo, sr, kind, times)

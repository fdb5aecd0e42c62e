"""``auralize compare``: left = render of A, right = render of B, sample for sample."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch

from auralize.cli import main
from auralize.torch import watch


def _run(folder, lr: float, steps: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    with watch(model, optimizer, out_dir=folder, live=False, plot=False,
               mappings=["loss", "gradients"]) as w:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
            w.log_loss(loss)


def test_compare_is_both_renders_side_by_side(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(a, 0.1, 12)
    _run(b, 0.001, 8)  # shorter: its channel ends in silence
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "ab.wav")]) == 0
    for run in (a, b):
        assert main(["render", str(run), "-o", str(tmp_path / f"{run.name}.wav"), "--no-plot",
                     "--channels", "1"]) == 0  # each side of A/B is a mono render
    ab = sf.read(str(tmp_path / "ab.wav"), dtype="int16")[0]
    ra = sf.read(str(tmp_path / "a.wav"), dtype="int16")[0]
    rb = sf.read(str(tmp_path / "b.wav"), dtype="int16")[0]
    assert ab.shape == (len(ra), 2) and len(rb) < len(ra)
    assert np.array_equal(ab[:, 0], ra)
    assert np.array_equal(ab[:len(rb), 1], rb) and not ab[len(rb):, 1].any()
    assert np.abs(ra.astype(int) - np.pad(rb, (0, len(ra) - len(rb)))).max() > 1000  # differ


def test_compare_rejects_a_missing_run(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path / "nope2"),
                 "-o", str(tmp_path / "ab.wav")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("auralize: error:") and "\n" not in err


def test_runs_with_different_step_lengths_share_the_longer(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _run(a, 0.1, 5)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)  # one layer, loss only: another step length than A's
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer, out_dir=b, live=False, plot=False, mappings=["loss"]) as w:
        for _ in range(5):
            optimizer.zero_grad()
            loss = model(torch.randn(8, 4)).pow(2).mean()
            loss.backward()
            optimizer.step()
            w.log_loss(loss)
    steps = {run: json.loads((run / "sonifier.json").read_text())["step_s"] for run in (a, b)}
    assert steps[a] != steps[b]
    longer = max(steps.values())
    shorter_run = min(steps, key=steps.get)
    assert main(["compare", str(a), str(b), "-o", str(tmp_path / "ab.wav")]) == 0
    assert f"{longer:g} s per step" in capsys.readouterr().out
    assert main(["render", str(shorter_run), "-o", str(tmp_path / "r.wav"), "--no-plot",
                 "--clock", "step", "--step-s", str(longer), "--channels", "1"]) == 0
    ab = sf.read(str(tmp_path / "ab.wav"), dtype="int16")[0]
    rendered = sf.read(str(tmp_path / "r.wav"), dtype="int16")[0]
    channel = 0 if shorter_run == a else 1
    assert np.array_equal(ab[:len(rendered), channel], rendered)

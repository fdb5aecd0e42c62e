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


def _sonified(folder, steps: int, sample_rate: int, channels: int, shift: float = 0.0) -> None:
    from auralize import Sonifier, TrainingStep

    with Sonifier(folder, mappings=["loss", "gradients", "alarm"], live=False, plot=False,
                  sample_rate=sample_rate, channels=channels) as son:
        for s in range(steps):
            son.log(TrainingStep(step=s, loss=1.0 / (1 + s) + shift,
                                 grad_norms={"a": 0.5 + 0.01 * s, "b": 0.2 + shift},
                                 wall_time_s=float(s)))


def test_renders_side_by_side_are_each_render_at_any_block_size(tmp_path):
    """The one re-rendering function: sides of any channel count and length, side by side,
    each column exactly that side rendered alone (what ``render`` writes: tests above and
    in test_long_runs.py), whatever the block size; blocks of the size asked, the last shorter."""
    from auralize.sonify.log_stream import open_log
    from auralize.sonify.rerender import render_config
    from auralize.sonify.stream import render_blocks

    _sonified(tmp_path / "a", 30, 8000, channels=2)
    _sonified(tmp_path / "b", 17, 8000, channels=1, shift=0.5)
    sides = [(log, render_config(log)) for log in (open_log(tmp_path / n) for n in "ab")]
    alone = [np.concatenate(list(render_blocks([(log.records(), config)])))
             for log, config in sides]
    assert [x.shape[1] for x in alone] == [2, 1] and len(alone[1]) < len(alone[0])
    for block in (977, 4000):
        blocks = list(render_blocks([(log.records(), config) for log, config in sides], block))
        assert {len(b) for b in blocks[:-1]} == {block} and 0 < len(blocks[-1]) <= block
        both = np.concatenate(blocks)
        assert both.shape == (len(alone[0]), 3)
        assert np.array_equal(both[:, :2], alone[0])
        assert np.array_equal(both[:len(alone[1]), 2:], alone[1])
        assert not both[len(alone[1]):, 2].any()  # the shorter side ends in silence
    assert np.abs(alone[0][:len(alone[1]), 0] - alone[1][:, 0]).max() > 0.05  # they differ


def test_runs_at_different_rates_meet_at_the_rate_asked(tmp_path, capsys):
    """Different recorded rates: a one-line error that says what to pass, and with
    --sample-rate each side is the render at that rate."""
    _sonified(tmp_path / "a", 12, 8000, channels=1)
    _sonified(tmp_path / "b", 12, 11025, channels=2, shift=0.3)
    ab = tmp_path / "ab.wav"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(ab)]) == 1
    err = capsys.readouterr().err.strip()
    assert "--sample-rate" in err and "\n" not in err and not ab.exists()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(ab),
                 "--sample-rate", "16000"]) == 0
    step_s = float(capsys.readouterr().out.split(" s per step")[0].split()[-1])
    both, rate = sf.read(str(ab), dtype="int16")
    assert rate == 16000
    for i, name in enumerate("ab"):
        assert main(["render", str(tmp_path / name), "-o", str(tmp_path / f"{name}.wav"),
                     "--no-plot", "--clock", "step", "--step-s", repr(step_s), "--channels", "1",
                     "--sample-rate", "16000"]) == 0
        alone = sf.read(str(tmp_path / f"{name}.wav"), dtype="int16")[0]
        assert len(alone) > 8000 and np.array_equal(both[:len(alone), i], alone)

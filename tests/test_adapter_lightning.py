"""auralize.lightning.SonifyCallback with real Lightning training on digits."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from adapter_util import RecordingSonifier, check_run_folder, close, digits, per_parameter_norms_loop
from auralize import AuralizeError
from auralize.lightning import SonifyCallback, pl


class Digits(pl.LightningModule):
    def __init__(self, fail_at=None):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.losses, self.norms = [], []
        self.fail_at = fail_at

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        if self.fail_at is not None and self.global_step >= self.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.losses.append(loss.item())
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def on_before_optimizer_step(self, optimizer):
        self.norms.append(per_parameter_norms_loop(self))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.2)


def loaders(n=256, batch=64):
    x, y = digits(n)
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return DataLoader(ds, batch_size=batch), DataLoader(ds, batch_size=128)


def trainer(cb, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pl.Trainer(max_epochs=kw.pop("max_epochs", 2), accelerator="cpu", devices=1,
                          logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False,
                          callbacks=cb if isinstance(cb, list) else [cb], **kw)


def fit(t, model, train, val=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.fit(model, train, val)


def test_grads_loss_and_epoch_metrics_match_reference():
    son = RecordingSonifier(unit_means_requests=[-1])
    model = Digits()
    train, val = loaders()
    fit(trainer(SonifyCallback(sonifier=son, weights_every=1)), model, train, val)
    recs = son.records
    assert len(recs) == len(model.losses) == len(model.norms) == 8
    for rec, loss, norms in zip(recs, model.losses, model.norms):
        assert close(rec.loss, loss, 1e-6)
        assert list(rec.grad_norms) == ["net.0", "net.2"]
        for k, v in norms.items():
            assert close(rec.grad_norms[k], v), (rec.step, k)
        assert set(rec.weight_stats) == {"net.0", "net.2"}
    assert [r.epoch_end for r in recs] == [False, False, False, True] * 2
    assert "val_loss" in recs[3].metrics and "val_loss" in recs[7].metrics
    assert len(recs[7].unit_means["net.2"]) == 10
    assert son.closed == 0


def test_gradient_accumulation_one_record_per_optimizer_step():
    son = RecordingSonifier()
    model = Digits()
    train, _ = loaders()
    fit(trainer(SonifyCallback(sonifier=son), max_epochs=1, accumulate_grad_batches=2),
        model, train)
    recs = son.records
    # 4 batches, 2 optimizer steps: one record each, with gradients and the mean of
    # its 2 batches' losses (as training_step returned them)
    assert len(recs) == 2 and all(r.grad_norms and r.micro_batches == 2 for r in recs)
    for k, rec in enumerate(recs):
        assert close(rec.loss, sum(model.losses[2 * k:2 * k + 2]) / 2, 1e-6)
        for name, v in model.norms[k].items():
            assert close(rec.grad_norms[name], v), (k, name)


def test_end_to_end_run_folder(tmp_path):
    model = Digits()
    train, val = loaders()
    cb = SonifyCallback(out_dir=tmp_path / "run", clock="step", live=False)
    fit(trainer(cb), model, train, val)
    recs = check_run_folder(tmp_path / "run", n_steps=8)
    assert cb.result is not None and cb.result.wav_path.exists()
    assert list(recs[0].grad_norms) == ["net.0", "net.2"]


def test_exception_still_writes_the_recording(tmp_path):
    model = Digits(fail_at=3)
    train, _ = loaders()
    cb = SonifyCallback(out_dir=tmp_path / "run", clock="step", live=False)
    with pytest.raises(RuntimeError, match="boom"):
        fit(trainer(cb), model, train)
    check_run_folder(tmp_path / "run", n_steps=3)


def test_bad_layer_is_one_line_error():
    model = Digits()
    train, _ = loaders(64)
    with pytest.raises(AuralizeError) as err:
        fit(trainer(SonifyCallback(sonifier=RecordingSonifier(["head"]))), model, train)
    msg = str(err.value)
    assert "\n" not in msg and "net.0" in msg and "net.2" in msg, msg


def test_callbacks_of_one_trainer_share_one_sonifier_and_folder(tmp_path):
    model = Digits()
    train, val = loaders()
    sound = SonifyCallback(out_dir=tmp_path / "run", mappings=["loss", "alarm"], live=False)
    grads = SonifyCallback(mappings=["gradients", "alarm"])
    fit(trainer([sound, grads]), model, train, val)
    assert sound.sonifier is grads.sonifier and sound.sonifier is not None
    assert sound.result is grads.result and sound.result.steps == 8
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    recs = check_run_folder(tmp_path / "run", n_steps=8)          # one record per step
    assert all(r.loss is not None and list(r.grad_norms) == ["net.0", "net.2"] for r in recs)
    config = json.loads((tmp_path / "run" / "sonifier.json").read_text())
    assert [m["kind"] for m in config["mappings"]] == ["loss", "alarm", "gradients"]


def test_callbacks_given_one_sonifier_send_one_record_per_step():
    son = RecordingSonifier()
    model = Digits()
    train, _ = loaders()
    fit(trainer([SonifyCallback(sonifier=son, grads=False), SonifyCallback(sonifier=son)]),
        model, train)
    assert len(son.records) == len(model.losses) == 8
    assert all(r.grad_norms for r in son.records)      # collected for either asking

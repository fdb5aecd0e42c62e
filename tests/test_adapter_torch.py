"""auralize.torch.watch with real (small) training on scikit-learn's digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from adapter_util import (
    RecordingSonifier,
    check_run_folder,
    close,
    digits,
    per_parameter_norms_loop,
)
from auralize import AuralizeError
from auralize.torch import LayerTelemetry, watch


def cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(8), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10))


def weight_reference(model):
    out = {}
    for name, mod in model.named_modules():
        ps = [p.detach().double().reshape(-1) for p in mod.parameters(recurse=False)
              if p.requires_grad]
        if ps:
            v = torch.cat(ps)
            out[name] = {"mean": v.mean().item(), "std": v.std(unbiased=False).item(),
                         "norm": v.norm().item()}
    return out


def train(model, opt, w, x, y, batch=64, epochs=2, scaler=None, refs=None):
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        for i in range(0, len(xt), batch):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i:i + batch]), yt[i:i + batch])
            if scaler is None:
                loss.backward()
            else:
                scaler.scale(loss).backward()
            if refs is not None:
                scale = 1.0 if scaler is None else float(scaler.get_scale())
                g = {k: v / scale for k, v in per_parameter_norms_loop(model).items()}
                refs.append((loss.item(), g, weight_reference(model)))
            if scaler is None:
                opt.step()
            else:
                scaler.step(opt)
                scaler.update()
            w.log_loss(loss, acc=(model(xt[i:i + batch]).argmax(1) == yt[i:i + batch])
                       .float().mean())
        w.end_epoch(val_loss=0.5)


def test_grad_norms_loss_and_weights_match_slow_reference():
    x, y = digits(320, image=True)
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    son = RecordingSonifier(unit_means_requests=[(-1, "epoch")])
    refs = []
    with watch(model, opt, sonifier=son, weights_every=1) as w:
        train(model, opt, w, x, y, refs=refs)
    recs = son.records
    assert len(recs) == len(refs) == 10
    names = [n for n, m in model.named_modules()
             if any(True for _ in m.parameters(recurse=False))]
    for k, (rec, (loss, g, wref)) in enumerate(zip(recs, refs)):
        assert rec.step == k and rec.epoch == k // 5
        assert rec.epoch_end == (k % 5 == 4)
        assert close(rec.loss, loss, 1e-6)
        assert list(rec.grad_norms) == names          # model order
        for name in names:
            assert close(rec.grad_norms[name], g[name]), (k, name)
            for stat in ("mean", "std", "norm"):
                assert abs(rec.weight_stats[name][stat] - wref[name][stat]) <= \
                    1e-5 * max(1.0, abs(wref[name][stat])), (k, name, stat)
        assert 0.0 <= rec.metrics["acc"] <= 1.0
        assert rec.lr == pytest.approx(0.1)
    assert recs[4].metrics["val_loss"] == 0.5
    # WeightChord's per-unit means of the last Linear layer at epoch ends only
    assert list(recs[4].unit_means) == ["7"] and len(recs[4].unit_means["7"]) == 10
    final = model[7].weight.detach().mean(dim=1).tolist()
    assert np.allclose(recs[9].unit_means["7"], final, atol=1e-7)
    assert not recs[3].unit_means
    assert son.closed == 0  # a Sonifier passed in is the caller's to close


def test_weight_stats_interval_and_epoch_ends():
    x, y = digits(320, image=True)
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    son = RecordingSonifier()
    started = []    # the weights each step started from (one training forward per step)
    model.register_forward_pre_hook(
        lambda m, a: started.append(weight_reference(m)) if m.training else None)
    with watch(model, opt, sonifier=son, weights_every=4) as w:
        model.train()
        train(model, opt, w, x, y)
    have = [bool(r.weight_stats) for r in son.records]
    # steps 0, 4, 8 by the interval; 5 as its epoch's first step
    assert have == [True, False, False, False, True, True, False, False, True, False]
    # every record's weights are those its step started from (never read after its update)
    forwards = started[::2]   # train() runs a second forward (accuracy) after each step
    assert len(forwards) == len(son.records) == 10
    for rec, ref in zip(son.records, forwards):
        for layer, stats in rec.weight_stats.items():
            assert close(stats["norm"], ref[layer]["norm"]), (rec.step, layer)
            assert close(stats["mean"], ref[layer]["mean"]), (rec.step, layer)
    with pytest.raises(AuralizeError, match="weights_every"):
        watch(model, opt, sonifier=son, weights_every=0)
    # "auto" keeps the weight statistics' cost small; the first step always has them
    son = RecordingSonifier()
    with watch(model, opt, sonifier=son) as w:
        train(model, opt, w, x, y, epochs=1)
    assert son.records[0].weight_stats
    assert w._w_interval >= 1


def test_after_amp_unscaling():
    x, y = digits(192, image=True)
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    son = RecordingSonifier()
    refs = []
    with watch(model, opt, sonifier=son) as w:
        train(model, opt, w, x, y, epochs=1, scaler=scaler, refs=refs)
    assert len(son.records) == 3
    for rec, (_, g, _) in zip(son.records, refs):
        for name, v in g.items():
            assert close(rec.grad_norms[name], v), name   # unscaled (not 1024x)


def test_one_transfer_per_step_and_no_item(monkeypatch):
    x, y = digits(256, image=True)
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)  # (Adam itself calls .item())
    son = RecordingSonifier()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    calls = {"item": 0, "cpu": 0, "tolist": 0}
    for meth in calls:
        orig = getattr(torch.Tensor, meth)

        def counting(self, *a, _orig=orig, _m=meth, **k):
            calls[_m] += 1
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, meth, counting)
    with watch(model, opt, sonifier=son) as w:
        for i in range(0, 256, 64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i:i + 64]), yt[i:i + 64])
            loss.backward()
            opt.step()
            w.log_loss(loss)
    monkeypatch.undo()
    assert len(son.records) == 4
    assert calls["item"] == 0
    assert calls["cpu"] == 4      # one device->host transfer per step


def test_log_before_step_and_loss_only():
    x, y = digits(128, image=True)
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    son = RecordingSonifier()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    with watch(model, opt, sonifier=son) as w:
        for i in range(0, 128, 32):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i:i + 32]), yt[i:i + 32])
            loss.backward()
            w.log_loss(loss.item())          # before the step, a float
            opt.step()
    assert len(son.records) == 4
    assert all(r.grad_norms and r.loss is not None for r in son.records)
    son2 = RecordingSonifier()
    with watch(model, None, sonifier=son2) as w:
        for v in (3.0, 2.0, float("nan")):
            w.log_loss(v)
    assert [r.loss for r in son2.records][:2] == [3.0, 2.0]
    assert np.isnan(son2.records[2].loss) and not son2.records[0].grad_norms


def test_bad_layer_is_one_line_error_listing_names():
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for bad in (5, "fc9"):
        with pytest.raises(AuralizeError) as err:
            watch(model, opt, sonifier=RecordingSonifier([(bad, "epoch")]))
        msg = str(err.value)
        assert "\n" not in msg and "5" in msg and "7" in msg, msg


def test_layer_names_look_through_ddp_wrappers_and_tied_weights():
    emb = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = emb.weight
    model = nn.Sequential(emb, head)
    tel = LayerTelemetry.from_module(nn.parallel.DataParallel(model))
    assert tel.names == ["0"] and len(tel.params) == 1   # tied weight counted once
    assert list(tel.linear) == ["1"]


def test_end_to_end_run_folder(tmp_path):
    x, y = digits(320, image=True)
    model = cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, opt, out_dir=tmp_path / "run", mappings=("loss", "gradients", "weights"),
               clock="step", live=False) as w:
        train(model, opt, w, x, y)
    recs = check_run_folder(tmp_path / "run", n_steps=10)
    assert list(recs[0].grad_norms) == w.telemetry.names
    assert w.result is not None

"""True gradient numbers under mixed precision, accumulation and clipping (issue 18).

Real training of small models (an MLP and a 2-block GPT-2 from ``transformers``
with random weights) on the CPU.  auralize's per-layer norms, read back from the
run folder's ``telemetry.jsonl``, are compared with a reference computed in the
test from the same gradients (in float64, the scale read from the scaler and
divided out by hand, before clipping), and for bf16 with an fp32 replica.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from audio_analysis import band_envelope
from auralize.audio.files import read_audio
from auralize.sonify import TrainingStep
from auralize.torch import watch

N_IN, N_OUT = 16, 4


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(N_IN, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, N_OUT))


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=16,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def batches(model, n, seed=1):
    g = torch.Generator().manual_seed(seed)
    if isinstance(model, nn.Sequential):
        return [(torch.randn(8, N_IN, generator=g), torch.randn(8, N_OUT, generator=g))
                for _ in range(n)]
    return [(torch.randint(0, 100, (4, 16), generator=g), None) for _ in range(n)]


def loss_of(model, x, y):
    if isinstance(model, nn.Sequential):
        return nn.functional.mse_loss(model(x).float(), y)
    return model(input_ids=x, labels=x).loss


def reference_norms(model, scale=1.0):
    """Per-layer L2 norm of the gradients, float64, divided by ``scale`` (tied weights once)."""
    out, seen = {}, set()
    for name, mod in model.named_modules():
        sq, have = 0.0, False
        for p in mod.parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if p.grad is not None:
                sq += float(p.grad.double().pow(2).sum())
                have = True
        if have:
            out[name or type(mod).__name__] = math.sqrt(sq) / scale
    return out


def records(run_dir):
    lines = (run_dir / "telemetry.jsonl").read_text().splitlines()
    return [TrainingStep.from_dict(json.loads(line)) for line in lines]


def assert_norms(rec_norms, ref, rel):
    """Per layer where both name a layer, and the total (independent of how layers group)."""
    shared = [k for k in ref if k in rec_norms]
    assert shared, (list(rec_norms), list(ref))
    for k in shared:
        assert math.isclose(rec_norms[k], ref[k], rel_tol=rel, abs_tol=1e-9), (k, rec_norms[k],
                                                                                ref[k])
    total = math.sqrt(sum(v * v for v in rec_norms.values()))
    ref_total = math.sqrt(sum(v * v for v in ref.values()))
    assert math.isclose(total, ref_total, rel_tol=rel), (total, ref_total)


def train(model, opt, run_dir, *, scaler=None, dtype=None, steps=6, accumulate=1,
          clip=None, inf_at=(), log_after_step=True, mappings=("loss", "gradients"),
          replica=None, use_scaler_arg=True, two_part_clip=False):
    """A typical loop; returns one reference dict per optimizer step.

    ``two_part_clip``: clip with torch's public ``get_total_norm`` and
    ``clip_grads_with_norm_`` (as Accelerate >= 1.16 does), not ``clip_grad_norm_``.
    """
    data = batches(model, steps * accumulate)
    refs = []
    kw = {"scaler": scaler} if (scaler is not None and use_scaler_arg) else {}
    # per layer (groups="layers"): the references are per layer; grouping has its own tests
    with watch(model, opt, out_dir=run_dir, mappings=list(mappings), clock="step",
               live=False, groups="layers", **kw) as w:
        losses = []
        for i, (x, y) in enumerate(data):
            with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = loss_of(model, x, y)
            losses.append(loss.item())
            scaled = loss / accumulate
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            last = (i + 1) % accumulate == 0
            if not log_after_step:
                w.log_loss(loss)
            if last:
                step = len(refs)
                if step in inf_at:     # an overflow the scaler must catch
                    next(model.parameters()).grad.view(-1)[0] = math.inf
                scale = float(scaler.get_scale()) if scaler is not None else 1.0
                ref = {"norms": reference_norms(model, scale), "loss": float(np.mean(losses)),
                       "skipped": not all(torch.isfinite(p.grad).all() for p in
                                          model.parameters() if p.grad is not None)}
                losses = []
                if replica is not None and not ref["skipped"]:
                    ref["fp32"] = replica_norms(replica, model, data[i + 1 - accumulate:i + 1])
                if clip is not None:
                    if scaler is not None:
                        scaler.unscale_(opt)
                    if two_part_clip:
                        params = [p for p in model.parameters() if p.grad is not None]
                        total = torch.nn.utils.get_total_norm([p.grad for p in params])
                        torch.nn.utils.clip_grads_with_norm_(params, clip, total)
                    else:
                        total = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                    ref["clipped"] = bool(total > clip)
                    ref["post_clip"] = reference_norms(model)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                opt.zero_grad()
                refs.append(ref)
            if log_after_step:
                w.log_loss(loss)
    return refs


def replica_norms(replica, model, micro):
    """Norms of the same step's gradient from an fp32 copy of the model (same weights)."""
    replica.load_state_dict(model.state_dict())
    replica.zero_grad()
    for x, y in micro:
        (loss_of(replica, x, y) / len(micro)).backward()
    return reference_norms(replica)


OPTIMIZERS = {
    "adamw-plain": lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=False),
    "adamw-foreach": lambda ps: torch.optim.AdamW(ps, lr=1e-3, foreach=True),
    "adamw-fused": lambda ps: torch.optim.AdamW(ps, lr=1e-3, fused=True),
    "sgd-fused": lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, fused=True),
}


def check_steps(recs, refs, rel):
    assert len(recs) == len(refs)
    for k, (rec, ref) in enumerate(zip(recs, refs)):
        assert rec.skipped == ref["skipped"], k
        assert math.isclose(rec.loss, ref["loss"], rel_tol=1e-5), k
        if ref["skipped"]:
            assert rec.grad_norms == {} and "inf/NaN" in rec.skip_reason
        else:
            assert_norms(rec.grad_norms, ref["norms"], rel)


def test_fp32_plain_matches_reference(tmp_path):
    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=torch.tensor(1e-3), foreach=False)
    refs = train(model, opt, tmp_path / "run")
    recs = records(tmp_path / "run")
    check_steps(recs, refs, 1e-4)
    assert all(r.loss_scale is None and r.clipped is None for r in recs)
    assert all(math.isclose(r.lr, 1e-3, rel_tol=1e-6) for r in recs)    # a tensor lr too


@pytest.mark.parametrize("opt_kind", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
def test_grad_scaler_norms_are_unscaled(tmp_path, opt_kind, dtype):
    """GradScaler x {plain, foreach, fused}: the norms the optimizer applies, not x 65536.

    fp16 on the CPU overflows at the first scale (65536): that step is skipped by the
    scaler and must be recorded so (the fused optimizers' without ``scaler=``)."""
    model = mlp()
    opt = OPTIMIZERS[opt_kind](model.parameters())
    scaler = torch.amp.GradScaler("cpu")
    fused = "fused" in opt_kind
    refs = train(model, opt, tmp_path / "run", scaler=scaler, dtype=dtype, steps=8,
                 inf_at=(5,), use_scaler_arg=not fused)
    recs = records(tmp_path / "run")
    check_steps(recs, refs, 1e-4)
    assert refs[5]["skipped"] and recs[5].skipped
    done = [r for r in recs if not r.skipped]
    assert done and all(r.loss_scale is not None and r.loss_scale >= 1 for r in done)


@pytest.mark.slow
def test_gpt2_fused_adamw_bf16_against_fp32_replica(tmp_path):
    """2-block GPT-2, bf16 autocast, GradScaler + fused AdamW: exact against the same
    gradients (1e-4) and within 2 % of an fp32 replica's."""
    model = gpt2()
    opt = OPTIMIZERS["adamw-fused"](model.parameters())
    refs = train(model, opt, tmp_path / "run", scaler=torch.amp.GradScaler("cpu"),
                 dtype=torch.bfloat16, steps=4, replica=gpt2(), use_scaler_arg=False)
    recs = records(tmp_path / "run")
    check_steps(recs, refs, 1e-4)
    assert len(recs[0].grad_norms) >= 10              # embeddings, 2 blocks, final norm
    for rec, ref in zip(recs, refs):
        assert_norms(rec.grad_norms, ref["fp32"], 0.02)


def test_bf16_without_scaler_against_fp32_replica(tmp_path):
    """bf16 autocast, no scaler (the usual bf16 recipe), foreach AdamW, accumulation x2."""
    model = mlp()
    refs = train(model, OPTIMIZERS["adamw-foreach"](model.parameters()), tmp_path / "run",
                 dtype=torch.bfloat16, steps=4, accumulate=2, replica=mlp())
    recs = records(tmp_path / "run")
    check_steps(recs, refs, 1e-4)
    for rec, ref in zip(recs, refs):
        assert_norms(rec.grad_norms, ref["fp32"], 0.02)
        assert rec.loss_scale is None


@pytest.mark.slow
def test_gpt2_fp16_grad_scaler_plain_adamw(tmp_path):
    model = gpt2()
    opt = OPTIMIZERS["adamw-plain"](model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    refs = train(model, opt, tmp_path / "run", scaler=scaler, dtype=torch.float16, steps=3)
    check_steps(records(tmp_path / "run"), refs, 1e-4)


@pytest.mark.parametrize("log_after_step", [True, False], ids=["log-after", "log-before"])
def test_accumulation_one_record_per_optimizer_step(tmp_path, log_after_step):
    """x4 accumulation, log_loss every micro-batch: one record per optimizer step, with
    the accumulated gradient's norms and the mean of its 4 micro-batch losses."""
    model = mlp()
    opt = OPTIMIZERS["adamw-foreach"](model.parameters())
    refs = train(model, opt, tmp_path / "run", scaler=torch.amp.GradScaler("cpu"),
                 dtype=torch.bfloat16, steps=5, accumulate=4, log_after_step=log_after_step)
    recs = records(tmp_path / "run")
    check_steps(recs, refs, 1e-4)
    assert [r.micro_batches for r in recs] == [4] * 5


@pytest.mark.parametrize("two_part_clip", [False, True], ids=["clip_grad_norm_", "two-part"])
def test_clipping_records_pre_clip_norms_and_the_clipped_flag(tmp_path, two_part_clip):
    for clip, expect in ((1e-3, True), (1e3, False)):
        model = mlp()
        opt = OPTIMIZERS["adamw-plain"](model.parameters())
        run = tmp_path / f"clip{clip:g}"
        refs = train(model, opt, run, scaler=torch.amp.GradScaler("cpu"), dtype=torch.bfloat16,
                     steps=4, clip=clip, accumulate=2, two_part_clip=two_part_clip)
        recs = records(run)
        check_steps(recs, refs, 1e-4)          # the pre-clip norms
        assert [r.clipped for r in recs] == [ref["clipped"] for ref in refs] == [expect] * 4
        if expect:   # the post-clip norms are far from what was recorded
            post = refs[0]["post_clip"]
            assert all(recs[0].grad_norms[k] > 10 * post[k] for k in post)


def slot(audio, sr, step, step_s, margin_s=0.005):
    a, b = int((step * step_s + margin_s) * sr), int(((step + 1) * step_s - margin_s) * sr)
    return audio[a:b]


def high_share(samples, sr, cutoff_hz):
    """Share of the energy above ``cutoff_hz`` (0 for silence)."""
    power = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / sr)
    total = power.sum()
    return float(power[freqs > cutoff_hz].sum() / total) if total > 1e-12 else 0.0


@pytest.mark.parametrize("opt_kind", ["adamw-plain", "adamw-fused"])
def test_skipped_step_is_marked_and_not_heard_as_an_explosion(tmp_path, opt_kind):
    """An injected inf: telemetry says skipped; its slot in the recording has no gradient
    tones, and nothing in the recording is above the gradient mapping's range."""
    model = mlp()
    opt = OPTIMIZERS[opt_kind](model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    run = tmp_path / "run"
    # Perone's linear pitch: the range a scaled (x4096) norm would leave is known
    refs = train(model, opt, run, scaler=scaler, steps=8, inf_at=(4,),
                 mappings=({"kind": "gradients", "scale": "linear"},),
                 use_scaler_arg=opt_kind == "adamw-plain")     # fused: seen without it
    recs = records(run)
    assert [r.skipped for r in recs] == [ref["skipped"] for ref in refs]
    assert [k for k, r in enumerate(recs) if r.skipped] == [4]
    audio, sr = read_audio(run / "sonification.wav")
    audio = audio if audio.ndim == 1 else audio.mean(axis=1)
    n_layers = len(recs[0].grad_norms)
    step_s = (n_layers + 2) * 0.01                     # GradientTones' slot per step
    top_hz = 200 + 100 * max(v for r in recs for v in r.grad_norms.values())
    # the skipped step is silent, its neighbours sound
    rms = [float(np.sqrt(np.mean(slot(audio, sr, k, step_s) ** 2))) for k in range(8)]
    assert rms[4] < 1e-3 < min(rms[3], rms[5]), rms
    # no tone above the range in any step (a 4096x norm would be at ~10^5 Hz, aliased)
    for k in range(8):
        assert high_share(slot(audio, sr, k, step_s), sr, top_hz + 300) < 0.05, k


def test_skipped_step_alarm_blips_once_and_says_why(tmp_path, caplog):
    model = mlp()
    opt = OPTIMIZERS["adamw-fused"](model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 12)
    run = tmp_path / "run"
    with caplog.at_level("WARNING", logger="auralize"):
        train(model, opt, run, scaler=scaler, steps=8, inf_at=(4,),
              mappings=("gradients", "alarm"))
    said = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("step 4: optimizer step skipped (GradScaler")
    audio, sr = read_audio(run / "sonification.wav")
    audio = audio if audio.ndim == 1 else audio.mean(axis=1)
    times, alarm = band_envelope(audio, sr, 1200, 1900, frame_s=0.005)
    on = times[alarm > 0.02]
    step_s = (len(records(run)[0].grad_norms) + 2) * 0.01
    assert on.size and 4 * step_s - 0.01 <= on.min() and on.max() - on.min() < 0.1, on


def test_mark_clipped_ticks(tmp_path):
    """``mark_clipped``: a tick (MIDI 96, ~2.1 kHz) on the clipped steps, none without."""
    levels = {}
    for clip in (1e-3, 1e3):
        model = mlp()
        run = tmp_path / f"clip{clip:g}"
        train(model, OPTIMIZERS["adamw-plain"](model.parameters()), run, steps=4, clip=clip,
              mappings=({"kind": "gradients", "mark_clipped": True},))
        audio, sr = read_audio(run / "sonification.wav")
        audio = audio if audio.ndim == 1 else audio.mean(axis=1)
        levels[clip] = float(band_envelope(audio, sr, 1900, 2300, frame_s=0.005)[1].max())
    assert levels[1e-3] > 0.02 > 1e-3 > levels[1e3], levels


# -- Lightning ------------------------------------------------------------------------
def lightning_run(tmp_path, *, precision="bf16-mixed", plugins=None, inf_at=None, clip=0.05,
                  accumulate=4, n_batches=16):
    import warnings

    from torch.utils.data import DataLoader, TensorDataset

    from auralize.lightning import SonifyCallback, pl

    class Lit(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = mlp()
            self.losses, self.refs = [], []

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x).float(), y)
            self.losses.append(loss.item())
            return loss

        def on_after_backward(self):
            if self.global_step == inf_at:
                self.net[0].weight.grad.view(-1)[0] = math.inf

        def on_before_optimizer_step(self, optimizer):
            # after auralize's callback, before clipping: the gradient as the step sees it
            ref = reference_norms(self)
            skipped = not all(torch.isfinite(p.grad).all() for p in self.parameters())
            total = math.sqrt(sum(v * v for v in ref.values()))
            self.refs.append({"norms": ref, "skipped": skipped, "clipped": total > clip})

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-3)

    data = batches(mlp(), n_batches)
    ds = TensorDataset(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))
    model = Lit()
    run = tmp_path / "lit"
    cb = SonifyCallback(out_dir=run, clock="step", live=False, mappings=["loss", "gradients"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, callbacks=[cb],
                             accumulate_grad_batches=accumulate, gradient_clip_val=clip,
                             precision=None if plugins else precision, plugins=plugins)
        trainer.fit(model, DataLoader(ds, batch_size=8))
    return model, records(run)


def test_lightning_bf16_accumulation_and_clipping(tmp_path):
    model, recs = lightning_run(tmp_path)
    refs = model.refs
    assert len(recs) == len(refs) == 4                   # 16 batches / 4
    for k, (rec, ref) in enumerate(zip(recs, refs)):
        assert rec.micro_batches == 4 and not rec.skipped
        assert math.isclose(rec.loss, np.mean(model.losses[4 * k:4 * k + 4]), rel_tol=1e-5)
        assert_norms(rec.grad_norms, ref["norms"], 1e-4)
        assert rec.clipped == ref["clipped"]
    assert any(r.clipped for r in recs)


def test_lightning_fp16_grad_scaler_skipped_step(tmp_path):
    """fp16 + a CPU GradScaler through Lightning's MixedPrecision plugin (Lightning turns
    ``precision="16-mixed"`` into bf16 on the CPU); an injected inf is a skipped step."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    plugin = MixedPrecision("16-mixed", "cpu",
                            scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 10))
    model, recs = lightning_run(tmp_path, plugins=[plugin], inf_at=2, clip=1e3)
    refs = model.refs
    assert len(recs) == len(refs) == 4
    assert [r.skipped for r in recs] == [ref["skipped"] for ref in refs]
    assert recs[2].skipped and recs[2].grad_norms == {}
    for rec, ref in zip(recs, refs):
        if not ref["skipped"]:
            assert_norms(rec.grad_norms, ref["norms"], 1e-4)
            assert rec.loss_scale is not None and rec.clipped is False


def test_old_telemetry_lines_still_read_and_new_fields_round_trip():
    old = '{"step":3,"epoch":0,"wall_time_s":0.5,"loss":0.7,"metrics":{},"grad_norms":{"a":0.1},' \
          '"weight_stats":{},"unit_means":{},"lr":0.01,"epoch_end":false}'
    rec = TrainingStep.from_dict(json.loads(old))
    assert (rec.skipped, rec.skip_reason, rec.clipped, rec.loss_scale, rec.micro_batches) == (
        False, None, None, None, 1)
    new = TrainingStep(step=4, loss=0.5, skipped=True, skip_reason="GradScaler found inf/NaN",
                       clipped=False, loss_scale=65536.0, micro_batches=4)
    assert TrainingStep.from_dict(json.loads(new.to_json())) == new


def test_a_failing_read_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    """A fault inside auralize (provoked: the device reduction raises) never stops the
    loop, clipping and the scaler included; one warning, and the weights still move."""
    from auralize.torch import LayerTelemetry

    def broken(self, grads=True, weights=True):
        raise RuntimeError("provoked")

    monkeypatch.setattr(LayerTelemetry, "device_parts", broken)
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.warns(RuntimeWarning, match="auralize: .*provoked") as caught:
        train(model, OPTIMIZERS["adamw-plain"](model.parameters()), tmp_path / "run",
              scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 8), steps=3, clip=0.5)
    assert sum("provoked" in str(w.message) for w in caught) == 1
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))

"""Gradient voices of big models: grouping by structure, log pitch against a baseline, bounds.

Real training steps of GPT-2 models (transformers configs, random weights, tiny widths) of 2,
12 and 48 blocks and of a ResNet-50-style CNN; an explosion (x1000) and a vanishing (x1e-4)
are injected into two voices' gradients before ``optimizer.step`` after a baseline of steps.
"""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from audio_analysis import dominant_frequency
from auralize import AuralizeError
from auralize.audio.score import render_score
from auralize.audio.voices.sampler import midi_to_hz
from auralize.layer_groups import group_layers
from auralize.sonify import TrainingStep
from auralize.sonify.mappings import GradientTones
from auralize.sonify.scales import relative_log_midi
from auralize.sonify.timeline import SonifyConfig, replay
from auralize.torch import LayerTelemetry, watch

BASELINE_STEPS = 10          # GradientTones' default baseline_steps
STEP_BOUND_S = (24 + 2) * 0.01   # the stated bound: (max_slots + gap_tones) * duration


def gpt2(n_layer: int, vocab: int = 2000, n_embd: int = 16):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    config = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=2, vocab_size=vocab,
                        n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                        bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


class Bottleneck(nn.Module):
    """ResNet-50's bottleneck block (1x1, 3x3, 1x1 with a projection shortcut), tiny widths."""

    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        c_out = width * 4
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class TinyResNet50(nn.Module):
    """ResNet-50's layout (stem, stages of 3, 4, 6, 3 bottlenecks, fc) with torchvision's names."""

    def __init__(self, classes: int = 10, width: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width * 4, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * 4)
        c = width * 4
        for i, (blocks, stride) in enumerate(zip((3, 4, 6, 3), (1, 2, 2, 2)), start=1):
            stage = []
            for b in range(blocks):
                stage.append(Bottleneck(c, width * 2 ** (i - 1), stride if b == 0 else 1))
                c = width * 2 ** (i - 1) * 4
            setattr(self, f"layer{i}", nn.Sequential(*stage))
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(x.mean(dim=(2, 3)))


# -- grouping (no training) -----------------------------------------------------------
@pytest.mark.parametrize("n_layer, voices, first_block", [
    (2, 4, "transformer.h.0"), (12, 14, "transformer.h.0"), (48, 18, "transformer.h.0-2")])
def test_gpt2_voices_by_block(n_layer, voices, first_block):
    tel = LayerTelemetry.from_module(gpt2(n_layer))
    assert len(tel.names) == voices <= 24
    assert tel.names[0] == "transformer.wte+wpe"          # embeddings together
    assert tel.names[1] == first_block
    assert tel.names[-1] == "transformer.ln_f"            # the LM head is tied: owns nothing
    # every parameter counted exactly once
    assert sum(tel.counts) == sum(p.numel() for p in gpt2(n_layer).parameters())


def test_resnet50_layout_voices_and_small_models_keep_their_layers():
    tel = LayerTelemetry.from_module(TinyResNet50())
    assert tel.names == ["conv1", "bn1"] + [f"layer{s}.{b}" for s, n in
                                            zip(range(1, 5), (3, 4, 6, 3)) for b in range(n)] + ["fc"]
    seq = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4, 2))
    assert LayerTelemetry.from_module(seq).names == ["0", "3"]      # one voice per layer


def test_groups_argument_names_patterns_callables_and_errors():
    names = [n for n, m in gpt2(4).named_modules() if any(True for _ in m.parameters(False))]
    assert group_layers(names, "layers") == names
    by_pattern = group_layers(names, ["transformer.h.*", "transformer.w*"])
    assert set(by_pattern) == {"transformer.h.*", "transformer.w*", "other"}
    assert by_pattern[names.index("transformer.h.3.mlp.c_fc")] == "transformer.h.*"
    assert by_pattern[names.index("transformer.ln_f")] == "other"
    halves = group_layers(names, lambda n: "early" if ".h.0." in n or ".h.1." in n else "rest")
    assert list(dict.fromkeys(halves)) == ["rest", "early"]
    with pytest.raises(AuralizeError, match="groups must be"):
        group_layers(names, 3)
    with pytest.raises(AuralizeError, match="must return a non-empty group name"):
        group_layers(names, lambda n: None)
    # 300 loose layers (no repeated structure): still at most 24 voices
    loose = [f"layer_{chr(97 + i % 26)}{i}" for i in range(300)]
    assert len(set(group_layers(loose))) == 24


def test_group_norm_is_the_true_norm_of_its_parameters():
    model = gpt2(2)
    ids = torch.randint(0, 2000, (2, 8))
    model(ids, labels=ids).loss.backward()
    tel = LayerTelemetry.from_module(model)
    norms = tel.grad_norms()
    block = torch.cat([p.grad.reshape(-1).double() for p in model.transformer.h[1].parameters()])
    assert norms["transformer.h.1"] == pytest.approx(block.norm().item(), rel=1e-6)


# -- the pitch scale (pure) -----------------------------------------------------------
@pytest.mark.parametrize("baseline", [1e-6, 3e-3, 1.0, 1e4])
def test_log_pitch_is_relative_to_the_baseline_at_any_magnitude(baseline):
    home = 66.0
    assert relative_log_midi(baseline, baseline, home) == home
    assert relative_log_midi(baseline * 10, baseline, home) == pytest.approx(home + 12)
    assert relative_log_midi(baseline / 10, baseline, home) == pytest.approx(home - 12)
    assert relative_log_midi(baseline * 1000, baseline, home) == 100.0     # clipped to MIDI 100
    assert relative_log_midi(baseline * 1e-4, baseline, home) == 35.0      # and to MIDI 35
    assert relative_log_midi(0.0, baseline, home) == 35.0
    assert math.isnan(relative_log_midi(math.nan, baseline, home))


def test_linear_scale_keeps_perone_numbers_and_old_configs():
    tones = GradientTones(scale="linear")
    tones.events(TrainingStep(step=0, grad_norms={"a": 0.5}), 0.0, 0.03)
    assert tones.tone_freqs(TrainingStep(step=1, grad_norms={"a": 0.97})).tolist() == [297.0]
    old = GradientTones(scale=50.0)          # sonifier.json written before scale= had names
    assert (old.scale, old.hz_per_norm) == ("linear", 50.0)
    with pytest.raises(AuralizeError, match="scale must be"):
        GradientTones(scale="cubic")


def test_step_time_is_bounded_whatever_the_voice_count():
    tones = GradientTones()
    for n in (1, 12, 24, 75, 1000):
        rec = TrainingStep(step=0, grad_norms={f"g{i}": 1.0 for i in range(n)})
        assert tones.preferred_step_s(rec) <= STEP_BOUND_S + 1e-12
    assert tones.preferred_step_s(TrainingStep(step=0, grad_norms={"a": 1, "b": 1})) == \
        pytest.approx(0.04)                      # few voices: the seed's 10 ms per tone


# -- real training with an injected explosion and vanishing ---------------------------
def run_with_injection(model, batch, loss_fn, tmp_path, pick, steps=BASELINE_STEPS + 1):
    """Train ``steps`` steps with ``watch(model, opt)`` defaults; in the last, one voice's
    gradients x1000 and another's x1e-4.  Returns (records, voices, exploded, vanished, watch)."""
    # a small learning rate: a steady stretch of training, where the other voices hold still
    # (at 1e-3 a fresh GPT-2's block norms fall ~1 % a step: heard, rightly, as a slow descent)
    opt = torch.optim.SGD(model.parameters(), lr=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with watch(model, opt, out_dir=tmp_path / "run", live=False, plot=False) as w:
            voices = w.telemetry.names
            exploded, vanished = pick(voices)
            group_of = dict(zip(w.telemetry.layer_names, w.telemetry.layer_group))
            for step in range(steps):
                opt.zero_grad()
                loss = loss_fn(model, batch)
                loss.backward()
                if step == steps - 1:
                    with torch.no_grad():
                        for name, mod in model.named_modules():
                            factor = {exploded: 1e3, vanished: 1e-4}.get(group_of.get(name))
                            for p in mod.parameters(recurse=False):
                                if factor is not None and p.grad is not None:
                                    p.grad.mul_(factor)
                opt.step()
                w.log_loss(loss)
            step_s = w.sonifier.timeline.step_s
    lines = (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()
    records = [TrainingStep.from_dict(json.loads(line)) for line in lines]
    return records, voices, exploded, vanished, step_s, lines


def check_heard(records, voices, exploded, vanished, step_s, lines):
    """The mapping's pitches at the injected step, and the rendered audio's frequencies."""
    assert len(voices) <= 24
    assert step_s <= STEP_BOUND_S + 1e-9                  # audio per step, default mappings
    assert max(len(line) for line in lines) <= 10_000      # telemetry rows stay small
    tones = GradientTones()
    for rec in records[:-1]:
        tones.events(rec, 0.0, step_s)
    freqs = tones.tone_freqs(records[-1])
    order = list(tones.layers)
    assert order == voices
    assert order[int(np.argmax(freqs))] == exploded
    assert order[int(np.argmin(freqs))] == vanished
    home_hz = midi_to_hz(tones._home)
    semitones = 12 * np.log2(freqs / home_hz)
    others = [i for i, v in enumerate(order) if v not in (exploded, vanished)]
    assert np.all(np.abs(semitones[others]) <= 1.0), dict(zip(order, semitones.round(2)))
    # the same in sound: the gradient voices rendered with 60 ms tones (long enough to
    # measure a 62 Hz pitch), the injected step's slots analysed one by one
    slot = 0.06
    config = SonifyConfig(mappings=[{"kind": "gradients", "duration": slot}], sample_rate=22050)
    score, _ = replay(records, config)
    n = len(voices)
    step_len = n * slot + 2 * slot
    t0 = (len(records) - 1) * step_len
    audio = render_score(score, t0 + step_len + 0.1)
    rate = score.sample_rate
    heard = []
    for i in range(n):
        a = int((t0 + i * slot + 0.008) * rate)
        b = int((t0 + (i + 1) * slot - 0.004) * rate)
        heard.append(dominant_frequency(audio[a:b], rate))
    heard = np.array(heard)
    assert order[int(np.argmax(heard))] == exploded
    assert heard.max() == pytest.approx(midi_to_hz(100), rel=0.03)
    assert order[int(np.argmin(heard))] == vanished
    assert heard.min() < midi_to_hz(44)
    assert np.all(np.abs(12 * np.log2(heard[others] / home_hz[others])) <= 1.0)


def lm_loss(model, ids):
    return model(ids, labels=ids).loss


@pytest.mark.parametrize("n_layer", [2, 12, 48])
def test_gpt2_explosion_is_highest_and_vanishing_lowest(n_layer, tmp_path):
    model = gpt2(n_layer)
    ids = torch.randint(0, 2000, (4, 16), generator=torch.Generator().manual_seed(1))
    records, voices, up, down, step_s, lines = run_with_injection(
        model, ids, lm_loss, tmp_path, lambda v: (v[len(v) // 2], v[len(v) // 2 - 1]))
    assert up.startswith("transformer.h.") and down.startswith("transformer.h.")
    check_heard(records, voices, up, down, step_s, lines)
    # the weight chord plays the last hidden dense layer, not the tied LM head
    chord = records[0].unit_means
    assert list(chord) == [f"transformer.h.{n_layer - 1}.mlp.c_proj"]
    assert len(chord[f"transformer.h.{n_layer - 1}.mlp.c_proj"]) == 16
    assert not any(r.weight_stats for r in records)      # no mapping needs them: not computed


def test_resnet50_style_explosion_is_highest_and_vanishing_lowest(tmp_path):
    torch.manual_seed(0)
    model = TinyResNet50()
    # BatchNorm frozen, as when fine-tuning a pretrained ResNet: a fresh ResNet on batch
    # statistics moves its gradient norms by tens of percent a step (heard as such), so
    # "the others hold still" needs a steady regime to be testable
    model.eval()
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    y = torch.arange(4)

    def loss_fn(m, batch):
        return nn.functional.cross_entropy(m(batch), y)

    records, voices, up, down, step_s, lines = run_with_injection(
        model, x, loss_fn, tmp_path, lambda v: ("layer3.2", "layer2.1"))
    check_heard(records, voices, up, down, step_s, lines)


def test_wide_vocabulary_rows_stay_small_and_units_are_pooled(tmp_path):
    """A 50k-vocabulary GPT-2 whose head is NOT tied: still not the chord's layer; rows <= 10 KB."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=16, n_head=2, vocab_size=50257, n_positions=32,
                        tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config)
    assert model.lm_head.weight is not model.transformer.wte.weight
    ids = torch.randint(0, 50257, (2, 8))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with watch(model, opt, out_dir=tmp_path / "run", live=False, plot=False,
                   mappings=["loss", "gradients", {"kind": "weights", "which_layer": "lm_head"},
                             "alarm"]) as w:
            for _ in range(3):
                opt.zero_grad()
                loss = lm_loss(model, ids)
                loss.backward()
                opt.step()
                w.log_loss(loss)
            w.end_epoch()
    lines = (tmp_path / "run" / "telemetry.jsonl").read_text().splitlines()
    assert max(len(line) for line in lines) <= 10_000
    last = TrainingStep.from_dict(json.loads(lines[-1]))    # the epoch's end: weights now
    pooled = last.unit_means["lm_head"]
    assert len(pooled) == 48                      # 50257 units -> 48 partials
    reference = model.lm_head.weight.detach().double().mean(dim=1).numpy()
    edges = (np.arange(49) * 50257) // 48
    assert pooled[0] == pytest.approx(reference[edges[0]:edges[1]].mean(), abs=1e-6)
    assert LayerTelemetry.from_module(model).linear_name("auto") == "transformer.h.1.mlp.c_proj"

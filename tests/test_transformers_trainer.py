"""auralize.transformers.SonifyCallback in real Hugging Face Trainer runs; watch() under Accelerate.

The model is a tiny GPT-2 from its config (random weights, no download) trained on random
tokens.  The reference is computed independently, in the test: a test-side callback copies the
weights at the start of every optimizer step and a forward pre-hook keeps the micro-batches the
model trained on; each step's accumulated gradient is then recomputed on a fresh fp32 copy (the
same mean over all the window's tokens the Trainer takes with ``num_items_in_batch``), clipped
as ``clip_grad_norm_`` clips, and its per-layer norms compared with ``telemetry.jsonl``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from audio_analysis import band_envelope
from auralize import AuralizeError
from auralize.audio.voices import sampler
from auralize.sonify import TrainingStep, make_mapping
from auralize.transformers import SonifyCallback

ROOT = Path(__file__).resolve().parents[1]
CONFIG = dict(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=32,
              resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)  # no dropout: replayable
SEQ = 16
BATCH = 4
ACCUM = 4


def tiny_gpt2(n_layer: int = 2) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(**{**CONFIG, "n_layer": n_layer}))


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int = 1):
        self.ids = torch.randint(0, CONFIG["vocab_size"], (n, SEQ),
                                 generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class Replay(TrainerCallback):
    """Test-side record of each optimizer step: the weights it started from, its micro-batches."""

    def __init__(self, model):
        self.model = model
        self.windows: list[dict] = []
        self.evaluations: list[dict] = []
        model.register_forward_pre_hook(self._batch, with_kwargs=True)

    def on_step_begin(self, args, state, control, **kwargs):
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.windows.append({"weights": weights, "batches": [],
                             "n_layer": self.model.config.n_layer})

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evaluations.append({"step": state.global_step, **metrics})

    def _batch(self, module, args, kwargs):
        if module.training:
            self.windows[-1]["batches"].append(kwargs["input_ids"].detach().clone())


def reference(window: dict, max_norm: float, tokens: str = "shifted"
              ) -> tuple[dict[str, float], float, float]:
    """fp32 per-layer norms of the window's clipped accumulated gradient, its pre-clip total, loss.

    The loss is the summed next-token cross-entropy of all the window's micro-batches over a
    token count: the shifted labels (the mean the model computes) or, with ``tokens="all"``,
    every label, as transformers 5.24's Trainer counts ``num_items_in_batch`` for a model whose
    ``loss_type`` is None (GPT-2): its gradients are then 15/16 of the mean's with 16 tokens.
    """
    model = tiny_gpt2(window.get("n_layer", 2)).float().train()
    model.load_state_dict(window["weights"])
    ids = torch.cat(window["batches"])
    logits = model(input_ids=ids).logits
    summed = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
    loss = summed / (ids[:, 1:].numel() if tokens == "shifted" else ids.numel())
    loss.backward()
    norms, seen = {}, set()
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        grads = [p.grad.double() for p in own if p.grad is not None]
        if grads:
            norms[name] = math.sqrt(sum(float((g * g).sum()) for g in grads))
    total = math.sqrt(sum(v * v for v in norms.values()))
    clip = min(1.0, max_norm / (total + 1e-6)) if max_norm > 0 else 1.0
    return {k: v * clip for k, v in norms.items()}, total, loss.item()


def trainer_tokens(trainer) -> str:
    """Which token count this Trainer divides the window's summed loss by (see ``reference``)."""
    return "shifted" if getattr(trainer, "_loss_shifts_labels", True) else "all"


def train(tmp_path, callback, *, n_train=128, epochs=1, eval_set=None, n_layer=2, **kwargs):
    model = tiny_gpt2(n_layer)
    replay = Replay(model)
    defaults = dict(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=BATCH,
                    gradient_accumulation_steps=ACCUM, num_train_epochs=epochs, use_cpu=True,
                    report_to=[], save_strategy="no", disable_tqdm=True, learning_rate=1e-3)
    defaults.update(kwargs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(bos|eos)_token_id.*")
        callbacks = callback if isinstance(callback, list) else [callback]
        trainer = Trainer(model=model, args=TrainingArguments(**defaults),
                          train_dataset=Tokens(n_train), eval_dataset=eval_set,
                          callbacks=[replay, *callbacks])
        trainer.train()
    replay.tokens = trainer_tokens(trainer)
    return trainer, replay


def telemetry(run_dir: Path) -> list[TrainingStep]:
    lines = (Path(run_dir) / "telemetry.jsonl").read_text().splitlines()
    return [TrainingStep.from_dict(json.loads(line)) for line in lines]


def relative_errors(records, replay, max_norm: float) -> tuple[list[float], list[float]]:
    """Relative errors of every layer's norm in every record; the reference's losses."""
    errors, losses = [], []
    for rec, window in zip(records, replay.windows, strict=True):
        assert len(window["batches"]) == ACCUM
        ref, _, loss = reference(window, max_norm, replay.tokens)
        assert list(rec.grad_norms) == list(ref)          # every layer, in model order
        errors += [abs(rec.grad_norms[k] - ref[k]) / ref[k] for k in ref]
        losses.append(loss)
    return errors, losses


def test_bf16_accumulation_norms_equal_the_fp32_reference(tmp_path):
    sound = SonifyCallback(live=False, plot=False, step_s=0.05, groups="layers")
    trainer, replay = train(tmp_path, sound, bf16=True, logging_steps=2)
    steps = trainer.state.global_step
    assert steps == 128 // (BATCH * ACCUM) == len(replay.windows)
    run_dir = tmp_path / "trainer" / "auralize" / "run-1"       # the default folder
    assert sound.run_dirs == [run_dir] and sound.result.wav_path == run_dir / "sonification.wav"
    records = telemetry(run_dir)
    assert len(records) == steps                                  # one record per optimizer step
    assert [r.step for r in records] == list(range(steps))
    errors, ref_losses = relative_errors(records, replay, max_norm=1.0)
    assert max(errors) < 0.02, max(errors)
    assert np.median(errors) > 1e-5    # bf16 autocast did run: not bit-equal to the fp32 reference
    # the loss the Trainer logged (mean over logging_steps=2 steps) sits on the step it reports
    for k, rec in enumerate(records):
        if k % 2 == 1:
            assert rec.loss == pytest.approx(np.mean(ref_losses[k - 1:k + 1]), rel=0.02)
            assert "grad_norm" in rec.metrics
        else:
            assert rec.loss is None
    # the learning rate each step applied (linear decay from 1e-3)
    assert [r.lr for r in records] == pytest.approx([1e-3 * (1 - k / steps) for k in range(steps)])
    assert records[-1].epoch_end and not any(r.epoch_end for r in records[:-1])
    audio, rate = sf.read(str(run_dir / "sonification.wav"))
    assert len(audio) >= steps * 0.05 * rate and np.abs(audio).max() > 0.01


@pytest.mark.slow  # 12 blocks: ~25 s of CPU
def test_fp32_clipped_norms_equal_the_reference_and_clipping_is_marked(tmp_path):
    max_norm = 0.7      # amid the gradients' norms: some steps are clipped, some not
    sound = SonifyCallback(tmp_path / "run", live=False, plot=False, step_s=0.05, groups="layers")
    trainer, replay = train(tmp_path, sound, max_grad_norm=max_norm, logging_steps=1,
                            n_layer=12)  # 12 blocks: 75 layers
    records = telemetry(tmp_path / "run")
    assert len(records) == trainer.state.global_step == len(replay.windows) == 8
    # the pre-clip norms (what clipping saw: auralize reads them inside clip_grad_norm_)
    assert max(relative_errors(records, replay, 0.0)[0]) < 1e-4
    assert [r.clipped for r in records] == [
        reference(w, max_norm, replay.tokens)[1] > max_norm for w in replay.windows]
    logged = [h for h in trainer.state.log_history if "grad_norm" in h]
    assert len(logged) == len(records)
    clipped = 0
    for rec, window, log in zip(records, replay.windows, logged, strict=True):
        _, total, loss = reference(window, max_norm, replay.tokens)
        assert rec.loss == pytest.approx(loss, rel=1e-4)                 # logging_steps=1: per step
        assert rec.metrics["grad_norm"] == pytest.approx(total, rel=1e-4)  # the Trainer's pre-clip norm
        assert rec.metrics["grad_norm"] == log["grad_norm"]
        assert rec.metrics["grad_clipped"] == float(total > max_norm)
        clipped += total > max_norm
    assert 0 < clipped < len(records), clipped
    assert len(records[0].grad_norms) == 75


def test_evaluations_are_in_the_records_and_spoken(tmp_path):
    if not sampler.speech_available():
        from conftest import audio_unavailable

        audio_unavailable("espeak-ng not installed (Debian: apt-get install espeak-ng)")
    step_s = 0.4                        # room for a sentence after each epoch's last step
    low_loss = {"kind": "loss", "min_freq": 100.0, "max_freq": 200.0}  # below the speech band
    sound = SonifyCallback(tmp_path / "run", mappings=[low_loss, {"kind": "speech", "rate_wpm": 300}],
                           live=False, plot=False, step_s=step_s)
    trainer, replay = train(tmp_path, sound, n_train=64, epochs=3, eval_set=Tokens(16, seed=2),
                            eval_strategy="epoch", bf16=True)
    records = telemetry(tmp_path / "run")
    assert len(records) == trainer.state.global_step == 12
    ends = [r for r in records if r.epoch_end]
    assert [r.step for r in ends] == [3, 7, 11] and [r.epoch for r in ends] == [0, 1, 2]
    assert [r.metrics["eval_loss"] for r in ends] == [e["eval_loss"] for e in replay.evaluations]
    assert not any("eval_loss" in r.metrics for r in records if not r.epoch_end)
    # what the speech mapping says for these records (the words of the recording)
    speech = make_mapping("speech")
    said = [e.value["speech"] for r in records for e in speech.events(r, 0.0, step_s)
            if e.param == "play"]
    first = replay.evaluations[0]["eval_loss"]
    assert said[0] == f"epoch 1, evaluation loss {float(f'{first:.2g}'):g}"
    assert len(said) == 3
    # and it is heard: speech-band energy after each epoch's last step, silence elsewhere
    audio, rate = sf.read(str(tmp_path / "run" / "sonification.wav"), dtype="float32")
    times, band = band_envelope(audio, rate, 300.0, 3400.0)
    for rec in ends:
        start_s = rec.step * step_s
        window = (times > start_s) & (times < start_s + 0.8)
        assert band[window].max() > 0.02, rec.step
    quiet = (times > 0.2) & (times < 3 * step_s - 0.1)    # steps 0-2: no announcement
    assert band[quiet].max() < 0.01


def test_a_failing_callback_never_stops_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    sound = SonifyCallback(blocker / "run", live=False, plot=False)   # cannot be created
    with pytest.warns(UserWarning, match="sound of this training run stopped.*training goes on") as got:
        trainer, replay = train(tmp_path, sound)
    assert sum("stopped" in str(w.message) for w in got) == 1      # warned once
    assert str(blocker) in str(next(w.message for w in got if "stopped" in str(w.message)))
    assert trainer.state.global_step == 8 == len(replay.windows)    # trained to the end
    assert sound.sonifier is None and not (blocker / "run").exists()


class Crash(TrainerCallback):
    """Raises in the training loop once, after ``at`` optimizer steps (a run that dies)."""

    def __init__(self, at: int):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            self.at = None
            raise RuntimeError("the data loader died")


def test_each_train_gets_its_own_run_folder_and_a_crashed_one_is_finished(tmp_path):
    sound = SonifyCallback(mappings=["loss", "gradients"], live=False, plot=False, step_s=0.05,
                           groups="layers")
    with pytest.raises(RuntimeError, match="data loader died"):
        train(tmp_path, [Crash(at=3), sound], n_train=64)      # dies after 3 of 4 steps
    root = tmp_path / "trainer" / "auralize"
    # line-buffered, kept as it died: step 0 (records are logged a step behind; step 1 is held
    # back, step 2's gradients are pending)
    assert [r.step for r in telemetry(root / "run-1")] == [0]
    assert not (root / "run-1" / "metrics.csv").exists()     # (written when a run ends)
    trainer, _ = train(tmp_path, sound, n_train=32)          # a new train(): 2 steps
    assert sound.run_dirs == [root / "run-1", root / "run-2"]
    assert [r.step for r in telemetry(root / "run-1")] == [0, 1, 2]   # finished: all it heard
    assert (root / "run-1" / "metrics.csv").is_file()
    records = telemetry(root / "run-2")
    assert [r.step for r in records] == [0, 1] and all(r.grad_norms for r in records)
    assert trainer.state.global_step == 2 and sound.result.out_dir == root / "run-2"
    assert sf.info(str(root / "run-2" / "sonification.wav")).frames > 0


def test_bad_arguments_are_one_line_errors_before_training():
    with pytest.raises(AuralizeError, match="unknown argument 'step'; the Sonifier takes: clock"):
        SonifyCallback(step=0.1)
    with pytest.raises(AuralizeError, match="unknown mapping|no mapping"):
        SonifyCallback(mappings=["lost"])


def test_without_transformers_one_line_error_naming_the_extra(tmp_path):
    (tmp_path / "transformers.py").write_text("raise ImportError('hidden for this test')\n")
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "try:\n    import auralize.transformers\n"
            "except Exception as e:\n    print(type(e).__name__, '|', e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, timeout=120,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == ("AuralizeError | auralize.transformers needs Hugging Face "
                                  "transformers: pip install auralize[hf]"), out.stderr[-2000:]


# -- Accelerate --------------------------------------------------------------------------------
def test_watch_hears_a_loop_prepared_by_accelerate(tmp_path):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    from auralize.torch import watch

    # Accelerate's state is process-wide: a Trainer(bf16=True) earlier in this process
    # would make this Accelerator autocast to bf16 too (the fp32 reference then differs)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    accelerator = Accelerator(cpu=True, gradient_accumulation_steps=2)
    assert accelerator.mixed_precision == "no"
    model = tiny_gpt2()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    start = {k: v.detach().clone() for k, v in model.state_dict().items()}
    data = Tokens(32).ids.split(BATCH)
    windows, step_ids = [], []
    with watch(model, optimizer, out_dir=tmp_path / "run", live=False, plot=False, groups="layers",
               step_s=0.05) as w:
        for ids in data:
            if not step_ids:
                windows.append({"weights": {k: v.detach().clone()
                                            for k, v in model.state_dict().items()}})
            step_ids.append(ids)
            with accelerator.accumulate(model):
                loss = model(input_ids=ids, labels=ids).loss
                accelerator.backward(loss)
                optimizer.step()             # a real step only every second micro-batch
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                windows[-1]["batches"] = step_ids
                step_ids = []
                w.log_loss(loss)
    records = telemetry(tmp_path / "run")
    assert len(records) == len(windows) == 4
    assert not all(torch.equal(start[k], v) for k, v in model.state_dict().items())  # it trained
    for rec, window in zip(records, windows, strict=True):
        ref, _, _ = reference(window, max_norm=0.0)
        assert list(rec.grad_norms) == list(ref)
        assert all(rec.grad_norms[k] == pytest.approx(ref[k], rel=1e-4) for k in ref)
        assert rec.lr == 1e-3


@pytest.mark.slow  # two processes that each import transformers
@pytest.mark.parametrize("asked", ["ddp", "fsdp"])
def test_ddp_two_ranks_rank_zero_hears_the_all_reduced_gradient(tmp_path, asked):
    # asked="fsdp": on CPU Accelerate trains DDP anyway; its whole gradients are heard
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    cmd = ([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]) + [
        "--standalone", "--nproc_per_node", "2", str(ROOT / "tests" / "hf_ddp_script.py"),
        str(tmp_path)] + (["fsdp"] if asked == "fsdp" else [])
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["ddp"] == "DistributedDataParallel"
    assert ranks[0]["warnings"] == ranks[1]["warnings"] == []     # nothing left out
    assert ranks[0]["run_dirs"] == [tmp_path / "run"] and ranks[1]["run_dirs"] == []
    assert sorted(tmp_path.rglob("*.wav")) == [tmp_path / "run" / "sonification.wav"]
    records = telemetry(tmp_path / "run")
    assert len(records) == ranks[0]["steps"] == 4
    for k, rec in enumerate(records):
        both = {"weights": ranks[0]["windows"][k]["weights"],
                "batches": ranks[0]["windows"][k]["batches"] + ranks[1]["windows"][k]["batches"]}
        assert len(both["batches"]) == 4     # 2 micro-batches on each rank
        ref, _, _ = reference(both, max_norm=1.0, tokens=ranks[0]["tokens"])
        assert list(rec.grad_norms) == list(ref)
        assert all(rec.grad_norms[n] == pytest.approx(ref[n], rel=1e-4) for n in ref), k


def run_deepspeed(tmp_path, *script_args) -> list[dict]:
    """tests/hf_deepspeed_script.py on 2 CPU ranks by the ``deepspeed`` launcher; each rank's notes.

    A rank left waiting in a collective would hang the launch: the timeout fails it.
    """
    pytest.importorskip("deepspeed")
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("the deepspeed launcher is not installed")
    env = dict(os.environ, OMP_NUM_THREADS="1", DS_ACCELERATOR="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    port = str(29500 + os.getpid() % 2000)
    proc = subprocess.run([launcher, "--num_gpus", "2", "--master_port", port,
                           str(ROOT / "tests" / "hf_deepspeed_script.py"), str(tmp_path),
                           *script_args],
                          env=env, capture_output=True, text=True, timeout=500, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


@pytest.mark.slow  # DeepSpeed's start-up on 2 ranks: ~30-60 s each
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_two_ranks_hear_the_global_preclip_norms(tmp_path, stage):
    ranks = run_deepspeed(tmp_path, str(stage))
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["engine"] == "DeepSpeedEngine"
    assert ranks[0]["warnings"] == ranks[1]["warnings"] == []      # nothing left out
    assert ranks[0]["run_dirs"] == [tmp_path / "run"] and ranks[1]["run_dirs"] == []
    assert sorted(tmp_path.rglob("*.wav")) == [tmp_path / "run" / "sonification.wav"]
    records = telemetry(tmp_path / "run")
    assert len(records) == ranks[0]["steps"] == 4
    max_norm = 0.7      # hf_deepspeed_script.MAX_NORM: DeepSpeed clips inside its step
    clipped = []
    for k, rec in enumerate(records):
        both = {"weights": ranks[0]["windows"][k]["weights"],
                "batches": ranks[0]["windows"][k]["batches"] + ranks[1]["windows"][k]["batches"]}
        assert len(both["batches"]) == 4     # 2 micro-batches on each rank
        ref, total, loss = reference(both, max_norm=0.0, tokens=ranks[0]["tokens"])
        assert list(rec.grad_norms) == list(ref)        # every layer: no shard-local subset
        assert all(rec.grad_norms[n] == pytest.approx(ref[n], rel=1e-4) for n in ref), k
        assert rec.loss == pytest.approx(loss, rel=1e-4) == ranks[0]["losses"][k]
        assert rec.metrics["grad_norm"] == pytest.approx(total, rel=1e-4)   # DeepSpeed's own
        assert rec.clipped == (total > max_norm) == bool(rec.metrics["grad_clipped"])
        clipped.append(rec.clipped)
    assert any(clipped) and not all(clipped), clipped
    # the first step always has weight statistics: the whole weights' norms, not a partition's
    weights = ranks[0]["windows"][0]["weights"]
    assert records[0].weight_stats
    for layer, stats in records[0].weight_stats.items():
        own = [v for k, v in weights.items() if k.rsplit(".", 1)[0] == layer]
        assert stats["norm"] == pytest.approx(
            math.sqrt(sum(float((v.double() ** 2).sum()) for v in own)), rel=1e-4), layer


@pytest.mark.slow  # DeepSpeed's start-up on 2 ranks: ~30-60 s
def test_deepspeed_rank_zero_whose_sound_fails_still_joins_and_training_goes_on(tmp_path):
    ranks = run_deepspeed(tmp_path, "2", "broken")       # no hang, rc 0
    assert [r["steps"] for r in ranks] == [4, 4]          # both ranks trained to the end
    assert len(ranks[0]["warnings"]) == 1 and ranks[0]["warnings"][0].startswith(
        "auralize: the sound of this training run stopped (NotADirectoryError")
    assert ranks[1]["warnings"] == []     # rank 1 saw rank 0 in every all-reduce
    assert not list(tmp_path.rglob("*.wav")) and not list(tmp_path.rglob("telemetry.jsonl"))

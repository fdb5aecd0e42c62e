"""Training a dream model with Lightning: steps or epochs, checkpoints, resume, TensorBoard.

Run folder layout (``out``)::

    config.json                 the training and model settings
    checkpoints/stepNNNNNNN.ckpt  every ``ckpt_every`` steps and at the end, last ``keep`` kept
    checkpoints/latest          name of the newest checkpoint
    steps.csv                   one row per optimiser step: step, epoch, loss, first sample
    tb/                         TensorBoard: loss, accuracy, confusion matrix, audio
    report.json, test_confusion.png, test_eval.json   test-fold results at the end
    test_predictions.csv        one row per test clip (see dream.evaluate.write_predictions)

Determinism: the batch of step ``s`` is a function of ``(seed, s)`` only, and the
random numbers of step ``s`` (augmentation, dropout) are seeded by ``(seed, s)``.
A run interrupted after a checkpoint and resumed therefore repeats no step,
misses none, and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from auralize.dream.batches import (
    AUGMENTATIONS,
    ClipDataset,
    StepBatchSampler,
    collate_clips,
)
from auralize.dream.checkpoints import (
    atomic_write_text,
    checkpoint_io,
    latest_checkpoint,
    list_checkpoints,
    truncate_ledger,
)
from auralize.dream.datasets import ClipSet, detect_layout, load_dataset
from auralize.dream.evaluate import evaluate, save_confusion_png
from auralize.dream.models import default_config
from auralize.dream.module import lightning, make_module
from auralize.errors import AuralizeError


@dataclass
class TrainConfig:
    """Everything a training run needs; saved as ``config.json`` in the run folder."""

    data: str
    out: str
    arch: str = "sb_cnn"
    sample_rate: int = 22050
    clip_s: float = 4.0
    steps: int | None = None  # optimiser steps; None -> epochs decide
    epochs: int | None = None
    batch_size: int = 32
    lr: float = 1e-3
    train_folds: list = field(default_factory=lambda: list(range(1, 9)))
    val_folds: list = field(default_factory=lambda: [9])
    test_folds: list = field(default_factory=lambda: [10])
    val_every: int = 50  # steps
    ckpt_every: int = 100  # steps
    keep: int = 5
    augment: list = field(default_factory=lambda: list(AUGMENTATIONS))
    seed: int = 0
    target_acc: float | None = None  # stop once validation accuracy reaches it
    audio_examples: int = 3
    progress: bool = True
    threads: int | None = None

    def validate(self) -> None:
        bad = [a for a in self.augment if a not in AUGMENTATIONS]
        if bad:
            raise AuralizeError(
                f"unknown augmentation(s) {', '.join(bad)}; choose from: {', '.join(AUGMENTATIONS)}"
            )
        if self.steps is None and self.epochs is None:
            self.steps = 1000
        for name in ("batch_size", "val_every", "ckpt_every", "keep"):
            if int(getattr(self, name)) < 1:
                raise AuralizeError(f"{name.replace('_', '-')} must be at least 1")
        if self.steps is not None and self.steps < 1:
            raise AuralizeError("steps must be at least 1")
        if self.epochs is not None and self.epochs < 1:
            raise AuralizeError("epochs must be at least 1")


def _make_callbacks(cfg: TrainConfig, run: Path, sampler: StepBatchSampler):
    pl = lightning()

    class StepLedger(pl.Callback):
        """Appends one row per optimiser step to steps.csv (flushed, so a crash loses nothing)."""

        def __init__(self) -> None:
            self.path = run / "steps.csv"

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            step = trainer.global_step - 1
            new = not self.path.exists()
            with open(self.path, "a", newline="") as fh:
                w = csv.writer(fh)
                if new:
                    w.writerow(["step", "epoch", "loss", "first_index", "time_s"])
                w.writerow([step, step // sampler.per_epoch, f"{module._last_loss:.6f}",
                            int(batch[2][0]), f"{time.time():.3f}"])

    class StepCheckpoint(pl.Callback):
        """Checkpoint every N steps and at the end; keep the newest ``keep``."""

        def __init__(self) -> None:
            self.dir = run / "checkpoints"

        def _save(self, trainer) -> None:
            step = trainer.global_step
            path = self.dir / f"step{step:07d}.ckpt"
            if path.exists():
                return
            trainer.save_checkpoint(str(path), weights_only=False)
            atomic_write_text(self.dir / "latest", path.name + "\n")
            for old in list_checkpoints(run)[: -cfg.keep]:
                old.unlink(missing_ok=True)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.global_step % cfg.ckpt_every == 0:
                self._save(trainer)

        def on_train_end(self, trainer, module):
            self._save(trainer)

    callbacks = [StepLedger(), StepCheckpoint()]
    if cfg.target_acc is not None:
        callbacks.append(
            pl.callbacks.EarlyStopping(
                monitor="val/acc", mode="max", stopping_threshold=float(cfg.target_acc),
                patience=10**9, check_on_train_epoch_end=False,
            )
        )
    return callbacks




def set_threads(threads: int | None) -> int:
    """Use ``threads`` torch threads (default: min(2, cores)); return the number used."""
    n = int(threads or min(2, os.cpu_count() or 1))
    torch.set_num_threads(max(1, n))
    return n


def split_keys(cfg: TrainConfig, layout: str) -> tuple[list, list, list]:
    if layout == "modified":
        return ["train"], ["validate"], ["test"]
    return list(cfg.train_folds), list(cfg.val_folds), list(cfg.test_folds)


def train(cfg: TrainConfig, resume: bool = False, clips: ClipSet | None = None) -> dict:
    """Train (or resume) a run; return a summary dict (also in ``report.json``).

    Parameters
    ----------
    cfg : TrainConfig
        Settings; ``cfg.out`` is the run folder.
    resume : bool
        Continue from the newest checkpoint in ``cfg.out`` (error when there is none).
    clips : ClipSet, optional
        Already-loaded clips (skips reading ``cfg.data``).
    """
    pl = lightning()
    import logging

    for name in ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cfg.validate()
    set_threads(cfg.threads)
    run = Path(cfg.out)
    ckpt_path = None
    if resume:
        ckpt_path = latest_checkpoint(run)
        if ckpt_path is None:
            raise AuralizeError(f"nothing to resume: no checkpoints in {str(run / 'checkpoints')!r}")
        saved = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
        for key in ("arch", "sample_rate", "clip_s", "batch_size", "seed"):
            if key in saved and saved[key] != getattr(cfg, key):
                warnings.warn(f"resuming with {key}={saved[key]!r} from the run "
                              f"(not {getattr(cfg, key)!r})", stacklevel=2)
                setattr(cfg, key, saved[key])
    elif list_checkpoints(run):
        raise AuralizeError(
            f"{str(run)!r} already holds checkpoints: add --resume to continue, or choose another --out"
        )
    # everything that can fail on the user's data fails before the run folder exists
    layout = detect_layout(cfg.data) if clips is None else "urbansound8k"
    tr_keys, va_keys, te_keys = split_keys(cfg, layout)
    if clips is None:
        clips = load_dataset(cfg.data, cfg.sample_rate, cfg.clip_s,
                             splits=tr_keys + va_keys + te_keys, progress=cfg.progress)
    train_clips, val_clips, test_clips = (clips.select(k) for k in (tr_keys, va_keys, te_keys))
    if len(train_clips) == 0:
        raise AuralizeError(f"no training clips in split(s) {tr_keys} of {cfg.data!r}")
    run.mkdir(parents=True, exist_ok=True)
    model_config = default_config(cfg.arch, clips.class_names, cfg.sample_rate, cfg.clip_s)
    if ckpt_path is not None:
        saved_model = torch.load(str(ckpt_path), map_location="cpu", weights_only=True)
        model_config = saved_model["auralize"]["model_config"]
        start_step = int(saved_model["global_step"])
        del saved_model
        truncate_ledger(run, start_step)
    else:
        start_step = 0
        (run / "steps.csv").unlink(missing_ok=True)
    (run / "config.json").write_text(
        json.dumps({**asdict(cfg), "model_config": model_config}, indent=2, default=str)
    )

    torch.manual_seed(cfg.seed)  # same initial weights for the same seed
    module = make_module(model_config, cfg)
    sampler = StepBatchSampler(len(train_clips), cfg.batch_size, cfg.seed)
    sampler.next_step = start_step
    module._train_loader = torch.utils.data.DataLoader(
        ClipDataset(train_clips), batch_sampler=sampler, collate_fn=collate_clips
    )
    module._val_loader = (
        torch.utils.data.DataLoader(ClipDataset(val_clips), batch_size=64, collate_fn=collate_clips)
        if len(val_clips) else None
    )
    callbacks = _make_callbacks(cfg, run, sampler)
    from lightning.pytorch.loggers import TensorBoardLogger

    logger = TensorBoardLogger(str(run), name="tb", version="", default_hp_metric=False)
    max_steps = cfg.steps if cfg.steps is not None else -1
    val_every = int(cfg.val_every)
    trainer = pl.Trainer(
        accelerator="cpu" if not torch.cuda.is_available() else "auto",
        devices=1,
        max_steps=max_steps,
        max_epochs=cfg.epochs if cfg.epochs is not None else -1,
        val_check_interval=val_every if module._val_loader is not None else None,
        check_val_every_n_epoch=None if module._val_loader is not None else 1,
        limit_val_batches=1.0 if module._val_loader is not None else 0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        logger=logger,
        log_every_n_steps=max(1, min(10, cfg.val_every)),
        callbacks=callbacks,
        plugins=[checkpoint_io()],
        use_distributed_sampler=False,
        deterministic=False,
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        # resuming mid-epoch is exact here: StepBatchSampler restarts at the saved step
        warnings.filterwarnings("ignore", message=".*dataloader is not resumable.*")
        trainer.fit(module, ckpt_path=str(ckpt_path) if ckpt_path else None)
    train_s = time.perf_counter() - t0

    model = module.model.eval()
    report: dict = {
        "run": str(run),
        "steps": int(trainer.global_step),
        "resumed_from_step": start_step if ckpt_path else None,
        "train_seconds": round(train_s, 2),
        "clips_per_second": round((trainer.global_step - start_step) * sampler.batch_size
                                  / max(train_s, 1e-9), 1),
        "n_train": len(train_clips),
        "n_val": len(val_clips),
        "n_test": len(test_clips),
        "skipped_files": len(clips.skipped),
        "checkpoint": str(latest_checkpoint(run)),
    }
    val_acc = trainer.callback_metrics.get("val/acc")
    if val_acc is not None:
        report["val_acc"] = float(val_acc)
    if len(test_clips):
        res = evaluate(model, test_clips, predictions_csv=run / "test_predictions.csv")
        report["test_acc"] = res.accuracy
        report["test_folds"] = te_keys
        res.to_json(run / "test_eval.json")
        save_confusion_png(res.confusion, res.class_names, run / "test_confusion.png",
                           f"test split(s) {','.join(map(str, te_keys))}: acc {res.accuracy:.3f}")
    atomic_write_text(run / "report.json", json.dumps(report, indent=2))
    return report


def cross_validate(cfg: TrainConfig, folds=None, clips: ClipSet | None = None) -> dict:
    """The official protocol: for each test fold k, validate on fold k-1 and train on the rest.

    Returns per-fold test accuracies, their mean and standard deviation.
    """
    all_folds = list(range(1, 11))
    folds = list(folds or all_folds)
    base = Path(cfg.out)
    if clips is None:
        clips = load_dataset(cfg.data, cfg.sample_rate, cfg.clip_s, progress=cfg.progress)
    present = sorted({s for s in clips.splits if isinstance(s, int)})
    if not present:
        raise AuralizeError("--cv needs the official fold layout (metadata CSV with folds)")
    results = {}
    for k in folds:
        if k not in present:
            raise AuralizeError(f"fold {k} is not in the data (folds present: {present})")
        val = present[(present.index(k) - 1) % len(present)]
        fold_cfg = TrainConfig(**{**asdict(cfg), "out": str(base / f"fold{k}"),
                                  "test_folds": [k], "val_folds": [val],
                                  "train_folds": [f for f in present if f not in (k, val)]})
        rep = train(fold_cfg, clips=clips)
        results[k] = rep.get("test_acc")
    accs = np.array([v for v in results.values() if v is not None], dtype=float)
    out = {
        "folds": {str(k): v for k, v in results.items()},
        "mean_acc": float(accs.mean()) if accs.size else math.nan,
        "std_acc": float(accs.std()) if accs.size else math.nan,
    }
    base.mkdir(parents=True, exist_ok=True)
    atomic_write_text(base / "cv.json", json.dumps(out, indent=2))
    return out

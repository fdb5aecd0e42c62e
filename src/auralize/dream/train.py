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
import torch.nn.functional as F

from auralize.dream.datasets import ClipSet, detect_layout, load_dataset
from auralize.dream.evaluate import confusion_figure, evaluate, save_confusion_png, summarize
from auralize.dream.models import build_model, default_config
from auralize.errors import AuralizeError

AUGMENTATIONS = ("shift", "gain", "noise", "stretch")


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


# ----------------------------------------------------------------------------- data


class StepBatchSampler(torch.utils.data.Sampler):
    """Batches as a function of the global step: batch ``s`` = slice of epoch ``s // per_epoch``.

    Each epoch is a permutation seeded by ``(seed, epoch)``; the last incomplete
    batch is dropped.  ``start_step`` makes the first iteration begin mid-epoch
    (after a resume).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0) -> None:
        self.n = int(n)
        self.batch_size = min(int(batch_size), self.n)
        self.seed = int(seed)
        self.per_epoch = max(1, self.n // self.batch_size)
        self.next_step = 0

    def batch(self, step: int) -> list[int]:
        epoch, pos = divmod(int(step), self.per_epoch)
        perm = np.random.default_rng([self.seed, epoch, 1]).permutation(self.n)
        return perm[pos * self.batch_size : (pos + 1) * self.batch_size].tolist()

    def __len__(self) -> int:
        return self.per_epoch - (self.next_step % self.per_epoch)

    def __iter__(self):
        start = self.next_step
        end = (start // self.per_epoch + 1) * self.per_epoch
        for s in range(start, end):
            self.next_step = s + 1
            yield self.batch(s)


class _ClipDataset(torch.utils.data.Dataset):
    def __init__(self, clips: ClipSet) -> None:
        self.x = torch.from_numpy(clips.waves)
        self.y = torch.from_numpy(clips.labels)
        self.idx = torch.arange(len(clips))

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i], self.idx[i]


def _collate(items):
    xs, ys, ids = zip(*items)
    return torch.stack(xs), torch.stack(ys), torch.stack(ids)


# ----------------------------------------------------------------------------- augmentation


def augment_batch(x: torch.Tensor, kinds, gen: torch.Generator) -> torch.Tensor:
    """Waveform augmentation of a batch ``(b, n)``; random numbers from ``gen``.

    shift: circular time shift by up to the clip length; gain: -9 to +3 dB;
    noise: white noise 20 - 40 dB below the clip's RMS; stretch: speed change by
    0.85 - 1.15 (pitch and time together, by resampling), then cropped/padded.
    """
    b, n = x.shape
    if "stretch" in kinds:
        rate = float(torch.empty(1).uniform_(0.85, 1.15, generator=gen))
        m = max(16, round(n / rate))
        y = F.interpolate(x.unsqueeze(1), size=m, mode="linear", align_corners=False).squeeze(1)
        x = y[:, :n] if m >= n else F.pad(y, [0, n - m])
    if "shift" in kinds:
        shifts = torch.randint(0, n, (b, 1), generator=gen)
        idx = (torch.arange(n).unsqueeze(0) - shifts) % n
        x = x.gather(1, idx)
    if "gain" in kinds:
        db = torch.empty(b, 1).uniform_(-9.0, 3.0, generator=gen)
        x = x * 10 ** (db / 20)
    if "noise" in kinds:
        rms = x.pow(2).mean(dim=1, keepdim=True).sqrt()
        snr = torch.empty(b, 1).uniform_(20.0, 40.0, generator=gen)
        x = x + torch.randn(x.shape, generator=gen) * rms * 10 ** (-snr / 20)
    return x.clamp(-1.0, 1.0)


# ----------------------------------------------------------------------------- lightning


def _lightning():
    import lightning.pytorch as pl  # imported on use: `auralize dream run` does not need it

    return pl


def make_module(model_config: dict, cfg: TrainConfig, train_clips=None, val_clips=None):
    """The LightningModule (defined lazily so that importing this file needs no Lightning)."""
    pl = _lightning()

    class DreamModule(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = build_model(model_config)
            self.model_config = model_config
            self.cfg = cfg
            self._val_preds: list = []
            self._val_labels: list = []
            self._logged_audio = False

        def forward(self, x):
            return self.model(x)

        def on_train_batch_start(self, batch, batch_idx):
            # per-step seeding: dropout and augmentation depend on (seed, step) only
            torch.manual_seed(cfg.seed * 1_000_003 + self.global_step)

        def training_step(self, batch, batch_idx):
            x, y, _ = batch
            if cfg.augment:
                gen = torch.Generator().manual_seed(cfg.seed * 7_919 + self.global_step)
                x = augment_batch(x, cfg.augment, gen)
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            acc = (logits.argmax(1) == y).float().mean()
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/acc", acc, prog_bar=True)
            if self.global_step == 0 and cfg.audio_examples and self._tb() is not None:
                self._tb().add_audio(
                    "train/augmented_example", x[0].detach().clamp(-1, 1).unsqueeze(0),
                    0, sample_rate=model_config["sample_rate"],
                )
            self._last_loss = float(loss.detach())
            return loss

        def validation_step(self, batch, batch_idx):
            x, y, _ = batch
            logits = self.model(x)
            self.log("val/loss", F.cross_entropy(logits, y), prog_bar=False)
            self._val_preds.append(logits.argmax(1).cpu())
            self._val_labels.append(y.cpu())
            if not self._logged_audio and batch_idx == 0 and self._tb() is not None:
                names = model_config["class_names"]
                for i in range(min(cfg.audio_examples, len(x))):
                    self._tb().add_audio(
                        f"val/example{i}_{names[int(y[i])]}", x[i].clamp(-1, 1).unsqueeze(0),
                        self.global_step, sample_rate=model_config["sample_rate"],
                    )

        def on_validation_epoch_end(self):
            if not self._val_preds:
                return
            preds = torch.cat(self._val_preds).numpy()
            labels = torch.cat(self._val_labels).numpy()
            self._val_preds, self._val_labels = [], []
            if self.trainer.sanity_checking:
                return
            self._logged_audio = True
            res = summarize(labels, preds, model_config["class_names"])
            self.log("val/acc", res.accuracy, prog_bar=True)
            tb = self._tb()
            if tb is not None:
                import matplotlib.pyplot as plt

                fig = confusion_figure(
                    res.confusion, res.class_names, f"validation, step {self.global_step}"
                )
                tb.add_figure("val/confusion_matrix", fig, self.global_step)
                plt.close(fig)

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=cfg.lr)

        def on_save_checkpoint(self, checkpoint):
            checkpoint["auralize"] = {
                "model_config": model_config,
                "train_config": json.loads(json.dumps(asdict(cfg), default=str)),
            }

        def _tb(self):
            logger = self.logger
            return getattr(logger, "experiment", None) if logger is not None else None

        def train_dataloader(self):
            return self._train_loader

        def val_dataloader(self):
            return self._val_loader

    module = DreamModule()
    return module


def _make_callbacks(cfg: TrainConfig, run: Path, sampler: StepBatchSampler):
    pl = _lightning()

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
            _atomic_write_text(self.dir / "latest", path.name + "\n")
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


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def atomic_torch_save(obj, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename.

    A reader never sees a half-written file: either the old one or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - directories cannot be fsynced everywhere
        pass


def _checkpoint_io():
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            atomic_torch_save(checkpoint, path)

    return AtomicCheckpointIO()


def list_checkpoints(run: str | Path) -> list[Path]:
    """Complete checkpoints of a run folder, oldest first (temporary files ignored)."""
    d = Path(run) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("step*.ckpt") if not p.name.startswith("."))


def latest_checkpoint(run: str | Path) -> Path | None:
    ckpts = list_checkpoints(run)
    return ckpts[-1] if ckpts else None


def _truncate_ledger(run: Path, before_step: int) -> None:
    """Drop ledger rows of steps the checkpoint did not include (they will be redone)."""
    path = run / "steps.csv"
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < before_step]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(keep)
    os.replace(tmp, path)


def read_ledger(run: str | Path) -> list[dict]:
    path = Path(run) / "steps.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ----------------------------------------------------------------------------- entry point


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
    pl = _lightning()
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
        _truncate_ledger(run, start_step)
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
        _ClipDataset(train_clips), batch_sampler=sampler, collate_fn=_collate
    )
    module._val_loader = (
        torch.utils.data.DataLoader(_ClipDataset(val_clips), batch_size=64, collate_fn=_collate)
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
        plugins=[_checkpoint_io()],
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
    _atomic_write_text(run / "report.json", json.dumps(report, indent=2))
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
    _atomic_write_text(base / "cv.json", json.dumps(out, indent=2))
    return out

"""Training a generator with Lightning; run folders; loading a trained run.

A run folder ``<runs>/<hidden>_<depth>_<dataset>/`` holds::

    config.json          the config used
    norm.npz             the dataset's normalisation statistics (undone at generation)
    dataset.json         the dataset's meta data (its folder: seeds for sampling)
    model_summary.txt    layers and parameter counts
    model_graph.png      a block's path through the network, with parameter counts
    loss.png             validation loss per epoch (redrawn after each epoch)
    history.json         validation loss per epoch (entry 0: before any training)
    checkpoints/         the last N epochs (default 5), best.ckpt (lowest validation
                         loss so far) and last.ckpt (training resumes from it)
    tb/                  TensorBoard logs (train_loss, val_loss)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from auralize.errors import AuralizeError
from auralize.generate.config import GenConfig
from auralize.generate.data import DEFAULT_ROOT, Dataset
from auralize.generate.features import Normalizer
from auralize.generate.model import BlockLSTM
from auralize.generate.pictures import save_loss_curve, save_model_graph
from auralize.readers import read_json, torch_load


def _lightning():
    import lightning as L

    return L


def make_module(cfg: GenConfig):
    """A LightningModule wrapping :class:`BlockLSTM` (MSE on the next block)."""
    L = _lightning()

    class GenModule(L.LightningModule):
        def __init__(self, config: dict) -> None:
            super().__init__()
            self.save_hyperparameters()
            c = GenConfig(**config)
            self.cfg = c
            self.net = BlockLSTM.from_config(c)
            self.example_input_array = torch.zeros(1, 2, c.feature_size)

        def forward(self, x):
            return self.net(x)[0]

        def _loss(self, batch):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            return torch.nn.functional.mse_loss(self(x[:, :-1]), x[:, 1:])

        def training_step(self, batch, batch_idx):
            loss = self._loss(batch)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self._loss(batch), prog_bar=True)

        def configure_optimizers(self):
            opt = self.cfg.optimizer.lower()
            params = self.parameters()
            if opt == "rmsprop":
                return torch.optim.RMSprop(params, lr=self.cfg.lr)
            if opt == "adam":
                return torch.optim.Adam(params, lr=self.cfg.lr)
            if opt == "sgd":
                return torch.optim.SGD(params, lr=self.cfg.lr, momentum=0.9)
            raise AuralizeError(f"unknown optimizer {self.cfg.optimizer!r} (rmsprop, adam, sgd)")

    cfg_dict = {k: v for k, v in cfg.to_dict().items() if k != "source"}
    return GenModule(cfg_dict)


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    history: list  # [{"epoch", "step", "val_loss"}]; entry 0 before training
    global_step: int
    epochs_done: int


def _split(x: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.random.default_rng(seed).permutation(len(x))
    n_val = max(1, round(len(x) * val_fraction)) if len(x) > 1 else 0
    val = x[idx[:n_val]] if n_val else x
    return x[idx[n_val:]], val


def train(
    cfg: GenConfig,
    dataset: Dataset,
    *,
    runs_root: str | Path | None = None,
    epochs: int | None = None,
    resume: bool = True,
    progress: bool = True,
    seed: int = 0,
    keep_last: int = 5,
) -> TrainResult:
    """Train ``cfg`` on ``dataset``; resume from the run folder's last checkpoint.

    Parameters
    ----------
    epochs : int, optional
        Epochs to run in this call (default ``cfg.max_epochs``); a resumed run
        continues counting from its saved epoch and step.
    resume : bool
        Continue from ``checkpoints/last.ckpt`` when present (else start afresh).
    keep_last : int
        Epoch checkpoints kept: the newest ``keep_last`` (0: every one).  ``best.ckpt``
        (lowest validation loss) and ``last.ckpt`` are kept besides them.
    """
    L = _lightning()
    from lightning.pytorch.callbacks import Callback, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities.model_summary import ModelSummary

    if dataset.meta.get("feature_size") != cfg.feature_size or (
            dataset.meta.get("block_size") != cfg.block_size):
        raise AuralizeError(f"dataset {str(dataset.folder)!r} was converted for other features; "
                            f"run `auralize generate convert --config {cfg.name}`")
    if int(keep_last) < 0:
        raise AuralizeError(f"keep_last must be 0 (keep all) or more, got {keep_last}")
    runs_root = Path(runs_root) if runs_root is not None else DEFAULT_ROOT / "runs"
    run_dir = runs_root / cfg.run_name(dataset.name)
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if not resume and run_dir.exists():
        shutil.rmtree(run_dir)
    # What a resume needs is read (and checked) before anything in the run is written:
    # a damaged checkpoint or another config must leave the run as it was.
    hist_path = run_dir / "history.json"
    resuming = resume and last.is_file()
    start_epoch = 0
    if resuming:
        start_epoch = int(_resumable_checkpoint(last, cfg)["epoch"]) + 1
    history = read_json(hist_path, "training history") if resuming and hist_path.is_file() else []
    if not isinstance(history, list):
        raise AuralizeError(f"{str(hist_path)!r} is damaged (not a list of epochs)")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    dataset.norm.save(run_dir / "norm.npz")
    meta = dict(dataset.meta, folder=str(dataset.folder.resolve()))
    (run_dir / "dataset.json").write_text(json.dumps(meta, indent=2))

    L.seed_everything(seed, verbose=False)
    train_x, val_x = _split(dataset.x, cfg.val_fraction, seed)
    from torch.utils.data import DataLoader, TensorDataset

    train_dl = DataLoader(TensorDataset(torch.from_numpy(train_x)), batch_size=cfg.batch_size,
                          shuffle=True)
    val_dl = DataLoader(TensorDataset(torch.from_numpy(val_x)), batch_size=cfg.batch_size)
    module = make_module(cfg)
    (run_dir / "model_summary.txt").write_text(
        f"{cfg.name}: {cfg.description}\n\n{ModelSummary(module, max_depth=2)}\n")
    save_model_graph(cfg, module.net, run_dir / "model_graph.png")

    class History(Callback):
        def on_validation_epoch_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            v = trainer.callback_metrics.get("val_loss")
            if v is not None:
                history.append({"epoch": int(trainer.current_epoch) + 1,
                                "step": int(trainer.global_step), "val_loss": float(v)})
                hist_path.write_text(json.dumps(history, indent=2))
                save_loss_curve(history, run_dir / "loss.png", title=run_dir.name)

    if not resuming and not history:  # validation loss of the untrained model: entry 0
        module.eval()
        with torch.no_grad():
            losses = [module._loss(b).item() * len(b[0]) for b in val_dl]
        history.append({"epoch": 0, "step": 0,
                        "val_loss": float(sum(losses) / max(1, len(val_x)))})
        module.train()
        hist_path.write_text(json.dumps(history, indent=2))
    n_epochs = int(epochs if epochs is not None else cfg.max_epochs)
    # The newest keep_last epochs ("best" by step), then the lowest validation loss.
    # `best` comes first: last.ckpt, written by `ckpt`, then holds its updated state,
    # so a resumed run still knows which loss best.ckpt has.
    best = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min",
                           save_top_k=1, every_n_epochs=1, enable_version_counter=False)
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="epoch{epoch:04d}-step{step}",
                           auto_insert_metric_name=False, save_last=True, monitor="step",
                           mode="max", save_top_k=int(keep_last) or -1, every_n_epochs=1)
    trainer = L.Trainer(
        max_epochs=start_epoch + n_epochs,
        logger=TensorBoardLogger(str(run_dir), name="tb", version=0, log_graph=False),
        callbacks=[best, ckpt, History()],
        enable_progress_bar=progress,
        enable_model_summary=progress,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        accelerator="cpu" if not torch.cuda.is_available() else "auto",
        devices=1,
        deterministic=False,
    )
    trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resuming else None)
    return TrainResult(run_dir, last, history, int(trainer.global_step),
                       int(trainer.current_epoch))


@dataclass
class Run:
    """A trained run loaded for generation."""

    run_dir: Path
    cfg: GenConfig
    model: BlockLSTM
    norm: Normalizer
    dataset_meta: dict


def load_run(run_dir: str | Path) -> Run:
    """Load a run folder's config, normalisation and last checkpoint's weights."""
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise AuralizeError(f"no trained model in {str(run_dir)!r} (checkpoints/last.ckpt "
                            "missing); run `auralize generate train` first")
    cfg_dict = read_json(run_dir / "config.json", "a generation config")
    try:
        cfg = GenConfig(**{k: v for k, v in cfg_dict.items() if k != "source"})
        model = BlockLSTM.from_config(cfg)
        state = _checkpoint(ckpt)["state_dict"]
        model.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
    except (TypeError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
        raise AuralizeError(f"the run in {str(run_dir)!r} is damaged (config.json and "
                            f"checkpoints/last.ckpt disagree: {type(exc).__name__}); train "
                            "it again") from None
    meta_path = run_dir / "dataset.json"
    meta = read_json(meta_path, "dataset meta data") if meta_path.is_file() else {}
    return Run(run_dir, cfg, model.eval(), Normalizer.load(run_dir / "norm.npz"), meta)


def _resumable_checkpoint(path: Path, cfg: GenConfig) -> dict:
    """The checkpoint to resume from, if it holds weights of ``cfg``'s network."""
    ckpt = _checkpoint(path)
    want = {f"net.{k}": tuple(v.shape) for k, v in BlockLSTM.from_config(cfg).state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in ckpt["state_dict"].items()
           if k.startswith("net.")}
    if got != want:
        raise AuralizeError(f"{str(path)!r} holds another network than config {cfg.name!r} "
                            "(was the config changed?); --fresh starts this run over")
    return ckpt


def _checkpoint(path: Path) -> dict:
    """A Lightning checkpoint this module wrote (a dict with ``state_dict`` and ``epoch``)."""
    ckpt = torch_load(path, "a generator checkpoint", weights_only=False)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "epoch" not in ckpt:
        raise AuralizeError(f"{str(path)!r} is not a generator checkpoint (no weights inside)")
    return ckpt


def save_run(run_dir: str | Path, cfg: GenConfig, model: BlockLSTM, norm: Normalizer,
             dataset_meta: dict | None = None) -> Path:
    """Write a run folder for a model built in code (tests, hand-made models)."""
    run_dir = Path(run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    norm.save(run_dir / "norm.npz")
    (run_dir / "dataset.json").write_text(json.dumps(dataset_meta or {}, indent=2))
    state = {f"net.{k}": v for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0, "global_step": 0},
               run_dir / "checkpoints" / "last.ckpt")
    return run_dir

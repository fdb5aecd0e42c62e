"""Pictures of a generation run: the model graph (boii drew one) and the loss curve."""

from __future__ import annotations

from pathlib import Path

from auralize.audio.plots import pyplot
from auralize.generate.config import GenConfig


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def graph_stages(cfg: GenConfig, model) -> list[tuple[str, str]]:
    """The data path of one block, top to bottom: ``(stage, detail)`` pairs.

    ``model`` is the config's :class:`~auralize.generate.model.BlockLSTM`; its
    layers' parameter counts go into the details.
    """
    f, h = cfg.feature_size, cfg.hidden
    codec = []
    if cfg.mu:
        codec.append(f"mu-law mu={cfg.mu:g}")
    if cfg.quantize_bits:
        codec.append(f"{cfg.quantize_bits}-bit")
    transform = "Hermitian FFT (hfft)" if cfg.features == "hfft" else "FFT, real | imag"
    return [
        ("audio block", f"{cfg.block_size} samples @ {cfg.sample_rate} Hz "
                        f"({1000 * cfg.block_size / cfg.sample_rate:.0f} ms)"),
        ("features", f"{', '.join(codec + [transform])} -> {f} values"),
        ("normalise", "(x - mean) / std per feature, dataset statistics"),
        ("Linear in", f"{f} -> {h}, {_params(model.inp):,} parameters"),
        (f"LSTM x {cfg.depth}", f"{h} units each, state kept between blocks, "
                                f"{_params(model.lstm):,} parameters"),
        ("Linear out", f"{h} -> {f}, {_params(model.out):,} parameters"),
        ("undo normalise", "x * std + mean"),
        ("inverse", f"{f} values -> next block of {cfg.block_size} samples"),
    ]


def save_model_graph(cfg: GenConfig, model, path: str | Path) -> Path:
    """Draw the block's path through the network as a column of boxes (PNG)."""
    plt = pyplot()
    stages = graph_stages(cfg, model)
    n = len(stages)
    fig, ax = plt.subplots(figsize=(7.5, 0.85 * n + 0.9))
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, n - 0.3)
    ax.axis("off")
    network = {"Linear in", f"LSTM x {cfg.depth}", "Linear out"}
    for i, (stage, detail) in enumerate(stages):
        y = n - 1 - i
        colour = "#cfe2f3" if stage in network else "#eeeeee"
        ax.add_patch(plt.Rectangle((0.08, y - 0.3), 0.84, 0.6, facecolor=colour,
                                   edgecolor="#444444", linewidth=1.0))
        ax.text(0.5, y + 0.08, stage, ha="center", va="center", fontsize=11,
                fontweight="bold")
        ax.text(0.5, y - 0.16, detail, ha="center", va="center", fontsize=8.5)
        if i < n - 1:
            ax.annotate("", xy=(0.5, y - 0.7), xytext=(0.5, y - 0.3),
                        arrowprops={"arrowstyle": "->", "color": "#444444"})
    ax.set_title(f"{cfg.name}: {_params(model):,} parameters", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_loss_curve(history: list[dict], path: str | Path, *, title: str = "") -> Path:
    """Validation loss per epoch (``history`` entries with ``epoch`` and ``val_loss``)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([h["epoch"] for h in history], [h["val_loss"] for h in history], marker="o")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss (MSE)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

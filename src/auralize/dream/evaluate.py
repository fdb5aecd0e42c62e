"""Accuracy, per-class table and confusion matrix of a dream model on clips.

Works with a checkpoint or an exported TorchScript file (see
:func:`auralize.dream.models.load_model`); imports no training code.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass
class EvalResult:
    accuracy: float
    n: int
    class_names: list[str]
    confusion: list[list[int]]  # rows: true class, columns: predicted
    per_class: list[dict]  # name, n, recall, precision, f1

    def to_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path


def predict_logits(model, waves: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Logits for clips ``(n, samples)`` in batches, without gradients."""
    out = []
    with torch.no_grad():
        for i in range(0, len(waves), batch_size):
            x = torch.as_tensor(np.asarray(waves[i : i + batch_size]), dtype=torch.float32)
            out.append(model(x).float().cpu().numpy())
    if not out:
        return np.zeros((0, len(model.class_names)), dtype=np.float32)
    return np.concatenate(out)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels, int), np.asarray(preds, int)), 1)
    return cm


def summarize(labels: np.ndarray, preds: np.ndarray, class_names: list[str]) -> EvalResult:
    cm = confusion_matrix(labels, preds, len(class_names))
    per = []
    for i, name in enumerate(class_names):
        tp = int(cm[i, i])
        n_true, n_pred = int(cm[i].sum()), int(cm[:, i].sum())
        rec = tp / n_true if n_true else float("nan")
        prec = tp / n_pred if n_pred else float("nan")
        f1 = 2 * prec * rec / (prec + rec) if n_true and n_pred and (prec + rec) else 0.0
        per.append({"name": name, "n": n_true, "recall": rec, "precision": prec, "f1": f1})
    n = len(labels)
    acc = float(np.trace(cm) / n) if n else float("nan")
    return EvalResult(acc, n, list(class_names), cm.tolist(), per)


def evaluate(model, clips, batch_size: int = 64, predictions_csv: str | Path | None = None
             ) -> EvalResult:
    """Evaluate ``model`` on a :class:`~auralize.dream.datasets.ClipSet`.

    With ``predictions_csv``, also write one row per clip (see :func:`write_predictions`).
    """
    logits = predict_logits(model, clips.waves, batch_size)
    names = list(model.class_names)
    if predictions_csv is not None:
        write_predictions(predictions_csv, clips, logits, names)
    return summarize(clips.labels, logits.argmax(axis=1), names)


def write_predictions(path: str | Path, clips, logits: np.ndarray, class_names: list[str]) -> Path:
    """Per-clip predictions as CSV: what the seed's eval.py printed, kept in a file.

    Columns: ``file``, ``split`` (fold or split name), ``true``, ``predicted``,
    ``correct`` (0/1), ``confidence`` (probability of the predicted class), then
    ``p_<class>`` for every class (softmax probabilities, 4 decimals).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=1, keepdims=True) if len(logits) else logits
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True) if len(logits) else z
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "split", "true", "predicted", "correct", "confidence",
                    *(f"p_{c}" for c in class_names)])
        for i, p in enumerate(probs):
            true, pred = class_names[int(clips.labels[i])], class_names[int(p.argmax())]
            w.writerow([clips.files[i], clips.splits[i], true, pred, int(true == pred),
                        f"{p.max():.4f}", *(f"{v:.4f}" for v in p)])
    return path


def format_table(result: EvalResult) -> str:
    """A plain-text per-class table followed by the overall accuracy."""
    width = max(12, *(len(c) for c in result.class_names))
    lines = [f"{'class':<{width}}  {'n':>5}  {'recall':>7}  {'precision':>9}  {'f1':>6}"]
    for row in result.per_class:
        lines.append(
            f"{row['name']:<{width}}  {row['n']:>5}  {row['recall']:>7.3f}  "
            f"{row['precision']:>9.3f}  {row['f1']:>6.3f}"
        )
    lines.append(f"accuracy: {result.accuracy:.4f} on {result.n} clips")
    return "\n".join(lines)


def confusion_figure(confusion, class_names: list[str], title: str = "confusion matrix"):
    """A matplotlib figure of the confusion matrix (counts, rows = true class)."""
    from auralize.audio.plots import pyplot

    plt = pyplot()

    cm = np.asarray(confusion)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(2.2 + 0.55 * k, 1.8 + 0.5 * k), dpi=100)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(k), class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = cm.max() if cm.size else 0
    for i in range(k):
        for j in range(k):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > top / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_confusion_png(confusion, class_names: list[str], path: str | Path, title: str = "") -> Path:
    import matplotlib.pyplot as plt

    fig = confusion_figure(confusion, class_names, title or "confusion matrix")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path

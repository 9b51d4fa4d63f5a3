"""PNG reports: the confusion matrix and the training curves (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

# Every PNG kws draws says so in its Software field, so a later run knows a plot of that name
# as its own to replace, and refuses a user's file (kws.writes.check_unnamed).
PNG_METADATA = {"Software": "kws"}
_PNG_MARK = b"\x00\x00\x00\x0ctEXtSoftware\x00kws"  # the chunk: length 12, type, key, value


def is_kws_png(path: Path) -> bool:
    """Whether ``path`` is a PNG kws drew (``save_png``)."""
    with open(path, "rb") as f:
        return _PNG_MARK in f.read(4096)  # matplotlib writes its text chunks before the image


def save_png(fig, path: str | Path, dpi: int) -> None:
    """Write ``fig`` to ``path`` with kws's mark, and free it."""
    fig.savefig(path, dpi=dpi, metadata=PNG_METADATA)
    plt.close(fig)


def plot_confusion(metrics: dict, path: str | Path, title: str = "") -> None:
    """Row-normalised confusion matrix, with counts in the cells."""
    labels = metrics["labels"]
    counts = np.asarray(metrics["confusion"], float)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(labels), 1 + 0.55 * len(labels)))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        if n:
            ax.text(j, i, int(n), ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {100 * metrics['accuracy']:.1f}%, "
                 f"balanced {100 * metrics['balanced_accuracy']:.1f}%", fontsize=9)
    fig.tight_layout()
    save_png(fig, path, 110)


def plot_curves(history: list[dict], path: str | Path) -> None:
    """Loss and accuracy per epoch (training and validation) and the learning rate."""
    epochs = [h["epoch"] for h in history]
    fig, (loss_ax, acc_ax, lr_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    for key, style in (("loss", "-"), ("val_loss", "--")):
        loss_ax.plot(epochs, [h[key] for h in history], style, label=key)
    for key, style in (("accuracy", "-"), ("val_accuracy", "--"), ("val_balanced_accuracy", ":")):
        acc_ax.plot(epochs, [h[key] for h in history], style, label=key)
    lr_ax.plot(epochs, [h["learning_rate"] for h in history])
    for ax, title in ((loss_ax, "loss"), (acc_ax, "accuracy"), (lr_ax, "learning rate")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    loss_ax.legend()
    acc_ax.legend()
    fig.tight_layout()
    save_png(fig, path, 100)

"""PNG reports: the confusion matrix and the training curves (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
    fig.savefig(path, dpi=100)
    plt.close(fig)

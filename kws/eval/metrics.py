"""Classification scores: accuracy, balanced accuracy, per-class precision/recall, confusion."""

from __future__ import annotations

import numpy as np


def score(targets: np.ndarray, predictions: np.ndarray, labels: list[str]) -> dict:
    """Scores of ``predictions`` against ``targets`` (label indices), JSON-ready.

    Balanced accuracy is the mean recall over classes that occur: on Speech Commands the
    easy words dominate plain accuracy, while the official test weighs classes evenly.
    """
    k = len(labels)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (np.asarray(targets, int), np.asarray(predictions, int)), 1)
    hits = np.diag(confusion)
    support, predicted = confusion.sum(1), confusion.sum(0)
    recall = [float(h / s) if s else None for h, s in zip(hits, support)]
    precision = [float(h / p) if p else None for h, p in zip(hits, predicted)]
    present = [r for r in recall if r is not None]
    total = int(confusion.sum())
    return {
        "n": total,
        "accuracy": float(hits.sum() / total) if total else 0.0,
        "balanced_accuracy": float(np.mean(present)) if present else 0.0,
        "labels": list(labels),
        "per_class": {label: {"precision": p, "recall": r, "support": int(s)}
                      for label, p, r, s in zip(labels, precision, recall, support)},
        "confusion": confusion.tolist(),
    }


def table(metrics: dict) -> str:
    """Per-class precision/recall and the confusion matrix as aligned text."""
    labels = metrics["labels"]
    width = max(8, *(len(label) for label in labels))
    fmt = lambda v: "   -  " if v is None else f"{100 * v:5.1f}%"  # noqa: E731
    lines = [f"accuracy {100 * metrics['accuracy']:.2f}%  balanced accuracy "
             f"{100 * metrics['balanced_accuracy']:.2f}%  ({metrics['n']} clips)", "",
             f"{'class':<{width}}  precision  recall  support"]
    for label in labels:
        c = metrics["per_class"][label]
        lines.append(f"{label:<{width}}  {fmt(c['precision']):>9}  {fmt(c['recall']):>6}  {c['support']:>7}")
    short = [label.strip("_")[:5] for label in labels]
    lines += ["", "confusion (rows: true, columns: predicted)",
              f"{'':<{width}} " + " ".join(f"{s:>5}" for s in short)]
    for label, row in zip(labels, metrics["confusion"]):
        lines.append(f"{label:<{width}} " + " ".join(f"{v:>5}" for v in row))
    return "\n".join(lines)

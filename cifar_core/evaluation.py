"""How good a model is on labelled images: accuracy, per-class figures, confusion matrix."""
from __future__ import annotations

import numpy as np

from cifar_core.data import CLASS_NAMES


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = len(CLASS_NAMES)) -> np.ndarray:
    """counts[t, p]: how many images of true class t were predicted as p."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return counts


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Recall of each class: the share of its images that were predicted correctly."""
    counts = confusion_matrix(y_true, y_pred)
    totals = counts.sum(axis=1)
    return {name: (float(counts[i, i] / totals[i]) if totals[i] else float("nan"))
            for i, name in enumerate(CLASS_NAMES)}


def summary(probabilities: np.ndarray, y_true: np.ndarray) -> dict:
    """{"accuracy", "per_class": {class: accuracy}, "n"} for predicted probabilities."""
    y_pred = np.asarray(probabilities).argmax(axis=1)
    return {"accuracy": float(np.mean(y_pred == y_true)) if len(y_true) else float("nan"),
            "per_class": per_class_accuracy(y_true, y_pred),
            "n": int(len(y_true))}

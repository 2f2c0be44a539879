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


def class_report(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict]:
    """Precision, recall and F1 of every class (NaN where undefined), with its number of images."""
    counts = confusion_matrix(y_true, y_pred)
    rows = []
    for i, name in enumerate(CLASS_NAMES):
        hits, predicted, actual = counts[i, i], counts[:, i].sum(), counts[i].sum()
        precision = hits / predicted if predicted else float("nan")
        recall = hits / actual if actual else float("nan")
        if np.isnan(precision) or np.isnan(recall):
            f1 = float("nan")
        else:
            f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        rows.append({"class": name, "precision": float(precision), "recall": float(recall), "f1": float(f1),
                     "images": int(actual)})
    return rows


def confident_mistakes(probabilities: np.ndarray, y_true: np.ndarray, n: int = 20) -> np.ndarray:
    """Indices of the wrong answers given with the most confidence, most confident first."""
    y_pred = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(y_pred != y_true)
    return wrong[np.argsort(-probabilities[wrong, y_pred[wrong]], kind="stable")][:n]


def calibration(probabilities: np.ndarray, y_true: np.ndarray, bins: int = 10) -> list[dict]:
    """For answers grouped by confidence: how confident on average, and how often right."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges) - 1, 0, bins - 1)
    return [{"confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean()),
             "answers": int((which == b).sum())} for b in range(bins) if (which == b).any()]


def cached_probabilities(model_path, images: np.ndarray, data_key: str, predict) -> np.ndarray:
    """The model's probabilities on `images`, computed once and kept beside the model file.

    The file name holds a hash of the model's bytes and of `data_key`, so a
    retrained model or other data never reads a stale answer. Where the
    model's folder cannot be written, the answer is simply not kept.
    """
    import hashlib
    from pathlib import Path
    model_path = Path(model_path)
    digest = hashlib.sha256(model_path.read_bytes() + data_key.encode()).hexdigest()[:16]
    cache = model_path.with_name(f"{model_path.stem}.eval-{digest}.npy")
    try:
        return np.load(cache)
    except (OSError, ValueError):
        pass
    probabilities = predict(images)
    try:
        np.save(cache.with_suffix(".tmp.npy"), probabilities)
        Path(cache.with_suffix(".tmp.npy")).replace(cache)
    except OSError:
        pass
    return probabilities

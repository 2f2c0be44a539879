"""A 2-D map of what a network has learned: its penultimate features, projected by PCA."""
from __future__ import annotations

import numpy as np

from cifar_core import inference


def feature_model(model):
    """The model cut at its penultimate layer ("features" in every registered architecture)."""
    import keras
    try:
        layer = model.get_layer("features")
    except ValueError:   # a foreign model: take the input of its last weighted layer
        layer = next(l for l in reversed(model.layers[:-1]) if l.weights)
        return keras.Model(model.input, layer.input)
    return keras.Model(model.input, layer.output)


def features(model, images: np.ndarray) -> np.ndarray:
    flat = inference.predict(feature_model(model), images, mirror=False)
    return flat.reshape(len(images), -1)


def pca_2d(points: np.ndarray) -> np.ndarray:
    """The two directions along which `points` vary most (principal components), per point, and in a third
    column (the same on every row) the share of all their variance those two keep: a map of 512 features
    in two keeps a third of it or less, and classes that overlap on it may well be apart in the rest."""
    centred = points - points.mean(axis=0)
    _, spread, directions = np.linalg.svd(centred, full_matrices=False)
    kept = float((spread[:2] ** 2).sum() / max((spread ** 2).sum(), 1e-12))
    return np.column_stack([centred @ directions[:2].T, np.full(len(points), kept)])

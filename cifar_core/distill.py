"""Training towards other models' answers as well as the labels (knowledge distillation).

    teachers(paths)               -> the saved models, loaded (ConfigError for a file that is not one)
    answers(models, images)       -> (N, 10) their probabilities for each picture, averaged
    targets(labels, answers)      -> (N, 10) training targets: each label mixed with the models' answer
    taught(step, models)          -> a training step whose targets the models answer on its own batch

A label says only "cat"; a good model's answer also says how much this cat looks like a dog. A network
trained towards several models' averaged answers learns some of what their ensemble knows, and keeps
its own size and speed. The models answer each batch as the student sees it, shifted, mirrored and
zoomed: a zoomed-in cat can look more like a dog than the whole picture did, and a target worked out
once on the plain picture would still say "whole cat" (consistent teaching). That adds each model's
forward pass, about a third of a training step, to every step. Measured with the same two teachers and
seed (`best`, 36 epochs, zoom 0.25): 91.66% on the test set, against 90.75% with answers worked out once
on the plain pictures and 90.89% with each batch answered before its zoom; on real photos it was the
weakest of the three (64% of 255, against 66% and 69%: a few photos either way, where the test set's
10,000 pictures make 0.9 points clear).
"""
from __future__ import annotations

import numpy as np

from cifar_core.config import ConfigError

# The models' share of each target; the label keeps the rest, so a picture the models get wrong still
# leans towards its own class. Models trained with label smoothing answer their training pictures about
# 81% sure of the right class: with 0.8 of that, a target is about as sure as label smoothing of 0.2
# makes it, its other fifth spread as the models see the picture, not evenly (train with no label
# smoothing on top).
WEIGHT = 0.8


def teachers(paths) -> list:
    """The saved models at `paths`, each answering as `inference.predict` serves it; ConfigError with a
    sentence for a file that is not a CIFAR-10 model (`inference.load_model` checks its shapes too)."""
    from cifar_core import inference
    models = []
    for path in paths:
        try:
            models.append(inference.load_model(path))
        except inference.ModelError as e:
            raise ConfigError(f"Cannot learn from {path}: {e}", "distill_from") from None
    return models


def answers(models, images: np.ndarray) -> np.ndarray:
    """(N, 10) float32: the mean of the models' probabilities for `images` exactly as given (no mirror,
    no confidence temperature)."""
    from cifar_core import inference
    return sum(inference.predict(model, images, mirror=False, calibrated=False) for model in models) / len(models)


def targets(labels: np.ndarray, model_answers: np.ndarray, weight: float = WEIGHT) -> np.ndarray:
    """(N, 10) float32 rows summing to 1: (1 - weight) of each one-hot label row plus weight of the answer."""
    return ((1 - weight) * labels + weight * model_answers).astype(np.float32)


def taught(step, models):
    """`step(x, y)` with each batch's one-hot labels `y` mixed with the models' answers on `x` itself."""
    return lambda x, y: step(x, targets(y, answers(models, x)))

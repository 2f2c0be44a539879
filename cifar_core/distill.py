"""Training towards other models' answers as well as the labels (knowledge distillation).

    answers(paths, images)     -> (N, 10) saved models' probabilities for each picture, averaged
    targets(labels, answers)   -> (N, 10) training targets: each label mixed with the models' answer

A label says only "cat"; a good model's answer also says how much this cat looks like a dog. A network
trained towards several models' averaged answers learns some of what their ensemble knows, and keeps
its own size and speed. The answers are worked out once, before training, on the training pictures as
they are, each also mirrored (the student sees both ways round); shifted and zoomed copies keep their
picture's answer. That costs one pass over the pictures per model, where answering every augmented
batch would add each model's forward pass to every training step.
"""
from __future__ import annotations

import numpy as np

from cifar_core import recipe
from cifar_core.config import ConfigError

# The models' share of each target; the label keeps the rest, so a picture the models get wrong still
# leans towards its own class. Models trained with label smoothing answer their training pictures about
# 81% sure of the right class: with 0.8 of that, a target is about as sure as label smoothing of 0.2
# makes it, its other fifth spread as the models see the picture, not evenly (train with no label
# smoothing on top).
WEIGHT = 0.8


def answers(paths, images: np.ndarray) -> np.ndarray:
    """(N, 10) float32: the mean of each saved model's probabilities (mirror test-time augmentation,
    no confidence temperature) for `images`; ConfigError with a sentence for a file that is not a
    CIFAR-10 model."""
    from cifar_core import inference
    total = np.zeros((len(images), 10), np.float32)
    for path in paths:
        try:
            model = inference.load_model(path)
        except inference.ModelError as e:
            raise ConfigError(f"Cannot learn from {path}: {e}", "distill_from") from None
        if tuple(model.input_shape[1:]) != (32, 32, 3) or model.output_shape[-1] != 10:
            raise ConfigError(f"Cannot learn from {path}: it does not answer CIFAR-10's ten classes "
                              "for 32 x 32 colour pictures.", "distill_from")
        total += inference.predict(model, images, calibrated=False)
    return total / len(paths)


def targets(labels: np.ndarray, model_answers: np.ndarray, weight: float = WEIGHT) -> np.ndarray:
    """(N, 10) float32 rows summing to 1: (1 - weight) of each one-hot label plus weight of the answer."""
    return ((1 - weight) * recipe.one_hot(np.asarray(labels).ravel()) + weight * model_answers).astype(np.float32)

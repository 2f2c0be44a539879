"""Trained models put side by side as one, with a model card measured as a run's is.

    combine(paths, dest, command) -> the card written beside dest (dest.json), the model at dest

`python -m cifar_core combine A.keras B.keras --save both.keras`. The models must be copies of one
network trained apart (`models.side_by_side`); the new one answers with their scores averaged
before the softmax. Its temperature is fitted on training pictures none of them trained on, which
each one's card says (`held_out`), so its "% sure" is as honest as a single model's; so is its first
network's own, which answers alone where it is sure enough (`inference.predict`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from cifar_core import data as cifar_data
from cifar_core import evaluation, fast_inference, inference, models, recipe, rundir, training


class CombineError(ValueError):
    """Models that cannot be put side by side, said in one sentence for a person."""


def held_out(paths, dataset: cifar_data.Cifar10) -> tuple[np.ndarray, np.ndarray]:
    """The training pictures (and labels) that every model at `paths` kept out of its training, as its
    card's recipe chose them (`recipe.split`): the ones all of them held out for their temperatures."""
    y = dataset.y_train
    kept, trained = np.ones(len(y), bool), np.zeros(len(y), bool)
    for path in paths:
        config = inference.model_card(path).get("config")
        if not isinstance(config, dict) or "calibration_images" not in config:
            raise CombineError(f"{path} has no model card saying which training pictures it kept out of training, "
                               "so none can be trusted to fit the temperature on.")
        (seen, _), (aside, _) = recipe.split(np.arange(len(y)), y, int(config.get("train_subset") or 0),
                                             int(config["calibration_images"]))
        trained[seen] = True
        kept &= np.isin(np.arange(len(y)), aside)
    chosen = np.flatnonzero(kept & ~trained)
    return dataset.x_train[chosen], y[chosen]


def first_network_temperature(model, x: np.ndarray, y: np.ndarray) -> float | None:
    """The temperature of the first of a served model's networks alone, fitted on its own answers to
    held-out pictures (x, y), unmirrored as it first looks (`inference.predict`); None if it has none
    apart. Under the pair's temperature its answers were surer than right: shown 95-99% sure, the
    bundled pair's first network was right on 95.7% of the test pictures; under its own, 98.0%."""
    networks = fast_inference.networks(model)
    if not networks or len(y) < 10:
        return None
    answers = inference.predict(networks[0], x, mirror=False, calibrated=False)
    return round(evaluation.fit_temperature(answers, y), 4)


def combine(paths, dest, command: str = "", dataset: cifar_data.Cifar10 | None = None) -> dict:
    """Save the models at `paths` side by side as one at `dest`, with its card and its answers on the
    test set beside it, as `training.export` saves a run's model. CombineError or inference.ModelError
    when they cannot be."""
    dest, paths = Path(dest), [Path(path).resolve() for path in paths]
    members = [inference.load_model(path) for path in paths]
    try:
        model = models.side_by_side(members, name="side_by_side")
    except ValueError as e:
        raise CombineError(str(e)) from None
    dataset = dataset or cifar_data.load()
    x_held, y_held = held_out(paths, dataset)
    if len(y_held) < 10:
        raise CombineError("These models kept no training pictures out in common, so their temperature "
                           "cannot be fitted on pictures none of them saw.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    model.save(dest)
    model = inference.load_model(dest)        # measured as the app serves it
    model.calibration_temperature = training.calibrate(model, x_held, y_held)
    model.first_network_temperature = first_network_temperature(model, x_held, y_held)
    figures, raw = training.measured(model, dataset)
    made = [training.how_made(str(path)) for path in paths]
    seconds = [member.get("training_seconds") for member in made]
    card = {
        "architecture": f"{len(members)} {members[0].name} networks side by side",
        "command": command,
        "members": made,
        # the networks' own training, one after another (what their teachers took is in their cards)
        "training_seconds": round(sum(seconds), 1) if all(isinstance(s, (int, float)) for s in seconds) else None,
        "data": f"CIFAR-10 test set ({dataset.origin}), {len(dataset.y_test)} images; the temperature fitted "
                f"on {len(y_held):,} training images none of the {len(members)} trained on",
        **figures,
        inference.FIRST_NETWORK_TEMPERATURE: model.first_network_temperature,
    }
    rundir.write_json(dest.with_suffix(".json"), card)
    evaluation.save_test_probabilities(dest, raw, dataset.x_test, dataset.y_test)
    return card

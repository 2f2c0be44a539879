"""Trained models put side by side as one, with a model card measured as a run's is.

    combine(paths, dest, command) -> the card written beside dest (dest.json), the model at dest

`python -m cifar_core combine A.keras B.keras --save both.keras`. The models must be copies of one
network trained apart (`models.side_by_side`); the new one answers with their scores averaged
before the softmax. Its temperature is fitted on training pictures none of them trained on, which
each one's card says (`held_out`), so its "% sure" is as honest as a single model's; so is its first
network's own, which answers alone where it is sure enough (`inference.predict`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from cifar_core import data as cifar_data
from cifar_core import evaluation, fast_inference, inference, inside, int8, models, recipe, rundir, training


class CombineError(ValueError):
    """Models that cannot be put side by side, said in one sentence for a person."""


def _split(card: dict) -> tuple[int, int] | None:
    """(train_subset, calibration_images) of the recipe a run's card was trained with: which training
    pictures it trained on and which it kept out (`recipe.split`)."""
    config = card.get("config") if isinstance(card, dict) else None
    if not isinstance(config, dict) or not isinstance(config.get("calibration_images"), int):
        return None
    return int(config.get("train_subset") or 0), config["calibration_images"]


def _splits(card: dict) -> list[tuple[int, int]] | None:
    """The `_split` of each network a saved model's card says it holds: its own (a run's model), or each
    of its members' as `combine` wrote them down."""
    if _split(card):
        return [_split(card)]
    members = card.get("members") if isinstance(card, dict) else None
    if not isinstance(members, list) or not members:
        return None
    splits = [_split({"config": member.get(HELD_OUT)}) if isinstance(member, dict) else None for member in members]
    return None if None in splits else splits


HELD_OUT = "held_out"       # a member's `_split` in a side-by-side model's card


def held_out(splits: list[tuple[int, int]], dataset: cifar_data.Cifar10) -> tuple[np.ndarray, np.ndarray]:
    """The training pictures (and labels) that every network trained with these `_split`s kept out of
    its training: the ones all of them held out for their temperatures."""
    y = dataset.y_train
    kept, trained = np.ones(len(y), bool), np.zeros(len(y), bool)
    for train_subset, calibration_images in splits:
        (seen, _), (aside, _) = recipe.split(np.arange(len(y)), y, train_subset, calibration_images)
        trained[seen] = True
        kept &= np.isin(np.arange(len(y)), aside)
    chosen = np.flatnonzero(kept & ~trained)
    return dataset.x_train[chosen], y[chosen]


def _member_split(path: Path) -> tuple[int, int]:
    split = _split(inference.model_card(path))
    if split is None:
        raise CombineError(f"{path} has no model card saying which training pictures it kept out of training, "
                           "so none can be trusted to fit the temperature on.")
    return split


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
    splits = [_member_split(path) for path in paths]
    x_held, y_held = held_out(splits, dataset)
    if len(y_held) < 10:
        raise CombineError("These models kept no training pictures out in common, so their temperature "
                           "cannot be fitted on pictures none of them saw.")
    made = [{**training.how_made(str(path)), HELD_OUT: {"train_subset": subset, "calibration_images": aside}}
            for path, (subset, aside) in zip(paths, splits)]
    seconds = [member.get("training_seconds") for member in made]
    card = {
        "architecture": f"{len(members)} {members[0].name} networks side by side",
        "command": command,
        "members": made,
        # the networks' own training, one after another (what their teachers took is in their cards)
        "training_seconds": round(sum(seconds), 1) if all(isinstance(s, (int, float)) for s in seconds) else None,
        "data": f"CIFAR-10 test set ({dataset.origin}), {len(dataset.y_test)} images; the temperature fitted "
                f"on {len(y_held):,} training images none of the {len(members)} trained on",
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    with rundir.model_files(dest) as saving:     # all of it, or none (a full disk, a Ctrl-C)
        model.save(saving)
        int8.save(model, x_held, saving)
        return _measure_as_served(saving, card, x_held, y_held, dataset)


def _measure_as_served(path: Path, card: dict, x_held: np.ndarray, y_held: np.ndarray,
                       dataset: cifar_data.Cifar10) -> dict:
    """Load the model saved at `path` as the app serves it, fit its temperatures on the held-out pictures
    (x_held, y_held), measure it on the test set, and write `card` with those figures beside it, and its
    answers on the test set and the bundled sample; the card as written."""
    model = inference.load_model(path)        # measured as the app serves it
    model.calibration_temperature = training.calibrate(model, x_held, y_held)
    model.calibrated = True
    model.first_network_temperature = first_network_temperature(model, x_held, y_held)
    figures, raw = training.measured(model, dataset)
    card = {**card, **figures}
    if model.first_network_temperature is not None:
        card[inference.FIRST_NETWORK_TEMPERATURE] = model.first_network_temperature
    rundir.write_json(path.with_suffix(".json"), card)
    # Its answers on the bundled sample too: a laptop offline opens Evaluate and Quiz at once for it, and
    # Look inside's closer look at one map.
    sample = cifar_data.load_sample()
    evaluation.save_test_probabilities(path, raw, dataset.x_test, dataset.y_test, also=(
        (inference.predict(model, sample.x_test, calibrated=False), sample.x_test, sample.y_test),))
    inside.ship_top_activations(path, model, dataset.x_test, sample.x_test)
    return card


def quantize(path, command: str = "", dataset: cifar_data.Cifar10 | None = None) -> dict:
    """Give the model saved at `path` its networks in int8 (`int8.save`), their ranges measured on the
    training pictures it never trained on, and measure its card again as it is now served: temperatures
    fitted again on those pictures, accuracy, calibration error, its test answers. CombineError when
    its card does not say which pictures those are, or its networks cannot be put in int8."""
    path = Path(path)
    try:
        made_from = int8.digest(path)
    except OSError:
        made_from = None        # `load_model` says why in its own sentence
    model = inference.load_model(path)
    if int8.digest(path) != made_from:
        raise CombineError(f"{path} changed while it was read (a run still saving it?); try again once it is saved.")
    card = inference.model_card(path)
    splits = _splits(card)
    if splits is None:
        raise CombineError(f"{path} has no model card saying which training pictures it kept out of training, "
                           "so none can be trusted to measure its int8 ranges on.")
    dataset = dataset or cifar_data.load()
    x_held, y_held = held_out(splits, dataset)
    if len(y_held) < 10:
        raise CombineError(f"{path}'s networks kept no training pictures out in common.")
    # The model's own bytes, copied under the name its new files are saved beside, and moved back over
    # it with them: never int8 networks served under the card measured without them, nor the card
    # measured with them beside a model served without them (a Ctrl-C, a full disk).
    with rundir.model_files(path) as saving:
        shutil.copyfile(path, saving)
        if int8.digest(saving) != made_from:
            raise CombineError(f"{path} changed while it was read (a run still saving it?); try again once it is saved.")
        if not int8.save(model, x_held, saving, made_from):
            raise CombineError(f"{path}'s networks cannot be put in int8: TensorFlow Lite's converter needs them "
                               "to end in a dense layer before a softmax, and to be made of layers it knows.")
        return _measure_as_served(saving, {**card, "quantized_with": command}, x_held, y_held, dataset)

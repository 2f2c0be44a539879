"""How many held-out pictures the confidence temperature needs.

    python benchmarks/temperature_sample.py [--model PATH] [--data PATH] [--sizes 1000 500] [--draws 10]

Every picture held out to fit a model's temperature is one fewer to train on. This refits the
temperature of a saved model on all the pictures its run held out (the baseline) and on random draws
of fewer of them, and scores each temperature by the expected calibration error on the test set.
The held-out pictures are found as training found them (`recipe.split`, with the model card's
train_subset and calibration_images), so the model has never trained on any of them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import data, evaluation, inference, recipe  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model with its card beside it (default: the bundled one)")
    parser.add_argument("--data", help="cifar-10-python.tar.gz (default: CIFAR10_DATA or the Keras cache)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 500, 250],
                        help="how many of the held-out pictures each draw fits on")
    parser.add_argument("--draws", type=int, default=10, help="random draws of each size")
    args = parser.parse_args(argv)

    dataset = data.load(args.data)
    config = inference.model_card(args.model).get("config", {})
    _, (x_held, y_held) = recipe.split(dataset.x_train, dataset.y_train, config.get("train_subset", 0),
                                       config.get("calibration_images", 2000))
    model = inference.load_model(args.model)
    held = inference.predict(model, x_held, calibrated=False, sure_enough=None)   # as training.calibrate fits
    # Every network's answers (given `plain`, a pair does not look with its first network alone, whose
    # answers would carry a temperature of their own), before any temperature.
    plain = inference.predict(model, dataset.x_test, mirror=False, calibrated=False)
    test = inference.predict(model, dataset.x_test, calibrated=False, plain=plain)

    def scored(rows: np.ndarray) -> tuple[float, float]:
        temperature = evaluation.fit_temperature(held[rows], y_held[rows])
        return temperature, evaluation.expected_calibration_error(
            evaluation.with_temperature(test, temperature), dataset.y_test)

    print(f"{len(y_held):,} held-out pictures, {len(dataset.y_test):,} test pictures; "
          f"calibration error on the test set before any temperature: "
          f"{evaluation.expected_calibration_error(test, dataset.y_test):.4f}")
    print(f"{'fitted on':>10}  {'temperature (spread)':>21}  {'test calibration error: mean':>29}  {'worst':>6}")
    baseline_t, baseline_e = scored(np.arange(len(y_held)))
    print(f"{len(y_held):>10,}  {baseline_t:>21.4f}  {baseline_e:>29.4f}  {'':>6}  <- baseline: all of them")
    rng = np.random.default_rng(0)
    for size in sorted((s for s in args.sizes if 0 < s < len(y_held)), reverse=True):
        runs = np.array([scored(rng.choice(len(y_held), size, replace=False)) for _ in range(args.draws)])
        print(f"{size:>10,}  {runs[:, 0].mean():>12.4f} ({runs[:, 0].std():.4f})  "
              f"{runs[:, 1].mean():>29.4f}  {runs[:, 1].max():>6.4f}")


if __name__ == "__main__":
    main()

"""Where the Predict page's "unsure" and "flat picture" notes start (cifar_core/explain.py), measured.

For the bundled model on the whole test set (its shipped answers, calibrated as the page shows them):
how often answers are right below and above each confidence and margin threshold, and how flat real
test pictures get (the spread of their pixel values). Run: python benchmarks/predict_doubts.py [--data PATH]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import data, evaluation, explain, inference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the CIFAR-10 archive or folder (default: CIFAR10_DATA, the Keras cache)")
    args = parser.parse_args()
    test = data.load(args.data)
    raw = evaluation.shipped_probabilities(inference.DEFAULT_MODEL, test.x_test, test.y_test)
    if raw is None:
        raise SystemExit("The bundled model's shipped test answers do not match this data set.")
    temperature = inference.temperature_for(inference.DEFAULT_MODEL)
    probabilities = evaluation.with_temperature(raw, temperature)
    ordered = np.sort(probabilities, axis=1)
    top, margin = ordered[:, -1], ordered[:, -1] - ordered[:, -2]
    right = probabilities.argmax(1) == test.y_test
    print(f"{len(right):,} test pictures, {evaluation.percent(right.mean())} right overall")
    for name, values, cuts in (("top probability", top, (0.4, 0.5, 0.55, 0.6, 0.7)),
                               ("margin over the runner-up", margin, (0.1, 0.15, 0.2, 0.25, 0.3))):
        for cut in cuts:
            below = values < cut
            print(f"  {name} < {cut:.2f}: {below.mean():6.1%} of pictures, right on "
                  f"{evaluation.percent(right[below].mean() if below.any() else None)}; at or above: right on "
                  f"{evaluation.percent(right[~below].mean())}")
    flagged = (top < explain.UNSURE_TOP) | (margin < explain.UNSURE_MARGIN)
    print(f"  flagged unsure by the page: {flagged.mean():.1%} of pictures, right on "
          f"{evaluation.percent(right[flagged].mean())}; not flagged: right on {evaluation.percent(right[~flagged].mean())}; "
          f"{(~right & flagged).sum() / max(1, (~right).sum()):.0%} of the mistakes flagged")
    spread = test.x_test.reshape(len(test.x_test), -1, 3).astype(np.float32).std(axis=1).max(axis=1)
    print("  pixel spread (std over the picture, 0-255, of its most varied channel): "
          + ", ".join(f"{q:g}th percentile {np.percentile(spread, q):.1f}" for q in (0.01, 0.1, 1, 5, 50))
          + f"; below FLAT_STD={explain.FLAT_STD:g}: {(spread < explain.FLAT_STD).sum()} pictures")


if __name__ == "__main__":
    main()

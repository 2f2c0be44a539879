"""Speed of the Look inside page: one picture's feature maps, once warm.

    python benchmarks/inside.py [--model PATH] [--repeats N]

Times, for one test picture: every block's feature maps (the compiled sub-model of
cifar_core.inside), the same plus colouring the maps the page shows (16 per block), Predict's
heat map (cifar_core.explain.gradcam), and,
as the baseline measured in the same run, a plain inference.predict of that picture
(which shows it mirrored too: two pictures in one call). The search for each map's
best test patches runs once per model and is kept on disk, so it is timed once, cold.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import data, explain, inference, inside  # noqa: E402


def timed(work, repeats: int) -> list[float]:
    for _ in range(3):
        work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: the bundled one)")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    model = inference.load_model(args.model)
    sample = data.load_sample()
    picture = sample.x_test[0]

    def maps_and_pictures():
        for block_maps in inside.feature_maps(model, picture):
            inside.map_images(block_maps, inside.strongest(block_maps)[:16])

    started = time.perf_counter()
    inside.feature_maps(model, picture)
    first = time.perf_counter() - started
    print(f"model: {args.model or 'bundled'}; first call (builds and compiles the sub-model): {first * 1000:.0f} ms")
    print(f"{'one picture, warm':<44}{'median ms':>10}{'p95 ms':>9}")
    for name, work in (("feature maps of every block", lambda: inside.feature_maps(model, picture)),
                       ("feature maps + 16 coloured maps per block", maps_and_pictures),
                       # Predict's heat map: the picture and its mirror image, compiled (eager: ~170 ms)
                       ("heat map (Grad-CAM, picture and mirror)", lambda: explain.gradcam(model, picture, 0)),
                       ("inference.predict (baseline)", lambda: inference.predict(model, picture))):
        times = timed(work, args.repeats)
        print(f"{name:<44}{statistics.median(times) * 1000:>10.1f}{times[int(0.95 * (len(times) - 1))] * 1000:>9.1f}")
    started = time.perf_counter()
    inside.top_activations(model, sample.x_test)
    print(f"best test patches of every map, searched in the {len(sample.x_test):,} sample pictures (cold, "
          f"once per model): {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()

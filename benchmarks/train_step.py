"""Training steps per second on this CPU: the training-only layers against the standard ones,
float32 against bfloat16.

    python benchmarks/train_step.py [--arch airbench] [--batch-size 1024] [--steps 6]

Times whole optimizer steps (`train_on_batch`, the trainer's own loop) of one network on random
pictures, after two untimed steps that trace and warm it, for each of:

- the standard Keras layers as TensorFlow runs them, the baseline;
- the stand-ins the trainer swaps in for training only (`models.build(..., for_training=True)`,
  see `fast_layers`): fused BatchNorm, the kernel gradient of small wide maps as matrix products,
  GELU in float32;

each in float32 and in mixed bfloat16. It prints pictures/s, the ratios, and the precision the
trainer picks here by itself (`recipe.resolve_precision("auto")`): bfloat16 only on CPUs with
AVX-512 BF16 or AMX, where it is the fast one; elsewhere bfloat16 is emulated and float32 wins.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import devices, models, recipe  # noqa: E402
from cifar_core.config import TrainConfig  # noqa: E402


def pictures_per_second(arch: str, for_training: bool, precision: str, batch_size: int, steps: int) -> float:
    import keras
    keras.config.set_dtype_policy(precision)
    try:
        model = models.build(arch, for_training=for_training, whitening_learns=for_training)   # as `best` trains
    finally:
        keras.config.set_dtype_policy("float32")
    config = TrainConfig.from_preset("best", arch=arch, batch_size=batch_size)
    model.compile(optimizer=recipe.make_optimizer(config, 1000, model),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.2))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch_size, 32, 32, 3)).astype(np.uint8)
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, batch_size)]
    for _ in range(2):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - started)
    return batch_size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default="airbench", choices=list(models.REGISTRY))
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per case (median)")
    args = parser.parse_args()

    hardware = devices.detect()
    print(f"{args.arch}, batch {args.batch_size}; this CPU has bfloat16 maths: {hardware.cpu_bfloat16}; "
          f"the trainer picks {recipe.resolve_precision('auto', hardware)}")
    print(f"{'precision':<16}{'standard layers (baseline)':>28}{'training layers':>17}{'ratio':>8}")
    rates = {}
    for precision in ("float32", "mixed_bfloat16"):
        standard, fast = (pictures_per_second(args.arch, f, precision, args.batch_size, args.steps)
                          for f in (False, True))
        rates[precision] = fast
        print(f"{precision:<16}{standard:>25.0f}/s{fast:>15.0f}/s{fast / standard:>7.2f}x")
    fastest = max(rates, key=rates.get)
    print(f"fastest here with the training layers: {fastest} ({rates[fastest] / min(rates.values()):.2f}x the other)")


if __name__ == "__main__":
    main()

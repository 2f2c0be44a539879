"""Seconds of training to reach given test accuracies: a preset against the tutorial baseline, same run.

    python benchmarks/time_to_accuracy.py --preset quick [--baseline tutorial] [--data PATH]
    python benchmarks/time_to_accuracy.py --preset class --baseline class-sgd

Both recipes train on this machine, one after the other, through the same
trainer the app uses; test accuracy is measured on the whole test set after
every epoch, and training time excludes start-up (tracing the network's
graphs included) and the test passes. "wall" is what a person waits from
Start to the finished model: start-up, training, test passes and final checks.
The baseline is a preset, or one of BEFORE: a recipe as a preset was
before it changed, to measure the change in one run.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cifar_core import data, evaluation, inference, models, rundir, training  # noqa: E402
from cifar_core.config import AIRBENCH, TrainConfig  # noqa: E402


# Presets as they were before they changed (cifar_core/config.py's history), each a whole TrainConfig.
# The single-pass presets learnt by SGD (airbench94's momentum, decay, warm-up and lookahead, at 0.7) before Muon.
_SGD = dict({k: AIRBENCH[k] for k in ("optimizer", "weight_decay", "warmup", "final_lr", "lookahead")},
            learning_rate=0.7)
BEFORE = {
    "quick-sgd": dict(TrainConfig.from_preset("quick").to_dict(), **_SGD),
    "class-sgd": dict(TrainConfig.from_preset("class").to_dict(), **_SGD),
}
BEFORE["quick-before"] = dict(BEFORE["quick-sgd"], arch="airbench16_48_128", learning_rate=0.5, bias_lr_scale=64.0)
BEFORE["class-before"] = dict(BEFORE["class-sgd"], train_subset=20_000, learning_rate=0.5, bias_lr_scale=64.0)


@models.register("airbench16_48_128", "airbench16 as it was before", "airbench on 2x2 patches, widths 48/128")
def _airbench16_before(num_classes: int = 10, for_training: bool = False, whitening_learns: bool = False):
    return models._airbench(num_classes, (48, 128), "airbench16_48_128", for_training, stem_stride=2,
                            activation="relu", whitening_learns=whitening_learns)


def run(preset: str, dataset, epochs: int | None) -> dict:
    config = (TrainConfig.from_dict(BEFORE[preset]) if preset in BEFORE else TrainConfig.from_preset(preset))
    config = dataclasses.replace(config, **({"epochs": epochs} if epochs else {}))
    with tempfile.TemporaryDirectory() as folder:
        state = training.train(config, folder, dataset,
                               progress=lambda r: print(f"  {preset} epoch {r['epoch']}: {r['test_accuracy']:.2%} "
                                                        f"after {r['elapsed_s']:.0f}s", flush=True))
        if state != "finished":
            raise SystemExit(f"{preset} {state}: {rundir.read_status(folder).get('error')}")
        epochs_done = [r for r in rundir.read_metrics(folder) if r["kind"] == "epoch"]
        status = rundir.read_status(folder)
        precision, wall = status["precision"], status["ended"] - status["started"]
        # What the app shows people: the final model with mirror test-time augmentation.
        model = inference.load_model(Path(folder) / rundir.MODEL)
        mirrored = evaluation.summary(inference.predict(model, dataset.x_test), dataset.y_test)["accuracy"]
    return {"preset": preset, "precision": precision, "epochs": epochs_done, "mirror_tta_accuracy": mirrored,
            "wall_s": wall}


def seconds_to(result: dict, target: float) -> float | None:
    return next((r["elapsed_s"] for r in result["epochs"] if r["test_accuracy"] >= target), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--baseline", default="tutorial")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs (not the baseline's)")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.6, 0.7, 0.8, 0.9])
    parser.add_argument("--data", help="cifar-10-python.tar.gz (default: CIFAR10_DATA or the Keras cache)")
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()

    dataset = data.load(args.data)
    print(f"data: {dataset.origin}; test set: {len(dataset.y_test)} images")
    results = [run(args.preset, dataset, args.epochs), run(args.baseline, dataset, None)]

    header = f"{'recipe':<13} {'precision':<15}" + "".join(f"{f'to {t:.0%}':>9}" for t in args.targets) + \
        f"{'final':>9}{'seconds':>9}{'with TTA':>10}{'wall':>7}"
    print("\n" + header + "\n" + "-" * len(header))
    for result in results:
        times = [seconds_to(result, t) for t in args.targets]
        last = result["epochs"][-1]
        print(f"{result['preset']:<13} {result['precision']:<15}" +
              "".join(f"{t:>8.0f}s" if t is not None else f"{'-':>9}" for t in times) +
              f"{last['test_accuracy']:>9.2%}{last['elapsed_s']:>8.0f}s{result['mirror_tta_accuracy']:>10.2%}"
              f"{result['wall_s']:>6.0f}s")
    for target in args.targets:
        mine, base = seconds_to(results[0], target), seconds_to(results[1], target)
        if mine and base:
            ratio, word = (base / mine, "faster") if mine <= base else (mine / base, "slower")
            print(f"to {target:.0%}: {args.preset} is {ratio:.1f}x {word} than {args.baseline}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

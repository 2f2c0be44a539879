"""What writing TensorBoard event files costs a run: seconds per epoch with and without them, and the
writer's own time, measured directly around its calls.

    python benchmarks/tensorboard_cost.py [--data PATH] [--subset 5000] [--epochs 2] [--repeat 2]

Trains the quick recipe on the tiny test data (the tests' fixture) and on
`--subset` real pictures, alternating runs with and without the writer in
one process (the first, untimed run warms TensorFlow up). Seconds per epoch
are training time (metrics.jsonl's elapsed_s), so on a shared machine they
wander by more than the writer costs; the writer's own time does not.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def timed_writer(original, spent: list[float]):
    """`tensorboard_log.writer`, with the time inside its calls added to spent[0]."""
    def make(*args, **kwargs):
        board = original(*args, **kwargs)
        for name in ("on_train_batch_end", "write_epoch", "close"):
            call = getattr(board, name)

            def wrapped(*a, _call=call, **k):
                started = time.perf_counter()
                try:
                    return _call(*a, **k)
                finally:
                    spent[0] += time.perf_counter() - started
            setattr(board, name, wrapped)
        return board
    return make


def null_writer(*args, **kwargs):
    import keras

    class Nothing(keras.callbacks.Callback):
        def write_epoch(self, record):
            pass

        def close(self):
            pass
    return Nothing()


def one_run(dataset, config, with_board: bool, original) -> dict:
    from cifar_core import rundir, tensorboard_log, training
    spent = [0.0]
    tensorboard_log.writer = timed_writer(original, spent) if with_board else null_writer
    run_dir = Path(tempfile.mkdtemp(prefix="tb-cost-"))
    try:
        assert training.train(config, run_dir, dataset) == "finished", rundir.read_status(run_dir).get("error")
    finally:
        tensorboard_log.writer = original
    epochs = [r for r in rundir.read_metrics(run_dir) if r["kind"] == "epoch"]
    size = sum(f.stat().st_size for f in (run_dir / tensorboard_log.FOLDER).glob("*")) if with_board else 0
    return {"per_epoch": epochs[-1]["elapsed_s"] / len(epochs), "writer_s": spent[0], "bytes": size,
            "steps": sum(1 for r in rundir.read_metrics(run_dir) if r["kind"] == "batch")}


def measure(label: str, dataset, config, repeat: int) -> None:
    from cifar_core import tensorboard_log
    original = tensorboard_log.writer
    one_run(dataset, config, True, original)     # warm-up: TensorFlow's first traces
    runs = {True: [], False: []}
    for _ in range(repeat):
        for with_board in (False, True):
            runs[with_board].append(one_run(dataset, config, with_board, original))
    without = min(r["per_epoch"] for r in runs[False])
    with_ = min(r["per_epoch"] for r in runs[True])
    writer = min(r["writer_s"] for r in runs[True]) / config.epochs
    print(f"{label}: {with_:.2f} s an epoch with TensorBoard, {without:.2f} s without (best of {repeat}); "
          f"the writer itself {writer * 1000:.0f} ms an epoch ({writer / with_:.2%}), "
          f"{runs[True][0]['bytes'] / 1024:.0f} KB of event files for {config.epochs} epochs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the real archive (default: CIFAR10_DATA or the Keras cache)")
    parser.add_argument("--subset", type=int, default=5000, help="real training pictures")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from conftest import write_tiny_archive

    from cifar_core import data
    from cifar_core.config import TrainConfig
    tiny = data.read(write_tiny_archive(Path(tempfile.mkdtemp()) / "cifar-10-python.tar.gz"))
    quick = dict(epochs=args.epochs, precision="float32")
    measure("tiny data (180 pictures, batch 20)", tiny,
            TrainConfig.from_preset("quick", batch_size=20, learning_rate=0.2, train_subset=0, **quick), args.repeat)
    real = data.load(args.data)
    measure(f"real data ({args.subset:,} pictures, quick recipe)", real,
            TrainConfig.from_preset("quick", train_subset=args.subset, **quick), args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A class's clicks while a run trains: how soon the server answers them, this code and a baseline.

    .venv/bin/python benchmarks/pages_while_training.py [--baseline REV] [--preset quick] [--burst 30] [--rounds 2]

A class's work for the server comes in bursts: thirty students upload a photo at
the same moment. This process stands for the server: normal priority, two
threads answering (Streamlit's pages run on threads, and a photo decodes on one
of two places), each answer what the Predict page does with an upload (a
12-megapixel JPEG made from a real test picture, decoded, cut into its views and
answered by the bundled model). A burst is `--burst` such answers; its time is
from the first start to the last answer.

Bursts are timed with no trainer (the floor), then, in turns, while a trainer of
the code here and one of the baseline revision (`git archive`) train the same
`--preset` run on the whole data set (`python -m cifar_core train`, each its own
runs folder), back to back from the run's first step to its end. For each
trainer: the bursts' median and slowest, a photo's median answer, and what the
trainer gave up for it: its training time (the last epoch's `elapsed_s`) and its
wall time from start to end.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from load import baseline_tree, photo
from queue_drain import data_archive

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cifar_core import decoding, inference  # noqa: E402

SERVER_THREADS = 2


def answer(model, picture: bytes) -> float:
    """Seconds for one upload answered as the Predict page answers it."""
    started = time.perf_counter()
    image = decoding.load_image(picture)
    inference.predict_views(model, inference.views(image), image.size)
    return time.perf_counter() - started


def burst(model, picture: bytes, size: int) -> tuple[float, list[float]]:
    """(seconds to the last answer, each answer's seconds) for `size` uploads arriving at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(SERVER_THREADS) as pool:
        each = list(pool.map(lambda _: answer(model, picture), range(size)))
    return time.perf_counter() - started, each


def first_step(runs_dir: Path, trainer: subprocess.Popen) -> Path | None:
    """The run's folder once its first training step is recorded; None if the trainer ended first."""
    while trainer.poll() is None:
        for metrics in runs_dir.glob("*/metrics.jsonl"):
            if metrics.stat().st_size:
                return metrics.parent
        time.sleep(0.2)
    return None


def while_training(tree: Path, preset: str, archive: str, model, picture: bytes, size: int) -> dict:
    """Bursts back to back while `tree`'s trainer trains one `preset` run; then what the run took."""
    runs_dir = Path(tempfile.mkdtemp(prefix="pages-while-training-"))
    env = {**os.environ, "PYTHONPATH": str(tree), "CIFAR_RUNS_DIR": str(runs_dir), "CIFAR10_DATA": archive}
    # In a session of its own, as the app starts its trainers (runs.py, worker.py): where the kernel groups
    # by session (autogroup), that decides the trainer's share of the CPU more than its nice value does.
    trainer = subprocess.Popen([sys.executable, "-m", "cifar_core", "train", "--preset", preset], cwd=tree, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run = first_step(runs_dir, trainer)
    if run is None:
        raise SystemExit(f"The trainer of {tree} ended before its first step (exit code {trainer.returncode}).")
    bursts, answers = [], []
    while trainer.poll() is None:
        took, each = burst(model, picture, size)
        if trainer.poll() is None:       # a burst the run's end cut short is not one made while it trained
            bursts.append(took)
            answers += each
        time.sleep(1.0)
    status = json.loads((run / "status.json").read_text())
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r.get("kind") == "epoch"]
    return {"bursts": bursts, "answers": answers, "state": status.get("state"),
            "training_s": epochs[-1]["elapsed_s"] if epochs else float("nan"),
            "wall_s": status["ended"] - status["started"]}


def describe(label: str, bursts: list[float], answers: list[float], trainer: dict | None = None) -> None:
    line = (f"{label:<34}{len(bursts):>7}{statistics.median(bursts):>11.2f}{max(bursts):>10.2f}"
            f"{statistics.median(answers) * 1000:>12.0f}")
    if trainer:
        line += f"{trainer['training_s']:>12.1f}{trainer['wall_s']:>9.1f}  {trainer['state']}"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="ebe991a", help="the revision to compare with (default: ebe991a)")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--burst", type=int, default=30, help="photos answered at once (default 30)")
    parser.add_argument("--rounds", type=int, default=2, help="turns of each trainer (default 2)")
    args = parser.parse_args()
    archive = data_archive()
    folder = Path(tempfile.mkdtemp(prefix="pages-while-training-"))
    picture = photo(folder / "photo.jpg", archive).read_bytes()
    before = baseline_tree(args.baseline, folder / "baseline")
    model = inference.load_model(None)
    burst(model, picture, 4)     # warm: the model's networks traced, the decoder's places made
    idle = [burst(model, picture, args.burst) for _ in range(3)]
    print(f"{args.burst} photos at once, {SERVER_THREADS} server threads, while one `{args.preset}` run trains; "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'trainer':<34}{'bursts':>7}{'median s':>11}{'worst s':>10}{'photo ms':>12}{'training s':>12}"
          f"{'wall s':>9}")
    describe("none (the floor)", [b for b, _ in idle], [a for _, each in idle for a in each])
    found = {"this code": [], f"baseline {args.baseline}": []}
    for _ in range(args.rounds):
        for label, tree in (("this code", ROOT), (f"baseline {args.baseline}", before)):
            result = while_training(tree, args.preset, archive, model, picture, args.burst)
            found[label].append(result)
            describe(f"{label}, round {len(found[label])}", result["bursts"], result["answers"], result)
    for label, results in found.items():
        describe(f"{label}, all rounds", [b for r in results for b in r["bursts"]],
                 [a for r in results for a in r["answers"]],
                 {"training_s": statistics.median(r["training_s"] for r in results),
                  "wall_s": statistics.median(r["wall_s"] for r in results), "state": "(medians)"})


if __name__ == "__main__":
    main()

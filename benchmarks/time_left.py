"""How right the Train page's "about N s left" is: a run started as the app starts it, its estimate
read every few seconds, each compared with when the run really ended.

    python benchmarks/time_left.py --preset quick [--epochs N] [--subset N] [--batch-size N] [--every 5] [--data PATH]

The run is a separate trainer process (`runs.start`), so start-up, the test
pass after every epoch and the final checks all count, as they do for a
person watching. Prints one line per reading and the worst error once an
epoch was done and before it, as a share of the time that was really left.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--subset", type=int, help="training pictures (0: all)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--data")
    args = parser.parse_args()
    if args.data:
        os.environ["CIFAR10_DATA"] = args.data
    os.environ["CIFAR_RUNS_DIR"] = tempfile.mkdtemp(prefix="time-left-")

    from cifar_core import runs
    from cifar_core.config import TrainConfig
    overrides = {k: v for k, v in (("epochs", args.epochs), ("train_subset", args.subset),
                                   ("batch_size", args.batch_size)) if v is not None}
    run = runs.start(TrainConfig.from_preset(args.preset, **overrides))
    readings = []
    while (run := runs.get(run.id)).state in ("queued", "running"):
        now = time.time()
        p = run.progress(now=now)
        if p["seconds_left"] is not None:
            readings.append((now, p))
        time.sleep(args.every)
    ended = run.status["ended"]
    print(f"{args.preset} {overrides or ''}: {run.state} after {ended - run.status['started']:.1f} s "
          f"(of which testing {run.status.get('testing_s', 0):.1f} s)")
    worst = {"before the first epoch ended": 0.0, "after an epoch": 0.0}
    for now, p in readings:
        truth = ended - now
        error = (p["seconds_left"] - truth) / truth if truth > 0 else 0.0
        when = "after an epoch" if p["epochs_done"] else "before the first epoch ended"
        worst[when] = max(worst[when], abs(error), key=abs)
        print(f"  {now - run.status['started']:6.1f} s  epoch {p['epoch']} {p['phase']:<9} "
              f"estimate {p['seconds_left']:6.1f} s  truth {truth:6.1f} s  error {error:+.0%}")
    for when, error in worst.items():
        print(f"worst error {when}: {error:.0%}")
    return 0 if run.state == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())

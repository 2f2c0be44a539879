"""A class presses Start: how fast one server drains thirty runs, warm workers against a process per run.

    .venv/bin/python benchmarks/queue_drain.py [--runs 30] [--baseline-runs 3] [--preset class]

Thirty students (thirty owners, CIFAR_MAX_RUNS_PER_PERSON as it is) press
Start within a second or two on the whole offline data set, in a fresh runs
directory; the queue holds them all (CIFAR_MAX_QUEUED_RUNS is raised to the
number of runs, as a class's server would set it). Printed: the time from the
first Start until the last run has finished, each run's start-up (from leaving
the queue to its first training step, read off its first metrics line) and
wall time (leaving the queue to finishing), medians, the trainer processes'
peak memory and CPU time (the work itself, which other users' load does not
inflate the way it inflates wall time), and the median accuracy.

The baseline is the old launch, a fresh `python -m cifar_core train` process
per run (CIFAR_WORKER_IDLE_S=0), measured in the same invocation on
`--baseline-runs` runs queued the same way and extrapolated to the full count
(runs queue one after another, so the total is the count times the median
wall time). The machine's load average is printed beside the figures: on a
shared machine the other users' work is in every number.
"""
from __future__ import annotations

import sys
from pathlib import Path

# This file's folder comes first on the path and its name is a standard module's (`queue`, which the thread
# pool imports): take the folder off before anything imports it.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cifar_core import evaluation, rundir, runs  # noqa: E402
from cifar_core.config import TrainConfig  # noqa: E402


def data_archive() -> str:
    if os.environ.get("CIFAR10_DATA"):
        return os.environ["CIFAR10_DATA"]
    tool = ROOT.parent / "shared" / "tools" / "cifar10_archive.py"
    out = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def memory_mb(pid: int) -> tuple[float, float]:
    """(resident now, peak) of process `pid` in MB; zeros once it has gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0, 0.0
    values = {line.split(":")[0]: int(line.split()[1]) for line in text.splitlines()
              if line.startswith(("VmRSS:", "VmHWM:"))}
    return values.get("VmRSS", 0) / 1024, values.get("VmHWM", 0) / 1024


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def press_start(count: int, preset: str, runs_dir: Path, worker_idle_s: int) -> dict:
    """`count` people press Start at once; wait until every run has ended; return what was measured."""
    os.environ.update(CIFAR_RUNS_DIR=str(runs_dir), CIFAR_MAX_QUEUED_RUNS=str(count),
                      CIFAR_WORKER_IDLE_S=str(worker_idle_s))
    config = TrainConfig.from_preset(preset)
    first_step: dict[str, float] = {}
    peaks: dict[int, float] = {}
    cpu: dict[int, float] = {}    # last CPU time seen per trainer process: the work, whatever else loads the machine
    reported: set[str] = set()
    done = threading.Event()

    def watch():   # what a person would see: the first line of the chart, every trainer's memory
        while not done.is_set():
            runs.reconcile()       # the app's watcher thread does this
            for run in runs._all():
                if run.id not in first_step and (run.path / rundir.METRICS).exists():
                    first_step[run.id] = time.time()
                pid = run.status.get("pid")
                if run.state == "running" and isinstance(pid, int):
                    peaks[pid] = max(peaks.get(pid, 0.0), memory_mb(pid)[1])
                    cpu[pid] = max(cpu.get(pid, 0.0), rundir.process_cpu_s(pid) or 0.0)
                if run.state not in rundir.ACTIVE and run.id not in reported:   # progress, for a long wait
                    reported.add(run.id)
                    print(f"    {len(reported):>3}/{count} {run.state} at {time.time() - began:6.0f} s, "
                          f"load {load()}", flush=True)
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    began = time.time()
    with ThreadPoolExecutor(count) as pool:
        started = list(pool.map(lambda i: runs.start(config, owner=f"student{i:02d}"), range(count)))
    pressed = time.time() - began
    watcher.start()
    while any(runs.get(r.id).state in rundir.ACTIVE for r in started):
        time.sleep(0.5)
    done.set()
    watcher.join()
    finished = [runs.get(r.id) for r in started]
    last_end = max(r.status.get("ended", 0) for r in finished)
    return {
        "runs": finished, "pressed_s": pressed, "drain_s": last_end - began,
        "startup_s": [first_step[r.id] - r.status["launched"] for r in sorted(finished, key=lambda r: r.status["launched"])
                      if r.id in first_step],
        "run_peak_mb": [r.status["trainer_peak_mb"] - r.status["trainer_before_mb"] for r in finished
                        if isinstance(r.status.get("trainer_peak_mb"), float) and isinstance(r.status.get("trainer_before_mb"), float)],
        "wall_s": [r.status["ended"] - r.status["launched"] for r in finished],
        "states": {s: sum(r.state == s for r in finished) for s in rundir.STATES if any(r.state == s for r in finished)},
        "trainers": len({r.status.get("pid") for r in finished}),
        "peak_mb": max(peaks.values(), default=0.0),
        "cpu_s": sum(cpu.values()),
        "accuracy": statistics.median(r.status["test_accuracy"] for r in finished
                                      if isinstance(r.status.get("test_accuracy"), float)),
    }


def describe(name: str, result: dict) -> None:
    startup, wall = result["startup_s"], result["wall_s"]
    print(f"{name}: {len(result['runs'])} runs {result['states']}, {result['trainers']} trainer process(es), "
          f"Start pressed {len(result['runs'])} times in {result['pressed_s']:.1f} s")
    print(f"  first Start to last run finished: {result['drain_s']:.0f} s ({result['drain_s'] / 60:.1f} min)")
    print(f"  start-up (queue to first step): median {statistics.median(startup):.1f} s, max {max(startup):.1f} s; "
          f"the first run {startup[0]:.1f} s, the others median {statistics.median(startup[1:] or startup):.2f} s, "
          f"max {max(startup[1:] or startup):.2f} s")
    print(f"  wall time per run (queue to finished): median {statistics.median(wall):.1f} s, "
          f"min {min(wall):.1f} s, max {max(wall):.1f} s")
    print(f"  peak memory of a trainer process: {result['peak_mb']:.0f} MB")
    if result["run_peak_mb"]:   # warm workers record each run's own peak over their memory before it
        print(f"  memory one run adds to its warm worker at its peak: median {statistics.median(result['run_peak_mb']):.0f} MB, "
              f"max {max(result['run_peak_mb']):.0f} MB")
    print(f"  CPU time of the trainer processes: {result['cpu_s']:.0f} s, {result['cpu_s'] / len(result['runs']):.1f} s "
          f"a run (sampled every 0.1 s, so a process's last moments are missed)")
    print(f"  median test accuracy: {evaluation.percent(result['accuracy'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=30, help="Start presses (students)")
    parser.add_argument("--baseline-runs", type=int, default=3, help="runs measured the old way, then extrapolated")
    parser.add_argument("--preset", default="class")
    args = parser.parse_args()
    os.environ["CIFAR10_DATA"] = data_archive()
    print(f"{os.cpu_count()} CPUs; load average before: {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="cifar-queue-") as tmp:
        if args.baseline_runs:   # first, as it is short: the long measurement's figures then come last
            old = press_start(args.baseline_runs, args.preset, Path(tmp) / "process", worker_idle_s=0)
            describe("baseline, a process per run", old)
            per_run = statistics.median(old["wall_s"])
            print(f"  extrapolated to {args.runs} runs, one after another: {args.runs * per_run:.0f} s "
                  f"({args.runs * per_run / 60:.1f} min) = {args.runs} x {per_run:.1f} s median wall time")
            print(f"  load average after: {load()}", flush=True)
        warm = press_start(args.runs, args.preset, Path(tmp) / "warm", worker_idle_s=30)
        describe("warm workers", warm)
        print(f"  load average after: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

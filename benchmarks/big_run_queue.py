"""A big run waiting for memory with a class behind it: when the class's small runs finish, this code and a baseline.

    .venv/bin/python benchmarks/big_run_queue.py [--baseline REV] [--memory-gb 8.5] [--class-runs 3]

A server whose memory holds one big trainer and a small one, but not two big
ones: a memory cgroup of `--memory-gb` without swap (cgroup v1, so Linux and
root), CIFAR_MAX_CONCURRENT_RUNS=2, the whole data set, a fresh runs folder.
One student starts a big run (the `best` network at a batch of 4,096, one epoch
of 8,192 pictures: about 6 GB), a second student the same, which waits for
memory, then `--class-runs` students press Start on the `class` preset. Once for
the code here and once for the baseline revision (`git archive`), one after the
other in the same invocation, each run's start and end are printed in seconds
from the first Start, with how it ended; then the figures: when the class's
runs finished (median and last), when the second big run started, and the runs
that failed (a trainer ended for want of memory fails so).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from queue_drain import data_archive     # the same archive the queue benchmark trains on

ROOT = Path(__file__).resolve().parent.parent
MEMORY_CGROUPS = Path("/sys/fs/cgroup/memory")

# Run in the tree measured, inside the cgroup: start the runs, then let the queue go until all have ended.
DRIVER = """
import json, sys, time
from cifar_core import rundir, runs
from cifar_core.config import TrainConfig
big = TrainConfig(arch="airbench", batch_size=4096, epochs=1, train_subset=8192, name="big")
small = TrainConfig.from_preset("class")
began = time.time()
started = [runs.start(big, owner="big1"), runs.start(big, owner="big2")]
started += [runs.start(small, owner=f"student{i}") for i in range(int(sys.argv[1]))]
while any(runs.get(r.id).state in rundir.ACTIVE for r in started):
    runs.reconcile()       # the app's watcher thread does this
    time.sleep(0.2)
print(json.dumps({"began": began, "runs": [{"owner": r.status.get("owner"), **{k: runs.get(r.id).status.get(k)
       for k in ("state", "started", "ended", "error")}} for r in started]}))
"""


def in_memory_of(gb: float):
    """A fresh memory cgroup of `gb` without swap; its folder."""
    group = MEMORY_CGROUPS / f"cifar-bench-{os.getpid()}-{len(list(MEMORY_CGROUPS.glob('cifar-bench-*')))}"
    group.mkdir()
    (group / "memory.limit_in_bytes").write_text(str(int(gb * 2**30)))
    (group / "memory.swappiness").write_text("0")
    return group


def measure(tree: Path, gb: float, class_runs: int, archive: str) -> dict:
    group = in_memory_of(gb)
    try:
        with tempfile.TemporaryDirectory() as runs_dir:
            env = {**os.environ, "PYTHONPATH": str(tree), "CIFAR10_DATA": archive, "CIFAR_RUNS_DIR": runs_dir,
                   "CIFAR_MAX_CONCURRENT_RUNS": "2", "CIFAR_MAX_QUEUED_RUNS": "60"}
            out = subprocess.run(["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$0" -c "$1" {class_runs}',
                                  sys.executable, DRIVER], cwd=tree, env=env, capture_output=True, text=True,
                                 check=True, timeout=3600)
            found = json.loads(out.stdout.strip().splitlines()[-1])
        found["oom_kills"] = _oom_kills(group)
        return found
    finally:
        for pid in (group / "cgroup.procs").read_text().split():     # a warm worker left behind
            subprocess.run(["kill", pid], check=False)
        for _ in range(100):
            try:
                group.rmdir()
                break
            except OSError:
                time.sleep(0.1)


def _oom_kills(group: Path) -> int:
    for line in (group / "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def figures(found: dict) -> dict:
    began = found["began"]
    at = {key: [(r[key] - began) if r[key] else None for r in found["runs"]] for key in ("started", "ended")}
    small_ends = [end for r, end in zip(found["runs"], at["ended"]) if r["owner"].startswith("student")]
    return {"class runs finished, median s": statistics.median(small_ends),
            "class runs finished, last s": max(small_ends),
            "second big run started s": at["started"][1],
            "everything ended s": max(at["ended"]),
            "runs failed": sum(r["state"] == "failed" for r in found["runs"]),
            "out-of-memory kills": found["oom_kills"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default="f30a804", help="revision to compare with (before smaller runs "
                                                              "passed a run waiting for memory)")
    parser.add_argument("--memory-gb", type=float, default=8.5)
    parser.add_argument("--class-runs", type=int, default=3)
    args = parser.parse_args()
    if not MEMORY_CGROUPS.is_dir() or os.geteuid() != 0:
        sys.exit("This benchmark needs cgroup v1's memory controller and root, to give the server its memory.")
    archive = data_archive()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        baseline = Path(folder)
        raw = subprocess.run(["git", "archive", args.baseline], cwd=ROOT, check=True, capture_output=True).stdout
        tarfile.open(fileobj=io.BytesIO(raw)).extractall(baseline, filter="data")
        for name, tree in ((f"baseline {args.baseline}", baseline), ("this code", ROOT)):
            print(f"{name}: two big runs and {args.class_runs} class runs in {args.memory_gb} GB…", flush=True)
            results[name] = measure(tree, args.memory_gb, args.class_runs, archive)
            began = results[name]["began"]
            for run in results[name]["runs"]:
                times = [f"{run[k] - began:6.1f}" if run[k] else "     -" for k in ("started", "ended")]
                print(f"    {run['owner']:<9} started {times[0]} s, ended {times[1]} s, {run['state']}"
                      + (f": {run['error']}" if run["error"] else ""), flush=True)
    print(f"\n{'':<34}" + "".join(f"{name:>24}" for name in results))
    table = {name: figures(found) for name, found in results.items()}
    for key in next(iter(table.values())):
        print(f"{key:<34}" + "".join(f"{table[name][key]:>24.1f}" if isinstance(table[name][key], float)
                                     else f"{table[name][key]:>24}" for name in results))
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()

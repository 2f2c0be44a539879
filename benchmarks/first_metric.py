"""Time from Start to the first metric record: a Ray cluster against the local queue, same run.

    python benchmarks/first_metric.py [--data PATH] [--repeat 3] [--ray-address HOST:PORT]

For each backend it presses Start (`runs.start`) on an idle system, waits for
the run's first line in metrics.jsonl (what the Train page's chart draws
first), then stops the run and waits until the backend is idle again. Without
--ray-address it starts a local two-node cluster (tests/ray_cluster.py: a
head with no CPUs and a worker with one, separate processes) and reports how
long that took. With --data, the runs train on that archive (so loading the
data counts); otherwise on a tiny archive in the official layout.
"""
from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import ray_cluster  # noqa: E402
from conftest import write_tiny_archive  # noqa: E402

from cifar_core import ray_backend, runs  # noqa: E402
from cifar_core.config import TrainConfig  # noqa: E402


def wait_for(condition, timeout: float = 600):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not get there in time")
        time.sleep(0.05)


def first_metric_seconds(backend: str) -> float:
    config = TrainConfig(arch="airbench_tiny", batch_size=8, precision="float32", epochs=200, name="first-metric")
    pressed = time.monotonic()
    run = runs.start(config, owner="benchmark")
    wait_for(lambda: runs.get(run.id).state == "failed" or (run.path / "metrics.jsonl").exists()
             and (run.path / "metrics.jsonl").stat().st_size > 0)
    if runs.get(run.id).state == "failed":
        raise SystemExit(f"{backend}: the run failed: {runs.get(run.id).status.get('error')}")
    seconds = time.monotonic() - pressed
    runs.stop(run.id, owner="benchmark")
    wait_for(lambda: runs.get(run.id).state == "stopped")
    if backend == "ray":
        wait_for(lambda: not ray_backend._actor_exists(runs.get(run.id).status))   # its CPU is free again
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a cifar-10-python.tar.gz (default: a tiny archive)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--ray-address", help="an existing cluster (default: start a local head and worker)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))    # stopped from outside: still tear the cluster down
    work = Path(tempfile.mkdtemp(prefix="first-metric-"))
    os.environ["CIFAR10_DATA"] = args.data or str(write_tiny_archive(work / "tiny.tar.gz"))
    os.environ["CIFAR_RUNS_DIR"] = str(work / "runs")
    os.environ["CIFAR_RAY_CPUS_PER_RUN"] = "1"
    cluster = None
    if not args.ray_address:
        began = time.monotonic()
        cluster = ray_cluster.LocalCluster().start()
        print(f"local cluster (head + 1-CPU worker) started in {time.monotonic() - began:.1f} s")
    try:
        results = {}
        for backend in ("local", "ray"):
            os.environ["CIFAR_RUNS_BACKEND"] = backend
            os.environ["RAY_ADDRESS"] = args.ray_address or cluster.address
            results[backend] = [first_metric_seconds(backend) for _ in range(args.repeat)]
        for backend, seconds in results.items():
            print(f"{backend:>5}: Start to first metric, median {statistics.median(seconds):.1f} s "
                  f"(each: {', '.join(f'{s:.1f}' for s in seconds)})")
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()    # disconnect before the cluster goes
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    main()

"""How much memory a trainer takes, network by network and batch by batch, against `trainer_memory`'s estimate.

    .venv/bin/python benchmarks/trainer_memory.py [--archs airbench class ...] [--batches 256 2048]
                                                  [--precisions float32 mixed_bfloat16] [--data ARCHIVE]

Each combination is one `python -m cifar_core train --epochs 1` process on
the offline data set (the tutorial CNN with Adam, as its preset trains it, the rest
with the default recipe's Muon; a few steps: a training step's memory is the same in
every step), in a fresh runs directory, one after another; its peak resident
memory is the trainer's own VmHWM less the decoded data set's pages it maps
(the page cache's, shared), which it prints as it exits. Printed
per line: the measured peak, `trainer_memory.estimate_mb` for the same
settings (what the server budgets before it starts such a run), and their
ratio; then, per network and precision, the straight line through the
measured peaks (memory at no batch, and per picture of a batch), which is
what `trainer_memory.PER_NETWORK` holds.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cifar_core import data, models, trainer_memory  # noqa: E402
from cifar_core.config import TrainConfig  # noqa: E402


# The trainer reports its own peak as it exits: wait4's ru_maxrss would also count what the process held
# between fork and exec, a copy of its parent (a test runner's gigabytes). The decoded data set's pages it
# has mapped are left out (`cifar_core/decoded.py`): they are the page cache's, shared with every process
# that maps them and dropped by the kernel when memory is short, and how many of them a trainer has mapped
# depends on which were cached already (the kernel maps cached neighbours of every page it touches), by as
# much as the whole training set on a machine where another process has just read it. Mapped pages are
# never unmapped before exit, so those at exit are those at the peak.
REPORTING = """import atexit, runpy, sys

def report():
    status = open('/proc/self/status').read()
    peak_kb = int(status.split('VmHWM:')[1].split()[0])
    data_kb, in_data = 0, False
    for line in open('/proc/self/smaps'):
        first = line.split()[0]
        if not first.endswith(':'):                 # a mapping's heading: its address range, then its file
            in_data = 'cifar-10-decoded' in line
        elif first == 'Rss:' and in_data:
            data_kb += int(line.split()[1])
    print('peak', peak_kb - data_kb, file=sys.stderr)

atexit.register(report)
sys.argv[0] = 'cifar_core'
runpy.run_module('cifar_core', run_name='__main__', alter_sys=True)
"""


def peak_mb(arch: str, batch: int, precision: str, archive: Path) -> tuple[float, float]:
    """A one-epoch trainer's peak resident memory in MB, and its wall time in seconds."""
    with tempfile.TemporaryDirectory() as runs:
        env = {**os.environ, "CIFAR10_DATA": str(archive), "CIFAR_RUNS_DIR": runs, "PYTHONPATH": str(ROOT)}
        started = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", REPORTING, "train", "--arch", arch, "--batch-size", str(batch),
             "--precision", precision, "--epochs", "1", "--train-subset", str(max(2 * batch, 2048)),
             "--calibration-images", "0", *(["--optimizer", "adam"] if arch == "tutorial" else [])],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peaks = [line.split()[1] for line in out.stderr.splitlines() if line.startswith("peak ")]
        if out.returncode or not peaks:
            sys.exit(f"{arch} at {batch} ({precision}) failed: {out.stderr[-2000:]}")
        return int(peaks[-1]) / 1024, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", nargs="+", default=list(models.REGISTRY))
    parser.add_argument("--batches", nargs="+", type=int, default=[256, 2048])
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--data", help="the data set (default: CIFAR10_DATA, else the one already downloaded)")
    args = parser.parse_args()
    archive = data.locate(args.data)
    if archive is None:
        sys.exit("No data set here: set CIFAR10_DATA or pass --data "
                 "(python ../shared/tools/cifar10_archive.py prints the offline copy's path).")
    print(f"{'network':16} {'precision':15} {'batch':>6} {'peak MB':>8} {'estimate':>9} {'ratio':>6} {'s':>5}",
          flush=True)
    fits = []
    for arch in args.archs:
        for precision in args.precisions:
            points = []
            for batch in args.batches:
                peak, seconds = peak_mb(arch, batch, precision, archive)
                config = TrainConfig(arch=arch, batch_size=batch, precision=precision)
                estimate = trainer_memory.estimate_mb(config)
                points.append((batch, peak))
                print(f"{arch:16} {precision:15} {batch:6} {peak:8.0f} {estimate:9.0f} {estimate / peak:6.2f} "
                      f"{seconds:5.0f}", flush=True)
            if len(points) >= 2:
                (b0, m0), (b1, m1) = points[0], points[-1]
                per_picture = (m1 - m0) / (b1 - b0)
                fits.append((arch, precision, m0 - per_picture * b0, per_picture))
    print("\nstraight line through the peaks: MB at no batch, MB per picture of a batch")
    for arch, precision, base, per_picture in fits:
        print(f"{arch:16} {precision:15} {base:7.0f} {per_picture:8.3f}")


if __name__ == "__main__":
    main()

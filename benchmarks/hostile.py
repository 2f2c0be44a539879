"""Replays the hostile inputs a careless or hostile visitor can send, and prints what each costs.

    python benchmarks/hostile.py [--only images|archives|service]

- images: every file in tests/hostile_images.py through load_image + prepare (what an upload,
  a camera shot or a drawing goes through), each in a fresh process: peak memory growth
  (Linux VmHWM over the RSS before; for a picture decoded apart, its process's peak) and time, and the
  sentence a person sees. Baseline,
  same run: a legitimate 12-megapixel phone photo (JPEG).
- archives: every archive in tests/hostile_archives.py through data.read, the same way.
  Baseline, same run: a legitimate archive in the official layout (200 + 40 pictures).
- service: the shared-server cases: teacher-password guesses in one second, one visitor
  pressing Start twenty times, and how long a photo waits while another visitor's
  10,000-picture evaluation runs (baseline: the same, with one lock around every
  prediction, as the app served them before).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PEAK = """
import resource, sys, time
def status(field):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(field + ":"))
from cifar_core import data, decoding, inference
before = status("VmRSS")
started = time.perf_counter()
try:
    if sys.argv[1] == "image":
        image = inference.prepare(decoding.load_image(sys.argv[2]))
        outcome = "loaded, 32x32"
    else:
        outcome = f"loaded, {len(data.read(sys.argv[2]).y_train):,} training pictures"
except (decoding.ImageError, data.DataError) as e:
    outcome = str(e)
apart = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024    # a picture decoded apart: its peak
print(max(status("VmHWM") - before, apart), time.perf_counter() - started, outcome, sep="\\t")
"""


def measure(kind: str, path: Path) -> tuple[float, float, str]:
    result = subprocess.run([sys.executable, "-c", PEAK, kind, str(path)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    if result.returncode:
        return float("nan"), float("nan"), f"CRASHED: {result.stderr.strip().splitlines()[-1:]}"
    peak, seconds, outcome = result.stdout.rstrip("\n").split("\t", 2)
    return float(peak) / 1e6, float(seconds), outcome.replace(f"{path.parent}/", "")


def row(name: str, peak: float, seconds: float, outcome: str) -> None:
    print(f"  {name:<34} {peak:8.0f} MB {seconds:8.2f} s   {outcome[:90]}", flush=True)


def images(folder: Path) -> None:
    import hostile_images
    from PIL import Image
    print("Uploads: load_image + prepare, in a fresh process each")
    photo = folder / "baseline-phone-photo.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (3000 // 8, 4000 // 8, 3), np.uint8)
    Image.fromarray(noise).resize((4000, 3000), Image.Resampling.BILINEAR).save(photo, quality=90)
    row("baseline: 12 MP phone photo", *measure("image", photo))
    worst = {False: 0.0, True: 0.0}       # by whether the picture is a photo decoded alone (every place)
    for name, build in hostile_images.BUILDERS.items():
        path = folder / name
        path.write_bytes(build())
        peak, seconds, outcome = measure("image", path)
        worst[name in hostile_images.ALONE] = max(worst[name in hostile_images.ALONE], peak)
        row(name, peak, seconds, outcome)
    print(f"  worst peak: {worst[False]:.0f} MB (goal: under 150 MB); of a photo decoded alone, holding every "
          f"place's budget: {worst[True]:.0f} MB (goal: under 230 MB)\n")


def archives(folder: Path) -> None:
    import hostile_archives
    from conftest import write_tiny_archive
    print("Archives: data.read, in a fresh process each")
    row("baseline: tiny official layout", *measure("archive", write_tiny_archive(folder / "tiny.tar.gz")))
    for name, build in hostile_archives.BUILDERS.items():
        path = folder / f"{name}.tar.gz"
        path.write_bytes(build())
        row(name, *measure("archive", path))
    for name, build in hostile_archives.FOLDER_BUILDERS.items():
        row(name, *measure("archive", build(folder / name)))
    print()


def service(folder: Path) -> None:
    from cifar_core import inference, password, rundir, runs
    from cifar_core.config import TrainConfig
    print("Shared server")
    guard = password.Guard()
    started, checked = time.perf_counter(), 0
    while time.perf_counter() - started < 1.0:
        checked += guard.check("eve", "guess", "the right one").checked
    print(f"  password guesses checked in 1 s by one visitor: {checked} (before the guard, an earlier run: 301)")

    os.environ["CIFAR_RUNS_DIR"] = str(folder / "runs")
    runs._launch = lambda run: rundir.update_status(run.path, state="running", pid=os.getpid(),
                                                    pid_started=rundir.process_start(os.getpid()))
    def accepted_of_20(owner: str) -> int:
        accepted = 0
        for _ in range(20):
            try:
                runs.start(TrainConfig(epochs=1), owner=owner)
                accepted += 1
            except runs.RunError:
                pass
        return accepted
    limited = accepted_of_20("eve")
    os.environ["CIFAR_MAX_RUNS_PER_PERSON"] = "1000"      # the baseline: no limit per visitor, as before it
    unlimited = accepted_of_20("mallory")
    del os.environ["CIFAR_MAX_RUNS_PER_PERSON"]
    print(f"  Start pressed 20 times by one visitor: {limited} runs accepted (without a limit per visitor: "
          f"{unlimited})")

    model = inference.load_model()
    test = np.random.default_rng(1).integers(0, 256, (10_000, 32, 32, 3), np.uint8)
    photo = test[:1]
    inference.predict(model, photo)
    alone = statistics.median(_timed(lambda: inference.predict(model, photo)) for _ in range(20))

    def during(predict) -> list[float]:
        waits, done = [], threading.Event()
        worker = threading.Thread(target=lambda: (predict(test), done.set()))
        worker.start()
        time.sleep(0.5)
        while not done.is_set() and len(waits) < 10:
            waits.append(_timed(lambda: predict(photo)))
            time.sleep(0.2)
        worker.join()
        return waits

    now = during(lambda x: inference.predict(model, x))
    lock = threading.Lock()

    def serialised(x):     # the old way: one lock around every call, 500 pictures a chunk
        with lock:
            return inference.predict(model, x, batch_size=500)
    before = during(serialised)
    print(f"  a photo alone: {alone * 1000:.0f} ms")
    print(f"  a photo during a 10,000-picture evaluation: median {statistics.median(now) * 1000:.0f} ms, "
          f"worst {max(now) * 1000:.0f} ms (n={len(now)})")
    print(f"  baseline, one lock around every prediction: median {statistics.median(before) * 1000:.0f} ms, "
          f"worst {max(before) * 1000:.0f} ms (n={len(before)})")


def _timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("images", "archives", "service"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, section in (("images", images), ("archives", archives), ("service", service)):
            if args.only in (None, name):
                folder = Path(tmp) / name
                folder.mkdir()
                section(folder)


if __name__ == "__main__":
    main()

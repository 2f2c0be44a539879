"""How long a photo that needs every decoding place waits while small pictures keep coming.

    .venv/bin/python benchmarks/decoding_line.py [--tries 30] [--threads 6] [--decode-ms 20]

`--threads` threads decode small pictures without a pause, each holding one
decoding place for `--decode-ms` (a sleep stands in for the decoder, so the
figure is the waiting alone); among them a photo arrives that, as a big
progressive JPEG does, opens holding one place, finds it needs them all, and
comes back for them. Printed: how long it waited for them, median and worst
of `--tries`, with the decoding places' line as it is (pictures in the order
they came, such a photo next when it comes back), and the baseline, a plain
lock in the line's place (any waiting picture, or a new one, may go next), in
the same run.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import decoding  # noqa: E402


class PlainLock:
    """The baseline: what the line replaced."""

    def __init__(self):
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def turn(self, first: bool = False):
        with self._lock:
            yield


def photo_wait(threads: int, decode_s: float) -> float:
    """Seconds from the photo's arrival until it holds every place, small pictures decoding meanwhile."""
    stop = threading.Event()

    def small_pictures():
        while not stop.is_set():
            with decoding._decode_slot(1):
                time.sleep(decode_s)
    others = [threading.Thread(target=small_pictures) for _ in range(threads)]
    for thread in others:
        thread.start()
    time.sleep(5 * decode_s)                 # the small pictures' line is full
    arrived = time.monotonic()
    with decoding._decode_slot(1):
        time.sleep(decode_s / 10)            # opened, and found to need every place
    with decoding._decode_slot(decoding.DECODING_AT_ONCE):
        waited = time.monotonic() - arrived
    stop.set()
    for thread in others:
        thread.join()
    return waited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=30)
    parser.add_argument("--threads", type=int, default=6, help="threads decoding small pictures")
    parser.add_argument("--decode-ms", type=float, default=20, help="how long a small picture holds its place")
    args = parser.parse_args()
    print(f"a photo needing all {decoding.DECODING_AT_ONCE} places among {args.threads} threads decoding "
          f"small pictures ({args.decode_ms:g} ms each), {args.tries} tries")
    print(f"{'':28}{'median ms':>10}{'worst ms':>10}")
    for name, line in [("the line (this code)", decoding._Turns()), ("baseline: a plain lock", PlainLock())]:
        decoding._turns = line
        waits = [photo_wait(args.threads, args.decode_ms / 1000) * 1000 for _ in range(args.tries)]
        print(f"{name:28}{statistics.median(waits):10.0f}{max(waits):10.0f}")


if __name__ == "__main__":
    main()

"""Inference speed of the bundled model: batch throughput and single-photo latency.

    python benchmarks/inference.py [--model PATH] [--photo FILE]

Single-photo latency covers what the app does with an upload: decode,
squeeze what it is shown into 32 x 32 squares (`inference.views`) and predict, once
warm; "one view" is the first view alone (the whole photo squeezed into a
square), through `inference.predict` (its mirror image in a second call,
where the model is unsure of it); "no model" is the decoding and cutting alone, the part no
model can make quicker (most of it libjpeg's entropy decoding, which reading
a JPEG at reduced size does not skip). The photo, as most editors and sites save
one, has no restart markers: its coded data is cut in the middle and the halves
decoded on two cores at once (`jpeg_middle`); timed in turns with it, the same
photo decoded from start to end on one core, as before (the app cuts a photo only while no other
is being decoded and a core is idle: run this on an idle machine). The same photo is timed again as a
phone saves it, with a restart marker after each row of blocks (iPhones
write them): such a file is cut at a marker (`jpeg_halves`). And once more saved progressive, as
web tools often save photos: read at an eighth from the scans that show there (`jpeg_progressive`),
timed in turns with the same file decoded from every scan, as before. And as an iPhone's photo is kept
on a computer, HEIC with a 320 x 240 preview, which the app reads (`decoding.PREVIEW_SMALLEST`), in turns
with the same photo in a HEIC without one, decoded whole as every HEIC was before: wall time, and CPU
time with the capped process each HEIC is decoded in.
The baseline, measured in the same run, is the TensorFlow tutorial CNN
(untrained: speed does not depend on the weights), and the bundled model as
saved, in float32: `inference.load_model` answers with a copy whose BatchNorms
are folded into its convolutions, in bfloat16 on a CPU with bfloat16 maths
(`fast_inference`), and the float32 row is what it costs without that.

Batches are the bundled sample's 1,000 test pictures, answered with mirror
test-time augmentation as the app answers them: only the pictures a model
is less than `evaluation.SURE_ENOUGH` sure of are shown again mirrored, so
the rate depends on the pictures; "all mirrored" is the rate with every one
mirrored, what pictures the model is unsure of all cost (random noise does;
so does the untrained tutorial CNN on anything). A model of networks side by
side shows each picture to its first network alone first, and to the others
only where that one is unsure (`inference.predict`); the row under it, in
the same run, is every network on every picture, as it answered before.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from cifar_core import data, decoding, fast_inference, inference, jpeg_middle, jpeg_progressive, models  # noqa: E402


def throughput(model, images: np.ndarray, seconds: float = 5.0, answer=inference.predict, **options) -> float:
    answer(model, images[:500], **options)   # warm up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        answer(model, images, **options)
        done += len(images)
    return done / (time.perf_counter() - started)


def in_turns(model, images: np.ndarray, ways: dict, rounds: int = 5, seconds: float = 2.0) -> dict:
    """{name: pictures a second} for several ways of answering, timed in turns and the median of each
    taken: a shared machine's speed drifts by a third within minutes, and timed one after the other
    the ways would be measured on different machines."""
    rates = {name: [] for name in ways}
    for _ in range(rounds):
        for name, answer in ways.items():
            rates[name].append(throughput(model, images, seconds, answer=answer))
    return {name: statistics.median(each) for name, each in rates.items()}


def for_model(model, _, images: np.ndarray, **options) -> np.ndarray:
    """`inference.predict` for `model`, whatever model `throughput` is given (`in_turns` of two models)."""
    return inference.predict(model, images, **options)


def every_network(model, images: np.ndarray) -> np.ndarray:
    """`inference.predict` as it answered a model of several networks before their first look: every
    picture shown to all of them, the mirror image to those they are together unsure of (the baseline).
    Given every network's answers (`plain`), `predict` answers so."""
    return inference.predict(model, images, plain=inference.predict(model, images, mirror=False, calibrated=False))


def latency(model, photo: bytes, one_view: bool = False, repeats: int = 50) -> list[float]:
    def answer():
        image = decoding.load_image(photo)
        if model is None:
            return inference.views(image)
        if one_view:
            return inference.predict(model, inference.prepare(image))[0]
        return inference.predict_views(model, inference.views(image), image.size)

    for _ in range(3):
        answer()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        answer()
        times.append(time.perf_counter() - started)
    return times


@contextlib.contextmanager
def on_one_core():
    """Photos without restart markers decoded from start to end on one core, as before `jpeg_middle`."""
    threshold = jpeg_middle.MIN_BYTES
    jpeg_middle.MIN_BYTES = float("inf")
    try:
        yield
    finally:
        jpeg_middle.MIN_BYTES = threshold


@contextlib.contextmanager
def every_scan():
    """Progressive photos decoded from every scan, as before `jpeg_progressive`."""
    decode = jpeg_progressive.decode
    jpeg_progressive.decode = lambda *args: None
    try:
        yield
    finally:
        jpeg_progressive.decode = decode


def cpu_seconds() -> float:
    """CPU seconds used by this process and its ended children (the processes HEICs are decoded in)."""
    return sum(getattr(resource.getrusage(who), part) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for part in ("ru_utime", "ru_stime"))


def heic_in_turns(pixels: Image.Image, rounds: int = 3, repeats: int = 5) -> dict[str, tuple[float, float]]:
    """{"preview" | "whole": (median wall seconds, median CPU seconds)} to decode and cut the photo saved
    as HEIC with an iPhone's 320 x 240 preview, and without one, in turns."""
    files = {}
    for name, options in (("preview", {"thumbnails": [320]}), ("whole", {})):
        buffer = io.BytesIO()
        pixels.save(buffer, "HEIF", quality=60, **options)
        files[name] = buffer.getvalue()
    walls, cpus = {name: [] for name in files}, {name: [] for name in files}
    for _ in range(rounds):
        for name, raw in files.items():
            for _ in range(repeats):
                cpu, started = cpu_seconds(), time.perf_counter()
                inference.views(decoding.load_image(raw))
                walls[name].append(time.perf_counter() - started)
                cpus[name].append(cpu_seconds() - cpu)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in files}


def photo_in_turns(model, photo: bytes, before=on_one_core, rounds: int = 5, repeats: int = 10
                   ) -> tuple[list[float], list[float]]:
    """(times now, times as `before` decodes) for one photo, timed in turns as `in_turns` does."""
    now, then = [], []
    for _ in range(rounds):
        now += latency(model, photo, repeats=repeats)
        with before():
            then += latency(model, photo, repeats=repeats)
    return sorted(now), sorted(then)


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **options)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: the bundled one)")
    parser.add_argument("--photo", help="a photo to time (default: a 12-megapixel JPEG made here)")
    args = parser.parse_args()
    if args.photo:
        photo = phone_photo = progressive = Path(args.photo).read_bytes()
        pixels = Image.open(io.BytesIO(photo)).convert("RGB")
    else:
        # A phone-sized photo: smooth shapes plus sensor-like noise (pure noise would not compress like one).
        y, x = np.mgrid[0:3000, 0:4000]
        smooth = np.stack([x / 16, y / 12, (x + y) / 28], axis=-1) % 256
        noise = np.random.default_rng(0).normal(0, 6, smooth.shape)
        pixels = Image.fromarray(np.clip(smooth + noise, 0, 255).astype(np.uint8))
        photo, phone_photo, progressive = (jpeg(pixels, quality=90), jpeg(pixels, quality=90, restart_marker_rows=1),
                                           jpeg(pixels, quality=90, progressive=True))
    # Real pictures: how many a model is sure enough of to leave unmirrored (evaluation.SURE_ENOUGH) depends
    # on what they show. Every picture mirrored is what the same model costs on pictures it is unsure of.
    images = data.load_sample().x_test
    cut, one_core = photo_in_turns(None, photo)
    print(f"photo: {len(photo) / 1e6:.1f} MB JPEG; decoded and cut, no model: "
          f"{statistics.median(cut) * 1000:.1f} ms median ({statistics.median(one_core) * 1000:.1f} ms decoded "
          f"on one core, in turns); as a phone saves it: {statistics.median(latency(None, phone_photo)) * 1000:.1f} ms")
    shortened, whole = photo_in_turns(None, progressive, before=every_scan)
    print(f"the same photo saved progressive, {len(progressive) / 1e6:.1f} MB: decoded and cut, no model: "
          f"{statistics.median(shortened) * 1000:.1f} ms median ({statistics.median(whole) * 1000:.1f} ms from every "
          f"scan, in turns)")
    if decoding.HEIC and pixels.width * pixels.height <= 12_500_000:     # larger, a HEIC without a preview is refused
        heic = heic_in_turns(pixels)
        print(f"the same photo as an iPhone keeps it, HEIC with its 320 x 240 preview: decoded and cut, no model: "
              f"{heic['preview'][0] * 1000:.0f} ms median, {heic['preview'][1]:.2f} s of CPU (its decoding process's "
              f"included); without a preview, decoded whole as every HEIC was before: {heic['whole'][0] * 1000:.0f} "
              f"ms, {heic['whole'][1]:.2f} s of CPU (in turns)")
    print(f"{'model':<40}{'batch images/s':>16}{'all mirrored':>14}{'photo median ms':>17}{'p95 ms':>9}"
          f"{'one view median':>17}{'phone photo median':>20}")
    import keras
    served = inference.load_model(args.model)
    saved = keras.models.load_model(args.model or inference.DEFAULT_MODEL, compile=False)
    saved.calibration_temperature = served.calibration_temperature    # the same pictures left unmirrored
    label = args.model or "bundled"
    rows = [(f"{label}, served ({fast_inference.precision(served)})", served)]
    if fast_inference.precision(served) == "int8":      # the same-run baseline: served without its int8 networks
        folded = keras.models.load_model(args.model or inference.DEFAULT_MODEL, compile=False)
        fast_inference.serve(folded)
        for temperature in ("calibration_temperature", "first_network_temperature"):
            setattr(folded, temperature, getattr(served, temperature, None))
        rows.append((f"{label}, without int8 ({fast_inference.precision(folded)})", folded))
        rates = in_turns(None, images, {precision: functools.partial(for_model, model)
                                        for precision, model in (("int8", served), ("without", folded))})
        print(f"batches in turns, medians of 5: {rates['int8']:.0f} pictures/s in int8, {rates['without']:.0f} "
              f"without ({fast_inference.precision(folded)})")
    for name, model in (*rows,
                        (f"{label}, as saved (float32)", saved),
                        ("tutorial CNN (baseline)", models.build("tutorial"))):
        before = None
        if fast_inference.networks(model):
            rates = in_turns(model, images, {"now": inference.predict, "before": every_network})
            rate, before = rates["now"], rates["before"]
        else:
            rate = throughput(model, images)
        every = throughput(model, images, sure_enough=None)
        times, one_core = photo_in_turns(model, photo)
        one = statistics.median(latency(model, photo, one_view=True))
        phone = statistics.median(latency(model, phone_photo))
        print(f"{name:<40}{rate:>16.0f}{every:>14.0f}{statistics.median(times) * 1000:>17.1f}"
              f"{times[int(0.95 * (len(times) - 1))] * 1000:>9.1f}{one * 1000:>17.1f}{phone * 1000:>20.1f}")
        if before is not None:
            print(f"{'  every network on every picture':<40}{before:>16.0f}{'':>14}  "
                  "(before the first look; timed in turns with the row above, medians of 5)")
        print(f"{'  the photo decoded on one core':<40}{'':>30}{statistics.median(one_core) * 1000:>17.1f}"
              f"{one_core[int(0.95 * (len(one_core) - 1))] * 1000:>9.1f}  (before its cut in the middle; in turns)")


if __name__ == "__main__":
    main()

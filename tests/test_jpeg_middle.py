"""A big JPEG without restart markers, its coded data cut in the middle and decoded as two halves at once:
the same pixels above the cut, within a few levels below it, or the usual decode."""
import functools
import io
import random

import numpy as np
import pytest
from PIL import Image

import test_image_fuzz
from cifar_core import data, decoding, inference, jpeg_blocks, jpeg_halves, jpeg_middle
from test_jpeg_halves import both_ways, idle_machine, recorded  # noqa: F401 (idle_machine: a fixture)

idle_core = decoding._idle_core              # the real one: idle_machine stands in for it in every test


@functools.lru_cache(maxsize=None)
def mosaic(width=4000, height=3000, seed=0, mode="RGB", **options) -> bytes:
    """A photo-like JPEG: test pictures enlarged side by side (smooth shapes, edges, every colour),
    with sensor noise, mostly in the brightness."""
    rng = np.random.default_rng(seed)
    pictures = data.load_sample().x_test
    across, down = 8, 6
    size = (-(-width // across), -(-height // down))
    canvas = Image.new("RGB", (width, height))
    for n, index in enumerate(rng.choice(len(pictures), across * down, replace=False)):
        canvas.paste(Image.fromarray(pictures[index]).resize(size, Image.Resampling.BICUBIC),
                     ((n % across) * size[0], (n // across) * size[1]))
    pixels = np.asarray(canvas, np.float32) + 4 * rng.standard_normal((height, width, 1), np.float32)
    pixels += 1.5 * rng.standard_normal((height, width, 3), np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode).save(buffer, "JPEG", **options)
    return buffer.getvalue()


@pytest.mark.parametrize("options", [
    dict(quality=90),                                   # as most editors and sites save them
    dict(quality=95),
    dict(quality=92, optimize=True),                    # Huffman tables of its own
    dict(quality=90, subsampling="4:4:4"),
    dict(quality=90, subsampling="4:2:2"),              # as many cameras save them
])
def test_a_big_photo_without_restart_markers_comes_out_of_two_halves_as_one_decode_to_a_few_levels(options):
    whole, halves = both_ways(mosaic(**options))
    assert halves is not None
    assert halves.size == whole.size == (500, 375) and halves.mode == whole.mode
    difference = np.abs(np.asarray(halves, np.int16) - np.asarray(whole))
    assert difference.max() <= 8 and difference.mean() < 1.5
    assert (difference[:whole.size[1] // 4] == 0).all()           # above the cut: the same pixels


def test_the_cut_is_where_the_file_s_own_blocks_begin():
    raw = mosaic(1200, 900, quality=90)
    kept, frame, _, start = jpeg_halves._header(raw)
    scan = jpeg_blocks.Scan.parse(kept, [(h, v) for _, h, v, _ in frame.components],
                                  [ident for ident, *_ in frame.components])
    coded = raw[start:raw.rindex(b"\xff\xd9")].replace(b"\xff\x00", b"\xff")
    middle = len(coded) // 2 + 1                               # a byte in the middle, not at a block
    found = scan.mcu_starts(coded[middle:], 64, 32, 2048)
    assert found is not None and len(found) > 32
    # every MCU, read from the start (the zeros after the data let the last ones be read)
    starts = {bit for bit, block in scan._walk(jpeg_blocks._windows(coded + bytes(16)), 0, 0) if block == 0 and bit < len(coded) * 8}
    assert frame.rows * frame.per_row <= len(starts) <= frame.rows * frame.per_row + 1
    assert all(middle * 8 + bit in starts for bit in found)


def test_a_window_ending_on_a_coded_0xff_is_cut_all_the_same(monkeypatch):
    raw = mosaic(quality=90)
    kept, frame, _, start = jpeg_halves._header(raw)
    scan = jpeg_middle._layout(kept, frame, 8)[1]
    middle = start + (len(raw) - start) // 2
    middle += raw[middle - 1] == 0xFF
    # the window read in Python ends on a coded 0xFF, whose zero lies just past it
    monkeypatch.setattr(jpeg_middle, "WINDOW", raw.index(b"\xff\x00", middle + 8_000) - middle + 1)
    assert jpeg_middle._cut_points(raw, start, scan) is not None
    assert both_ways(raw)[1] is not None


def test_load_image_and_the_model_answer_such_a_photo_as_before(monkeypatch):
    raw = mosaic(quality=90)
    halves = recorded(monkeypatch)
    cut = decoding.load_image(raw)
    monkeypatch.setattr(jpeg_middle, "MIN_BYTES", 10**12)
    whole = decoding.load_image(raw)
    assert halves[0] is not None and halves[1] is None
    assert cut.size == whole.size
    model = inference.load_model()
    answers = [inference.predict_views(model, inference.views(image), (4000, 3000)) for image in (cut, whole)]
    assert np.abs(answers[0] - answers[1]).max() < 0.01


def test_files_it_cannot_cut_are_left_to_the_usual_decode(monkeypatch):
    assert both_ways(mosaic(quality=100))[1] is None                       # no DC quantiser to halve
    assert both_ways(mosaic(quality=95, mode="L"))[1] is None              # one channel
    assert both_ways(mosaic(quality=95, progressive=True))[1] is None      # many scans
    assert both_ways(mosaic(quality=60))[1] is None                        # too little coded data to pay
    monkeypatch.setattr(jpeg_middle, "MIN_BYTES", 0)
    assert both_ways(mosaic(quality=90), size=(4000, 3000))[1] is None      # at full size, colour is smoothed


def test_a_damaged_photo_without_restart_markers_gives_a_picture_or_a_sentence(monkeypatch):
    seeds = [mosaic(quality=90), mosaic(quality=90, subsampling="4:4:4"), mosaic(quality=90, subsampling="4:2:2")]
    assert all(both_ways(raw)[1] is not None for raw in seeds)
    halves = recorded(monkeypatch)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(90):
        rng = random.Random(f"middle-{i}")
        raw = seeds[i % len(seeds)]
        start = raw.index(b"\xff\xda")
        # Damage near the middle of the coded data, where it is cut, as often as anywhere else.
        at = rng.randrange(start + (len(raw) - start) // 2 - 4_000, start + (len(raw) - start) // 2 + 4_000)
        damaged = bytearray(test_image_fuzz.mutate(raw, rng) if i % 3 else raw)
        if i % 3 == 0:
            for offset in range(rng.randint(1, 16)):
                damaged[at + offset] ^= rng.randrange(1, 256)
        outcomes[test_image_fuzz.check(bytes(damaged), f"middle case {i}")] += 1
    assert outcomes["ok"] > 45, outcomes
    cut = sum(h is not None for h in halves)
    assert cut > 15 and len(halves) - cut > 10          # damaged files both cut and not cut


def test_a_picture_decoded_while_another_is_or_on_a_busy_machine_keeps_to_one_core(monkeypatch):
    raw = mosaic(quality=90)
    halves = recorded(monkeypatch)
    monkeypatch.setattr(decoding, "_decodes", [1])          # another upload is being decoded
    decoding.load_image(raw)
    monkeypatch.setattr(decoding, "_decodes", [0])
    monkeypatch.setattr(decoding, "_idle_core", lambda: False)       # say, a training run
    decoding.load_image(raw)
    monkeypatch.setattr(decoding, "_idle_core", lambda: True)
    alone = decoding.load_image(raw)
    assert len(halves) == 1 and halves[0] is not None     # only the picture decoded alone was cut
    assert alone.size == (500, 375) and decoding._decodes == [0]


def test_a_core_counts_as_idle_when_other_processes_leave_it_so(monkeypatch):
    clock, readings = iter([0.0, 1.0, 1.2, 2.0, 3.0]), iter([(100.0, 10.0), (100.3, 10.2), (102.0, 10.3),
                                                            (104.0, 12.3)])
    monkeypatch.setattr(decoding.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(decoding, "_cpu_seconds", lambda: next(readings))
    monkeypatch.setattr(decoding.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(decoding, "_load", {"at": None, "cpu": None, "idle": True})
    assert idle_core()            # a first look: nothing to go by
    assert idle_core()            # others used 0.1 of a core
    assert idle_core()            # 0.2 s later: the last look stands
    assert not idle_core()        # others used 1.6 cores (a training run, say)
    assert idle_core()            # this process's own 2 cores do not count


def test_another_busy_process_takes_the_idle_core():
    import subprocess
    import sys
    import time
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        idle_core()
        time.sleep(decoding.IDLE_LOOK + 0.5)
        assert not idle_core()
    finally:
        busy.kill()
        busy.wait()

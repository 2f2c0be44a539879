"""A phone's photo decoded in two halves at once: the same pixels as one decode, or the usual decode."""
import io
import random

import numpy as np
import pytest
from PIL import Image

import test_image_fuzz
from cifar_core import decoding, jpeg_halves


@pytest.fixture(autouse=True)
def idle_machine(monkeypatch):
    """A core idle for the second half, as when one visitor uploads, whatever else the machine running
    the tests is doing (`decoding._idle_core`)."""
    monkeypatch.setattr(decoding, "_idle_core", lambda: True)


def photo(width=1800, height=1200, mode="RGB", **options) -> bytes:
    """A noisy picture (it compresses like a photo, so the coded data is long) saved as a JPEG."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x / 7, y / 5, (x + y) / 11], axis=-1) % 256 + rng.normal(0, 8, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert(mode).save(buffer, "JPEG", quality=90,
                                                                                 **options)
    return buffer.getvalue()


def both_ways(raw: bytes, size=(decoding.WORKING_SIZE, decoding.WORKING_SIZE)):
    """(one decode, the halves or None) of `raw` at the reduced size the loader asks for."""
    whole = Image.open(io.BytesIO(raw))
    whole.draft("RGB", size)
    opened = Image.open(io.BytesIO(raw))
    opened.draft("RGB", size)
    halves = jpeg_halves.decode(raw, opened)
    whole.load()
    return whole, halves


def recorded(monkeypatch, module=jpeg_halves) -> list:
    """What each call of `module`.decode gives from now on, in order."""
    results, decode = [], module.decode

    def recording(*args):
        results.append(decode(*args))
        return results[-1]
    monkeypatch.setattr(module, "decode", recording)
    return results


@pytest.mark.parametrize("options", [
    dict(restart_marker_rows=1),                                   # as an iPhone writes them
    dict(restart_marker_rows=1, subsampling="4:4:4"),
    dict(restart_marker_rows=1, subsampling="4:2:2"),
    dict(restart_marker_blocks=4),                                 # markers in mid-row: a cut lands on a few
    dict(restart_marker_rows=3, mode="L"),
    dict(restart_marker_rows=1, mode="CMYK"),
])
@pytest.mark.parametrize("size", [(4000, 3000), (1800, 1200)])   # read at 1/8 and at 1/4 of the size
def test_a_photo_with_restart_markers_comes_out_of_two_halves_as_one_decode(options, size):
    options = dict(options)
    whole, halves = both_ways(photo(*size, mode=options.pop("mode", "RGB"), **options))
    assert halves is not None
    assert halves.size == whole.size and halves.mode == whole.mode
    assert np.array_equal(np.asarray(halves), np.asarray(whole))


def test_files_that_cannot_be_cut_are_left_to_the_usual_decode():
    assert both_ways(photo())[1] is None                                       # no restart markers
    assert both_ways(photo(progressive=True, restart_marker_rows=1))[1] is None   # many scans
    assert both_ways(photo(1000, 600, restart_marker_rows=1))[1] is None       # too small to pay
    # Read at full size, 4:2:0 colour is smoothed across rows: the halves would differ at the cut.
    assert both_ways(photo(restart_marker_rows=1), size=(1800, 1200))[1] is None
    assert both_ways(photo(restart_marker_rows=1, subsampling="4:4:4"), size=(1800, 1200))[1] is not None


def test_load_image_answers_a_halved_photo_as_before_upright(monkeypatch):
    exif = Image.Exif()
    exif[0x0112] = 6                                    # taken with the phone held upright
    raw = photo(restart_marker_rows=1, exif=exif.tobytes())
    halves = recorded(monkeypatch)
    halved = decoding.load_image(raw)
    monkeypatch.setattr(jpeg_halves, "MIN_PIXELS", 10**9)
    whole = decoding.load_image(raw)
    assert halves[0] is not None and halves[1] is None
    assert halved.size == whole.size == (300, 450)      # 1800 x 1200 read at 1/4, then turned
    assert np.array_equal(np.asarray(halved), np.asarray(whole))


def test_a_damaged_photo_with_restart_markers_gives_a_picture_or_a_sentence(monkeypatch):
    # Small pictures, so that many cases take little time; read at half size, they are cut as a photo is.
    monkeypatch.setattr(jpeg_halves, "MIN_PIXELS", 0)
    seeds = [photo(640, 512, restart_marker_rows=1), photo(640, 512, restart_marker_blocks=4, mode="L")]
    assert all(both_ways(raw)[1] is not None for raw in seeds)
    halves = recorded(monkeypatch)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(300):
        rng = random.Random(f"halves-{i}")
        damaged = test_image_fuzz.mutate(seeds[i % 2], rng)
        outcomes[test_image_fuzz.check(damaged, f"halves case {i}")] += 1
    assert outcomes["ok"] > 15 and outcomes["refused"] > 15, outcomes
    cut = sum(h is not None for h in halves)
    assert cut > 30 and len(halves) - cut > 30          # damaged files both cut and not cut


def test_where_one_half_fails_the_other_has_ended_before_the_decode_gives_up(monkeypatch):
    """The half decoded on the other core went on after this one failed, past the picture's decoding
    place and beside the usual decode that follows."""
    import threading
    import time

    from cifar_core import jpeg_middle
    real, ended = jpeg_middle.decoded, []

    def halves_apart(part, size, *mode):
        if threading.current_thread() is threading.main_thread():
            raise ValueError("this half is damaged")
        time.sleep(0.3)
        picture = real(part, size, *mode)
        ended.append(True)
        return picture
    monkeypatch.setattr(jpeg_middle, "decoded", halves_apart)
    raw = photo(restart_marker_rows=1)
    opened = Image.open(io.BytesIO(raw))
    opened.draft("RGB", (decoding.WORKING_SIZE, decoding.WORKING_SIZE))
    assert jpeg_halves.decode(raw, opened) is None and ended == [True]

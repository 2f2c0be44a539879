"""A big progressive JPEG read at an eighth of its size from the scans an eighth shows: the same pixels
as from the whole file, or the usual decode."""
import io
import random

import numpy as np
import pytest
from PIL import Image

import test_image_fuzz
from cifar_core import decoding, jpeg_progressive
from test_jpeg_halves import recorded
from test_jpeg_middle import mosaic


def eighth(raw: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(raw))
    image.draft("RGB", (image.size[0] // 8, image.size[1] // 8))
    image.load()
    return np.asarray(image)


@pytest.mark.parametrize("options", [
    dict(quality=90),                                   # as Pillow and libjpeg write them (successive approximation)
    dict(quality=95, optimize=True),                    # Huffman tables of its own, one before each scan
    dict(quality=90, subsampling="4:4:4"),              # every channel at full resolution
    dict(quality=90, subsampling="4:2:2"),
    dict(quality=90, restart_marker_rows=1),            # restart markers in every scan
    dict(quality=90, mode="L"),
])
def test_a_progressive_photo_read_at_an_eighth_from_fewer_scans_has_the_same_pixels(options):
    raw = mosaic(progressive=True, **options)
    shorter = jpeg_progressive.for_an_eighth(raw)
    assert shorter is not None and len(shorter) < len(raw) / 3
    whole, part = eighth(raw), eighth(shorter)
    assert part.shape == whole.shape and (part == whole).all()


def segments(raw: bytes) -> list[bytes]:
    """A JPEG's segments after its start, each scan with its coded data."""
    out, position = [], 2
    while True:
        marker = jpeg_progressive.MARKER.search(raw, position)
        if marker[1] == b"\xd9":
            return out
        end = marker.end() + int.from_bytes(raw[marker.end():marker.end() + 2], "big")
        if marker[1] == b"\xda":
            end = jpeg_progressive.MARKER.search(raw, end).start()
        out.append(raw[marker.start():end])
        position = end


def test_the_table_our_empty_scans_are_coded_in_is_the_file_s_own_again_after_them():
    # A file whose colour scan uses AC table 3, defined once before any scan: after the brightness DC
    # scan our empty scan redefines table 3, and the colour scan must find the file's own again.
    parts = segments(mosaic(progressive=True, quality=90))
    colour = next(n for n, part in enumerate(parts) if part[1] == 0xDA and part[5] != 1 and part[7] > 0)
    table = parts[colour - 1]
    assert table[1] == 0xC4 and table[4] >> 4 == 1                    # the AC table it is coded in
    table = table[:4] + bytes([0x13]) + table[5:]
    scan = bytearray(parts[colour])
    scan[6] = (scan[6] & 0xF0) | 3
    first_scan = next(n for n, part in enumerate(parts) if part[1] == 0xDA)
    parts = parts[:first_scan] + [table] + parts[first_scan:colour - 1] + [bytes(scan)] + parts[colour + 1:]
    raw = b"".join([b"\xff\xd8", *parts, b"\xff\xd9"])
    shorter = jpeg_progressive.for_an_eighth(raw)
    assert shorter is not None and (eighth(shorter) == eighth(raw)).all()


def test_the_shorter_file_is_never_much_longer_than_the_file():
    # Tables written again after each empty scan: the last one only, whatever the file repeats.
    parts = segments(mosaic(1200, 900, progressive=True, quality=90))
    table = next(part for part in parts if part[1] == 0xC4 and part[4] >> 4 == 1)
    table = table[:4] + bytes([0x13]) + table[5:]
    raw = b"".join([b"\xff\xd8", *[table] * 900, *parts, b"\xff\xd9"])
    shorter = jpeg_progressive.for_an_eighth(raw)
    assert shorter is not None and len(shorter) < len(raw)


def test_a_file_whose_own_decode_smooths_a_channel_is_left_whole():
    # No AC coefficient of the colour channels at all (their scans left out of a 4:4:4 file): libjpeg-turbo
    # smooths their DCs across blocks in the file's own decode, and our empty scans would stop that.
    parts = segments(mosaic(progressive=True, quality=90, subsampling="4:4:4"))
    parts = [part for part in parts if not (part[1] == 0xDA and part[4] == 1 and part[5] != 1 and part[7] > 0)]
    assert jpeg_progressive.for_an_eighth(b"".join([b"\xff\xd8", *parts, b"\xff\xd9"])) is None


def test_a_frame_naming_two_channels_alike_is_left_whole():
    raw = mosaic(progressive=True, quality=90)
    frame = raw.index(b"\xff\xc2")
    twice = raw[:frame + 16] + raw[frame + 13:frame + 14] + raw[frame + 17:]   # the third channel's id is the second's
    assert twice[frame + 13] == twice[frame + 16] and len(twice) == len(raw)
    assert jpeg_progressive.for_an_eighth(twice) is None


def test_an_odd_size_and_a_photo_turned_by_its_exif_come_out_as_before(monkeypatch):
    rotated = Image.open(io.BytesIO(mosaic(3203, 2401, quality=90)))
    exif = Image.Exif()
    exif[0x0112] = 6                                     # turned a quarter: shown upright, portrait
    buffer = io.BytesIO()
    rotated.save(buffer, "JPEG", quality=90, progressive=True, exif=exif)
    raw = buffer.getvalue()
    found = recorded(monkeypatch, jpeg_progressive)
    shortcut = decoding.load_image(raw)
    monkeypatch.setattr(jpeg_progressive, "decode", lambda *args: None)
    usual = decoding.load_image(raw)
    assert found[0] is not None
    assert shortcut.size == usual.size == (301, 401)      # upright: portrait, an eighth of 2401 x 3203
    assert (np.asarray(shortcut) == np.asarray(usual)).all()


def test_files_it_cannot_shorten_are_left_to_the_usual_decode(monkeypatch):
    assert jpeg_progressive.for_an_eighth(mosaic(quality=90)) is None             # one scan: nothing to leave out
    assert jpeg_progressive.for_an_eighth(b"\xff\xd8\xff\xd9") is None
    found = recorded(monkeypatch, jpeg_progressive)
    small = decoding.load_image(mosaic(1600, 1200, progressive=True, quality=90))   # read at 1/4: needs the rest
    assert found == [None] and small.size == (400, 300)


def test_a_damaged_progressive_photo_gives_a_picture_or_a_sentence(monkeypatch):
    seeds = [mosaic(3200, 2400, progressive=True, quality=90),
             mosaic(3200, 2400, progressive=True, quality=90, subsampling="4:4:4", optimize=True)]
    found = recorded(monkeypatch, jpeg_progressive)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(60):
        rng = random.Random(f"progressive-{i}")
        raw = bytearray(test_image_fuzz.mutate(seeds[i % 2], rng))
        if i % 3 == 0:                                   # damage inside the coded data, in any scan
            at = rng.randrange(len(raw) // 20, len(raw) - 16)
            for offset in range(rng.randint(1, 16)):
                raw[at + offset] ^= rng.randrange(1, 256)
        outcomes[test_image_fuzz.check(bytes(raw), f"progressive case {i}")] += 1
    shortened = sum(f is not None for f in found)
    assert outcomes["ok"] > 20 and shortened > 10 and len(found) - shortened > 5, (outcomes, shortened)

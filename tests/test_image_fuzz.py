"""Damaged pictures: whatever the bytes, load_image gives an RGB image or an ImageError, nothing else.

Small pictures in the seven upload formats (several modes and encodings of each) are damaged the ways
files get damaged and the ways attackers damage them: flipped bits, cut short, junk inserted, pieces
deleted or repeated, and header fields set to boundary values (0, 1, 0x7fff, 0xffffffff...) where a
decoder reads sizes, counts and offsets. PNG checksums are then fixed most of the time, so that the
damage gets past the first check. Every case is seeded: a failure names the case that reproduces it.
"""
import contextlib
import io
import random
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import hostile_images
from cifar_core import decoding, inference
from cifar_core.decoding import ImageError

CASES = 1000   # per format: 7,000 in all, a few seconds


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _picture(mode: str = "RGB", size=(24, 16)) -> Image.Image:
    x = np.linspace(0, 255, size[0])[None, :, None]
    y = np.linspace(0, 255, size[1])[:, None, None]
    rgb = np.concatenate([x + 0 * y, y + 0 * x, np.full((size[1], size[0], 1), 90.0)], axis=2).astype(np.uint8)
    return Image.fromarray(rgb).convert(mode)


def _translucent() -> Image.Image:
    picture = _picture("RGBA")
    picture.putalpha(Image.linear_gradient("L").resize(picture.size))
    return picture


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _animated(fmt: str, **options) -> bytes:
    # New frames each time: saving leaves encoder settings on an image that a later save would reuse.
    first, second = _picture("RGB"), _picture("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return _save(first, fmt, save_all=True, append_images=[second], **options)


def _seeds() -> dict[str, list[bytes]]:
    """Well-formed pictures to damage, a few per format."""
    sixteen = Image.frombytes("I;16", (24, 16), (np.arange(24 * 16, dtype="<u2") * 150).tobytes())
    return {
        "JPEG": [_save(_picture(), "JPEG"), _save(_picture("L"), "JPEG", quality=50),
                 _save(_picture(), "JPEG", progressive=True), _save(_picture(), "JPEG", exif=_exif(6)),
                 _save(_picture("CMYK"), "JPEG"),
                 _animated("MPO")],
        "PNG": [_save(_picture(), "PNG"), _save(_picture("RGBA"), "PNG"), _save(_picture("P"), "PNG", transparency=3),
                _save(sixteen, "PNG"), _save(_picture("LA"), "PNG"), _save(_picture("1"), "PNG"),
                _animated("PNG")],
        "GIF": [_save(_picture("P"), "GIF"), _save(_picture("L"), "GIF", transparency=0, comment=b"hello"),
                _animated("GIF", duration=100, loop=0)],
        "TIFF": [_save(_picture(), "TIFF"), _save(_picture("L"), "TIFF", compression="tiff_deflate"),
                 _save(_picture("RGBA"), "TIFF", compression="tiff_lzw"), _save(_picture(), "TIFF", compression="packbits"),
                 _save(_picture("F"), "TIFF"), _save(sixteen, "TIFF"),     # JPEG inside: refused (tiff_jpeg)
                 _save(_picture("CMYK"), "TIFF"), _animated("TIFF")],
        "WEBP": [_save(_picture(), "WEBP"), _save(_picture("RGBA"), "WEBP", lossless=True),
                 _animated("WEBP", duration=100)],
        "AVIF": [_save(_picture(), "AVIF"), _save(_picture(), "AVIF", subsampling="4:4:4", exif=_exif(6)),
                 _save(_translucent(), "AVIF"), _save(_picture("L"), "AVIF"), _animated("AVIF", duration=100)],
        "HEIF": [_save(_picture(), "HEIF"), _save(_picture(), "HEIF", chroma=444, exif=_exif(6)),
                 _save(_translucent(), "HEIF"), _save(_picture("L"), "HEIF"),
                 _save(_picture(size=(400, 300)), "HEIF", thumbnails=[320], exif=_exif(6))],   # read from its preview
        "BMP": [_save(_picture(), "BMP"), _save(_picture("RGBA"), "BMP"), _save(_picture("P"), "BMP"),
                _save(_picture("1"), "BMP"), hostile_images.bmp_rle8(24, 16)],
    }


SEEDS = _seeds()
pytestmark = pytest.mark.filterwarnings("ignore")   # Pillow warns about many of these files, as it should
INTERESTING = [0, 1, 2, 3, 4, 5, 7, 8, 12, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000,
               0x7FFFFFFF, 0xFFFFFFFF]   # small ones are also TIFF value types (5: a fraction)


def _fields(data: bytearray) -> list[int]:
    """Where a decoder reads sizes, counts and offsets: the start of the file, and the start of each PNG
    chunk, JPEG segment, TIFF directory entry or AVIF or HEIC box."""
    positions = list(range(min(len(data), 64)))
    if data[:4] == b"\x89PNG":
        position = 8
        while position + 8 <= len(data):
            positions += range(position, min(position + 24, len(data)))
            position += 12 + int.from_bytes(data[position:position + 4], "big")
    elif data[:2] == b"\xff\xd8":
        positions += [m.start() + 2 + k for m in re.finditer(rb"\xff[\xc0-\xfe]", data) for k in range(8)]
    elif data[4:8] == b"ftyp":
        positions += [m.start() - 4 + k for m in re.finditer(HEIF_BOXES, data) for k in range(24)]
    elif data[:2] in (b"II", b"MM") and len(data) >= 8:
        order = "<" if data[:2] == b"II" else ">"
        (directory,) = struct.unpack_from(order + "I", data, 4)
        if directory + 2 <= len(data):
            (entries,) = struct.unpack_from(order + "H", data, directory)
            positions += range(directory, min(directory + 2 + 12 * entries, len(data)))
    return [p for p in positions if p < len(data)]


# The boxes an AVIF's or a HEIC's picture is described by: its items, where their bytes are, their properties
# (size, AV1 or HEVC configuration, bit depth, turns) and the media data.
HEIF_BOXES = re.compile(rb"meta|hdlr|pitm|iloc|iinf|infe|iprp|ipco|ispe|av1C|hvcC|pixi|ipma|irot|imir|iref|auxC|mdat")


def _fix_png_checksums(data: bytearray) -> None:
    position = 8
    while position + 12 <= len(data):
        end = position + 8 + int.from_bytes(data[position:position + 4], "big")
        if end + 4 > len(data):
            return
        data[end:end + 4] = zlib.crc32(data[position + 4:end]).to_bytes(4, "big")
        position = end + 4


def mutate(raw: bytes, rng: random.Random) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        kind = rng.randrange(7)
        at = rng.randrange(len(data))
        if kind == 0:                                             # flip a few bits
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:                                           # cut short
            del data[max(1, at):]
        elif kind == 2:                                           # insert junk
            data[at:at] = rng.randbytes(rng.randint(1, 64))
        elif kind == 3:                                           # delete a piece
            del data[at:at + rng.randint(1, 64)]
            data = data or bytearray(b"\x00")
        elif kind == 4:                                           # repeat a piece
            data[at:at] = data[at:at + rng.randint(1, 256)] * rng.randint(1, 16)
        else:                                                     # a header field set to a boundary value
            at = rng.choice(_fields(data))
            width = rng.choice([1, 2, 4])
            value = rng.choice(INTERESTING) & ((1 << 8 * width) - 1)
            data[at:at + width] = value.to_bytes(width, rng.choice(["little", "big"]))
    if data[:4] == b"\x89PNG" and rng.random() < 0.8:
        _fix_png_checksums(data)
    return bytes(data)


@contextlib.contextmanager
def as_the_capped_child():
    """Previews read, as the capped child reads them (`decoding_apart`)."""
    reads = decoding.pillow_heif.options.THUMBNAILS
    decoding.pillow_heif.options.THUMBNAILS = True
    try:
        yield
    finally:
        decoding.pillow_heif.options.THUMBNAILS = reads


def check(raw: bytes, case: str) -> str:
    """'ok' or 'refused'; fails the test on anything else."""
    try:
        # In this process, as the capped child decodes it where a file is decoded apart (every AVIF and HEIC): the same
        # code, a HEIC's preview read as there, without a child's start for each of the thousands of cases.
        with as_the_capped_child():
            image = decoding.load_image(raw, apart=False)
    except ImageError as e:
        message = str(e)
        assert message and "\n" not in message and "Traceback" not in message, (case, message)
        assert not re.search(r"\b[A-Z]\w+(Error|Exception)\b", message), (case, message)
        return "refused"
    except Exception as e:   # the point of the test
        pytest.fail(f"{case}: {type(e).__name__} escaped load_image: {e}")
    assert image.mode == "RGB" and min(image.size) >= 1, case
    assert inference.prepare(image).shape == (32, 32, 3), case
    return "ok"


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_damaged_pictures_give_a_picture_or_a_sentence(fmt):
    outcomes = {"ok": 0, "refused": 0}
    for i in range(CASES):
        rng = random.Random(f"{fmt}-{i}")
        seed = rng.randrange(len(SEEDS[fmt]))
        outcomes[check(mutate(SEEDS[fmt][seed], rng), f"{fmt} case {i} (seed picture {seed})")] += 1
    # Both outcomes happen: the damage is neither always fatal nor always harmless.
    assert outcomes["ok"] > CASES // 20 and outcomes["refused"] > CASES // 20, outcomes


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_the_seed_pictures_load(fmt):
    for raw in SEEDS[fmt]:
        assert check(raw, fmt) == "ok"

"""From any uploaded picture to class probabilities.

    load_image(bytes | path | file)  -> RGB PIL image (big ones reduced), or ImageError with a sentence for a person
    prepare(image)                   -> (32, 32, 3) uint8: the picture squeezed into a square, antialiased
    views(image)                     -> (K, 32, 32, 3): what the model is shown of one picture (view_boxes)
    predict(model, images)           -> (N, 10) probabilities; safe to call from many threads
    view_answers(model, views)       -> (10,) one picture's views' answers averaged, as the model gives them
    predict_views(model, views, size) -> (10,) the same as the app shows them: under the model's temperature
                                        and, for a photo (is_photo), evened out (as_photo, PHOTO_BIAS)

A hosted copy decodes whatever a class uploads, so load_image bounds what one file may cost before
decoding it: it reads only the formats the uploader offers, refuses files whose structure alone would
keep Pillow's Python parsers busy (thousands of segments, chunks, scans or strips), works out from the
header what decoding will take (the pixels, the decoder's own buffers, the copies made before the
picture is shrunk) and refuses anything over MEMORY_BUDGET, or, for a photo (JPEG or WebP), over
DECODING_AT_ONCE budgets, which it then takes alone (a big progressive JPEG or WebP). JPEGs are
decoded at reduced size (a big photo on two cores: `jpeg_halves` cuts one at a restart marker,
`jpeg_middle` one without; a big progressive one from the scans an eighth of it shows,
`jpeg_progressive`) and everything else is shrunk as soon as it is decoded.
At most DECODING_AT_ONCE pictures are decoded at a time in a process, so thirty uploads at once cost
a server that many budgets, not thirty (a photo over one budget is decoded alone); a picture is
decoded on two cores only while it is the only one and a core is idle.
tests/hostile_images.py builds files that each broke the loader one of these ways
(tests/test_inference.py measures their peak memory in a fresh process), and
tests/test_image_fuzz.py damages pictures thousands of ways.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import struct
import threading
import time
import weakref
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter, UnidentifiedImageError

from cifar_core import evaluation, fast_inference, int8, jpeg_halves, jpeg_progressive, rundir

ASSETS = Path(__file__).parent / "assets"
DEFAULT_MODEL = ASSETS / "default.keras"
DEFAULT_CARD = ASSETS / "default.json"
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")   # what the uploader offers (a phone's MPO opens as
                             # JPEG); Pillow's other decoders see little use, and its EPS one runs Ghostscript
MAX_FILE_BYTES = 50 * 2**20  # read no more than this from a path or file object (uploads stop at 20 MB)
MEMORY_BUDGET = 80 * 2**20   # bytes a picture may take while it is decoded (see _cost); with the file itself
                             # and Python's own, one load stays under 150 MB (a photo decoded alone: 230)
DECODING_AT_ONCE = 2         # decoding takes a core while it lasts: more at once would only share the cores
PHOTO_FORMATS = ("JPEG", "MPO", "WEBP")   # a photo in these may take every place, and so DECODING_AT_ONCE
                             # budgets, decoding alone (`_places`)
IDLE_LOOK = 0.5              # seconds between looks at what other processes use of the cores (_idle_core)
WORKING_SIZE = 256           # pictures are decoded or shrunk to no smaller than this across: plenty for 32x32
LONGEST_KEPT = 4096          # ... and to no longer than this: a phone's panorama at an eighth is about 2,000
MAX_JPEG_SCANS = 100         # each scan is a pass over the whole picture: a photo has 1, a progressive one ~10
MAX_JPEG_SEGMENTS = 1_000    # Pillow reads each in Python; a real file has a few dozen
MAX_JPEG_PADDING = 65_536    # bytes between segments before the first scan, which Pillow reads one at a time
                             # in Python (5 MB of them: 2 s); a real file has none, or a few 0xFF
# Segments before the first scan that Pillow reads value by value in Python, or joins one to the last
# (EXIF, quadratic): a real file has one frame header, up to four tables, one EXIF and one Photoshop block.
# 300 frame headers of 64 KB each took 599 MB; 990 EXIF segments 5.7 s; 300 table segments 1.1 s.
MAX_JPEG_PARSED = {"frame header": 1, "quantisation table segment": 8, "EXIF block": 4, "Photoshop block": 8}
# Arithmetic coding (SOF9-15: rare, a few archiving tools) takes libjpeg about 0.11 s a megabyte here
# whatever size it decodes at: a 20 MB file would hold a core 2 s (the same picture Huffman-coded, 0.13 s).
ARITHMETIC_FRAMES = (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
MAX_ARITHMETIC_BYTES = 6 * 2**20
MAX_PNG_CHUNKS = 20_000      # Pillow reads each in Python; 20 MB in libpng's 8 KB chunks is 2,500
MAX_PNG_INFLATED = 16        # compressed text and profile chunks, each inflated by Pillow to up to 1 MB
MAX_GIF_BLOCKS = 10_000      # extension blocks before the first frame, each kept by Pillow as a Python object
MAX_TIFF_ENTRIES = 1_000     # entries in a TIFF directory; a real one has a few dozen
MAX_TIFF_VALUES = 32_768     # numbers in one entry; one strip offset each costs ~340 bytes in Pillow
# Run-length BMPs are decoded in Python, a pixel at a time: 0.4 s of a core per megapixel, holding the
# interpreter's lock (every other visitor's page waits), and a file of a few KB can claim millions. A real
# one is an old screen or icon, a fraction of this.
MAX_RLE_PIXELS = 500_000

# Bytes per pixel while a picture is decoded and brought to a mode whose pixels can be averaged.
# Pillow keeps 1-bit, grey and palette pictures in 1 byte a pixel, 16-bit grey in 2, the rest
# (RGB too) in 4; then palettes become RGB (+4), 1-bit, 16-bit and float pictures 8-bit grey (+1),
# and shrinking a picture with transparency premultiplies it first (+4). Other modes: 4 + 4.
_BYTES_PER_PIXEL = {
    "1": 1 + 1, "L": 1, "P": 1 + 4,
    "I;16": 2 + 1, "I;16L": 2 + 1, "I;16B": 2 + 1, "I;16N": 2 + 1, "I": 4 + 1, "F": 4 + 1,
    "RGB": 4, "RGBX": 4, "CMYK": 4, "YCbCr": 4, "LAB": 4, "HSV": 4, "La": 4, "RGBa": 4, "LA": 4 + 4, "RGBA": 4 + 4,
}
_SHRUNK_BYTES_PER_PIXEL = 12  # then, at the shrunk size: an RGB copy, an alpha mask, a backdrop, an upright copy
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}   # EXIF orientation -> the turn that makes a picture upright


class ImageError(ValueError):
    """The input is not an image we can use; the message is a sentence for a person."""


class ModelError(ValueError):
    """The file is not a model we can use; the message is a sentence for a person."""


def _read(source) -> bytes:
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as file:
                raw = file.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise ImageError(f"Could not read {source}: {e.strerror or e}.") from None
    else:
        raw = source.read(MAX_FILE_BYTES + 1) if hasattr(source, "read") else source
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise ImageError("This is not a file we can read a picture from.")
        raw = bytes(raw)
    if not raw:
        raise ImageError("The file is empty.")
    if len(raw) > MAX_FILE_BYTES:
        raise ImageError(f"The file is too big: pictures of up to {MAX_FILE_BYTES // 2**20} MB can be read.")
    return raw


def _too_complex(parts: str) -> ImageError:
    return ImageError(f"This file is made of {parts}, far more than a real picture has, "
                      "and would take too long to read.")


def _jpeg_scans(raw: bytes) -> int:
    """How many scans the first picture in a JPEG file has, counted from its markers; ImageError if
    it has more than MAX_JPEG_SEGMENTS segments, MAX_JPEG_SCANS scans, MAX_JPEG_PADDING bytes between
    the segments before its first scan, or more of one kind of segment there than MAX_JPEG_PARSED
    allows. A sequential picture (a baseline frame, as cameras and phones write) whose first scan holds
    every colour is decoded in that one pass whatever follows (nothing after it is decoded), so its
    coded data is not walked: a 12-megapixel photo's holds some 10,000 0xFF bytes, 1.7 ms here."""
    scans, position, components, padding = 0, 2, None, 0
    parsed = dict.fromkeys(MAX_JPEG_PARSED, 0)
    for _ in range(MAX_JPEG_SEGMENTS):
        marker = jpeg_progressive.MARKER.search(raw, position)
        if marker is None or marker[1] == b"\xd9":      # the end of the file, or of its first picture
            return scans
        if not scans:                                   # after a scan, what comes before a marker is its data
            padding += marker.start() - position
            if padding > MAX_JPEG_PADDING:
                raise _too_complex(f"more than {MAX_JPEG_PADDING:,} bytes of padding between its parts")
            kind = _parsed_by_pillow(marker[1], raw[marker.end() + 2:marker.end() + 16])
            if kind:
                parsed[kind] += 1
                limit = MAX_JPEG_PARSED[kind]
                if parsed[kind] > limit:
                    raise _too_complex(f"more than one {kind}" if limit == 1 else f"more than {limit} {kind}s")
                if kind == "frame header":
                    _check_frame(marker[1][0], raw[marker.end() + 2:marker.end() + 3], len(raw))
        position = marker.end()
        if marker[1] in (b"\x01", b"\xd8"):             # markers without a length
            continue
        if marker[1] in (b"\xc0", b"\xc1") and components is None:    # the frame: sequential, Huffman-coded
            components = raw[position + 7:position + 8]
        if marker[1] == b"\xda":
            scans += 1
            if scans == 1 and components and raw[position + 2:position + 3] == components:
                return 1
            if scans > MAX_JPEG_SCANS:
                raise _too_complex(f"more than {MAX_JPEG_SCANS} scans")
        position += int.from_bytes(raw[position:position + 2], "big")
    raise _too_complex(f"more than {MAX_JPEG_SEGMENTS:,} segments")


def _check_frame(kind: int, precision: bytes, file_bytes: int) -> None:
    """Refuse, in a sentence of its own, a JPEG frame (its marker byte `kind`, its sample `precision`)
    that would fail or cost too much later."""
    if precision not in (b"\x08", b""):
        # Pillow opens 8-bit JPEGs only, and would call this one "not a format we can read".
        raise ImageError("This JPEG has more than 8 bits a colour, as medical and scientific cameras "
                         "write, and cannot be read here; please save it as an ordinary JPEG or a PNG.")
    if kind in ARITHMETIC_FRAMES and file_bytes > MAX_ARITHMETIC_BYTES:
        raise ImageError(f"This JPEG uses arithmetic coding, which is slow to decode: up to "
                         f"{MAX_ARITHMETIC_BYTES // 2**20} MB of it can be read here; please save it as an "
                         "ordinary JPEG or a PNG.")


def _parsed_by_pillow(marker: bytes, start: bytes) -> str | None:
    """Which of MAX_JPEG_PARSED's kinds a segment is, from its marker byte and its first bytes."""
    if marker[0] in range(0xC0, 0xD0) and marker not in (b"\xc4", b"\xc8", b"\xcc"):   # SOF0-15, not DHT/JPG/DAC
        return "frame header"
    if marker == b"\xdb":
        return "quantisation table segment"
    if marker == b"\xe1" and start.startswith(b"Exif\0\0"):
        return "EXIF block"
    if marker == b"\xed" and start.startswith(b"Photoshop 3.0\0"):
        return "Photoshop block"
    return None


def _check_png(raw: bytes) -> None:
    chunks = inflated = 0
    position = 8
    while position + 8 <= len(raw):
        kind = raw[position + 4:position + 8]
        chunks += 1
        inflated += kind in (b"zTXt", b"iTXt", b"iCCP")
        if chunks > MAX_PNG_CHUNKS:
            raise _too_complex(f"more than {MAX_PNG_CHUNKS:,} chunks")
        if inflated > MAX_PNG_INFLATED:
            raise _too_complex(f"more than {MAX_PNG_INFLATED} compressed text chunks")
        if kind == b"IEND":
            return
        position += 12 + int.from_bytes(raw[position:position + 4], "big")


def _check_gif(raw: bytes) -> None:
    flags = raw[10] if len(raw) > 10 else 0
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)   # after the header and global palette
    blocks = 0
    while position + 1 < len(raw) and raw[position] == 0x21:           # "!": an extension
        position += 2
        while True:                                                     # its sub-blocks, up to an empty one
            blocks += 1
            if blocks > MAX_GIF_BLOCKS:
                raise _too_complex(f"more than {MAX_GIF_BLOCKS:,} extension blocks")
            if position >= len(raw) or raw[position] == 0:
                break
            position += 1 + raw[position]
        position += 1


_TIFF_NUMBERS = {3, 4, 5, 6, 8, 9, 10, 11, 12, 13, 16, 17, 18}   # value types Pillow unpacks into Python numbers


def _check_tiff(raw: bytes) -> None:
    order = "<" if raw[:2] == b"II" else ">"
    big = raw[2:4] in (b"+\x00", b"\x00+")                  # BigTIFF: 8-byte counts and offsets
    number, first, size = ("Q", 8, 20) if big else ("I", 2, 12)   # offsets; the count's size; an entry's
    try:
        (directory,) = struct.unpack_from(order + number, raw, 8 if big else 4)
        (entries,) = struct.unpack_from(order + ("Q" if big else "H"), raw, directory)
        if entries > MAX_TIFF_ENTRIES:
            raise _too_complex(f"more than {MAX_TIFF_ENTRIES:,} tags")
        for entry in range(entries):                         # each: tag, type, count, value or offset
            kind, count = struct.unpack_from(order + "H" + number, raw, directory + first + entry * size + 2)
            if kind in _TIFF_NUMBERS and count > MAX_TIFF_VALUES:
                raise _too_complex(f"lists of more than {MAX_TIFF_VALUES:,} numbers")
    except (struct.error, OverflowError):
        return                                               # damaged: Pillow will say so


def _check_structure(raw: bytes) -> int:
    """Refuse a file whose structure alone would take Pillow long to read or much memory to hold: it
    reads JPEG segments, PNG chunks, GIF extensions and TIFF tags in Python, one at a time, and a
    20 MB file can hold millions of them. Returns a JPEG's number of scans (0 for other formats),
    which its decoding cost depends on."""
    if raw[:2] == b"\xff\xd8":
        return _jpeg_scans(raw)
    elif raw[:8] == b"\x89PNG\r\n\x1a\n":
        _check_png(raw)
    elif raw[:3] == b"GIF":
        _check_gif(raw)
    elif raw[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _check_tiff(raw)
    return 0


def _open(raw: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(raw), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError("This file is not a picture in a format we can read "
                         "(try JPEG, PNG, WebP, GIF, BMP or TIFF; SVG and HEIC are not supported).") from None


def _tiff_buffer(image: Image.Image) -> int:
    """Bytes of the strip or tile libtiff decodes at a time: up to the whole picture at the file's own
    depth in a real file (YCbCr ones come out as RGBA, 4 bytes a pixel), anything in a hostile one."""
    tags = image.tag_v2
    width, height = image.size
    bits = 32 if tags.get(262) == 6 else sum(tags.get(258, (1,)))
    span = tags[322] * tags.get(323, 1) if 322 in tags else width * min(tags.get(278, height), height)
    return int(span * bits) // 8


def _cost(image: Image.Image, raw: bytes, size: tuple[int, int], jpeg_scans: int) -> int:
    """Bytes that decoding `image` (opened, any reduced-size decoding asked for) and turning it into
    RGB at the shrunk size will take at the peak; `size` is its size before any reduction, `jpeg_scans`
    what `_check_structure` counted."""
    width, height = image.size
    pixels = width * height
    shrunk = pixels // max(1, min(width, height) // WORKING_SIZE) ** 2
    cost = pixels * _BYTES_PER_PIXEL.get(image.mode, 8) + shrunk * _SHRUNK_BYTES_PER_PIXEL
    if _keyed(image):
        cost += pixels * _BYTES_PER_PIXEL["RGBA"]     # its copy with an alpha channel, premultiplied to shrink
    codec = image.tile[0][0] if image.tile else None
    if image.format in ("JPEG", "MPO") and (image.info.get("progressive") or jpeg_scans > 1):
        # Progressive or otherwise in several scans: libjpeg holds every coefficient of the full-size
        # picture, 2 bytes each, whatever size it decodes at.
        h_max, v_max = max(c[1] for c in image.layer), max(c[2] for c in image.layer)
        samples = sum(c[1] * c[2] for c in image.layer) / (h_max * v_max)   # per pixel, after subsampling
        cost += int(size[0] * size[1] * samples * 2)
    elif image.format == "WEBP":
        # Pillow hands libwebp a copy of the file; libwebp keeps two canvases and hands Pillow a
        # copy of one, 4 bytes a pixel each.
        cost += len(raw) + pixels * 12
    elif codec == "libtiff":
        cost += _tiff_buffer(image)
    elif codec == "bmp_rle":
        if pixels > MAX_RLE_PIXELS:
            raise ImageError(f"This run-length compressed BMP is too large to decode here ({width} x {height} "
                             f"pixels); please use one under {MAX_RLE_PIXELS / 1_000_000:g} megapixels, or a PNG.")
        cost += pixels * 2       # Pillow's decoder collects the pixels in a bytearray, then copies it
    return cost


def _planned(raw: bytes, jpeg_scans: int) -> tuple[Image.Image, tuple[int, int], int]:
    """The picture opened (JPEGs to be decoded at reduced size: libjpeg scales by 1/2, 1/4 or 1/8 as it
    decodes), its size before that, and what decoding it will take (`_cost`)."""
    image = _open(raw)
    width, height = size = image.size
    if width < 1 or height < 1:
        raise ImageError("The picture has no pixels (its width or height is zero).")
    if image.format in ("JPEG", "MPO"):                     # phones save photos as MPO: a JPEG and more
        image.draft("RGB", (WORKING_SIZE, WORKING_SIZE))
    _scale_grey_key(image)
    return image, size, _cost(image, raw, size, jpeg_scans)


# A PNG's grey stored in 2 or 4 bits: Pillow stretches the pixels to 0-255, but not the level its tRNS
# chunk names transparent, which then matched nothing (or the wrong grey).
_LOW_BIT_GREY = {"L;2": 85, "L;4": 17}


def _scale_grey_key(image: Image.Image) -> None:
    """A 2- or 4-bit grey PNG's transparent level (`_LOW_BIT_GREY`) stretched as its pixels were."""
    if image.format != "PNG" or image.mode != "L" or len(image.tile) != 1:
        return
    transparency, rawmode = image.info.get("transparency"), image.tile[0].args
    if isinstance(transparency, int) and rawmode in _LOW_BIT_GREY:
        image.info["transparency"] = transparency * _LOW_BIT_GREY[rawmode]


def _places(image: Image.Image, size: tuple[int, int], cost: int) -> int:
    """Decoding places a picture (`size` across and down) costing `cost` bytes takes: one, or every one
    for a photo (PHOTO_FORMATS) over MEMORY_BUDGET, which then decodes alone, so the process never holds
    more than DECODING_AT_ONCE budgets; ImageError past that. A big progressive JPEG (libjpeg holds all
    its coefficients: 82 MB for 27 megapixels) and a WebP over about 5 megapixels (libwebp's canvases)
    are photos people take and save; a PNG, TIFF, GIF or BMP that costs as much is a screen, a scan or
    a file built to cost it."""
    allowed = MEMORY_BUDGET * (DECODING_AT_ONCE if image.format in PHOTO_FORMATS else 1)
    if cost > allowed:
        width, height = size
        limit = allowed / (cost / (width * height)) / 1e6        # megapixels a file like this may have
        advice = f"please use one under {limit:.0f} megapixels" if limit >= 1 else "please use a smaller one"
        if image.format not in ("JPEG", "MPO"):
            advice += ", or a JPEG"
        raise ImageError(f"The picture is too large to decode here ({width} x {height} pixels would take "
                         f"{cost / 2**20:,.0f} MB of memory); {advice}.")
    return 1 if cost <= MEMORY_BUDGET else DECODING_AT_ONCE


def _decode(image: Image.Image, raw: bytes, size: tuple[int, int], jpeg_scans: int, spare: int,
            halves: bool = True) -> Image.Image:
    """The picture (`_planned`: opened, `size` before any reduction) loaded: Pillow opens a file at its
    first frame; a progressive JPEG read at 1/8 from the scans that show at that size (`jpeg_progressive`)
    and, where the file allows and `halves`, a JPEG in two halves at once (`jpeg_halves`, `jpeg_middle`),
    each where its copy of the coded data fits in the `spare` bytes its budget leaves."""
    copy_fits = len(raw) <= spare    # each way below copies the file's coded data once, at most
    if jpeg_scans > 1 and copy_fits:
        eighth = jpeg_progressive.decode(raw, image, size)
        if eighth is not None:
            return eighth
    if halves and jpeg_scans == 1 and copy_fits:
        halves = jpeg_halves.decode(raw, image)
        if halves is not None:
            return halves
    if image.format in ("JPEG", "MPO") and copy_fits:
        # The whole file to libjpeg at once, not 64 KB at a time: its arithmetic decoder cannot stop
        # partway and wait for more, so an arithmetic-coded JPEG over 64 KB failed as if damaged.
        image.decodermaxblock = max(image.decodermaxblock, len(raw))
    image.load()
    return image


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, 1 for upright. Pillow reads EXIF entries one by one in Python, so a block
    bigger than a JPEG's (64 KB) is read here, its first directory alone; a damaged one costs the
    picture only its orientation."""
    exif = image.info.get("exif") or b""
    if len(exif) > 65_536:
        return _first_directory_orientation(exif)
    try:
        return int(image.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _first_directory_orientation(exif: bytes) -> int:
    """The orientation tag (0x0112, a SHORT) of an EXIF block's first directory, where it always is."""
    tiff = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    try:
        (start,) = struct.unpack_from(order + "I", tiff, 4)
        (entries,) = struct.unpack_from(order + "H", tiff, start)
        for i in range(min(entries, 1_000)):
            tag, kind, _, value = struct.unpack_from(order + "HHIH", tiff, start + 2 + 12 * i)
            if tag == 0x0112:
                return value if kind == 3 else 1
    except (TypeError, struct.error):      # no byte order, or a directory past the block's end
        pass
    return 1


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit or floating-point picture (scientific and medical ones, mostly) as 8-bit grey, its own
    range stretched to 0-255 (a flat one at its own level); 65,536 pixels at a time, never a full-size
    float copy. A level named transparent (a 16-bit PNG's tRNS) comes back as an alpha channel, and the
    range is that of the pixels that show."""
    width, height = image.size
    step_x = min(width, 2**16)
    step_y = max(1, 2**16 // step_x)
    boxes = [(x, y, min(x + step_x, width), min(y + step_y, height))
             for y in range(0, height, step_y) for x in range(0, width, step_x)]
    keyed = image.info.get("transparency") if _keyed(image) else None
    low, high = np.inf, -np.inf
    for box in boxes:
        values = np.asarray(image.crop(box), np.float64)
        values = values[np.isfinite(values) & (values != keyed)]     # float pictures may hold NaN and infinities
        if values.size:
            low, high = min(low, values.min()), max(high, values.max())
    if high > low:
        scale = 255 / (high - low)
    elif np.isfinite(low):      # one flat level keeps its brightness: a blank white page stays white
        level = (low * 255 if 0 <= low <= 1 else low) if image.mode == "F" else low / 257   # 16 bits: 65,535 is white
        low, scale = low - level, 1.0
    else:                       # nothing but NaN and infinities
        low, scale = 0.0, 0.0
    grey = np.empty((height, width), np.uint8)
    shown = np.empty((height, width), np.uint8) if keyed is not None else None
    with np.errstate(invalid="ignore"):
        for x0, y0, x1, y1 in boxes:
            values = np.asarray(image.crop((x0, y0, x1, y1)), np.float64)
            if shown is not None:
                shown[y0:y1, x0:x1] = np.where(values == keyed, 0, 255)
            grey[y0:y1, x0:x1] = np.nan_to_num(np.clip((values - low) * scale, 0, 255)).round()
    if shown is not None:
        return Image.merge("LA", (Image.fromarray(grey, "L"), Image.fromarray(shown, "L")))
    return Image.fromarray(grey, "L")


def _palette_to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """A palette picture as RGB, its transparent entries (a PNG's tRNS, a GIF's transparent index)
    mixed with the background in the palette itself, before any pixel is touched."""
    palette = image.getpalette("RGBA")
    if palette is None:
        return image.convert("RGB")
    entries = np.array(palette, np.float32).reshape(-1, 4)
    transparency = image.info.pop("transparency", None)
    if isinstance(transparency, int) and transparency < len(entries):
        entries[transparency, 3] = 0
    elif isinstance(transparency, bytes):
        alpha = np.frombuffer(transparency, np.uint8)[:len(entries)]
        entries[:len(alpha), 3] = alpha
    opacity = entries[:, 3:] / 255
    mixed = entries[:, :3] * opacity + np.array(background, np.float32) * (1 - opacity)
    image.putpalette(mixed.round().astype(np.uint8).tobytes(), "RGB")
    return image.convert("RGB")


def _keyed(image: Image.Image) -> bool:
    """Whether a grey (8 or 16 bits), 1-bit or RGB picture names one colour as transparent, as PNG
    optimisers write an RGBA picture whose pixels are either opaque or wholly transparent in one colour."""
    transparency = image.info.get("transparency")
    if image.mode in _HIGH_DEPTH:
        return isinstance(transparency, int) and not isinstance(transparency, bool)
    return image.mode in ("1", "L", "RGB") and transparency is not None


def _averageable(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """The picture in a mode whose pixels can be averaged, so shrunk: palettes looked up, 1-bit as grey,
    16-bit and float as 8-bit grey, rarer modes as RGBA."""
    if image.mode in _HIGH_DEPTH:
        return _to_8bit(image)
    if image.mode == "P":
        return _palette_to_rgb(image, background)
    if _keyed(image):     # one colour stands for transparent (a PNG's tRNS): Pillow makes it an alpha channel
        return image.convert("RGBA" if image.mode == "RGB" else "LA")
    if image.mode == "1":
        return image.convert("L")
    if image.mode not in _BYTES_PER_PIXEL:
        return image.convert("RGBA")
    return image


def _shrink(image: Image.Image) -> Image.Image:
    """The picture reduced by a whole factor (each new pixel the mean of a block) to no smaller than
    WORKING_SIZE across, and to no longer than LONGEST_KEPT, so every later copy is small. The page
    keeps the picture for its visitor: a strip 300 pixels wide and 30,000 long was kept whole, 26 MB,
    of which the model is shown the middle 900 (MAX_SQUEEZE)."""
    factor = max(min(image.size) // WORKING_SIZE, -(-max(image.size) // LONGEST_KEPT))
    return image.reduce(factor) if factor > 1 else image


def _to_rgb(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """RGB, transparent pixels taking the background colour."""
    if image.mode in ("La", "RGBa"):                          # premultiplied alpha, from some TIFFs
        image = image.convert({"La": "LA", "RGBa": "RGBA"}[image.mode])
    if image.mode in ("LA", "RGBA"):
        flat = Image.new("RGB", image.size, background)
        flat.paste(image.convert("RGB"), mask=image.getchannel("A"))
        return flat
    return image if image.mode == "RGB" else image.convert("RGB")


_decoding = threading.BoundedSemaphore(DECODING_AT_ONCE)
_decodes = [0]                  # pictures being decoded in this process now
_decodes_lock = threading.Lock()
_taking_turns = threading.Lock()     # held while a picture waits for its places


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds every core has spent busy, of them this process's), from Linux's /proc; None where
    the system does not say."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(n) for n in stat.readline().split()[1:]]
        with open("/proc/self/stat") as own:
            fields = own.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    per_second = os.sysconf("SC_CLK_TCK")
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]              # all but idle and waiting for disks
    return busy / per_second, (int(fields[11]) + int(fields[12])) / per_second   # its user and system time


_load = {"at": None, "cpu": None, "idle": True}             # the last look at what other processes use


def _idle_core() -> bool:
    """Whether other processes (a training run, another server) left a core idle since the last look,
    taken at most every IDLE_LOOK seconds: this process's own threads (the model's, which spin for a
    while after each answer) do not count. True where the system does not say."""
    now = time.monotonic()
    if _load["at"] is not None and now - _load["at"] < IDLE_LOOK:
        return _load["idle"]
    cpu = _cpu_seconds()
    if cpu is not None and _load["cpu"] is not None and _load["at"] is not None:
        others = (cpu[0] - _load["cpu"][0]) - (cpu[1] - _load["cpu"][1])      # their CPU seconds since
        _load["idle"] = others / (now - _load["at"]) < (os.cpu_count() or 1) - 1.5
    _load["at"], _load["cpu"] = now, cpu
    return _load["idle"]


@contextlib.contextmanager
def _decode_slot(places: int = 1):
    """Waits for `places` of the DECODING_AT_ONCE places (taken in turn, so a picture waiting for all of
    them is not overtaken by ones that need one); True if no other picture is being decoded and a core
    is idle, free to decode half of a big JPEG. Half a picture on a busy core would only slow both, and
    the two halves take a little more CPU in all than one decode."""
    with contextlib.ExitStack() as held:
        with _taking_turns:
            for _ in range(places):
                held.enter_context(_decoding)
        with _decodes_lock:
            _decodes[0] += 1
            alone = _decodes[0] == 1
        try:
            yield alone and _idle_core()
        finally:
            with _decodes_lock:
                _decodes[0] -= 1


def _decoded(raw: bytes, jpeg_scans: int, background: tuple[int, int, int], places: int
             ) -> tuple[Image.Image, int] | None:
    """The picture decoded, shrunk and in RGB, and its EXIF orientation, holding `places` of the
    DECODING_AT_ONCE places; None if it needs more of them (`_places`)."""
    with _decode_slot(places) as alone:
        image, size, cost = _planned(raw, jpeg_scans)
        if _places(image, size, cost) > places:
            return None
        image = _decode(image, raw, size, jpeg_scans, places * MEMORY_BUDGET - cost, halves=alone)
        orientation = _orientation(image)
        # One step at a time, so each full-size picture is let go as soon as the next exists.
        image = _averageable(image, background)
        image = _shrink(image)
        return _to_rgb(image, background), orientation


def load_image(source, background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """A picture (bytes, a path or a file object) as an RGB image, upright; or ImageError with a
    sentence for a person, never anything else.

    Animated files give their first frame; photos are turned as their EXIF orientation says;
    transparent parts take `background` (white, as most viewers show them). Big pictures come back
    reduced by a whole factor to no smaller than WORKING_SIZE across (JPEGs are decoded that way).
    What a file would cost is worked out before it is decoded, and a file over MEMORY_BUDGET (a big
    photo: over every decoding place's budget, `_places`), or built to keep the decoder busy, is refused.
    """
    raw = _read(source)
    try:
        jpeg_scans = _check_structure(raw)
        # Opened holding one place; a photo that needs every place lets it go, and is opened again once
        # it holds them all, so no picture waits for its places holding an opened file.
        image, orientation = (_decoded(raw, jpeg_scans, background, 1)
                              or _decoded(raw, jpeg_scans, background, DECODING_AT_ONCE))
        return image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image
    except ImageError:
        raise
    except (Image.DecompressionBombError, MemoryError):
        raise ImageError("The picture is far too large to open safely (it could be a decompression bomb).") from None
    except Exception:   # Pillow's decoders raise OSError, SyntaxError, ValueError, TypeError, struct.error...
        raise ImageError("The picture is damaged or cut short, or stored in a way we cannot read.") from None


# A photo is shown to the model twice and the answers averaged: the whole picture squeezed into a square
# (its aspect ratio let go), and a closer centre square, CLOSER times its shorter side (CIFAR-10's
# subjects fill most of their frame; in a photo they are often smaller and the edges hold background).
# Squeezed whole, a wide subject (a truck, a ship, a plane) keeps its ends, which the largest centre
# square cut off: with the same evening out, held out, this pair was right on 81.1% of 477 real photos
# against 78.8% for the largest centre square and the closer one, and ahead for each of seven models
# (docs/measured.md). A panorama is squeezed no more than MAX_SQUEEZE to one, its middle part (the
# photos measured went to 2.7 to one). Pictures too small for the closer square to be larger than 32
# pixels across get the one view.
CLOSER = 0.8
MAX_SQUEEZE = 3.0
# Shrinking a photo to 32 x 32 leaves it sharper than CIFAR-10's pictures, which went through JPEG at
# that size (an edge measure, mean absolute difference of neighbouring grey pixels: 30 on the test set,
# 34 for photos shrunk with Lanczos, 26 after this blur). Softened this much, shrunk photos are classified
# as the training pictures look. Measured on 215 real photos (benchmarks/photos.py).
SOFTEN_RADIUS = 0.5
# Models trained on CIFAR-10 see photos askew, and alike: they answer airplane, automobile and (most of
# them) cat too often (a bird against the sky, a truck on a road, a dog) and deer, frog and (most) truck
# too rarely, and they are surer on photos than they are right. A photo's answer is evened out by
# PHOTO_BIAS, added to its log-probabilities (the bias that gives each class as large a share of the
# bundled model's answers on 477 real photos of the ten classes as any other, each class weighed alike),
# and tempered PHOTO_TEMPERATURE times as much as a test picture. Both are fitted by
# `benchmarks/photos.py --fit`, which also answers each of its three photo sets with the correction
# fitted on the other two: 81.1% right against 79.0% over the 477, and its "% sure" closer to the truth.
# Test pictures and 32 x 32 uploads are answered as before.
PHOTO_BIAS = (-0.40, -0.45, 0.07, -0.34, 0.17, 0.15, 0.40, 0.04, 0.09, 0.27)
PHOTO_TEMPERATURE = 1.01


def crop_box(width: int, height: int, scale: float = 1.0) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of a width x height picture's largest centre square, or of `scale`
    times that around the same centre."""
    side = min(width, height) * scale
    return (width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2


def whole_box(width: int, height: int) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the part of a width x height picture `prepare` squeezes into a
    square: all of it, or the middle of a long, thin one, its long side MAX_SQUEEZE times its short."""
    long_side = min(max(width, height), min(width, height) * MAX_SQUEEZE)
    across, down = (long_side, height) if width >= height else (width, long_side)
    return (width - across) / 2, (height - down) / 2, (width + across) / 2, (height + down) / 2


def cut_off(width: int, height: int) -> float:
    """The share of a width x height picture outside its `whole_box`: 0 unless it is long and thin."""
    left, top, right, bottom = whole_box(width, height)
    return 1 - (right - left) * (bottom - top) / (width * height)


def prepare(image: Image.Image, box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """The (32, 32, 3) uint8 picture the model sees: `box` of the picture (by default `whole_box`)
    squeezed into 32 x 32 with antialiasing and, when it was shrunk both ways, softened (SOFTEN_RADIUS),
    as a photo is (`is_photo`)."""
    box = whole_box(*image.size) if box is None else box
    image = image if image.mode == "RGB" else image.convert("RGB")
    small = image.resize((32, 32), Image.Resampling.LANCZOS, box=box, reducing_gap=3.0)
    if is_photo(box[2] - box[0], box[3] - box[1]):
        small = small.filter(ImageFilter.GaussianBlur(SOFTEN_RADIUS))
    return np.asarray(small, dtype=np.uint8)


def view_boxes(width: int, height: int) -> tuple[tuple[float, float, float, float], ...]:
    """The parts of a width x height picture the model is shown, each squeezed into 32 x 32: the whole
    picture (`whole_box`) always, the closer centre square (CLOSER) only where it is still larger than 32
    pixels across, and so shrunk and softened as the whole picture is."""
    closer = (crop_box(width, height, CLOSER),) if min(width, height) * CLOSER > 32 else ()
    return (whole_box(width, height), *closer)


def views(image: Image.Image) -> np.ndarray:
    """(K, 32, 32, 3) uint8: the squares one picture is shown to the model as (`view_boxes`), the whole
    picture first."""
    return np.stack([prepare(image, box) for box in view_boxes(*image.size)])


def is_photo(width: int, height: int) -> bool:
    """Whether a width x height picture is shrunk both ways to be shown to the model, and so softened and
    answered as a photo (SOFTEN_RADIUS, PHOTO_BIAS): anything larger than CIFAR-10's 32 x 32 both ways."""
    return min(width, height) > 32


def view_answers(model, pictures: np.ndarray) -> np.ndarray:
    """(num_classes,) the model's own probabilities for one picture from its `views`: each view's answer
    averaged with its mirror image's however sure the model is, before any temperature. The views and
    their mirror images go through the network in one call: for a handful of pictures the cost of a
    call, not the pictures in it, is most of the time (2 views: 8 ms in one call, 13 ms in two), so
    leaving the mirror images out where the model is sure would save little."""
    pictures = np.asarray(pictures)
    both = np.concatenate([pictures, pictures[:, :, ::-1]])
    return predict(model, both, mirror=False, calibrated=False).mean(axis=0)


def evened(probabilities: np.ndarray, bias=None) -> np.ndarray:
    """Probabilities (..., num_classes) with `bias` (PHOTO_BIAS if None) added to their logarithms,
    renormalised."""
    out = np.asarray(probabilities, np.float64) * np.exp(PHOTO_BIAS if bias is None else bias)
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def as_photo(probabilities: np.ndarray, temperature: float, bias=None, factor: float | None = None) -> np.ndarray:
    """A photo's probabilities from its averaged view answers (..., num_classes): `evened` by `bias`, then
    under `factor` (PHOTO_TEMPERATURE if None) times the model's `temperature`."""
    return evaluation.with_temperature(evened(probabilities, bias),
                                       temperature * (PHOTO_TEMPERATURE if factor is None else factor))


def predict_views(model, pictures: np.ndarray, size: tuple[int, int], calibrated: bool = True) -> np.ndarray:
    """(num_classes,) probabilities for one picture from its `views` (`view_answers`), under the model's
    temperature. `size`, the picture's own (width, height): a photo's answer is evened out and tempered
    as photos need (`is_photo`, `as_photo`). Without `calibrated`, no temperature at all; a photo is
    still evened out, as that changes which class is the answer. A model saved with no temperature
    answers as trained (1), so its photos get PHOTO_TEMPERATURE itself."""
    averaged = view_answers(model, pictures)
    if not is_photo(*size):
        return _tempered(averaged[None], model, calibrated)[0]
    if not calibrated:
        return evened(averaged)
    return as_photo(averaged, getattr(model, "calibration_temperature", 1.0))


def together(answers: list[np.ndarray]) -> np.ndarray:
    """Networks' probabilities (each (N, num_classes)) as the answer of the networks side by side: their
    scores averaged before the softmax, which is their probabilities' geometric mean, renormalised."""
    logs = np.mean([np.log(np.maximum(np.asarray(a, np.float64), 1e-30)) for a in answers], axis=0)
    out = np.exp(logs - logs.max(axis=-1, keepdims=True))
    return (out / out.sum(axis=-1, keepdims=True)).astype(np.float32)


def _tempered(probabilities: np.ndarray, model, calibrated: bool) -> np.ndarray:
    """`probabilities` under the model's confidence temperature (see `load_model`), if `calibrated`."""
    return evaluation.with_temperature(probabilities,
                                       getattr(model, "calibration_temperature", 1.0) if calibrated else 1.0)


_trace_lock = threading.Lock()      # tracing a model's forward pass happens once, by one thread
_compiled: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()    # network -> its compiled forward pass
CHUNK = 128                         # pictures per forward call: a long pass yields the CPU this often


def _forward(model):
    """The forward pass `predict` runs for `model` (`fast_inference.network`: a loaded model's faster
    equivalent), compiled once per model on TensorFlow (an eager call of a 30-layer model costs ~20 ms
    in Python overhead alone); a plain call on other backends.

    Once traced, a compiled function is safe to call from many threads at once,
    so only the first call (the trace) is serialised.

    The function reaches its network through a weak reference: the cache is keyed
    weakly by network, and a value holding its own key strongly would keep every
    model ever used (and its compiled graph) alive for the life of the server. A
    served model's copy lives exactly as long as the model, or until it is made
    anew (`fast_inference.refresh`), and its compiled pass with it.
    """
    import keras

    network = fast_inference.network(model)
    if not hasattr(network, "layers"):         # int8 networks (`int8`): numpy in, numpy out, thread-safe
        return network
    if keras.backend.backend() != "tensorflow":
        return lambda x: network(x, training=False)
    forward = _compiled.get(network)
    if forward is None:
        import tensorflow as tf
        with _trace_lock:
            forward = _compiled.get(network)
            if forward is None:
                held = weakref.ref(network)
                forward = tf.function(lambda x: held()(x, training=False), reduce_retracing=True,
                                      input_signature=[tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)])
                forward(np.zeros((1, *model.input_shape[1:]), np.float32))    # trace now, under the lock
                _compiled[network] = forward
    return forward


def predict(model, images: np.ndarray, batch_size: int = CHUNK, mirror: bool = True,
            calibrated: bool = True, plain: np.ndarray | None = None,
            sure_enough: float | None = evaluation.SURE_ENOUGH) -> np.ndarray:
    """Probabilities (N, num_classes) for uint8 images (N, 32, 32, 3) or one image (32, 32, 3).

    With `calibrated`, the model's confidence temperature (fitted on held-out
    training pictures when it was saved, see `load_model`) is applied, so an
    answer shown as 80% sure is right about 80% of the time.

    With `mirror`, each picture the model is less than `sure_enough` sure of
    (`evaluation.SURE_ENOUGH`, after its temperature; None: every picture)
    is also shown left-right flipped and the two answers are averaged
    (test-time augmentation: a few tenths of a point of accuracy). `plain`,
    the unmirrored answers already worked out (`predict(..., mirror=False,
    calibrated=False)` on the same images), saves that pass: the result is
    the same to the last bit, as the pictures and their mirror images go
    through separate forward calls either way.

    A model of networks side by side (`fast_inference.networks`) whose card
    gives its first network a temperature of its own (`load_model`) looks in
    the same way with `mirror` and `sure_enough`: its first network alone
    first, and where that one is at least `sure_enough` sure (under its own
    temperature) that answer stands, as "% sure" then shows it; only the rest
    are shown to the other networks (and then, where all of them together are
    unsure, mirrored). Given `plain` (every network's), it looks as one model.
    Without `calibrated`, the first network's answers already carry the ratio
    of its temperature to the model's, so the model's alone calibrates them all
    (as the app does with the answers shipped beside a model). On the 10,000
    test pictures the bundled pair's first network is that sure of 67% of them
    and right on 99.0% of those; the pair's accuracy moved by 2 pictures, and
    it answers 1.29-1.36 times the pictures a second (benchmarks/inference.py).
    A photo's views go to every network (`view_answers`: mirror=False).

    Keras' Model.predict is not thread-safe (tensorflow/tensorflow#61298) and
    Streamlit serves each browser session from its own thread, so predictions
    go through one compiled forward pass per model, which many threads may
    call at once. No lock is held across a call: one visitor's 10,000-picture
    evaluation, made of small chunks, never makes another's photo wait for it.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3):
        raise ValueError(f"Expected images of shape (N, 32, 32, 3), got {images.shape}.")
    if plain is not None and len(plain) != len(images):
        raise ValueError(f"{len(plain)} plain answers for {len(images)} images.")

    def answers(network, chosen: np.ndarray, mirrored: bool) -> np.ndarray:
        """`network`'s forward pass's answers for images[chosen], CHUNK pictures a call."""
        forward, out = _forward(network), []
        for start in range(0, len(chosen), batch_size):
            chunk = images[chosen[start:start + batch_size]].astype(np.float32)
            out.append(np.asarray(forward(chunk[:, :, ::-1] if mirrored else chunk), dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, 10), np.float32)

    def unsure(chosen: np.ndarray) -> np.ndarray:
        """Those of `chosen` whose answer so far, as "% sure" shows it, is under `sure_enough` (all if None)."""
        return chosen if sure_enough is None else \
            chosen[_tempered(probabilities[chosen], model, True).max(axis=1) < sure_enough]

    alone = fast_inference.networks(model) if mirror and sure_enough is not None else []
    first_temperature = getattr(model, "first_network_temperature", None)
    looking = np.arange(len(images))
    if alone and first_temperature and plain is None:
        first = answers(alone[0], looking, False)
        # The first network's answers under its own temperature once the model's is applied (`_tempered`).
        probabilities = evaluation.with_temperature(
            first, first_temperature / getattr(model, "calibration_temperature", 1.0))
        looking = unsure(looking)
        others = [answers(network, looking, False) for network in alone[1:]]
        probabilities[looking] = together([first[looking], *others])
    else:
        probabilities = answers(model, looking, False) if plain is None else np.array(plain, dtype=np.float32)
    if mirror and len(looking):
        mirrored = unsure(looking)
        probabilities[mirrored] = (probabilities[mirrored] + answers(model, mirrored, True)) / 2
    return _tempered(probabilities, model, calibrated)


def load_model(path: str | os.PathLike | None = None):
    """A saved .keras model (the bundled default when path is None), or ModelError. `predict` answers
    for it with an equivalent network this machine runs faster (`fast_inference.serve`): its networks
    in int8 where they were saved beside it (`int8`)."""
    import keras

    path = Path(path) if path else DEFAULT_MODEL
    if not path.exists():
        raise ModelError(f"There is no model file at {path}.")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as e:
        raise ModelError(f"{path} is not a CIFAR-10 Studio model we can load ({type(e).__name__}).") from None
    check_cifar10(model, path)      # before anything runs it
    fast_inference.serve(model, int8.load(model, path))
    model.calibration_temperature = temperature_for(path)
    if fast_inference.networks(model):          # networks side by side: the first looks alone first (`predict`)
        model.first_network_temperature = temperature_for(path, FIRST_NETWORK_TEMPERATURE, None)
    return model


def check_cifar10(model, path) -> None:
    """ModelError unless `model` takes (N, 32, 32, 3) pictures and gives ten answers. Keras loads any
    model: one of five classes was answered with CIFAR-10's names for them, one of 64x64 pictures
    failed deep inside its first forward pass."""
    try:
        takes, gives = tuple(model.input_shape), tuple(model.output_shape)
    except (AttributeError, ValueError, TypeError):     # no single input or output to speak of
        takes = gives = None
    if takes != (None, 32, 32, 3) or gives != (None, 10):
        raise ModelError(f"{path} is not a CIFAR-10 model: it must take 32 x 32 colour pictures and give ten "
                         "answers, one for each class.")


FIRST_NETWORK_TEMPERATURE = "first_network_temperature"     # in the card of networks side by side (`combine`)


def temperature_for(path: str | os.PathLike, key: str = "temperature", missing: float | None = 1.0) -> float | None:
    """The confidence temperature fitted when the model was saved: in its card (`x.json` beside
    `x.keras`) or, for a run's checkpoint, in the run's status.json; `missing` (1: as trained) when there
    is none. `key`, another temperature the card holds (FIRST_NETWORK_TEMPERATURE)."""
    path = Path(path)
    for source in (path.with_suffix(".json"), *_run_status(path)):
        try:
            value = json.loads(source.read_text()).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and 0.05 <= value <= 20:
            return float(value)
    return missing


def _run_status(path: Path) -> list[Path]:
    """A run's status.json, for a run's checkpoint (`x/model.keras`, see `rundir`); none for other models."""
    return [path.parent / rundir.STATUS] if path.name == rundir.MODEL else []


def model_version(path: str | os.PathLike) -> float:
    """The newest modification time of the model file at `path`, its card and its int8 networks, and for a
    run's checkpoint its status.json: what answers from it may be kept under, since `quantize` gives a
    saved model new networks and a new card (temperatures) without touching the model file, and a run
    writes its temperature into status.json after its last checkpoint (`temperature_for`)."""
    path = Path(path)
    times = [path.stat().st_mtime]          # OSError when the model file is gone
    for beside in (path.with_suffix(".json"), int8.companion(path), *_run_status(path)):
        with contextlib.suppress(OSError):
            times.append(beside.stat().st_mtime)
    return max(times)


def model_card(path: str | os.PathLike | None = None) -> dict:
    """The JSON card beside a model (architecture, data, accuracy...), or {} if it has none."""
    card = Path(path).with_suffix(".json") if path else DEFAULT_CARD
    try:
        return json.loads(card.read_text())
    except (OSError, ValueError):     # unreadable, not UTF-8, not JSON
        return {}


def heatmap(model, image: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM: where in a (32, 32, 3) picture the model looked for `class_index`, as (32, 32) in 0..1
    (see `explain.gradcam`)."""
    from cifar_core import explain
    return explain.gradcam(model, image, class_index)


def doubts(image: np.ndarray, probabilities: np.ndarray, size: tuple[int, int] | None = None) -> list[str]:
    """Plain-language warnings about a prediction (see `explain.doubts`)."""
    from cifar_core import explain
    return explain.doubts(image, probabilities, size)

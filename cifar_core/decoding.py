"""Any uploaded file to an upright RGB picture, at a bounded cost, or one sentence for a person.

    load_image(bytes | path | file)  -> RGB PIL image (big ones reduced), or ImageError with a sentence for a person

A hosted copy decodes whatever a class uploads, so load_image bounds what one file may cost before
decoding it: it reads only the formats the uploader offers, refuses files whose structure alone would
keep Pillow's Python parsers busy (thousands of segments, chunks, scans or strips), works out from the
header what decoding will take (the pixels, the decoder's own buffers, the copies made before the
picture is shrunk) and refuses anything over MEMORY_BUDGET, or, for a photo (JPEG, WebP, AVIF or HEIC),
over DECODING_AT_ONCE budgets, which it then takes alone (a big progressive JPEG or WebP). JPEGs are
decoded at reduced size (a big photo on two cores: `jpeg_halves` cuts one at a restart marker,
`jpeg_middle` one without; a big progressive one from the scans an eighth of it shows,
`jpeg_progressive`), a HEIC from the preview its file holds where it has one (`PREVIEW_SMALLEST`; on
Linux, where it is decoded in a capped process), and everything else is shrunk as soon as it is decoded.
At most DECODING_AT_ONCE pictures are decoded at a time in a process, so thirty uploads at once cost
a server that many budgets, not thirty (a photo over one budget is decoded alone); a picture is
decoded on two cores only while it is the only one and a core is idle.
`inference.views` says what the model is then shown of it.
tests/hostile_images.py builds files that each broke the loader one of these ways
(tests/test_inference.py measures their peak memory in a fresh process), and
tests/test_image_fuzz.py damages pictures thousands of ways.
"""
from __future__ import annotations

import collections
import contextlib
import io
import os
import re
import struct
import threading
import time
import warnings
import zlib
from typing import NamedTuple

import numpy as np
from PIL import AvifImagePlugin, Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from cifar_core import decoding_apart, jpeg_halves, jpeg_progressive, rundir

try:
    # HEIC (HEVC pictures in a HEIF file): an iPhone's photos as a Mac or a PC keeps them. Pillow reads them
    # through pillow-heif's libheif; where it cannot be installed, a HEIC is "not supported", as before.
    import pillow_heif
except ImportError:
    pillow_heif = None
else:
    # The picture alone, decoded on one core, as each decoding place here is one (libheif would take
    # several). Not its depth maps or other auxiliary pictures (more memory each), nor its thumbnails:
    # pillow-heif decodes a thumbnail as it picks one (Image.draft), in this process, before any budget
    # is checked, and one is its own HEVC frame, whose size its file need not tell truly. Only the capped
    # child of `decoding_apart` reads one (`_preview`).
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False, decode_threads=1)

HEIC = pillow_heif is not None
# What the uploader offers (a phone's MPO opens as JPEG); Pillow's other decoders see little use, and its
# EPS one runs Ghostscript. AVIF before HEIF: both are HEIF files, and each plugin knows its own.
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "AVIF", *(("HEIF",) if HEIC else ()))
MAX_FILE_BYTES = 50 * 2**20  # read no more than this from a path or file object (uploads stop at 20 MB)
MEMORY_BUDGET = 80 * 2**20   # bytes a picture may take while it is decoded (see _cost); with the file itself
                             # and Python's own, one load stays under 150 MB (a photo decoded alone: 230)
DECODING_AT_ONCE = 2         # decoding takes a core while it lasts: more at once would only share the cores
PHOTO_FORMATS = ("JPEG", "MPO", "WEBP", "AVIF", "HEIF")   # a photo in these may take every place, and so DECODING_AT_ONCE
                             # budgets, decoding alone (`_places`)
IDLE_LOOK = 0.5              # seconds between looks at what other processes use of the cores (_idle_core)
WORKING_SIZE = 256           # pictures are decoded or shrunk to no smaller than this across: plenty for 32x32
LONGEST_KEPT = 4096          # ... and to no longer than this: a phone's panorama at an eighth is about 2,000
MAX_JPEG_SCANS = 100         # each scan is a pass over the whole picture: a photo has 1, a progressive one ~10
# ... and what the scans cost together: the 8 x 8 blocks each covers, summed. libjpeg walks every block of
# a scan even where its bytes say nothing (a run of empty blocks), about 50 ns each here: 99 scans over a
# 9000 x 9000 picture, 172 KB, held a core 5-6.5 s. The largest progressive photo the budgets let through
# (about 50 megapixels, 4:2:0) is some 7 million in the usual ten scans.
MAX_JPEG_BLOCK_SCANS = 16_000_000
# A HEIC is read from the preview its file holds where one is at least this many pixels both ways (an
# iPhone's is 320 x 240), as a JPEG is decoded at an eighth: the photo itself takes libheif 0.9-1.2 s of a
# core and 8 bytes a pixel (12 megapixels: 105 MB; a recent iPhone's 24: 190 MB, over every budget), the
# preview 0.02 s, and the model's 32 x 32 is the same from either (the app's answers on 215 photos: alike
# on 213, as often right). The Predict page shows a picture at about that size.
PREVIEW_SMALLEST = 240
PREVIEW_LONGEST = 1024   # ... and no longer than this: a preview is decoded before its cost is counted
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
LOSSLESS_FRAMES = (0xC3, 0xC7, 0xCB, 0xCF)     # SOF3, 7, 11, 15: lossless, as DICOM files hold
MAX_ARITHMETIC_BYTES = 6 * 2**20
MAX_PNG_CHUNKS = 20_000      # Pillow reads each in Python; 20 MB in libpng's 8 KB chunks is 2,500
MAX_PNG_INFLATED = 16        # compressed text and profile chunks, each inflated by Pillow to up to 1 MB
# Memory per byte of a PNG's text at the peak, measured with 4 MB of each: Pillow copies a chunk as it takes
# it apart, and keeps the text as a string: Latin-1 text (tEXt, zTXt) 3 bytes a byte, UTF-8 text (iTXt) 5,
# and 13 where it holds a character past ASCII (a string of 2 or 4 bytes a character; 4 MB with one emoji
# took 54 MB). Read as the file is opened or after its pixels, and kept with the picture while it is
# decoded: counted in its cost either way (`Structure`).
PNG_TEXT_BYTES_PER_BYTE = {b"tEXt": 3, b"zTXt": 3, b"iTXt": 5}
PNG_WIDE_TEXT_BYTES_PER_BYTE = 13
# ... and per byte of a TIFF's tag values stored outside its directory (a 19 MB description took 121 MB
# with libtiff's copy, 82 MB without).
TIFF_TAG_BYTES_PER_BYTE = 7
MAX_GIF_BLOCKS = 10_000      # extension blocks before the first frame, each kept by Pillow as a Python object
MAX_GIF_STRAY_BYTES = 65_536     # bytes before the first frame that are no part of the file (see _check_gif)
MAX_TIFF_ENTRIES = 1_000     # entries in a TIFF directory; a real one has a few dozen
MAX_TIFF_VALUES = 32_768     # numbers in one entry; one strip offset each costs ~340 bytes in Pillow
# Run-length BMPs are decoded in Python, a pixel at a time: 0.4 s of a core per megapixel, holding the
# interpreter's lock (every other visitor's page waits), and a file of a few KB can claim millions. A real
# one is an old screen or icon, a fraction of this.
MAX_RLE_PIXELS = 500_000
# AVIF (AV1 pictures, as browsers save them from many websites): libavif's AV1 decoder takes as many threads
# as there are cores unless told otherwise, where each decoding place here is one core.
AvifImagePlugin.DEFAULT_MAX_THREADS = 1

# Bytes per pixel while a picture is decoded and brought to a mode whose pixels can be averaged.
# Pillow keeps 1-bit, grey and palette pictures in 1 byte a pixel, 16-bit grey in 2, the rest
# (RGB too) in 4; then palettes become RGB (+4), 1-bit, 16-bit and float pictures 8-bit grey (+1),
# and shrinking a picture with transparency premultiplies it first (+4). Other modes: 4 + 4.
_BYTES_PER_PIXEL = {
    "1": 1 + 1, "L": 1, "P": 1 + 4,
    "I;16": 2 + 1, "I;16L": 2 + 1, "I;16B": 2 + 1, "I;16N": 2 + 1, "I": 4 + 1, "F": 4 + 1,
    "RGB": 4, "RGBX": 4, "CMYK": 4, "YCbCr": 4, "LAB": 4, "HSV": 4, "La": 4, "RGBa": 4, "LA": 4 + 4, "RGBA": 4 + 4,
}
# libjpeg's own ceiling on what it allocates (read from the environment as each decoder starts; over it, it
# stops with an error), in thousands of bytes: what a photo decoded alone may take, and a quarter more (its
# budget counts more than libjpeg's part; at the budget itself, "160M", which libjpeg reads as 160,000,000
# bytes, photos of 53 megapixels the budgets allow were refused as damaged). Every JPEG is checked against
# the budgets before it is decoded; this holds wherever libjpeg is reached past those checks.
os.environ.setdefault("JPEGMEM", str(DECODING_AT_ONCE * MEMORY_BUDGET * 5 // 4 // 1000))
# Pillow warns of a "decompression bomb DOS attack" for any picture over 89 megapixels, a 100-megapixel
# camera's photo too, on a person's terminal and in the server's log. What each picture may cost is worked
# out here before it is decoded (_cost, _places); Pillow's own refusal, at twice that, still stands.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
_SHRUNK_BYTES_PER_PIXEL = 12  # then, at the shrunk size: an RGB copy, an alpha mask, a backdrop, an upright copy
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}   # EXIF orientation -> the turn that makes a picture upright


class ImageError(ValueError):
    """The input is not an image we can use; the message is a sentence for a person."""


class Structure(NamedTuple):
    """What a file's structure tells before it is opened (`_check_structure`)."""
    jpeg_scans: int = 0     # a JPEG's scans, which its decoding cost depends on
    metadata: int = 0       # bytes of memory its text and tags take while it is read, besides its pixels


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


def _too_much_besides(fmt: str, size: int, what: str) -> ImageError:
    return ImageError(f"This {fmt} holds {size / 2**20:.0f} MB of {what} besides its picture, more than can be "
                      "read here; please save it again without it, or as a JPEG.")


def _jpeg_scans(raw: bytes) -> int:
    """How many scans the first picture in a JPEG file has, counted from its markers; ImageError if
    it has more than MAX_JPEG_SEGMENTS segments, MAX_JPEG_SCANS scans, MAX_JPEG_PADDING bytes between
    the segments before its first scan, or more of one kind of segment there than MAX_JPEG_PARSED
    allows. A sequential picture (a baseline frame, as cameras and phones write) whose first scan holds
    every colour is decoded in that one pass whatever follows (nothing after it is decoded), so its
    coded data is not walked: a 12-megapixel photo's holds some 10,000 0xFF bytes, 1.7 ms here."""
    scans, position, components, padding, blocks, work = 0, 2, None, 0, {}, 0
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
                    blocks = _frame_blocks(raw[marker.end() + 2:marker.end() + 2 + int.from_bytes(
                        raw[marker.end():marker.end() + 2], "big")])
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
            count = raw[position + 2] if position + 2 < len(raw) else 0
            work += sum(blocks.get(raw[position + 3 + 2 * i], 0) for i in range(count))
            if work > MAX_JPEG_BLOCK_SCANS:
                raise _too_complex(f"{scans} scans that go over {work / 1e6:,.0f} million blocks of the picture")
        position += int.from_bytes(raw[position:position + 2], "big")
    raise _too_complex(f"more than {MAX_JPEG_SEGMENTS:,} segments")


def _frame_blocks(frame: bytes) -> dict[int, int]:
    """The 8 x 8 blocks of each component (by its id) of a JPEG frame header's picture."""
    if len(frame) < 6:
        return {}
    height, width, count = int.from_bytes(frame[1:3], "big"), int.from_bytes(frame[3:5], "big"), frame[5]
    components = [frame[6 + 3 * i:9 + 3 * i] for i in range(count) if len(frame) >= 9 + 3 * i]
    if not components:
        return {}
    h_max = max(c[1] >> 4 for c in components) or 1
    v_max = max(c[1] & 15 for c in components) or 1

    def up(a: int, b: int) -> int:      # a / b rounded up, in whole numbers
        return -(-a // b)
    # Each component's samples (its share of the picture at its sampling factors), in blocks of 8 x 8. Two
    # components of one id (some files have them; libjpeg reads them all) count as the larger: counted as the
    # last, a small one, a 155 KB file's scans of a large one went past MAX_JPEG_BLOCK_SCANS sixteenfold, 4.7 s.
    blocks: dict[int, int] = {}
    for c in components:
        blocks[c[0]] = max(blocks.get(c[0], 0), up(up(width * (c[1] >> 4), h_max), 8) * up(up(height * (c[1] & 15), v_max), 8))
    return blocks


def _check_frame(kind: int, precision: bytes, file_bytes: int) -> None:
    """Refuse, in a sentence of its own, a JPEG frame (its marker byte `kind`, its sample `precision`)
    that would fail or cost too much later."""
    if precision not in (b"\x08", b""):
        # Pillow opens 8-bit JPEGs only, and would call this one "not a format we can read".
        raise ImageError("This JPEG has more than 8 bits a colour, as medical and scientific cameras "
                         "write, and cannot be read here; please save it as an ordinary JPEG or a PNG.")
    if kind in LOSSLESS_FRAMES:
        # libjpeg cannot decode these at a reduced size, as every JPEG is decoded here: the draft asked for
        # made any 512 or more pixels wide fail as "damaged".
        raise ImageError("This JPEG is stored losslessly, as medical and scientific equipment writes, and "
                         "cannot be read here; please save it as an ordinary JPEG or a PNG.")
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


def _check_png(raw: bytes) -> int:
    """Refuse a PNG of too many chunks, or whose text takes more memory than a picture's budget; returns the
    memory its text takes (`PNG_TEXT_BYTES_PER_BYTE`)."""
    chunks = inflated = text = memory = 0
    position = 8
    while position + 8 <= len(raw):
        kind = raw[position + 4:position + 8]
        length = int.from_bytes(raw[position:position + 4], "big")
        chunks += 1
        inflated += kind in (b"zTXt", b"iTXt", b"iCCP")
        if chunks > MAX_PNG_CHUNKS:
            raise _too_complex(f"more than {MAX_PNG_CHUNKS:,} chunks")
        if inflated > MAX_PNG_INFLATED:
            raise _too_complex(f"more than {MAX_PNG_INFLATED} compressed text chunks")
        if kind in PNG_TEXT_BYTES_PER_BYTE:
            size, wide = _png_text(raw, kind, position + 8, min(position + 8 + length, len(raw)))
            text += size
            memory += size * (PNG_WIDE_TEXT_BYTES_PER_BYTE if wide else PNG_TEXT_BYTES_PER_BYTE[kind])
        if kind == b"IEND":
            break
        position += 12 + length
    if memory > MEMORY_BUDGET:
        raise _too_much_besides("PNG", text, "text")
    return memory


_PAST_ASCII = re.compile(rb"[\x80-\xff]")


def _png_text(raw: bytes, kind: bytes, start: int, end: int) -> tuple[int, bool]:
    """The bytes of text Pillow makes of the text chunk in raw[start:end], and whether any is past ASCII
    (in an iTXt: UTF-8). A compressed one is inflated as Pillow inflates it (an iTXt whose flag is not 0,
    by method 0), a piece at a time, up to Pillow's limit (past which it refuses the file) or a damaged
    stream's end (where it drops the chunk)."""
    key_end = raw.find(b"\0", start, end)
    wide = kind == b"iTXt"
    if kind == b"zTXt" and key_end >= 0:
        stream = key_end + 2                                  # after the compression method's byte
    elif wide and key_end >= 0 and raw[key_end + 1:key_end + 2] != b"\0" and raw[key_end + 2:key_end + 3] == b"\0":
        language_end = raw.find(b"\0", key_end + 3, end)     # compressed: after a language and a translation
        stream = raw.find(b"\0", language_end + 1, end) + 1 if language_end >= 0 else 0
        if not stream:
            return 0, False
    else:                                                     # stored as it is
        return end - start, wide and bool(_PAST_ASCII.search(raw, start, end))
    inflating, limit = zlib.decompressobj(), PngImagePlugin.MAX_TEXT_CHUNK + 1
    made, past_ascii = 0, False
    try:
        for at in range(stream, end, 65_536):      # pieces: what a single call leaves unread, it copies
            piece = inflating.decompress(memoryview(raw)[at:min(at + 65_536, end)], limit - made)
            made += len(piece)
            past_ascii = past_ascii or not piece.isascii()
            if made >= limit or inflating.eof:
                break
    except zlib.error:
        return 0, False
    return made, wide and past_ascii


_GIF_BLOCK = re.compile(rb"[!,;]")   # an extension, an image, the end: Pillow skips any other byte, one by one


def _check_gif(raw: bytes) -> None:
    flags = raw[10] if len(raw) > 10 else 0
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)   # after the header and global palette
    blocks = stray = 0
    while position + 1 < len(raw):
        found = _GIF_BLOCK.search(raw, position)
        start = found.start() if found else len(raw)
        # Bytes that are none of those, which Pillow reads one at a time in Python (19 MB of them: 2 s of
        # a core, every other visitor's page slowed meanwhile); a real file has none.
        stray += start - position
        if stray > MAX_GIF_STRAY_BYTES:
            raise _too_complex(f"more than {MAX_GIF_STRAY_BYTES:,} bytes that belong to no part of it")
        if found is None or raw[start] != 0x21:                         # the first image, or the end
            return
        position = start
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
_TIFF_VALUE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
# The directories Pillow reads besides the first as it loads a TIFF (`TiffImageFile.load_end`): the Exif one
# (and the Interop one it points to) and the GPS one, each by a tag of the directory before.
_TIFF_SUB_DIRECTORIES = {34665: {40965: {}}, 34853: {}}
_TIFF_POINTERS = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}    # the value types a directory's pointer may have
# The value types of a whole number, as libtiff reads one that should be a SHORT (the Compression tag), in
# the entry or where it points, one a sample: a Compression written as a big-endian LONG, read as a SHORT,
# was its high half, 0, and three of them stored elsewhere were read as their offset: JPEG strips passed.
_TIFF_WHOLE_NUMBERS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 16: "Q", 17: "q"}
# Compression 6 and 7: JPEG streams in the strips, which libtiff hands to libjpeg past every check made on a
# JPEG file here (scans, arithmetic coding, the coefficients it holds). libtiff accepts a last strip's stream
# taller than the strip: a 1 MB file declared 16384 x 1 made libjpeg hold 1 GB. Scanners write a few; a
# class's uploads, none.
_TIFF_JPEG = (6, 7)
TIFF_JPEG_SAID = ("This TIFF holds its picture as JPEG inside it, which cannot be read here safely; please save it "
                  "as a JPEG or a PNG.")


def _check_tiff(raw: bytes) -> int:
    """Refuse a TIFF whose tags would cost Pillow or libtiff too much to read, in its first directory and
    in those Pillow reads with it (`_TIFF_SUB_DIRECTORIES`): too many tags, too long lists of numbers, or
    values adding up to more bytes than the file holds (a real file stores each once; libtiff keeps a copy
    of every compressed TIFF's tag values, and 990 tags all naming one megabyte of a 1 MB file took 1 GB)
    or than a picture's budget holds (`TIFF_TAG_BYTES_PER_BYTE`), and JPEG strips (`_TIFF_JPEG`). Returns
    the memory its tags take. The first directory is checked whole before any other is looked at, and
    a sub-directory that cannot be read is passed over, as Pillow passes over it: one bad pointer ended
    the whole check, the first directory's later tags unread."""
    order = "<" if raw[:2] == b"II" else ">"
    big = raw[2:4] in (b"+\x00", b"\x00+")                  # BigTIFF: 8-byte counts and offsets
    number, first, size = ("Q", 8, 20) if big else ("I", 2, 12)   # offsets; the count's size; an entry's
    inline = 8 if big else 4                                 # value bytes an entry holds itself
    spilled = 0

    def directory(start: int, top: bool) -> list[tuple[int, int]]:
        """Checks one directory; returns its pointers to the directories Pillow reads next, as (tag, offset)."""
        nonlocal spilled
        (entries,) = struct.unpack_from(order + ("Q" if big else "H"), raw, start)
        if entries > MAX_TIFF_ENTRIES:
            raise _too_complex(f"more than {MAX_TIFF_ENTRIES:,} tags")
        pointers = []
        for entry in range(entries):                         # each: tag, type, count, value or offset
            at = start + first + entry * size
            tag, kind, count = struct.unpack_from(order + "HH" + number, raw, at)
            if kind in _TIFF_NUMBERS and count > MAX_TIFF_VALUES:
                raise _too_complex(f"lists of more than {MAX_TIFF_VALUES:,} numbers")
            values = count * _TIFF_VALUE_BYTES.get(kind, 1)
            spilled += values if values > inline else 0
            if spilled > len(raw):
                raise _too_complex("tags whose values add up to more bytes than the whole file")
            value_at = at + 4 + inline
            if top and tag == 259 and set(whole_numbers(kind, count, value_at)) & set(_TIFF_JPEG):
                raise ImageError(TIFF_JPEG_SAID)
            if count == 1 and kind in _TIFF_POINTERS:        # read as its type says, as Pillow reads it
                pointers.append((tag, struct.unpack_from(order + _TIFF_POINTERS[kind], raw, value_at)[0]))
        return pointers

    def whole_numbers(kind: int, count: int, value_at: int) -> tuple:
        """An entry's first few whole numbers, in it or where it points; none for another type."""
        letter = _TIFF_WHOLE_NUMBERS.get(kind)
        if letter is None:
            return ()
        if count * struct.calcsize(order + letter) > inline:
            (value_at,) = struct.unpack_from(order + number, raw, value_at)
        return struct.unpack_from(order + letter * min(count, 8), raw, value_at)

    def below(pointers: list[tuple[int, int]], nested: dict) -> None:
        """Checks the directories `pointers` lead to that Pillow reads (`nested`), and theirs in turn."""
        for tag, offset in pointers:
            if tag in nested:
                with contextlib.suppress(struct.error, OverflowError):   # Pillow passes over one it cannot read
                    below(directory(offset, top=False), nested[tag])

    try:
        pointers = directory(struct.unpack_from(order + number, raw, 8 if big else 4)[0], top=True)
    except (struct.error, OverflowError):
        return 0                                             # damaged: Pillow will say so
    below(pointers, _TIFF_SUB_DIRECTORIES)
    if spilled * TIFF_TAG_BYTES_PER_BYTE > MEMORY_BUDGET:
        raise _too_much_besides("TIFF", spilled, "text and other data")
    return spilled * TIFF_TAG_BYTES_PER_BYTE


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")     # classic and BigTIFF, either byte order


def _check_structure(raw: bytes) -> Structure:
    """Refuse a file whose structure alone would take Pillow long to read or much memory to hold: it
    reads JPEG segments, PNG chunks, GIF extensions and TIFF tags in Python, one at a time, and a
    20 MB file can hold millions of them; and one whose text or tags take more memory than a picture's
    budget. Returns what its decoding cost depends on besides its pixels."""
    if raw[:2] == b"\xff\xd8":
        return Structure(jpeg_scans=_jpeg_scans(raw))
    elif raw.startswith(PNG_SIGNATURE):
        return Structure(metadata=_check_png(raw))
    elif raw[:3] == b"GIF":
        _check_gif(raw)
    elif raw.startswith(_TIFF_SIGNATURES):
        return Structure(metadata=_check_tiff(raw))
    return Structure()


# The brands (in a HEIF file's first box) of the pictures read here: AVIF's, and HEIC's where it is read.
_HEIF_BRANDS = re.compile(rb"avi[fs]" + (rb"|hei[cxms]|hev[cxms]|mif1|msf1" if HEIC else b""))
READ_HERE = f"JPEG, PNG, WebP, AVIF, {'HEIC, ' if HEIC else ''}GIF, BMP or TIFF"     # for a person


# How the other formats read here begin: a file that begins as one of them and cannot be opened was cut
# short in its header, or stores its picture in a way Pillow cannot read; "not a picture in a format we can
# read (try JPEG, ...)" named the file's own format.
_SIGNATURES = (b"\xff\xd8\xff", PNG_SIGNATURE, b"GIF87a", b"GIF89a", b"BM", *_TIFF_SIGNATURES)


def _open(raw: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(raw), formats=FORMATS)
    except UnidentifiedImageError:
        if raw[4:8] == b"ftyp" and _HEIF_BRANDS.search(raw[8:min(int.from_bytes(raw[:4], "big"), 256)]):
            raise       # a file that names itself AVIF or HEIC, which could not be read: damaged (load_image says so)
        if raw.startswith(_SIGNATURES) or (raw[:4] == b"RIFF" and raw[8:12] == b"WEBP"):
            raise       # the same
        raise ImageError(f"This file is not a picture in a format we can read (try {READ_HERE}; SVG"
                         f"{' is' if HEIC else ' and HEIC are'} not supported).") from None


def _tiff_buffer(image: Image.Image) -> int:
    """Bytes of the strip or tile libtiff decodes at a time: up to the whole picture at the file's own
    depth in a real file (YCbCr ones come out as RGBA, 4 bytes a pixel), anything in a hostile one."""
    tags = image.tag_v2
    width, height = image.size
    bits = 32 if tags.get(262) == 6 else sum(tags.get(258, (1,)))
    span = tags[322] * tags.get(323, 1) if 322 in tags else width * min(tags.get(278, height), height)
    return int(span * bits) // 8


def _cost(image: Image.Image, raw: bytes, size: tuple[int, int], structure: Structure) -> int:
    """Bytes that decoding `image` (opened, any reduced-size decoding asked for) and turning it into
    RGB at the shrunk size will take at the peak, its text and tags with it; `size` is its size before any
    reduction, `structure` what `_check_structure` found."""
    width, height = image.size
    pixels = width * height
    shrunk = pixels // _shrink_factor(image.size) ** 2
    cost = structure.metadata + pixels * _BYTES_PER_PIXEL.get(image.mode, 8) + shrunk * _SHRUNK_BYTES_PER_PIXEL
    if _keyed(image):
        cost += pixels * _BYTES_PER_PIXEL["RGBA"]     # its copy with an alpha channel, premultiplied to shrink
    codec = image.tile[0][0] if image.tile else None
    if image.format in ("JPEG", "MPO") and (image.info.get("progressive") or structure.jpeg_scans > 1):
        # Progressive or otherwise in several scans: libjpeg holds every coefficient of the full-size
        # picture, 2 bytes each, whatever size it decodes at.
        h_max, v_max = max(c[1] for c in image.layer), max(c[2] for c in image.layer)
        samples = sum(c[1] * c[2] for c in image.layer) / (h_max * v_max)   # per pixel, after subsampling
        cost += int(size[0] * size[1] * samples * 2)
    elif image.format == "WEBP":
        # Pillow hands libwebp a copy of the file; libwebp keeps two canvases and hands Pillow a
        # copy of one, 4 bytes a pixel each.
        cost += len(raw) + pixels * 12
    elif image.format in HEIF_PLANES:
        # Pillow hands libavif or libheif a copy of the file; the decoder's YUV planes of the whole coded
        # picture (before any crop, `_planned`) become 8-bit RGB(A) bytes (10- and 12-bit ones brought to 8),
        # which Pillow copies into the picture. Measured peaks (4000 x 3000, 8 bits) with the picture's own:
        # AVIF 4:2:0 and 4:4:4, 9 and 11 bytes a pixel, this 11.5 and 13; HEIC 4:2:0, 8.3, this 11.5.
        planes = HEIF_PLANES[image.format](_meta(raw), image.mode)
        cost += len(raw) + int(size[0] * size[1] * (planes + 2 * len(image.mode)))
    elif codec == "libtiff":
        cost += _tiff_buffer(image)
    elif codec == "bmp_rle":
        if pixels > MAX_RLE_PIXELS:
            raise ImageError(f"This run-length compressed BMP is too large to decode here ({width} x {height} "
                             f"pixels); please use one under {MAX_RLE_PIXELS / 1_000_000:g} megapixels, or a PNG.")
        cost += pixels * 2       # Pillow's decoder collects the pixels in a bytearray, then copies it
    if image.format == "TIFF" and _orientation(image) in _TRANSPOSE:
        # Pillow turns a TIFF upright as it loads it (by its Orientation tag, or its XMP's), a full-size copy:
        # 80 KB of grey 8900 x 8900 took 163 MB.
        cost += pixels * _BYTES_PER_PIXEL.get(image.mode, 8)
    return cost


def _plane_bytes(raw: bytes, mode: str, name: bytes, per_pixel) -> float:
    """Bytes a pixel of a HEIF file's decoded YUV planes take (1 or 2 bytes a sample; chroma at its
    subsampling; an alpha plane), from the costliest of its decoder configuration boxes (`name`: AV1's or
    HEVC's, looked for anywhere in `raw`, its `meta` box: bytes that spell the name only count it dearer;
    `per_pixel(raw, at)` reads one); with none found, the dearest there is, 16 bits in 4:4:4."""
    worst, at = 0.0, raw.find(name)
    for _ in range(64):
        if at < 0:
            break
        try:
            worst = max(worst, per_pixel(raw, at + 4))
        except IndexError:        # the file ends within it
            break
        at = raw.find(name, at + 4)
    else:
        worst = 0.0               # more such names than a real file has: the dearest, below
    worst = worst or 6.0
    return worst + (2 if mode == "RGBA" else 0)


def _meta(raw: bytes) -> bytes:
    """A HEIF file's `meta` box, where the boxes that describe its pictures are (and the only place libheif
    and libavif read them): its coded pictures' bytes spell a box's name by chance, one HEIC photo of 4-5
    MB in a thousand, and a false size box there refused a real photo as trillions of pixels. b"" where
    the top level has none among its first boxes."""
    at = 0
    for _ in range(64):
        if at + 8 > len(raw):
            break
        size, kind = struct.unpack_from(">I4s", raw, at)
        if size == 1 and at + 16 <= len(raw):
            (size,) = struct.unpack_from(">Q", raw, at + 8)       # a 64-bit size
        elif size == 0:
            size = len(raw) - at                                   # to the end of the file
        if kind == b"meta":
            return raw[at:at + size]
        if size < 8:
            break
        at += size
    return b""


def _largest_size_box(meta: bytes) -> tuple[int, int]:
    """The largest width and height the size boxes in a `meta` box give (`ispe`, 20 bytes: its size, name,
    version and flags, then the two); (0, 0) for none. ImageError past 64 of them: a picture has one,
    a grid of tiles two, and decoys before the real one hid its size."""
    largest, at = (0, 0), meta.find(b"ispe")
    for _ in range(64):
        if at < 0 or at + 16 > len(meta):
            return largest
        if meta[at - 4:at] == b"\0\0\0\x14":
            largest = max(largest, struct.unpack_from(">II", meta, at + 8), key=lambda s: s[0] * s[1])
        at = meta.find(b"ispe", at + 4)
    raise ImageError("This file describes more pictures than a photo does; please save it as a JPEG or a PNG.")


def _avif_plane_bytes(raw: bytes, mode: str) -> float:
    return _plane_bytes(raw, mode, b"av1C", _av1_sample)


def _heic_plane_bytes(raw: bytes, mode: str) -> float:
    return _plane_bytes(raw, mode, b"hvcC", _hevc_sample)


# What the decoder of each kind of HEIF file makes of a pixel: AVIF's, HEIC's.
HEIF_PLANES = {"AVIF": _avif_plane_bytes, "HEIF": _heic_plane_bytes}


def _av1_sample(raw: bytes, box: int) -> float:
    """Bytes a pixel from an AV1 configuration box's contents at `box`: its second byte holds high bit
    depth, 12-bit, monochrome and subsampling."""
    flags = raw[box + 2]
    sample = 2 if flags & 0x40 else 1
    chroma = 0 if flags & 0x10 else 2 / ((1 + (flags >> 3 & 1)) * (1 + (flags >> 2 & 1)))
    return sample * (1 + chroma)


def _hevc_sample(raw: bytes, box: int) -> float:
    """Bytes a pixel from an HEVC configuration record at `box`: its chroma format (byte 16: 0 grey, 1 4:2:0,
    2 4:2:2, 3 4:4:4) and the luma and chroma bit depths less 8 (bytes 17 and 18)."""
    chroma = (0, 0.5, 1, 2)[raw[box + 16] & 3]
    luma_sample, chroma_sample = (2 if raw[box + i] & 7 else 1 for i in (17, 18))
    return luma_sample + chroma * chroma_sample


def _planned(raw: bytes, structure: Structure) -> tuple[Image.Image, tuple[int, int], int]:
    """The picture opened (JPEGs to be decoded at reduced size: libjpeg scales by 1/2, 1/4 or 1/8 as it
    decodes), its size before that, and what decoding it will take (`_cost`)."""
    image = _open(raw)
    width, height = size = image.size
    if width < 1 or height < 1:
        raise ImageError("The picture has no pixels (its width or height is zero).")
    if image.format in HEIF_PLANES:
        # The size such a file gives is its picture's after any crop (`clap`); the decoder makes the whole
        # coded picture first, which its size box (`ispe`) says: a 3 KB HEIC cropped to 40 x 30 named 12000 x
        # 12000. The largest box in the file counts.
        size = max(size, _largest_size_box(_meta(raw)), key=lambda s: s[0] * s[1])
    if image.format == "TIFF" and image.info.get("compression") in ("jpeg", "tiff_jpeg"):
        raise ImageError(TIFF_JPEG_SAID)    # as Pillow reads its tags, however they were written (`_check_tiff`)
    if image.format in ("JPEG", "MPO"):                     # phones save photos as MPO: a JPEG and more
        image.draft("RGB", (WORKING_SIZE, WORKING_SIZE))
    _scale_transparent_key(image)
    if image.format == "HEIF" and _preview(image):
        size = image.size
    return image, size, _cost(image, raw, size, structure)


def _preview(image: Image.Image) -> bool:
    """Whether a HEIC was given the smallest preview in its file that is at least PREVIEW_SMALLEST both
    ways and a scaled copy of its picture (turned, mirrored and cropped the same: pillow-heif checks),
    which pillow-heif then decodes: only where thumbnails are read, in the capped child (`_from_preview`),
    and only where every preview that large is at most PREVIEW_LONGEST long, as its size box says (libheif
    decodes no frame larger): pillow-heif decodes the one it picks before any budget is checked. Otherwise
    the picture itself is counted, and decoded or refused."""
    if not pillow_heif.options.THUMBNAILS:
        return False
    try:
        picture = image._heif_file[image.tell()]        # pillow-heif's own, which its draft reads
        sizes = [picture.get_thumbnail(i).size for i in range(len(picture.info["thumbnails"]))]
    except Exception:   # not as pillow-heif keeps it, or a damaged preview: the picture is counted instead
        return False
    large_enough = [size for size in sizes if min(size) >= PREVIEW_SMALLEST]
    if not large_enough or max(max(size) for size in large_enough) > PREVIEW_LONGEST:
        return False
    return bool(image.draft("RGB", (PREVIEW_SMALLEST, PREVIEW_SMALLEST)))


def _from_preview(image: Image.Image, raw: bytes) -> bool:
    """Whether a HEIC too large to decode may yet be read from a preview of it in a capped child process:
    its file refers to one (a `thmb` reference among its descriptions), which the child reads (`_preview`)
    and refuses the file if none will do."""
    return image.format == "HEIF" and decoding_apart.CAPPED_HERE and b"thmb" in _meta(raw)


# A PNG's grey stored in 2 or 4 bits: Pillow stretches the pixels to 0-255, but not the level its tRNS
# chunk names transparent, which then matched nothing (or the wrong grey).
_LOW_BIT_GREY = {"L;2": 85, "L;4": 17}


def _scale_transparent_key(image: Image.Image) -> None:
    """A PNG's colour named transparent brought to its pixels' depth as Pillow reads them: a 2- or 4-bit
    grey level stretched (`_LOW_BIT_GREY`); a 16-bit RGB colour cut to its high bytes, as the pixels are
    (Pillow compared the pixels with the key's low bytes, and the transparent part showed)."""
    if image.format != "PNG" or image.mode not in ("L", "RGB") or len(image.tile) != 1:
        return
    transparency, rawmode = image.info.get("transparency"), image.tile[0].args
    if isinstance(transparency, int) and rawmode in _LOW_BIT_GREY:
        image.info["transparency"] = transparency * _LOW_BIT_GREY[rawmode]
    elif isinstance(transparency, tuple) and rawmode == "RGB;16B":
        image.info["transparency"] = tuple(v >> 8 for v in transparency)


def _places(image: Image.Image, raw: bytes, size: tuple[int, int], cost: int, apart: bool, metadata: int = 0) -> int:
    """Decoding places a picture (`size` across and down) costing `cost` bytes takes: one, or every one
    for a photo (PHOTO_FORMATS) over MEMORY_BUDGET, which then decodes alone, so the process never holds
    more than DECODING_AT_ONCE budgets; ImageError past that, but for a HEIC decoded `apart` with a
    preview to read instead (`_from_preview`). A big progressive JPEG (libjpeg holds all its coefficients:
    82 MB for 27 megapixels) and a WebP over about 5 megapixels (libwebp's canvases) are photos people
    take and save; a PNG, TIFF, GIF or BMP that costs as much is a screen, a scan or a file built to cost it.
    `metadata`: what of `cost` its text and tags take, which a smaller picture would take as well."""
    allowed = MEMORY_BUDGET * (DECODING_AT_ONCE if image.format in PHOTO_FORMATS else 1)
    if cost > allowed and apart and _from_preview(image, raw):
        return DECODING_AT_ONCE
    if cost > allowed:
        width, height = size
        limit = (allowed - metadata) / ((cost - metadata) / (width * height)) / 1e6   # megapixels one like it may have
        advice = f"please use one under {limit:.0f} megapixels" if limit >= 1 else "please use a smaller one"
        if image.format not in ("JPEG", "MPO"):
            advice += ", or a JPEG"
        text = f", {metadata / 2**20:.0f} MB of it for its text and tags" if metadata >= 2**20 else ""
        raise ImageError(f"The picture is too large to decode here ({width} x {height} pixels would take "
                         f"{cost / 2**20:,.0f} MB of memory{text}); {advice}.")
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
    text = image.info.get("Raw profile type exif")      # a PNG's EXIF as ImageMagick writes it: hex in a text
    if isinstance(text, str) and len(text) > 3 * 65_536:
        with contextlib.suppress(ValueError):
            # Its header is three lines; a split into every line made a list of millions for a file of newlines.
            return _first_directory_orientation(bytes.fromhex(text.split("\n", 3)[-1]))
        return 1
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
    """A 16-bit or floating-point picture (scientific and medical ones, mostly) as 8-bit grey (`_deep_to_8bit`),
    dark where a TIFF says its zero is white (WhiteIsZero: Pillow turns 1- and 8-bit ones, not deeper)."""
    grey = _deep_to_8bit(image)
    if image.format == "TIFF" and image.tag_v2.get(262) == 0:
        return Image.merge(grey.mode, (ImageOps.invert(grey.getchannel(0)), *grey.split()[1:]))
    return grey


def _levels(image: Image.Image, box: tuple) -> np.ndarray:
    """A box of a deep picture's levels as float64; a TIFF's unsigned 32-bit ones as unsigned: Pillow keeps
    them in signed integers, and levels past 2**31 wrapped round below 0, the brightest drawn darkest."""
    values = np.asarray(image.crop(box))
    if image.mode == "I" and image.format == "TIFF" and values.dtype == np.int32 and (
            image.tag_v2.get(258) in (32, (32,)) and image.tag_v2.get(339, 1) in (1, (1,))):
        values = values.view(np.uint32)
    return values.astype(np.float64)


def _deep_to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit or floating-point picture as 8-bit grey, its own range stretched to 0-255 (a flat one at its
    own level); 65,536 pixels at a time, never a full-size float copy. A level named transparent (a 16-bit
    PNG's tRNS) comes back as an alpha channel, and the range is that of the pixels that show."""
    width, height = image.size
    step_x = min(width, 2**16)
    step_y = max(1, 2**16 // step_x)
    boxes = [(x, y, min(x + step_x, width), min(y + step_y, height))
             for y in range(0, height, step_y) for x in range(0, width, step_x)]
    keyed = image.info.get("transparency") if _keyed(image) else None
    if image.mode.startswith("I;16"):
        return _sixteen_to_8bit(image, boxes, keyed)
    low, high = np.inf, -np.inf
    for box in boxes:
        values = _levels(image, box)
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
            values = _levels(image, (x0, y0, x1, y1))
            if shown is not None:
                shown[y0:y1, x0:x1] = np.where(values == keyed, 0, 255)
            grey[y0:y1, x0:x1] = np.nan_to_num(np.clip((values - low) * scale, 0, 255)).round()
    if shown is not None:
        return Image.merge("LA", (Image.fromarray(grey, "L"), Image.fromarray(shown, "L")))
    return Image.fromarray(grey, "L")


def _sixteen_to_8bit(image: Image.Image, boxes: list, keyed: int | None) -> Image.Image:
    """`_to_8bit` of a 16-bit grey picture, read in `boxes`: its 65,536 levels looked up in a table made
    once, where two passes in float64 took 1.7 s of a core for a 5200 x 5200 PNG of 54 KB."""
    width, height = image.size
    low, high = 65_535, 0
    for box in boxes:
        values = np.asarray(image.crop(box))
        values = values[values != keyed] if keyed is not None else values
        if values.size:
            low, high = min(low, int(values.min())), max(high, int(values.max()))
    levels = np.arange(65_536, dtype=np.float64)
    if high > low:
        table = np.clip((levels - low) * (255 / (high - low)), 0, 255).round()
    else:       # one flat level keeps its brightness (65,535 is white); nothing shows: black
        table = np.full(65_536, round(low / 257) if high == low else 0.0)
    table = table.astype(np.uint8)
    grey = np.empty((height, width), np.uint8)
    shown = np.empty((height, width), np.uint8) if keyed is not None else None
    for x0, y0, x1, y1 in boxes:
        values = np.asarray(image.crop((x0, y0, x1, y1)))
        if shown is not None:
            shown[y0:y1, x0:x1] = np.where(values == keyed, 0, 255)
        grey[y0:y1, x0:x1] = table[values]
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
    factor = _shrink_factor(image.size)
    return image.reduce(factor) if factor > 1 else image


def _shrink_factor(size: tuple[int, int]) -> int:
    """The whole factor `_shrink` reduces a picture of `size` by (1: not at all)."""
    return max(1, min(size) // WORKING_SIZE, -(-max(size) // LONGEST_KEPT))


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


class _Turns:
    """Pictures wait for their decoding places one at a time, in the order they came (a plain lock
    lets any waiter in next); `first`: a photo that was in the line already and came back for every
    place, which goes ahead of the others (in the order such photos came back)."""

    def __init__(self):
        self._changed = threading.Condition()
        self._back: collections.deque = collections.deque()      # photos back for every place
        self._waiting: collections.deque = collections.deque()   # every other picture
        self._taken = False

    def _next(self) -> object | None:
        return None if self._taken else (self._back or self._waiting or [None])[0]

    @contextlib.contextmanager
    def turn(self, first: bool = False):
        me, line = object(), self._back if first else self._waiting
        with self._changed:
            line.append(me)
            try:
                self._changed.wait_for(lambda: self._next() is me)
            except BaseException:       # interrupted waiting: out of the line, or every picture after waits
                line.remove(me)
                self._changed.notify_all()
                raise
            line.popleft()
            self._taken = True
        try:
            yield
        finally:
            with self._changed:
                self._taken = False
                self._changed.notify_all()


_turns = _Turns()


def _cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds every core has spent busy, of them this process's), from Linux's /proc; None where
    the system does not say."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(n) for n in stat.readline().split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    own = rundir.process_cpu_s("self")
    busy = sum(ticks[:8]) - ticks[3] - ticks[4]              # all but idle and waiting for disks
    return None if own is None else (busy / os.sysconf("SC_CLK_TCK"), own)


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
    them is not overtaken by ones that need one; one that needs them all had its turn for one already,
    and comes first); True if no other picture is being decoded and a core is idle, free to decode half
    of a big JPEG. Half a picture on a busy core would only slow both, and the two halves take a little
    more CPU in all than one decode."""
    with contextlib.ExitStack() as held:
        with _turns.turn(first=places > 1):
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


def _decoded(raw: bytes, structure: Structure, background: tuple[int, int, int], places: int, apart: bool
             ) -> tuple[Image.Image, int] | None:
    """The picture decoded, shrunk and in RGB, and its EXIF orientation, holding `places` of the
    DECODING_AT_ONCE places; None if it needs more of them (`_places`). `apart`: a file whose cost its
    header cannot tell is decoded in a process of its own, capped at those places' budgets (`decoding_apart`)."""
    with _decode_slot(places) as alone:
        image, size, cost = _planned(raw, structure)
        if _places(image, raw, size, cost, apart, structure.metadata) > places:
            return None
        if apart and decoding_apart.needed(raw, image.size):
            image.close()
            return decoding_apart.load(raw, background, places * MEMORY_BUDGET), 1    # upright already
        image = _decode(image, raw, size, structure.jpeg_scans, places * MEMORY_BUDGET - cost, halves=alone)
        orientation = _orientation(image)
        # One step at a time, so each full-size picture is let go as soon as the next exists.
        image = _averageable(image, background)
        image = _shrink(image)
        return _to_rgb(image, background), orientation


def load_image(source, background: tuple[int, int, int] = (255, 255, 255), apart: bool = True) -> Image.Image:
    """A picture (bytes, a path or a file object) as an RGB image, upright; or ImageError with a
    sentence for a person, never anything else.

    Animated files give their first frame; photos are turned as their EXIF orientation says;
    transparent parts take `background` (white, as most viewers show them). Big pictures come back
    reduced by a whole factor to no smaller than WORKING_SIZE across (JPEGs are decoded that way; a HEIC
    holding a preview at least PREVIEW_SMALLEST both ways comes back as that preview, on Linux).
    What a file would cost is worked out before it is decoded, and a file over MEMORY_BUDGET (a big
    photo: over every decoding place's budget, `_places`), or built to keep the decoder busy, is refused;
    one whose cost cannot be told before (a lossless WebP) is decoded `apart`, in a process of its own.
    """
    raw = _read(source)
    try:
        structure = _check_structure(raw)
        # Opened holding one place; a photo that needs every place lets it go, and is opened again once
        # it holds them all, so no picture waits for its places holding an opened file.
        image, orientation = (_decoded(raw, structure, background, 1, apart)
                              or _decoded(raw, structure, background, DECODING_AT_ONCE, apart))
        image = image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image
        # The file's text, profiles and EXIF, which a page keeps with the picture for its visitor: up to
        # 19 MB of a PNG's text chunk each, outside what the upload's budget counts. Nothing reads them after.
        image.info = {}
        return image
    except ImageError:
        raise
    except (Image.DecompressionBombError, MemoryError):
        raise ImageError("The picture is far too large to open safely (it could be a decompression bomb).") from None
    except Exception:   # Pillow's decoders raise OSError, SyntaxError, ValueError, TypeError, struct.error...
        raise ImageError("The picture is damaged or cut short, or stored in a way we cannot read.") from None

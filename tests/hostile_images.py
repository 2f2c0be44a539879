"""Hostile picture files, built in memory: each one a way an upload has cost too much memory or time, or
broken the loader with something other than a sentence.

    BUILDERS            name -> function returning the file's bytes (deterministic, well under a second each)
    build(name)         the bytes of one
    python tests/hostile_images.py DIR    writes them all to DIR, for a benchmark to replay

Small files are made with Pillow and then damaged. The big ones (7000 x 7000 pixels and more) are
written chunk by chunk here instead: Pillow would need the whole picture in memory and seconds to
compress it, and a hostile file is cheap to make by design.
"""
from __future__ import annotations

import io
import math
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

pillow_heif.register_heif_opener()      # to write HEIC files (cifar_core.decoding registers it to read them)


def _pillow(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _zeros_deflated(chunk_size: int, times: int) -> bytes:
    """A zlib stream of chunk_size * times zero bytes, made by compressing one chunk and repeating it.

    After a full flush the compressor forgets its history, so the same chunk compresses to the same
    bytes again; an empty final block and the checksum of the whole close the stream.
    """
    chunk = bytes(chunk_size)
    compressor = zlib.compressobj(9)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = (chunk_size * times % 65521) << 16 | 1        # Adler-32 of that many zero bytes
    return first + again * (times - 1) + b"\x03\x00" + struct.pack(">I", checksum)


# --- PNG ---------------------------------------------------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, bit_depth: int, colour_type: int, *extra: bytes) -> bytes:
    """A PNG whose pixels are all zero."""
    samples = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour_type]
    row = 1 + (width * samples * bit_depth + 7) // 8          # a filter byte, then the pixels
    rows = math.gcd(height, 100)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + b"".join(extra)
            + _png_chunk(b"IDAT", _zeros_deflated(row * rows, height // rows)) + _png_chunk(b"IEND", b""))


def png_16bit_7000() -> bytes:
    """16-bit grey, 7000 x 7000, about 95 KB: 98 MB decoded, 1.3 GB once stretched in float64."""
    return _png(7000, 7000, 16, 0)


def png_rgba_7000() -> bytes:
    """RGBA, 7000 x 7000, about 190 KB: 196 MB decoded, each full-size copy as much again."""
    return _png(7000, 7000, 8, 6)


def png_palette_7000() -> bytes:
    """Palette with a transparent entry, 7000 x 7000: 49 MB decoded, four times that as RGBA."""
    palette = _png_chunk(b"PLTE", bytes([0, 0, 0, 255, 0, 0]))
    return _png(7000, 7000, 8, 3, palette, _png_chunk(b"tRNS", b"\x00"))


def png_bomb_13000() -> bytes:
    """Grey, 13000 x 13000 (169 megapixels, just under Pillow's own bomb limit): 169 MB decoded."""
    return _png(13000, 13000, 8, 0)


def png_text_bomb() -> bytes:
    """A small picture with a compressed text chunk that inflates past Pillow's 1 MB text limit."""
    text = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(2_000_000), 9))
    return _png(16, 16, 8, 0, text)


def png_many_chunks() -> bytes:
    """A small picture behind 1.2 million tiny text chunks (18 MB): Pillow reads each one in Python."""
    return _png(16, 16, 8, 0, _png_chunk(b"tEXt", b"a\x00b") * 1_200_000)


# --- JPEG and MPO ------------------------------------------------------------------------------------

def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


class _Bits:
    """Huffman-coded bits for a JPEG scan, with 0xFF bytes stuffed as the format requires."""

    def __init__(self):
        self.out, self.value, self.count = bytearray(), 0, 0

    def put(self, value: int, count: int) -> None:
        self.value, self.count = (self.value << count) | value, self.count + count
        while self.count >= 8:
            self.count -= 8
            byte = (self.value >> self.count) & 0xFF
            self.out += b"\xff\x00" if byte == 0xFF else bytes([byte])

    def bytes(self) -> bytes:
        if self.count:
            self.put((1 << (8 - self.count)) - 1, 8 - self.count)   # pad the last byte with ones
        return bytes(self.out)


def _empty_band_runs(blocks: int) -> bytes:
    """A progressive AC scan's coded data that ends every one of `blocks` blocks at once (end-of-band runs)."""
    runs = _Bits()
    while blocks:
        run = min(blocks, 32767)
        r = run.bit_length() - 1
        runs.put(r, 4)
        runs.put(run - (1 << r), r)
        blocks -= run
    return runs.bytes()


def _jpeg(width: int, height: int, components: int = 1, progressive: bool = False, ac_scans: int = 0) -> bytes:
    """A flat grey JPEG written by hand, so that a huge one costs nothing to make.

    Every 8 x 8 block is flat, so each costs a bit or two. Baseline: one scan holding every block.
    Progressive: a DC scan, then `ac_scans` AC scans of the first component that end every block at
    once with end-of-band runs: a few bytes each, yet each one is a pass over every block.
    """
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    ids = range(1, components + 1)
    out = [b"\xff\xd8", _jpeg_segment(0xDB, b"\x00" + b"\x01" * 64)]
    frame = struct.pack(">BHHB", 8, height, width, components) + b"".join(bytes([i, 0x11, 0]) for i in ids)
    out.append(_jpeg_segment(0xC2 if progressive else 0xC0, frame))
    # DC table 0: one code, "0", for "no change". AC table 0 has 15 four-bit codes, one for each
    # end-of-band run length class (symbol r << 4: a run of 2**r blocks plus r more bits).
    out.append(_jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00"))
    out.append(_jpeg_segment(0xC4, b"\x10" + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15))))
    # Every block of the first scan is all zero bits: DC "no change", and in baseline AC "end of block".
    bits = blocks * components * (1 if progressive else 5)
    first = bytes(bits // 8) + (bytes([(1 << (8 - bits % 8)) - 1]) if bits % 8 else b"")   # pad with ones
    spectral = b"\x00\x00\x00" if progressive else b"\x00\x3f\x00"
    out.append(_jpeg_segment(0xDA, bytes([components]) + b"".join(bytes([i, 0x00]) for i in ids) + spectral))
    out.append(first)
    ac_scan = _jpeg_segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + _empty_band_runs(blocks)
    out.append(ac_scan * ac_scans)
    out.append(b"\xff\xd9")
    return b"".join(out)


def jpeg_progressive_7000() -> bytes:
    """Progressive colour JPEG, 7000 x 7000, no chroma subsampling: tiny, yet its decoder holds every
    coefficient of the full-size picture (294 MB) even when asked for an eighth of the size."""
    return _jpeg(7000, 7000, components=3, progressive=True)


def jpeg_many_scans() -> bytes:
    """Progressive grey JPEG, 2048 x 2048, with 20,000 scans of a few bytes each: seconds of decoding per
    hundred kilobytes."""
    return _jpeg(2048, 2048, progressive=True, ac_scans=20_000)


def jpeg_refinement_scans() -> bytes:
    """Progressive grey JPEG, 9000 x 9000, 172 KB: a DC scan, an AC scan of coefficients 10-63 at half
    precision, then 97 scans refining them, each a few bytes saying nothing, yet a walk over every block's
    54 coefficients (5-6.5 s of a core). Coefficients 10-63 only: an eighth of the picture needs none of
    them, so the scans are skipped there unless each must be decoded."""
    blocks = 1125 * 1125
    out = [b"\xff\xd8", _jpeg_segment(0xDB, b"\x00" + b"\x01" * 64),
           _jpeg_segment(0xC2, struct.pack(">BHHB", 8, 9000, 9000, 1) + b"\x01\x11\x00"),
           _jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00"),
           _jpeg_segment(0xC4, b"\x10" + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15))),
           _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x00\x00"), bytes(blocks // 8) + b"\xff"]
    runs = _empty_band_runs(blocks)
    out.append(_jpeg_segment(0xDA, b"\x01\x01\x00\x0a\x3f\x01") + runs)       # coefficients 10-63, Al = 1
    out.append((_jpeg_segment(0xDA, b"\x01\x01\x00\x0a\x3f\x10") + runs) * 97)  # refined: Ah = 1, Al = 0
    out.append(b"\xff\xd9")
    return b"".join(out)


def jpeg_repeated_channel_names(size: int = 8300) -> bytes:
    """Progressive JPEG, 8300 x 8300, 155 KB, whose three channels are named 1, 2, 1: the blocks counted by
    name were the small last channel's, libjpeg's scans go over the big first one. A DC scan, an AC scan
    at half precision and 97 refinement scans of channel 1 held a core 4.7 s and took 161 MB. (Repeated
    names are no sign of a hostile file: libjpeg reads them, as some files have them.)"""
    big, small = (-(-size // 8)) ** 2, (-(-(-(-size // 4)) // 8)) ** 2
    runs = _empty_band_runs(big)
    frame = struct.pack(">BHHB", 8, size, size, 3) + b"\x01\x44\x00\x02\x11\x00\x01\x11\x00"
    return b"".join([
        b"\xff\xd8", _jpeg_segment(0xDB, b"\x00" + b"\x01" * 64), _jpeg_segment(0xC2, frame),
        _jpeg_segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00"),
        _jpeg_segment(0xC4, b"\x10" + bytes([0, 0, 0, 15] + [0] * 12) + bytes(r << 4 for r in range(15))),
        _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + bytes(-(-big // 8)),
        _jpeg_segment(0xDA, b"\x01\x02\x00\x00\x00\x00") + bytes(-(-small // 8)),
        _jpeg_segment(0xDA, b"\x01\x01\x00\x01\x3f\x01") + runs,
        (_jpeg_segment(0xDA, b"\x01\x01\x00\x01\x3f\x10") + runs) * 97, b"\xff\xd9"])


def jpeg_huge_baseline() -> bytes:
    """Baseline grey JPEG, 13000 x 13000: fine at an eighth of the size, 169 MB at full size."""
    return _jpeg(13000, 13000)


def jpeg_many_segments() -> bytes:
    """A small JPEG behind 3.5 million empty comment segments (17 MB): Pillow reads each one in Python."""
    raw = _pillow(Image.new("L", (8, 8)), "JPEG")
    return raw[:2] + b"\xff\xfe\x00\x03a" * 3_500_000 + raw[2:]


def jpeg_segments_after_the_scan() -> bytes:
    """A small baseline JPEG whose one scan is followed by 3.5 million empty comment segments (14 MB):
    its picture is whole after that scan, and nothing after it is decoded or parsed in Python."""
    raw = _pillow(Image.radial_gradient("L").resize((64, 48)).convert("RGB"), "JPEG")
    return raw[:-2] + b"\xff\xfe\x00\x02" * 3_500_000 + raw[-2:]


def jpeg_ff_run() -> bytes:
    """A progressive JPEG, 2048 x 2048, with a million 0xFF bytes and a zero in its coded data: a marker
    search that matched the run of 0xFF before a marker byte tried the whole run from each of its bytes."""
    raw = _pillow(Image.radial_gradient("L").resize((2048, 2048)).convert("RGB"), "JPEG", progressive=True)
    second_scan = raw.index(b"\xff\xda", raw.index(b"\xff\xda") + 2)
    return raw[:second_scan] + b"\xff" * 1_000_000 + b"\x00" + raw[second_scan:]


def jpeg_padding() -> bytes:
    """A small JPEG with 15 MB of fill bytes (0xFF) before its scan, which Pillow reads one at a time."""
    raw = _pillow(Image.radial_gradient("L").resize((640, 480)).convert("RGB"), "JPEG")
    scan = raw.index(b"\xff\xda")
    return raw[:scan] + b"\xff" * 15_000_000 + raw[scan:]


def _before_the_scan(segment: bytes, times: int) -> bytes:
    """A small JPEG with `segment` repeated `times` times just before its scan, where Pillow parses it."""
    raw = _pillow(Image.radial_gradient("L").resize((64, 48)).convert("RGB"), "JPEG")
    scan = raw.index(b"\xff\xda")
    return raw[:scan] + segment * times + raw[scan:]


def jpeg_many_frame_headers() -> bytes:
    """300 frame headers of 64 KB each (19.7 MB): Pillow keeps a Python tuple for every 3 bytes, 570 MB."""
    header = struct.pack(">BHHB", 8, 48, 64, 3)          # 8 bits, 48 x 64 pixels, 3 colours: then "their" entries
    return _before_the_scan(_jpeg_segment(0xC0, header + b"\x01\x11\x00" * 21_840), 300)


def jpeg_many_exif_blocks() -> bytes:
    """990 EXIF segments of 20 KB: Pillow joins each to all the ones before it, seconds of the server."""
    return _before_the_scan(_jpeg_segment(0xE1, b"Exif\0\0" + bytes(20_000)), 990)


def jpeg_many_photoshop_blocks() -> bytes:
    """300 Photoshop segments of 64 KB, each of 5,000 empty resources that Pillow reads one by one."""
    resource = b"8BIM\x04\x04\x00\x00\x00\x00\x00\x00"
    return _before_the_scan(_jpeg_segment(0xED, b"Photoshop 3.0\0" + resource * 5_400), 300)


def jpeg_truncated() -> bytes:
    """A real photo-like JPEG cut in half."""
    raw = _pillow(Image.radial_gradient("L").resize((400, 300)).convert("RGB"), "JPEG")
    return raw[: len(raw) // 2]


def mpo_phone() -> bytes:
    """A phone's 12-megapixel MPO (a JPEG with a second picture), turned by EXIF as portrait photos are."""
    first, second = Image.new("RGB", (4000, 3000), (90, 140, 200)), Image.new("RGB", (640, 480), (200, 90, 40))
    exif = Image.Exif()
    exif[0x0112] = 6                                         # rotate 90 degrees clockwise to display
    return _pillow(first, "MPO", save_all=True, append_images=[second], exif=exif.tobytes(), quality=70)


# --- GIF, BMP, WebP ---------------------------------------------------------------------------------

def gif_screen_7000() -> bytes:
    """A one-pixel GIF frame on a 7000 x 7000 logical screen: the whole screen is decoded."""
    raw = bytearray(_pillow(Image.new("P", (1, 1)), "GIF"))
    raw[6:10] = struct.pack("<HH", 7000, 7000)
    return bytes(raw)


def gif_many_comments() -> bytes:
    """A small GIF behind 3.5 million one-letter comments (17 MB): Pillow keeps each as a Python object."""
    raw = _pillow(Image.new("P", (8, 8)), "GIF")
    start = raw.index(b",")                                  # the first image descriptor
    return raw[:start] + b"!\xfe\x01a\x00" * 3_500_000 + raw[start:]


def gif_stray_bytes() -> bytes:
    """A small GIF with 19 MB of zeros before its image, which Pillow skips a byte at a time in Python."""
    raw = _pillow(Image.new("P", (64, 64)), "GIF")
    start = raw.index(b",")
    return raw[:start] + bytes(19 * 2**20) + raw[start:]


def bmp_rle8(width: int, height: int) -> bytes:
    """A run-length encoded 8-bit BMP (Pillow writes none), every row one long run of colour 0."""
    row = b"\xff\x00" * (width // 255) + bytes([width % 255, 0]) + b"\x00\x00"   # runs, then end of line
    pixels = row * height + b"\x00\x01"                                             # end of bitmap
    palette = b"\x00\x00\x00\x00" + b"\xff\xff\xff\x00" * 255
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(pixels), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset) + info + palette + pixels


def bmp_rle8_7000() -> bytes:
    """A run-length encoded BMP, 7000 x 7000, 400 KB: decoded in Python, 49 MB a copy."""
    return bmp_rle8(7000, 7000)


def bmp_truncated_7000() -> bytes:
    """A 24-bit BMP header claiming 7000 x 7000 pixels, with almost none of them."""
    raw = bytearray(_pillow(Image.new("RGB", (4, 4)), "BMP"))
    raw[18:26] = struct.pack("<ii", 7000, 7000)
    return bytes(raw)


def webp_canvas_7000() -> bytes:
    """An animated WebP with 16 x 16 frames on a 7000 x 7000 canvas: the decoder keeps two canvases."""
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    raw = bytearray(_pillow(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True))
    assert raw[12:16] == b"VP8X"
    raw[24:30] = (7000 - 1).to_bytes(3, "little") * 2       # canvas width - 1, height - 1
    return bytes(raw)


def webp_many_prefix_groups(side: int = 256) -> bytes:
    """Lossless WebP, 1024 x 1024, 295 KB, whose entropy image names 65,536 groups of prefix codes, each
    five codes of one symbol: libwebp builds tables for every group before the first pixel (385 MB), which
    nothing in the file's header tells."""
    stream: list[int] = []

    def put(number: int, count: int) -> None:              # VP8L's bits go least significant first
        stream.extend((number >> i) & 1 for i in range(count))

    def one_symbol() -> None:                               # a simple code: one symbol, 0, read in no bits
        put(1, 1), put(0, 1), put(0, 1), put(0, 1)

    def eight_bit_symbols() -> None:                        # a normal code: symbols 0-255, 8 bits each
        put(0, 1), put(8, 4)
        for i in range(12):                                 # code-length code: only length 8, in one bit
            put(1 if i == 11 else 0, 3)
        put(1, 1), put(3, 3), put(254, 8)                   # the lengths of 256 symbols follow

    size = 4 * side
    put(0x2F, 8), put(size - 1, 14), put(size - 1, 14), put(0, 1), put(0, 3)   # signature, size, no alpha
    put(0, 1), put(0, 1), put(1, 1), put(0, 3)              # no transform, no colour cache; an entropy image
    put(0, 1)                                               # of 4 x 4 blocks, itself without a colour cache,
    eight_bit_symbols(), eight_bit_symbols(), one_symbol(), one_symbol(), one_symbol()
    groups = np.arange(side * side)                         # naming group i in its green and red, each code
    names = np.stack([groups & 255, groups >> 8], axis=1)   # read first bit first
    names = (names[..., None] >> np.arange(7, -1, -1)) & 1
    codes = np.tile([1, 0, 0, 0] * 5, side * side)          # and every group's five codes of one symbol
    bits = np.concatenate([np.array(stream), names.reshape(-1), codes]).astype(np.uint8)
    data = np.packbits(bits, bitorder="little").tobytes() + bytes(64)
    data += b"\x00" * (len(data) % 2)
    return b"RIFF" + struct.pack("<I", 12 + len(data)) + b"WEBPVP8L" + struct.pack("<I", len(data)) + data


# --- TIFF and others ---------------------------------------------------------------------------------

def _tiff(entries: dict[int, tuple[int, list[int]]], data: bytes, data_tag: int | None = None) -> bytes:
    """A little-endian TIFF with one directory, then `data`. entries: tag -> (type, values), type 2 = ASCII
    (values: bytes), 3 = short, 4 = long, 5 = rational (values in pairs); the entry `data_tag`, if given, is
    added, holding where `data` starts."""
    width = {2: 1, 3: 2, 4: 4, 5: 4}                         # bytes per value
    directory_end = 8 + 2 + 12 * (len(entries) + (data_tag is not None)) + 4
    spilled = sum(len(v) * width[k] for k, v in entries.values() if len(v) * width[k] > 4)
    if data_tag is not None:
        entries = {**entries, data_tag: (4, [directory_end + spilled])}
    directory, extra = bytearray(struct.pack("<H", len(entries))), bytearray()
    for tag, (kind, values) in sorted(entries.items()):
        payload = bytes(values) if kind == 2 else struct.pack(f"<{len(values)}{'H' if kind == 3 else 'I'}", *values)
        if len(payload) > 4:
            payload, extra = struct.pack("<I", directory_end + len(extra)), extra + payload
        directory += struct.pack("<HHI", tag, kind, len(values) // 2 if kind == 5 else len(values))
        directory += payload.ljust(4, b"\x00")
    return b"II*\x00" + struct.pack("<I", 8) + bytes(directory) + b"\x00" * 4 + bytes(extra) + data


def tiff_jpeg() -> bytes:
    """A TIFF whose strips are JPEG streams, which libtiff hands to libjpeg past every JPEG check."""
    return _pillow(Image.new("RGB", (64, 64), (200, 100, 50)), "TIFF", compression="jpeg")


def tiff_rational_offsets() -> bytes:
    """A small TIFF whose strip offset is a fraction: Pillow's loader raised TypeError on it."""
    raw = bytearray(_pillow(Image.new("RGB", (24, 16), (10, 20, 30)), "TIFF"))
    (directory,) = struct.unpack_from("<I", raw, 4)
    (count,) = struct.unpack_from("<H", raw, directory)
    for entry in range(directory + 2, directory + 2 + 12 * count, 12):
        if struct.unpack_from("<H", raw, entry)[0] == 273:               # StripOffsets
            struct.pack_into("<HII", raw, entry + 2, 5, 1, len(raw))    # now a rational, stored at the end
    return bytes(raw) + struct.pack("<II", 8, 1)


def _tiff_deflated(width: int, height: int, samples: int, bits: int, tile: int | None, floats: bool = False,
                   tags: dict | None = None) -> bytes:
    """A deflate-compressed TIFF of zeros, in one strip or (tile given) one tile of tile x tile pixels, with
    `tags` besides (as `_tiff` takes them)."""
    span_w, span_h = (tile, tile) if tile else (width, height)
    rows = math.gcd(span_h, 64)
    data = _zeros_deflated(span_w * samples * bits // 8 * rows, span_h // rows)
    entries = {256: (4, [width]), 257: (4, [height]), 258: (3, [bits] * samples), 259: (3, [8]),
               262: (3, [2 if samples >= 3 else 1]), 277: (3, [samples]), 284: (3, [1]),
               339: (3, [3 if floats else 1] * samples), **(tags or {})}
    if tile:
        entries.update({322: (4, [tile]), 323: (4, [tile]), 325: (4, [len(data)])})
    else:
        entries.update({278: (4, [height]), 279: (4, [len(data)])})
    return _tiff(entries, data, data_tag=324 if tile else 273)


def tiff_huge_tile() -> bytes:
    """A 64 x 64 grey TIFF stored as one deflated 16384 x 16384 tile: libtiff inflates all 268 MB."""
    return _tiff_deflated(64, 64, 1, 8, tile=16384)


def tiff_rgb48_4000() -> bytes:
    """16-bit RGB TIFF, 4000 x 4000, in one deflated strip: a 96 MB strip buffer plus the picture."""
    return _tiff_deflated(4000, 4000, 3, 16, tile=None)


def tiff_many_strips() -> bytes:
    """A 1 x 1,500,000 grey TIFF stored one pixel a strip (13 MB): Pillow makes a Python tile of each."""
    n = 1_500_000
    entries = {256: (4, [1]), 257: (4, [n]), 258: (3, [8]), 259: (3, [1]), 262: (3, [1]), 277: (3, [1]),
               278: (4, [1]), 279: (4, [1] * n)}
    start = len(_tiff({**entries, 273: (4, [0] * n)}, b""))                  # where the pixels will begin
    return _tiff({**entries, 273: (4, list(range(start, start + n)))}, bytes(n))


def tiff_float_nan() -> bytes:
    """A small floating-point TIFF holding NaN and infinities among ordinary values."""
    image = Image.new("F", (32, 8), 0.5)
    for x, value in enumerate([float("nan"), float("inf"), float("-inf"), 1e30, -1e30]):
        image.putpixel((x, 0), value)
    return _pillow(image, "TIFF")


def _tiff_directory(entries: list[tuple[int, int, int, int]]) -> bytes:
    """A little-endian TIFF directory of (tag, type, count, value or offset) entries, no next one."""
    return (struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in sorted(entries))
            + b"\x00" * 4)


def tiff_many_big_tags(tags: int = 990, each: int = 200_000) -> bytes:
    """A deflated 8 x 8 TIFF, 200 KB, with 990 unknown tags that each name the same 200 KB of it: libtiff,
    which reads every compressed TIFF, keeps a copy of each (198 MB; a 1 MB file took 1 GB)."""
    pixels = zlib.compress(bytes(64))
    start = 8 + 2 + 12 * (9 + tags) + 4
    entries = [(256, 4, 1, 8), (257, 4, 1, 8), (258, 3, 1, 8), (259, 3, 1, 8), (262, 3, 1, 1), (273, 4, 1, start),
               (277, 3, 1, 1), (278, 4, 1, 8), (279, 4, 1, len(pixels))]
    entries += [(40000 + i, 7, each, start + len(pixels)) for i in range(tags)]
    return b"II*\x00" + struct.pack("<I", 8) + _tiff_directory(entries) + pixels + bytes(each)


def tiff_exif_fractions(values: int = 1_200_000) -> bytes:
    """An 8 x 8 TIFF whose Exif and GPS directories are one list of 1.2 million fractions (9.6 MB): Pillow
    reads both as it loads the picture, a Python number each (366 MB and 4.7 s for 10 MB)."""
    pixels_at = 8 + 2 + 12 * 11 + 4
    sub = pixels_at + 64
    entries = [(256, 4, 1, 8), (257, 4, 1, 8), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, 1, pixels_at),
               (277, 3, 1, 1), (278, 4, 1, 8), (279, 4, 1, 64), (34665, 4, 1, sub), (34853, 4, 1, sub)]
    fractions = _tiff_directory([(0xC000, 5, values, sub + 18)])
    return (b"II*\x00" + struct.pack("<I", 8) + _tiff_directory(entries) + bytes(64) + fractions
            + struct.pack("<II", 1, 3) * values)


def tiff_turned_8900() -> bytes:
    """Grey, 8900 x 8900, 80 KB (every row one strip of the same bytes), turned by its Orientation tag:
    Pillow turns it upright as it loads it, a second full-size copy (163 MB, where the budget saw 79)."""
    width = 8900
    offsets = 8 + 2 + 12 * 11 + 4
    counts = offsets + 4 * width
    pixels = counts + 4 * width
    entries = [(256, 4, 1, width), (257, 4, 1, width), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, width, offsets), (274, 3, 1, 6), (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, width, counts),
               (284, 3, 1, 1)]
    return (b"II*\x00" + struct.pack("<I", 8) + _tiff_directory(entries) + struct.pack(f"<{width}I", *[pixels] * width)
            + struct.pack(f"<{width}I", *[width] * width) + bytes(width))


# --- The largest files of each costly kind that a 80 MB decoding budget still lets through -----------

def png_rgba_at_budget() -> bytes:
    """RGBA, 3000 x 3000: 36 MB decoded, as much again to shrink it."""
    return _png(3000, 3000, 8, 6)


def png_16bit_at_budget() -> bytes:
    """16-bit grey, 5000 x 5000: 50 MB decoded, then 8-bit grey."""
    return _png(5000, 5000, 16, 0)


def png_palette_at_budget() -> bytes:
    """Palette with a transparent entry, 4000 x 4000: 16 MB decoded, 64 MB as RGB."""
    palette = _png_chunk(b"PLTE", bytes([0, 0, 0, 255, 0, 0]))
    return _png(4000, 4000, 8, 3, palette, _png_chunk(b"tRNS", b"\x00"))


def tiff_float_at_budget() -> bytes:
    """32-bit float grey TIFF, 2900 x 2900, in one deflated strip: the picture and the strip, 4 bytes a pixel each."""
    return _tiff_deflated(2900, 2900, 1, 32, tile=None, floats=True)


def webp_at_budget() -> bytes:
    """Lossless WebP, 2200 x 2200: libwebp's two canvases, its copy and Pillow's, 4 bytes a pixel each."""
    return _pillow(Image.new("RGB", (2200, 2200), (10, 20, 30)), "WEBP", lossless=True, method=0)


def avif_at_budget() -> bytes:
    """AVIF, 2600 x 2600, 8 bits in 4:2:0: libavif's YUV planes, its RGB bytes, their copy and Pillow's picture."""
    return _pillow(Image.new("RGB", (2600, 2600), (10, 20, 30)), "AVIF", speed=10)


def heic_at_budget() -> bytes:
    """HEIC, 2600 x 2600, 8 bits in 4:2:0: libheif's YUV planes, its RGB bytes and Pillow's picture."""
    return _pillow(Image.new("RGB", (2600, 2600), (10, 20, 30)), "HEIF", quality=10)


def jpeg_progressive_at_budget() -> bytes:
    """Progressive colour JPEG, 3600 x 3600, no chroma subsampling: 78 MB of coefficients."""
    return _jpeg(3600, 3600, components=3, progressive=True)


# --- The largest photos of each costly kind decoded alone, holding every decoding place (`_places`) ----

def jpeg_progressive_at_two_budgets() -> bytes:
    """Progressive colour JPEG, 6100 x 4500, no chroma subsampling: 157 MB of coefficients, just inside the
    two budgets (libjpeg's own ceiling, JPEGMEM, once refused it as damaged)."""
    return _jpeg(6100, 4500, components=3, progressive=True)


def webp_at_two_budgets() -> bytes:
    """Lossless WebP, 3100 x 3100: 147 MB in libwebp's canvases, its copy and Pillow's."""
    return _pillow(Image.new("RGB", (3100, 3100), (10, 20, 30)), "WEBP", lossless=True, method=0)


def avif_at_two_budgets() -> bytes:
    """AVIF, 3700 x 3700 (13.7 megapixels), 8 bits in 4:2:0: 158 MB as the budgets count it."""
    return _pillow(Image.new("RGB", (3700, 3700), (10, 20, 30)), "AVIF", speed=10)


def heic_at_two_budgets() -> bytes:
    """HEIC, 3700 x 3700 (13.7 megapixels: an iPhone's photos are 12 or 24), 8 bits in 4:2:0: 158 MB as the
    budgets count it."""
    return _pillow(Image.new("RGB", (3700, 3700), (10, 20, 30)), "HEIF", quality=10)


def heic_24_megapixels_with_preview() -> bytes:
    """HEIC, 5712 x 4284 (a recent iPhone's 24 megapixels), over every budget, with a 320 x 240 preview as an
    iPhone's: read from the preview, in the capped child."""
    return _pillow(Image.new("RGB", (5712, 4284), (10, 20, 30)), "HEIF", quality=10, thumbnails=[320])


def heic_preview_frame_larger_than_its_size_box() -> bytes:
    """A HEIC whose size box says 12000 x 12000, over every budget, and whose preview's says 320 x 320 over a
    2990 x 2990 HEVC frame: the preview is chosen by its box, and decoded in the capped child (where
    libheif refuses a frame larger than its box)."""
    raw = bytearray(_pillow(Image.new("RGB", (3000, 3000), (10, 20, 30)), "HEIF", quality=10, thumbnails=[2990]))
    for at, size in ((raw.find(b"ispe") + 8, 12000), (raw.rfind(b"ispe") + 8, 320)):  # the picture's, the preview's
        raw[at:at + 8] = struct.pack(">II", size, size)
    return bytes(raw)


# --- Text and tags besides the pixels, which Pillow (and libtiff) copy several times over ------------

def _international_text(size: int) -> bytes:
    """An uncompressed iTXt chunk of `size` bytes of text, one character of it an emoji: Python then holds
    4 bytes a character."""
    return _png_chunk(b"iTXt", b"Comment\x00\x00\x00\x00\x00" + b"a" * (size - 4) + "\U0001F600".encode())


def _after_the_pixels(png: bytes, *chunks: bytes) -> bytes:
    end = png.rindex(b"IEND") - 4
    return png[:end] + b"".join(chunks) + png[end:]


def png_text_after_its_pixels() -> bytes:
    """png_16bit_at_budget, then 19 MB of text, which Pillow reads once the pixels are decoded: 309 MB."""
    return _after_the_pixels(png_16bit_at_budget(), _international_text(19 * 2**20))


def png_compressed_text_after_its_pixels() -> bytes:
    """png_16bit_at_budget, then 16 compressed text chunks of 1 MB of text each (66 KB in the file): 150 MB."""
    text = b"a" * (2**20 - 68) + "\U0001F600".encode()
    return _after_the_pixels(png_16bit_at_budget(), *(
        _png_chunk(b"iTXt", b"Comment%d\x00\x01\x00\x00\x00" % i + zlib.compress(text, 9)) for i in range(16)))


def tiff_jpeg_compression_as_a_long() -> bytes:
    """A big-endian TIFF whose Compression, JPEG, is written as a LONG (read as a SHORT: its high half, 0),
    over jpeg_refinement_scans' stream, refused as a .jpg: libjpeg took 4-7 s of a core and 165 MB."""
    jpeg = jpeg_refinement_scans()
    entries = [(256, 4, 9000), (257, 4, 1), (258, 3, 8), (259, 4, 7), (262, 3, 1), (273, 4, 8 + 2 + 12 * 9 + 4),
               (277, 3, 1), (278, 4, 1), (279, 4, len(jpeg))]
    return (b"MM\x00*" + struct.pack(">IH", 8, len(entries)) + b"".join(
        struct.pack(">HHI", tag, kind, 1) + (struct.pack(">HH", value, 0) if kind == 3 else struct.pack(">I", value))
        for tag, kind, value in entries) + b"\x00" * 4 + jpeg)


def tiff_description_at_budget() -> bytes:
    """tiff_float_at_budget's picture with a 19 MB description, which Pillow and libtiff each copy: 172 MB."""
    return _tiff_deflated(2900, 2900, 1, 32, tile=None, floats=True, tags={270: (2, b"d" * (19 * 2**20) + b"\x00")})


ALONE = {"jpeg_progressive_at_two_budgets", "webp_at_two_budgets", "avif_at_two_budgets",   # each takes every
         "heic_at_two_budgets"}                                                              # decoding place


def avif_claiming_12000() -> bytes:
    """A 1 KB AVIF whose size box says 12000 x 12000: libavif makes a picture that size (1.7 GB in all)."""
    raw = bytearray(_pillow(Image.new("RGB", (40, 30), (10, 20, 30)), "AVIF"))
    at = raw.find(b"ispe") + 8                  # after the box's type, version and flags: width, height
    raw[at:at + 8] = struct.pack(">II", 12000, 12000)
    return bytes(raw)


def avif_frame_larger_than_its_size_box() -> bytes:
    """An AVIF whose size box says 40 x 30 over a 3000 x 3000 AV1 frame: the budgets count the box, the
    decoder allocates the frame (up to 16384 x 16384), so every AVIF is decoded apart, capped."""
    raw = bytearray(_pillow(Image.new("RGB", (3000, 3000), (10, 20, 30)), "AVIF", speed=10))
    at = raw.find(b"ispe") + 8
    raw[at:at + 8] = struct.pack(">II", 40, 30)
    return bytes(raw)


def heic_claiming_12000() -> bytes:
    """A 3 KB HEIC whose size box says 12000 x 12000, its picture cropped to 40 x 30 (`clap`), the size
    pillow-heif gives."""
    raw = bytearray(_pillow(Image.new("RGB", (40, 30), (10, 20, 30)), "HEIF"))
    at = raw.find(b"ispe") + 8
    raw[at:at + 8] = struct.pack(">II", 12000, 12000)
    return bytes(raw)


def heic_frame_larger_than_its_size_box() -> bytes:
    """A HEIC whose size box says 40 x 30 over a 3000 x 3000 HEVC frame, as `avif_frame_larger_than_its_size_box`."""
    raw = bytearray(_pillow(Image.new("RGB", (3000, 3000), (10, 20, 30)), "HEIF", quality=10))
    at = raw.find(b"ispe") + 8
    raw[at:at + 8] = struct.pack(">II", 40, 30)
    return bytes(raw)


def im_bad_size() -> bytes:
    """An IFUNC "IM" file whose size line has three numbers: Pillow's size is then not a pair."""
    raw = _pillow(Image.new("L", (8, 8), 50), "IM")
    return raw.replace(b"Image size (x*y): 8*8", b"Image size (x*y): 8*8*8")


def eps_ghostscript() -> bytes:
    """A tiny EPS file: Pillow renders EPS by running Ghostscript, an interpreter a visitor should never reach."""
    return (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 4000 4000\n"
            b"newpath 0 0 moveto 4000 4000 lineto stroke\nshowpage\n%%EOF\n")


BUILDERS = {f.__name__: f for f in [
    png_16bit_7000, png_rgba_7000, png_palette_7000, png_bomb_13000, png_text_bomb, png_many_chunks,
    jpeg_progressive_7000, jpeg_many_scans, jpeg_many_segments, jpeg_segments_after_the_scan, jpeg_huge_baseline,
    jpeg_ff_run, jpeg_padding, jpeg_many_frame_headers, jpeg_many_exif_blocks, jpeg_many_photoshop_blocks,
    jpeg_truncated, mpo_phone, jpeg_refinement_scans,
    gif_screen_7000, gif_many_comments, gif_stray_bytes, bmp_rle8_7000, bmp_truncated_7000, webp_canvas_7000,
    jpeg_repeated_channel_names, webp_many_prefix_groups, tiff_many_big_tags, tiff_exif_fractions, tiff_turned_8900,
    tiff_jpeg, tiff_rational_offsets, tiff_huge_tile, tiff_rgb48_4000, tiff_many_strips, tiff_float_nan, im_bad_size,
    eps_ghostscript,
    avif_claiming_12000, avif_frame_larger_than_its_size_box, heic_claiming_12000, heic_frame_larger_than_its_size_box,
    png_rgba_at_budget, png_16bit_at_budget, png_palette_at_budget, tiff_float_at_budget, webp_at_budget,
    jpeg_progressive_at_budget, jpeg_progressive_at_two_budgets, webp_at_two_budgets, avif_at_budget,
    avif_at_two_budgets, heic_at_budget, heic_at_two_budgets, heic_24_megapixels_with_preview,
    heic_preview_frame_larger_than_its_size_box, png_text_after_its_pixels, png_compressed_text_after_its_pixels,
    tiff_jpeg_compression_as_a_long, tiff_description_at_budget,
]}


def build(name: str) -> bytes:
    return BUILDERS[name]()


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile")
    folder.mkdir(parents=True, exist_ok=True)
    for name, builder in BUILDERS.items():
        (folder / name).write_bytes(builder())
        print(f"{name:<24} {(folder / name).stat().st_size:>10,} bytes")

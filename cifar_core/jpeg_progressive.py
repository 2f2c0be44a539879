"""A progressive JPEG read at an eighth of its size from the scans an eighth can show.

    decode(raw, image, size) -> `image` read at 1/8 from `for_an_eighth(raw)`, or None
    for_an_eighth(raw)       -> the file without the scans that cannot change its pixels read at 1/8, or None

A progressive JPEG sends each block's coefficients in several scans: every block's mean (its DC)
first, then bands of the others. libjpeg decodes every scan whatever size it is asked for. Read at an
eighth, a block of a channel at full resolution (the brightness; every channel of a 4:4:4 file) is one
pixel, worked out from its DC alone (libjpeg-turbo's 1x1 inverse DCT reads nothing else), so the
scans of that channel's other coefficients, most of the file, are decoded for nothing: a 12-megapixel
photo took 91-96 ms, and takes 20-22 ms without them (`benchmarks/inference.py`).

Left out, they would change one thing: where a channel has none of AC coefficients 1-9, libjpeg-turbo
smooths its DCs across neighbouring blocks, for a preview of a file still arriving (jdcoefct.c,
`change_dc`). So a scan of our own takes their place: all of them, coded as zero in every block (runs
of empty blocks, a few bytes). With every coefficient known, libjpeg smooths nothing, which saves it a
pass too. A file that never sends any of coefficients 1-9 of such a channel is smoothed in its own
decode, and is left whole. Colour channels read at less than full resolution keep all their scans: at
an eighth their blocks can be more than one pixel, made from more than the DC. Damage in the coded data
of a scan left out goes unseen: the picture is what the scans that show at an eighth make it.
`tests/test_jpeg_progressive.py` checks the pixels are those of the whole file.
"""
from __future__ import annotations

import io
import re

from PIL import Image

from cifar_core import jpeg_segments

# Skips coded data and restart markers; a match starts at the last 0xFF before the marker, after any
# fill bytes. The literal first byte lets the regex engine jump from 0xFF to 0xFF instead of trying every
# byte of the coded data (5x faster on a 12-megapixel photo), and one 0xFF a try keeps a long run of them
# linear: `\xff+` before the marker byte made a run of n bytes cost n^2 (40 KB of 0xFF: 11-14 s).
MARKER = re.compile(rb"\xff([^\x00\xff\xd0-\xd7])")
MAX_SEGMENTS = 1_000          # as decoding.MAX_JPEG_SEGMENTS, which a file has passed by now
_LONGEST_RUN = 32_767         # blocks one end-of-band run can cover (EOB14 and its 14 bits)
_RUN_TABLE = 0x13             # the Huffman table our scans are coded in: AC (1), number 3
_NO_RESTARTS = b"\xff\xdd\x00\x04\x00\x00"


def _empty_band(component: int, blocks: int) -> bytes:
    """A progressive scan of the AC coefficients of channel `component`, zero in all its `blocks` blocks:
    runs of empty blocks (symbols EOB0-EOB14, a 4-bit code each), with the table it is coded in and no
    restart interval before it."""
    counts = bytes([0, 0, 0, 15] + [0] * 12)
    table = b"\xff\xc4\x00\x22" + bytes([_RUN_TABLE]) + counts + bytes(range(0, 0xF0, 0x10))
    scan = b"\xff\xda\x00\x08\x01" + bytes([component, _RUN_TABLE & 15, 1, 63, 0])
    value, length = 0, 0
    while blocks:
        run = min(blocks, _LONGEST_RUN)
        bits = run.bit_length() - 1                       # EOBr: r bits follow, the run is 2^r plus them
        value, length = (value << (4 + bits)) | (bits << bits) | (run - (1 << bits)), length + 4 + bits
        blocks -= run
    pad = -length % 8
    data = ((value << pad) | ((1 << pad) - 1)).to_bytes((length + pad) // 8, "big").replace(b"\xff", b"\xff\x00")
    return _NO_RESTARTS + table + scan + data


def for_an_eighth(raw: bytes) -> bytes | None:
    """`raw`, a progressive Huffman-coded JPEG, without the scans of its full-resolution channels' AC
    coefficients, an empty scan of our own in place of each channel's; None for any other file, or one
    with no such scans. At most a few KB a channel longer than `raw`."""
    data, out, position, full, banded, blocks = memoryview(raw), [raw[:2]], 2, set(), set(), 0
    low = set()                            # channels some left-out scan sent AC coefficients 1-9 of
    restarts, ours_was = None, None        # the file's restart interval, and its AC table 3 as last defined
    for _ in range(MAX_SEGMENTS):
        marker = MARKER.search(raw, position)
        if marker is None:
            return None
        kind, start = marker[1][0], marker.start()
        if kind == 0xD9:
            return b"".join([*out, b"\xff\xd9"]) if low and banded <= low else None
        if kind in (0x01, 0xD8) or marker.end() + 2 > len(raw):      # no length: not in a well-formed file
            return None
        end = marker.end() + int.from_bytes(raw[marker.end():marker.end() + 2], "big")
        segment = raw[start:end]
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):      # a frame
            read = jpeg_segments.frame(segment) if kind == 0xC2 and not full else None
            if read is None:
                return None                                # progressive, Huffman-coded, 8 bits only
            height, width, channels = read
            top = max(c.across for c in channels), max(c.down for c in channels)
            full = {c.ident for c in channels if (c.across, c.down) == top}
            blocks = -(-width // 8) * -(-height // 8)      # of a full-resolution channel
        if kind != 0xDA:
            out.append(segment)
            if kind == 0xC4:
                for number, counts, symbols in jpeg_segments.huffman_tables(segment) or ():
                    if number == _RUN_TABLE:
                        ours_was = bytes([number]) + counts + symbols
            elif kind == 0xDD:
                restarts = segment
            position = end
            continue
        following = MARKER.search(raw, end)
        data_end = following.start() if following else len(raw)
        if not full or len(segment) < 9 or not segment[4] or len(segment) < 8 + 2 * segment[4]:
            return None
        ids, (first, last) = segment[5:5 + 2 * segment[4]:2], segment[5 + 2 * segment[4]:7 + 2 * segment[4]]
        if first > 0 and ids[0] in full:                  # AC coefficients of a full-resolution channel
            if len(ids) != 1 or not first <= last <= 63:
                return None                                # a damaged header: the usual decode says so
            if first <= 9:
                low.add(ids[0])
        else:
            out.append(data[start:data_end])
            new = [ident for ident in ids if ident in full and ident not in banded] if first == 0 else []
            if new:                                        # the DC: the empty band follows it
                banded.update(new)
                out += [_empty_band(ident, blocks) for ident in new]
                if ours_was is not None:                   # the file's own table and interval again
                    out.append(b"\xff\xc4" + (2 + len(ours_was)).to_bytes(2, "big") + ours_was)
                if restarts is not None:
                    out.append(restarts)
        position = data_end
    return None


def decode(raw: bytes, image: Image.Image, size: tuple[int, int]) -> Image.Image | None:
    """`image`, opened from `raw` (`size` across and down) with reading at 1/8 asked for, decoded from
    `for_an_eighth(raw)`; None where it is read at another size, is not a progressive JPEG, or the
    shorter file does not decode (the caller then decodes the whole file, which says what is wrong)."""
    if image.format not in ("JPEG", "MPO") or min(size) < 8 or image.size != (-(-size[0] // 8), -(-size[1] // 8)):
        return None
    try:
        shorter = for_an_eighth(raw)
        if shorter is None:
            return None
        eighth = Image.open(io.BytesIO(shorter), formats=("JPEG",))
        eighth.draft(image.mode, (size[0] // 8, size[1] // 8))
        eighth.load()
    except Exception:
        return None
    if eighth.size != image.size or eighth.mode != image.mode:
        return None
    eighth.info = dict(image.info)          # its EXIF orientation, read after decoding
    return eighth

"""A big JPEG decoded on two cores, a half each, where the file allows it.

    decode(raw, image) -> the picture `image` (opened from `raw`, reduced-size decoding asked for)
                          decoded as two halves at once, or None where the file cannot be cut

libjpeg decodes a picture on one core, and most of the time goes into the entropy decoding, which
decoding at reduced size does not skip (a 12-megapixel photo: about 25 ms here, more than the rest
of an answer together). The coded data is cut most simply where the encoder restarted it: at a restart
marker every prediction starts afresh, so what follows decodes on its own. Phones write them (an
iPhone at the end of every row of 16x16 blocks, for its own parallel decoder), so such a photo is
decoded here as two JPEGs at once, the rows above and below a restart marker at a row boundary, each
with its own height in its header, and the halves stacked. At reduced size libjpeg scales the colour
channels in their inverse DCT instead of smoothing them across rows, and a restart leaves nothing to
carry over, so the pixels are those of one decode (tests/test_jpeg_halves.py checks them). A big
file without restart markers is handed to `jpeg_middle`, which cuts its coded data elsewhere.
"""
from __future__ import annotations

from typing import NamedTuple

from PIL import Image

from cifar_core import jpeg_middle, jpeg_segments

MIN_PIXELS = 2_000_000     # below this a decode takes a few ms and handing half to a thread gains little
MAX_MARKERS = 1_000        # restart markers passed on the way to the cut, each a bytes.find
_KEPT = {0xC0, 0xC1, 0xC4, 0xDB, 0xDD, 0xE0, 0xEE}   # frame, tables, restart interval, JFIF and Adobe
                           # (libjpeg reads the colour transform from them); EXIF, XMP, ICC and MPF
                           # segments, parsed by Pillow in Python, are left out of the halves


class _Frame(NamedTuple):
    height_at: int          # where the frame's height is in the kept segments
    height: int
    width: int
    block_height: int       # pixels in a row of blocks (MCUs)
    rows: int               # rows of blocks
    per_row: int            # blocks a row
    sample_rows: int        # rows of pixels one colour sample spans (2 for 4:2:0, else 1)
    components: tuple       # per channel, in the frame's order: `jpeg_segments.Channel`


def _header(raw: bytes) -> tuple[list[bytes], _Frame, int, int] | None:
    """(the segments the halves keep, the frame, the restart interval in blocks, where the coded data
    starts) for a one-scan Huffman-coded JPEG; None for any other file."""
    kept, frame, interval, position = [b"\xff\xd8"], None, 0, 2
    for _ in range(MAX_MARKERS):
        while raw[position:position + 2] == b"\xff\xff":                 # fill bytes before a marker
            position += 1
        if raw[position:position + 1] != b"\xff" or position + 4 > len(raw):
            return None
        marker = raw[position + 1]
        end = position + 2 + int.from_bytes(raw[position + 2:position + 4], "big")
        segment = raw[position:end]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):      # a frame (the others: tables)
            # one frame only, sequential and Huffman-coded (progressive has many scans), 8 bits a sample
            read = jpeg_segments.frame(segment) if marker in (0xC0, 0xC1) and not frame else None
            if read is None:
                return None
            height, width, components = read
            factors = [(c.across, c.down) for c in components]
            block_w, block_h = 8 * max(h for h, _ in factors), 8 * max(v for _, v in factors)
            frame = _Frame(sum(map(len, kept)) + 5, height, width, block_h, -(-height // block_h),
                           -(-width // block_w), block_h // (8 * min(v for _, v in factors)), components)
        elif marker == 0xDD and len(segment) >= 6:
            interval = int.from_bytes(segment[4:6], "big")
        elif marker == 0xDA:
            if not frame or len(segment) < 5 or segment[4] != len(frame.components):   # one scan, every channel
                return None
            kept.append(segment)
            return kept, frame, interval, end
        elif marker in (0xD9, 0xDC):                                      # the end, or a height given later
            return None
        if marker in _KEPT:
            kept.append(segment)
        position = end
    return None


def _cut_row(rows: int, per_row: int, interval: int) -> int | None:
    """The row of blocks nearest the middle (within its middle half) that starts right after a restart
    marker numbered 7: the decoder of the lower half then finds 0, 1, 2... as in a file of its own."""
    for offset in range(rows // 4 + 1):
        for row in (rows // 2 - offset, rows // 2 + offset):
            blocks = row * per_row
            if 0 < row < rows and blocks % interval == 0 and (blocks // interval) % 8 == 0:
                return row
    return None


def decode(raw: bytes, image: Image.Image) -> Image.Image | None:
    """`image`, opened from `raw` with `draft` already asked for, decoded in two halves at once, or None
    if the file cannot be cut that way (no restart markers at a row boundary, several scans, arithmetic
    coding, a small picture) or a half fails; the caller then decodes it as usual."""
    parsed = _header(raw) if image.format in ("JPEG", "MPO") and len(raw) > 4 else None
    if parsed is None:
        return None
    kept, frame, interval, start = parsed
    width, height = frame.width, frame.height
    row = _cut_row(frame.rows, frame.per_row, interval) if interval and width * height >= MIN_PIXELS else None
    scale = next((s for s in (8, 4, 2, 1) if image.size == (-(-width // s), -(-height // s))), None)
    if scale is not None and not interval and len(raw) - start >= jpeg_middle.MIN_BYTES:
        try:
            return jpeg_middle.decode(raw, kept, frame, start, scale, image.size, image.info)
        except Exception:        # a damaged file: the usual decode says what is wrong with it
            return None
    # At full size libjpeg smooths a colour sample spanning two rows into both: across the cut, the
    # halves would differ from the whole. Reduced by as much as a sample spans, it scales it instead.
    if row is None or scale is None or scale < frame.sample_rows:
        return None
    sevens = row * frame.per_row // interval // 8                      # every eighth marker is a 7
    if sevens > MAX_MARKERS:
        return None
    cut = start - 2
    for _ in range(sevens):
        cut = raw.find(b"\xff\xd7", cut + 2)
        if cut < 0:
            return None
    header, data, top_height = b"".join(kept), memoryview(raw), row * frame.block_height
    top = [header[:frame.height_at], top_height.to_bytes(2, "big"), header[frame.height_at + 2:]]
    bottom = [header[:frame.height_at], (height - top_height).to_bytes(2, "big"), header[frame.height_at + 2:]]
    try:        # each half joined from views of `raw`: the coded data is copied once, not sliced first
        pending = jpeg_middle.other_core.submit(jpeg_middle.decoded, b"".join([*bottom, data[cut + 2:]]),
                                                (width // scale, (height - top_height) // scale))
        with jpeg_middle.awaited(pending):
            upper = jpeg_middle.decoded(b"".join([*top, data[start:cut], b"\xff\xd9"]),
                                        (width // scale, top_height // scale))
        lower = pending.result()
    except Exception:       # a damaged file: the usual decode says what is wrong with it
        return None
    if upper.size[0] != image.size[0] or lower.size[0] != image.size[0] or \
            upper.size[1] + lower.size[1] != image.size[1] or upper.mode != lower.mode:
        return None
    whole = Image.new(upper.mode, image.size)
    whole.paste(upper, (0, 0))
    whole.paste(lower, (0, upper.size[1]))
    whole.info = dict(image.info)          # its EXIF orientation, read after decoding
    return whole

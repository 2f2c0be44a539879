"""A big JPEG without restart markers decoded on two cores, its coded data cut in the middle.

    decode(raw, kept, frame, start, scale, size) -> the picture, or None where it cannot be cut

Most JPEGs from the web and from editors have no restart markers (`jpeg_halves` cuts at those), so one
core decodes them from start to end: 25 ms for a 12-megapixel photo here, most of it entropy decoding,
which reading at reduced size does not skip. Here the coded data is cut near its middle, at a boundary
between units of blocks (MCUs) that `jpeg_blocks` finds without decoding what comes before it, and
libjpeg decodes the two halves at once, each as a JPEG of its own:

- The upper half is the data to a little past the cut, then four flat units of our own that move the
  brightness up, back, down and back, then the end (after which libjpeg makes every unit grey). Where
  those four units are says how many units the upper half held, so where the cut is.
- The lower half is a few flat units that bring the cut to a whole byte, then the data from the cut on.
  JPEG codes each block's mean colour (its DC) as a difference from the block before, which the lower
  half does not know: its colours come out shifted by one amount a channel. The brightness DC's
  quantiser is halved in its header so that shift cannot take it past 0 or 255; the shift is then
  measured on the units both halves decoded, and taken off.
- Those units must agree, or the picture is decoded as usual (so must the cut be found, and nothing be
  cut off at 0 or 255).

Above the cut the pixels are those of one decode; below it they are within a few levels of them (at
most 7 in 60 photos tested, at most 1.1 on average), the rounding of the halved quantiser.
"""
from __future__ import annotations

import bisect
import contextlib
import io
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import NamedTuple

import numpy as np
from PIL import Image

from cifar_core import jpeg_blocks

MIN_BYTES = 1_500_000      # coded data below this decodes in ~15 ms or less: cutting it gains little
MAX_PIXELS = 500_000       # pixels decoded per half (a 32-megapixel photo at 1/8): bounds the copies made
WINDOW = 16_384            # bytes of coded data read in Python around the cut
SETTLE_BITS = 4_096        # bits between where the decoders fall into step and the cut: the file's own
                           # codes can join them later than they join each other
OVERLAP_MCUS = 8           # units of blocks both halves decode, to place and check the lower one
OVERLAP_BITS = 2_048       # ... and at least this much coded data
MAX_DIFFERENCE = 12        # levels the overlap may differ by (the lower half's halved quantisers round)
MAX_STEP = 48              # levels the upper half's last units move the brightness by
_SENTINEL = (1, -1, -1, 1)  # ... up, back, down, back
# The other half of a picture cut here or at a restart marker (`jpeg_halves`): one per decode at once
# (decoding.DECODING_AT_ONCE); Pillow lets go of the GIL while it decodes
other_core = ThreadPoolExecutor(max_workers=2, thread_name_prefix="jpeg-half")


@contextlib.contextmanager
def awaited(half: Future):
    """The block decodes one half here while `half` decodes the other on `other_core`: however the block
    ends, `half` has ended too. Where this half failed, the other went on decoding on the second core
    after the picture had let go of its decoding place, beside the usual decode that follows."""
    try:
        yield
    finally:
        wait([half])


class _Layout(NamedTuple):
    quant_ids: list          # per channel: its quantisation table
    sides: list              # per channel: (down, across) in pixels of one of its blocks, read at 1/8
    tile: tuple              # (height, width) in pixels of a unit of blocks (an MCU), read at 1/8


def _layout(kept: list[bytes], frame, scale: int) -> tuple[_Layout, jpeg_blocks.Scan] | None:
    """How a three-channel frame's units are laid out read at 1/8, and its scan; None for any other.
    Read at 1/8 a brightness block is one pixel, its DC (so the lower half's cannot be cut off at 0 or
    255), and each colour's block a rectangle of pixels of one colour: libjpeg-turbo smooths colour
    samples across neighbouring blocks only where it reads a block as more than one pixel (jdsample.c),
    so no block's pixels depend on the units next to it, whatever the sampling (4:2:0, 4:2:2, 4:4:4...)."""
    factors = [(h, v) for _, h, v, _ in frame.components]
    h_max, v_max = max(h for h, _ in factors), max(v for _, v in factors)
    if len(factors) != 3 or scale != 8 or frame.rows * frame.per_row * h_max * v_max > MAX_PIXELS or \
            any(h_max % h or v_max % v for h, v in factors):
        return None
    scan = jpeg_blocks.Scan.parse(kept, factors, [ident for ident, *_ in frame.components])
    layout = _Layout([table for *_, table in frame.components], [(v_max // v, h_max // h) for h, v in factors],
                     (v_max, h_max))
    return None if scan is None else (layout, scan)


class _Bits:
    """Huffman codes written MSB first."""

    def __init__(self):
        self.value, self.length = 0, 0

    def add(self, value: int, length: int) -> None:
        self.value, self.length = (self.value << length) | (value & ((1 << length) - 1)), self.length + length

    def padded(self) -> bytes:
        """The bits to a whole byte with ones (as encoders pad), 0xFF bytes stuffed with a zero."""
        pad = -self.length % 8
        raw = ((self.value << pad) | ((1 << pad) - 1)).to_bytes((self.length + pad) // 8, "big")
        return raw.replace(b"\xff", b"\xff\x00")


def _difference(bits: _Bits, table, value: int) -> bool:
    """A DC difference written in `table`'s codes; False if the table has no code for its size."""
    size = abs(value).bit_length()
    code = table.codes.get(size)
    if code is None:
        return False
    bits.add(*code)
    bits.add(value if value >= 0 else value + (1 << size) - 1, size)
    return True


def _unit(bits: _Bits, scan: jpeg_blocks.Scan, differences: dict[int, int]) -> bool:
    """One MCU of flat blocks; the first block of component c moves its DC by differences[c]."""
    first = set()
    for dc, ac, component in scan.blocks:
        change = differences.get(component, 0) if component not in first else 0
        first.add(component)
        end_of_block = ac.codes.get(0)
        if end_of_block is None or not _difference(bits, dc, change):
            return False
        bits.add(*end_of_block)
    return True


def _filler(scan: jpeg_blocks.Scan, residue: int) -> tuple[_Bits, int] | None:
    """Flat MCUs whose bits number `residue` modulo 8: (the bits, how many MCUs). A unit's length
    modulo 8 depends only on the size of its first brightness difference (1, 2, 4... 64)."""
    luma = scan.blocks[0][2]
    lengths = {}                                        # bits modulo 8 -> a difference that gives them
    for size in range(8):
        bits = _Bits()
        if _unit(bits, scan, {luma: 1 << size >> 1}):
            lengths.setdefault(bits.length % 8, 1 << size >> 1)
    reached = {0: []}                                   # bits modulo 8 -> the differences of units giving them
    for _ in range(8):
        reached = {(total + length) % 8: chosen + [difference]
                   for total, chosen in reached.items() for length, difference in lengths.items()}
        if residue in reached:
            bits = _Bits()
            for difference in reached[residue]:
                _unit(bits, scan, {luma: difference})
            return bits, len(reached[residue])
    return None


def _header(kept: list[bytes], width: int, height: int, halve: int | None = None
            ) -> tuple[bytes, dict[int, tuple[int, int]]]:
    """The kept segments with the frame's size set and the DC quantiser of table `halve` halved:
    (the header, table id -> (DC quantiser, as written))."""
    out, quantisers = [], {}
    for segment in kept:
        if segment[1] in (0xC0, 0xC1):
            segment = segment[:5] + height.to_bytes(2, "big") + width.to_bytes(2, "big") + segment[9:]
        elif segment[1] == 0xDB:
            body, position = bytearray(segment), 4
            while position < len(body):
                wide, ident = body[position] >> 4, body[position] & 15
                at = position + 1
                q = int.from_bytes(body[at:at + 1 + wide], "big")
                written = max(1, q // 2) if ident == halve else q
                body[at:at + 1 + wide] = written.to_bytes(1 + wide, "big")
                quantisers[ident] = (q, written)
                position = at + 64 * (1 + wide)
            segment = bytes(body)
        out.append(segment)
    return b"".join(out), quantisers


def decoded(part: bytes, size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """JPEG `part` (a half of a picture) decoded in `mode`, reduced as far as `size` (across, down) allows."""
    image = Image.open(io.BytesIO(part), formats=("JPEG",))
    image.draft(mode, size)
    image.load()
    return image


def _undone(pixels: np.ndarray, layout: _Layout, halved: dict, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The lower half's YCbCr (uint8) as float, each block's mean (its DC) scaled back up to what the
    full DC quantisers give, and moved by `shift`."""
    out = np.empty(pixels.shape, np.float32)
    for c, (table, (down, across)) in enumerate(zip(layout.quant_ids, layout.sides)):
        q, written = halved[table]
        plane = out[..., c]
        plane[...] = pixels[..., c]
        if q != written:
            blocks = plane.reshape(plane.shape[0] // down, down, plane.shape[1] // across, across)   # a view
            blocks += (blocks.mean(axis=(1, 3), keepdims=True) - 128) * (q / written - 1)
        plane += shift[c]
    return out


def _lookup(layout: _Layout, halved: dict, shift) -> list[int] | None:
    """`_undone` as a table per channel for Image.point, where each channel's block is one pixel or
    keeps its quantiser; None otherwise."""
    table = []
    for quant, side, moved in zip(layout.quant_ids, layout.sides, shift):
        q, written = halved[quant]
        if q != written and side != (1, 1):
            return None
        values = (np.arange(256) - 128) * (q / written) + 128 + moved
        table += np.clip(np.floor(values + 0.5), 0, 255).astype(int).tolist()
    return table


def _ycc(tiles: np.ndarray) -> np.ndarray:
    flat = Image.fromarray(np.ascontiguousarray(tiles.reshape(-1, *tiles.shape[2:])))
    return np.asarray(flat.convert("YCbCr"), np.float32).reshape(tiles.shape)


def _units(rows: np.ndarray, tile: tuple[int, int], first: int, count: int) -> np.ndarray:
    """(count, tile height, tile width, channels): units first.. of a picture held as rows of units."""
    per_row = rows.shape[2] // tile[1]
    top, bottom = first // per_row, -(-(first + count) // per_row)
    part = rows[top:bottom].reshape(bottom - top, tile[0], per_row, tile[1], -1).swapaxes(1, 2)
    return part.reshape(-1, *tile, rows.shape[3])[first - top * per_row:][:count]


def _sentinel(upper: np.ndarray, tile: tuple[int, int], step: int) -> int | None:
    """Where `_SENTINEL`'s units, moving the brightness by `step` levels, begin in the upper half (rows
    of units): just before its last few units and the grey after them."""
    rows, per_row = upper.shape[0], upper.shape[2] // tile[1]
    grey_rows = (upper.reshape(rows, -1) == 128).all(axis=1)   # whole rows first: reductions over long axes
    row = rows - 1 - int(np.argmin(grey_rows[::-1]))           # the last row with a unit that is not grey
    if grey_rows[row]:
        return None
    grey = (_units(upper, tile, row * per_row, per_row) == 128).reshape(per_row, -1).all(axis=1)
    first_grey = row * per_row + per_row - int(np.argmin(grey[::-1]))
    for end in range(first_grey - len(_SENTINEL), first_grey - len(_SENTINEL) - 3, -1):
        if end < 1:
            return None
        x, y, z, w = _units(upper, tile, end, 4).astype(np.int16)
        # x, z: the brightness moved up and down from y (and w); one of the two moves is exact in the
        # brightness, but may be cut off at 0 or 255 in a colour channel
        if all((t == t[0, 0]).all() for t in (x, y, z, w)) and (y == w).all() and (x >= y).all() and \
                (y >= z).all() and (x != y).any() and (y != z).any() and ((x - y == step) | (y - z == step)).any():
            return end
    return None


def _cut_points(raw: bytes, start: int, scan: jpeg_blocks.Scan) -> tuple[int, int, int, int, int] | None:
    """Where MCUs begin near the middle of the coded data (from `start`): (the byte and bit of the cut,
    the byte and bit where the upper half ends, the units between them); None if not found."""
    middle = start + (len(raw) - start) // 2
    middle += raw[middle - 1] == 0xFF                  # not on the zero that follows a coded 0xFF
    window = raw[middle:middle + WINDOW + 1]           # a byte more: the zero after a last 0xFF
    stuffed, position = [], window.find(b"\xff", 0, WINDOW)
    while position >= 0:                                # each 0xFF of the data is followed by a zero
        if window[position + 1:position + 2] != b"\x00":
            return None                                 # a marker: the data does not run past the window
        stuffed.append(position - len(stuffed))         # where that 0xFF is, once the zeros are gone
        position = window.find(b"\xff", position + 2, WINDOW)
    starts = scan.mcu_starts(window.replace(b"\xff\x00", b"\xff"), SETTLE_BITS, OVERLAP_MCUS, OVERLAP_BITS)
    if starts is None:
        return None
    # where the bytes the two bits are in, counted in the window without its zeros, are in `raw`
    cut, end = (middle + (bit >> 3) + bisect.bisect_left(stuffed, bit >> 3) for bit in (starts[0], starts[-1]))
    return cut, starts[0] & 7, end, starts[-1] & 7, len(starts) - 1


def _upper_half(raw: bytes, kept: list[bytes], frame, layout: _Layout, scan: jpeg_blocks.Scan, start: int,
                at: int, bit: int) -> tuple[bytes, int] | None:
    """(a JPEG of the picture's size holding the coded data to bit `bit` of byte `at`, then four flat
    units that move the brightness by `step` levels up, back, down and back, then its end; `step`)."""
    header, quantisers = _header(kept, frame.per_row * layout.tile[1] * 8, frame.rows * layout.tile[0] * 8)
    if layout.quant_ids[0] not in quantisers or any(dc < 2 for dc, _ in quantisers.values()):
        return None                                     # no table, or a DC quantiser of 1: nothing to halve
    q = quantisers[layout.quant_ids[0]][0]
    difference = 8 * max(1, min(MAX_STEP // q, ((1 << max(scan.blocks[0][0].codes)) - 1) // 8))
    ending = _Bits()
    ending.add(raw[at] >> (8 - bit), bit)
    luma = scan.blocks[0][2]
    if not all(_unit(ending, scan, {luma: sign * difference}) for sign in _SENTINEL):
        return None
    return b"".join([header, memoryview(raw)[start:at], ending.padded(), b"\xff\xd9"]), difference * q // 8


def _lower_half(raw: bytes, kept: list[bytes], frame, layout: _Layout, scan: jpeg_blocks.Scan, at: int,
                bit: int) -> tuple[bytes, int, dict] | None:
    """(a JPEG a row of units taller than the picture: flat units that bring the coded data from bit
    `bit` of byte `at` to a whole byte, then that data, the brightness DC quantiser halved; how many
    flat units; table id -> (DC quantiser, as written))."""
    header, halved = _header(kept, frame.per_row * layout.tile[1] * 8, (frame.rows + 1) * layout.tile[0] * 8,
                             halve=layout.quant_ids[0])
    if not bit:
        return b"".join([header, memoryview(raw)[at:]]), 0, halved
    found = _filler(scan, bit)
    if found is None:
        return None
    filler, skipped = found
    filler.add(raw[at], 8 - bit)                        # the rest of the byte the cut is in
    rest = at + (2 if raw[at] == 0xFF else 1)
    return b"".join([header, filler.padded(), memoryview(raw)[rest:]]), skipped, halved


def _joined(upper: np.ndarray, lower: np.ndarray, k: int, end: int, skipped: int, layout: _Layout,
            halved: dict) -> np.ndarray | None:
    """The picture (rows of units, RGB): the upper half's units before `end`, then the lower half's
    from its unit `skipped` on (the picture's unit k), its colours put right; None where they cannot
    be, or the units both halves hold disagree."""
    rows, (tile_h, tile_w) = upper.shape[0], layout.tile
    per_row, overlap = upper.shape[2] // tile_w, end - k
    # Unit n >= k of the picture is unit n - k + skipped of the lower half: its rows from the overlap's on.
    lower = lower[skipped // per_row:-(-(skipped + rows * per_row - k) // per_row)]
    skipped %= per_row
    full, part = divmod(skipped + rows * per_row - k, per_row)
    for held in (lower[:full], _units(lower, layout.tile, full * per_row, part)):
        if held.size and (held.min() == 0 or held.max() == 255):
            return None                                # cut off at 0 or 255: a shift that cannot be undone
    shared = _units(upper, layout.tile, k, overlap)
    seen = _undone(lower[:-(-(skipped + overlap) // per_row)].reshape(-1, per_row * tile_w, 3), layout, halved)
    shift = np.median(_ycc(shared) - _units(seen.reshape(-1, tile_h, per_row * tile_w, 3), layout.tile, skipped,
                                            overlap), axis=(0, 1, 2))
    lower = lower.reshape(-1, per_row * tile_w, 3)
    table = _lookup(layout, halved, shift)
    lower = Image.fromarray(lower, "YCbCr").point(table) if table is not None else \
        Image.fromarray(np.clip(_undone(lower, layout, halved, shift) + 0.5, 0, 255).astype(np.uint8), "YCbCr")
    lower = np.asarray(lower.convert("RGB")).reshape(-1, tile_h, per_row * tile_w, 3)
    lower = np.concatenate([lower[:1], lower, lower[:2]])     # a row each side: the moves below stay inside
    # A row of the picture is the end of one of lower's rows and the start of the next.
    moved, along = divmod(skipped - k, per_row)
    top = k // per_row
    count, split = rows - top, (per_row - along) * tile_w
    whole = np.empty_like(upper)
    whole[top:, :, :split] = lower[top + moved + 1:top + moved + 1 + count, :, along * tile_w:]
    whole[top:, :, split:] = lower[top + moved + 2:top + moved + 2 + count, :, :along * tile_w]
    if np.abs(_units(whole, layout.tile, k, overlap).astype(np.int16) - shared).max() > MAX_DIFFERENCE:
        return None                                    # the halves disagree: the cut was not where it seemed
    row, column = divmod(end, per_row)
    whole[:row] = upper[:row]
    whole[row, :, :column * tile_w] = upper[row, :, :column * tile_w]
    return whole


def decode(raw: bytes, kept: list[bytes], frame, start: int, scale: int, size: tuple[int, int],
           info: dict | None = None) -> Image.Image | None:
    """The picture of one-scan JPEG `raw` at 1/`scale` of its size (`size`), decoded as two halves at
    once, or None if it cannot be (see the module's docstring); `kept`, `frame` and `start` as
    `jpeg_halves._header` gives them, `info` Pillow's for the file."""
    found = _layout(kept, frame, scale)
    points = found and _cut_points(raw, start, found[1])
    if not points:
        return None
    (layout, scan), (cut, cut_bit, end, end_bit, overlap) = found, points
    upper = _upper_half(raw, kept, frame, layout, scan, start, end, end_bit)
    lower = _lower_half(raw, kept, frame, layout, scan, cut, cut_bit)
    if upper is None or lower is None:
        return None
    (upper, step), (lower, skipped, halved) = upper, lower
    across, down = frame.per_row * layout.tile[1], frame.rows * layout.tile[0]
    try:
        pending = other_core.submit(decoded, lower, (across, down + layout.tile[0]), "YCbCr")
        with awaited(pending):
            upper = decoded(upper, (across, down))
        lower = pending.result()
    except Exception:
        return None
    if upper.size != (across, down) or lower.size != (across, down + layout.tile[0]):
        return None
    upper, lower = (np.asarray(p).reshape(-1, layout.tile[0], across, 3) for p in (upper, lower))   # rows of units
    last = _sentinel(upper, layout.tile, step)
    whole = None if last is None else _joined(upper, lower, last - overlap, last, skipped, layout, halved)
    if whole is None:
        return None
    whole = Image.fromarray(np.ascontiguousarray(whole.reshape(down, across, 3)[:size[1], :size[0]]))
    whole.info = dict(info or {})          # its EXIF orientation, read after decoding
    return whole
